"""Unpacking the zip and its layers for the probe, on every core.

One pass decompresses each member, checks its CRC, charges its bytes to the size budget shared by
all workers (the directory may lie), and writes it with its own permission bits. zipfile's per-member
work is mostly Python, so threads would queue on the GIL: forked worker processes each open the zip
themselves and take a share of the members, balanced by compressed size. Where fork is unavailable,
the zip is small, or the member store holds nearly all of it (linking is cheap), it runs in this process.

With a member store (lpkg.archive.members), a member whose compressed bytes and attributes were unpacked
before is linked from the store instead of inflated again, and each one inflated is added to it.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lpkg.archive import members
from lpkg.archive.reader import BudgetExceeded, MemberCorrupt, SizeBudget, ZipArchive, unpack_member

MAX_WORKERS = 4
# Below this much compressed data, starting workers costs more than it saves.
PARALLEL_FROM_BYTES = 8 << 20
MEMBER_COST_BYTES = 4096  # a member costs something even when tiny: a file to create
KEPT_SAMPLE = 32  # members looked up in the store to tell a second verify, which unpacks in this process
KEPT_SHARE = 0.9
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
    facts: members.MemberFacts | None = None  # what the member store's key covers; None: not to be stored


@dataclass(frozen=True)
class UnpackResult:
    corrupt: tuple[tuple[UnpackJob, str], ...]  # (job, reason)
    over_budget: BudgetExceeded | None  # set when the bytes produced passed the limit; unpacking stopped
    produced: int
    linked: int = 0  # members linked from the store
    added: int = 0  # bytes added to the store
    keys: tuple[tuple[str, str, str], ...] = ()  # (target_dir, name, store key) of each member with a key


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


@dataclass
class _LocalCounter:
    """The counter when unpacking in this process: multiprocessing (and pickle) need not be imported for it."""

    value: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get_lock(self) -> threading.Lock:
        return self._lock


_worker_counter: Any = None


def _init_worker(counter: Any) -> None:
    global _worker_counter
    _worker_counter = counter


def _unpack_share(jobs: Sequence[UnpackJob], limit: int, counter: Any = None,
                  store: Path | None = None) -> UnpackResult:
    budget = _SharedBudget(limit, counter if counter is not None else _worker_counter)
    archives: dict[str, ZipArchive] = {}
    handles: dict[str, Any] = {}  # zip path -> a plain file handle, to read compressed bytes
    corrupt: list[tuple[UnpackJob, str]] = []
    keys: list[tuple[str, str, str]] = []
    linked = added = 0

    def result(over: BudgetExceeded | None) -> UnpackResult:
        return UnpackResult(tuple(corrupt), over, budget.used, linked, added, tuple(keys))

    made: set[str] = set()  # folders this share made or found, so each is looked up once
    try:
        for job in jobs:
            key = None
            raw = _compressed(handles, job)
            if store is not None and raw is not None and job.facts is not None:
                key = members.member_key(raw, job.facts)
                if _link(store, key, job, made):
                    budget.spend(job.member, job.facts.size)  # inflated to this size when it was kept
                    linked += 1
                    keys.append((job.target_dir, job.name, key))
                    continue
            data = members.inflate(raw, job.facts) if raw is not None and job.facts is not None else None
            if data is not None:
                budget.spend(job.member, len(data))  # where the full read would have gone past the limit too
            else:
                try:
                    data = _archive(archives, job.zip_path).read(job.member, budget)
                except MemberCorrupt as exc:
                    corrupt.append((job, exc.reason))
                    continue
            try:
                unpack_member(Path(job.target_dir), job.name, data, job.mode, job.mtime)
            except OSError as exc:
                if exc.errno not in _NAME_ERRORS:
                    raise  # disk full, permissions: the machine's problem, not the zip's
                corrupt.append((job, f"cannot be unpacked: {exc.strerror}"))
                continue
            if key is not None and store is not None:
                added += members.keep(store, key, os.path.join(job.target_dir, job.name), len(data))
                keys.append((job.target_dir, job.name, key))
    except BudgetExceeded as exc:
        return result(exc)
    finally:
        for archive in archives.values():
            archive.close()
        for handle in handles.values():
            handle.close()
    return result(None)


def _compressed(handles: dict[str, Any], job: UnpackJob) -> bytes | None:
    """The member's compressed bytes (members.compressed_data), each zip opened once into `handles`."""
    if job.facts is None:
        return None
    handle = handles.get(job.zip_path) or handles.setdefault(job.zip_path, open(job.zip_path, "rb"))
    return members.compressed_data(handle, job.facts)


def _archive(archives: dict[str, ZipArchive], zip_path: str) -> ZipArchive:
    archive = archives.get(zip_path)
    if archive is None:
        archive = archives[zip_path] = ZipArchive(Path(zip_path))
    return archive


def _link(store: Path, key: str, job: UnpackJob, made: set[str]) -> bool:
    """Link the stored file into the task root; False when the store has none (or the name cannot be made
    here: the full path then reports why)."""
    target = os.path.join(job.target_dir, job.name)
    try:
        _make_parents(job.target_dir, target, made)
        return members.link_from_store(store, key, target)
    except OSError:
        return False


def _make_parents(root: str, target: str, made: set[str]) -> None:
    """The folders above `target` up to `root`, 0755 whatever the umask (as unpack_member makes them)."""
    parent = os.path.dirname(target)
    missing = []
    while parent != root and parent not in made and not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue  # another worker made it
        os.chmod(folder, 0o755)
    made.update(missing)
    made.add(os.path.dirname(target))


def _shares(jobs: Sequence[UnpackJob], count: int) -> list[list[UnpackJob]]:
    """Split the jobs into `count` lists of about equal compressed size (largest first, to the lightest)."""
    shares: list[list[UnpackJob]] = [[] for _ in range(count)]
    loads = [0] * count
    for job in sorted(jobs, key=lambda j: -j.compressed_size):
        lightest = loads.index(min(loads))
        shares[lightest].append(job)
        loads[lightest] += job.compressed_size + MEMBER_COST_BYTES
    return shares


def _mostly_kept(store: Path | None, jobs: Sequence[UnpackJob]) -> bool:
    """Whether the store holds nearly all of a sample of the members (a second verify): linking them takes less
    than starting the workers and sending them the jobs (5,756 links of numpy + pandas: 0.15 s here, against
    0.33 s through two workers)."""
    if store is None or not jobs:
        return False
    sample = jobs[:: max(1, len(jobs) // KEPT_SAMPLE)]
    kept = 0
    handles: dict[str, Any] = {}
    try:
        for job in sample:
            raw = _compressed(handles, job)
            if raw is not None and job.facts is not None and \
                    os.path.exists(members.stored_path(store, members.member_key(raw, job.facts))):
                kept += 1
    except OSError:
        return False
    finally:
        for handle in handles.values():
            handle.close()
    return kept >= KEPT_SHARE * len(sample)


def unpack_all(jobs: Sequence[UnpackJob], limit: int, store: Path | None = None) -> UnpackResult:
    """Unpack every job; with `store`, link what it holds and add what was inflated (see lpkg.archive.members)."""
    workers = min(MAX_WORKERS, os.cpu_count() or 1)
    total = sum(job.compressed_size + MEMBER_COST_BYTES for job in jobs)
    if workers < 2 or total < PARALLEL_FROM_BYTES or not hasattr(os, "fork") or _mostly_kept(store, jobs):
        return _unpack_share(jobs, limit, _LocalCounter(), store)
    # Imported here: a small zip (a code-only rebuild) is unpacked without them.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork")
    counter = context.Value("q", 0)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(counter,)) as pool:
        results = list(pool.map(_unpack_share, _shares(jobs, workers), [limit] * workers, [None] * workers,
                                [store] * workers))
    over = next((r.over_budget for r in results if r.over_budget is not None), None)
    corrupt = tuple(item for r in results for item in r.corrupt)
    return UnpackResult(corrupt, over, int(counter.value), sum(r.linked for r in results),
                        sum(r.added for r in results), tuple(key for r in results for key in r.keys))
