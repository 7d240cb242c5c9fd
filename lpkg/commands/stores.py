"""Where verify unpacks, and which of its stores a verify may use: the member store (lpkg.archive.members) and
the bytecode kept by content beside it (lpkg.probing.bytecode.KeyedBytecode)."""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from lpkg.archive import members
from lpkg.archive.reader import ZipArchive
from lpkg.files import owned_name, remove_stale, remove_tree
from lpkg.probing.bytecode import KeyedBytecode, shipped_bytecode_folders
from lpkg.probing.request import NoProbe, Prober
from lpkg.runtimes import UNZIPPED_LIMIT_BYTES, Runtime


def member_store_for(prober: Prober | NoProbe | None, scratch_parent: str | None) -> Path | None:
    """The member store, when no code that could write to the task root runs on it: no probe, or one that
    mounts it read-only (a hard-linked file written there would change the store)."""
    if prober is not None and not isinstance(prober, NoProbe) and not getattr(prober, "task_root_read_only", False):
        return None
    folder = members.store_folder(scratch_parent)
    return members.open_store(folder) if folder is not None else None


def keyed_bytecode(store: Path | None, runtime: Runtime, zip_path: Path) -> KeyedBytecode | None:
    """Bytecode kept by content, for this zip's path only."""
    if store is None:
        return None
    return KeyedBytecode(store, f"cpython-{runtime.minor.replace('.', '')}", os.path.abspath(zip_path), {})


def keyed_sources(source_keys: Sequence[tuple[str, str]], task_root: Path, archive: ZipArchive,
                  cache_tag: str) -> dict[str, str]:
    """The task-root sources whose bytecode the keyed store may give: not those in a folder where the zip
    ships bytecode the interpreter would load, which the import must read as Lambda would."""
    names = archive.paths
    shipped = shipped_bytecode_folders(task_root, names, cache_tag)
    return {member: key for member, key in source_keys if posixpath.dirname(member) not in shipped}


def scratch_parent() -> str | None:
    """Where to unpack: memory-backed /dev/shm when it has room (unpacking is mostly file
    creation), else the system temp folder. LPKG_SCRATCH_DIR overrides."""
    chosen = os.environ.get("LPKG_SCRATCH_DIR")
    if chosen:
        return chosen
    shm = "/dev/shm"
    try:
        stats = os.statvfs(shm)
    except OSError:
        return None
    if os.access(shm, os.W_OK) and stats.f_bavail * stats.f_frsize > 2 * UNZIPPED_LIMIT_BYTES:
        return shm
    return None


@contextlib.contextmanager
def scratch_folder() -> Iterator[Path]:
    """A private temporary folder, removed without recursion: a zip may nest folders thousands deep,
    deeper than shutil.rmtree's recursion can go."""
    parent = Path(scratch_parent() or tempfile.gettempdir())
    remove_stale(parent, "lpkg-verify-")  # /dev/shm is not this run's TMPDIR: a killed run's unpacked zips
    root = parent / owned_name("lpkg-verify-")
    root.mkdir(mode=0o700)
    try:
        yield root
    finally:
        remove_tree(root)
