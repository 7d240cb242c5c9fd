"""Unpacking the zip and its layers for the probe, on every core.

One pass decompresses each member, checks its CRC, charges its bytes to the size budget shared by
all workers (the directory may lie), and writes it with its own permission bits. zipfile's per-member
work is mostly Python, so threads would queue on the GIL: forked worker processes each open the zip
themselves and take a share of the members, balanced by compressed size. Where fork is unavailable,
or the zip is small, it runs in this process.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpkg.archive.reader import BudgetExceeded, MemberCorrupt, SizeBudget, ZipArchive, unpack_member

MAX_WORKERS = 4
# Below this much compressed data, starting workers costs more than it saves.
PARALLEL_FROM_BYTES = 8 << 20
MEMBER_COST_BYTES = 4096  # a member costs something even when tiny: a file to create
# What creating a member's file can fail with because of its name (the structure checks catch these first).
_NAME_ERRORS = {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ELOOP}


@dataclass(frozen=True)
class UnpackJob:
    zip_path: str
    member: str  # the name in the zip
    name: str  # the normalized path under target_dir
    target_dir: str
    mode: int
    mtime: float
    compressed_size: int


@dataclass(frozen=True)
class UnpackResult:
    corrupt: tuple[tuple[UnpackJob, str], ...]  # (job, reason)
    over_budget: BudgetExceeded | None  # set when the bytes produced passed the limit; unpacking stopped
    produced: int


class _SharedBudget(SizeBudget):
    """The budget as a counter in shared memory, so every worker is charged against one limit."""

    def __init__(self, limit: int, counter: Any) -> None:
        super().__init__(limit)
        self._counter = counter

    def spend(self, member: str, count: int) -> None:
        with self._counter.get_lock():
            self._counter.value += count
            self.used = int(self._counter.value)
        if self.used > self.limit:
            raise BudgetExceeded(member, self.used, self.limit)


_worker_counter: Any = None


def _init_worker(counter: Any) -> None:
    global _worker_counter
    _worker_counter = counter


def _unpack_share(jobs: Sequence[UnpackJob], limit: int, counter: Any = None) -> UnpackResult:
    budget = _SharedBudget(limit, counter if counter is not None else _worker_counter)
    archives: dict[str, ZipArchive] = {}
    corrupt: list[tuple[UnpackJob, str]] = []
    try:
        for job in jobs:
            archive = archives.get(job.zip_path)
            if archive is None:
                archive = archives[job.zip_path] = ZipArchive(Path(job.zip_path))
            try:
                data = archive.read(job.member, budget)
            except MemberCorrupt as exc:
                corrupt.append((job, exc.reason))
                continue
            try:
                unpack_member(Path(job.target_dir), job.name, data, job.mode, job.mtime)
            except OSError as exc:
                if exc.errno not in _NAME_ERRORS:
                    raise  # disk full, permissions: the machine's problem, not the zip's
                corrupt.append((job, f"cannot be unpacked: {exc.strerror}"))
    except BudgetExceeded as exc:
        return UnpackResult(tuple(corrupt), exc, budget.used)
    finally:
        for archive in archives.values():
            archive.close()
    return UnpackResult(tuple(corrupt), None, budget.used)


def _shares(jobs: Sequence[UnpackJob], count: int) -> list[list[UnpackJob]]:
    """Split the jobs into `count` lists of about equal compressed size (largest first, to the lightest)."""
    shares: list[list[UnpackJob]] = [[] for _ in range(count)]
    loads = [0] * count
    for job in sorted(jobs, key=lambda j: -j.compressed_size):
        lightest = loads.index(min(loads))
        shares[lightest].append(job)
        loads[lightest] += job.compressed_size + MEMBER_COST_BYTES
    return shares


def unpack_all(jobs: Sequence[UnpackJob], limit: int) -> UnpackResult:
    workers = min(MAX_WORKERS, os.cpu_count() or 1)
    total = sum(job.compressed_size + MEMBER_COST_BYTES for job in jobs)
    if workers < 2 or total < PARALLEL_FROM_BYTES or "fork" not in multiprocessing.get_all_start_methods():
        return _unpack_share(jobs, limit, multiprocessing.get_context().Value("q", 0))
    context = multiprocessing.get_context("fork")
    counter = context.Value("q", 0)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(counter,)) as pool:
        results = list(pool.map(_unpack_share, _shares(jobs, workers), [limit] * workers))
    over = next((r.over_budget for r in results if r.over_budget is not None), None)
    corrupt = tuple(item for r in results for item in r.corrupt)
    return UnpackResult(corrupt, over, int(counter.value))
