"""The compiled form of a cached dependency install, kept between builds so the probe's import skips
compiling unchanged dependency modules (lpkg build; the Docker probe on a local daemon only).

The store is a folder in the layout of sys.pycache_prefix (store/var/task/pkg/mod.cpython-311.pyc for
/var/task/pkg/mod.py). Before the probe, `offer` copies (never links: the sandbox must not reach the store)
its pycs of dependency members into a fresh folder the sandbox may write to, and makes the mirror folder
of every dependency folder; the probe's importer puts the bytecode of task-root sources whose mirror folder
exists there (lpkg/probe/importer.py). After the probe, `harvest` keeps what the import compiled anew.

Why reusing it is safe: the store belongs to one dependency cache entry, whose key covers the lock's
content, the runtime, the architecture and the image ID, so a dependency member's bytes never change
under it; and the importer checks a timestamp pyc against its source's mtime and size, which the unpacked
members keep from the zip — a pyc that does not match is compiled again, exactly as without the store.
Only timestamp pycs of the runtime's interpreter (its magic number and cache tag, as the probe reports
them) for members of the install are kept: never first-party code, never layers, never an unchecked-hash
pyc (the importer would not compare it with its source). What is kept ever runs only in the sandbox.
Every step is best effort: a store that cannot be read or written costs speed, never a build.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lpkg.runtimes import TASK_ROOT

HEADER_BYTES = 16  # magic, flags, source mtime, source size (PEP 552)
TIMESTAMP_FLAGS = b"\0\0\0\0"
TASK_MIRROR = TASK_ROOT.lstrip("/")  # where the task root's bytecode sits under a pycache prefix


@dataclass(frozen=True)
class BytecodeStore:
    """A store of compiled dependency modules: `members` are the task-root paths (zip member names) whose
    bytecode it may hold."""

    folder: Path
    members: frozenset[str]


@dataclass(frozen=True)
class Offered:
    """What `offer` put into the probe's bytecode folder: each file's stat, to tell which the probe rewrote."""

    folder: Path
    files: dict[str, tuple[int, int]]  # path under folder -> (st_size, st_mtime_ns)


@dataclass(frozen=True)
class Harvest:
    reused: int  # dependency modules the import loaded from the store's bytecode
    kept: int  # compiled by this probe and added to the store


def member_of(rel: PurePosixPath, cache_tag: str | None = None) -> str | None:
    """The task-root member a pyc path under a pycache prefix is the bytecode of: var/task/pkg/mod.TAG.pyc ->
    pkg/mod.py (any tag unless given; never an optimised .opt-N.pyc)."""
    if rel.parts[: len(PurePosixPath(TASK_MIRROR).parts)] != PurePosixPath(TASK_MIRROR).parts:
        return None
    stem, dot, tag = rel.name.removesuffix(".pyc").rpartition(".")
    if not rel.name.endswith(".pyc") or not dot or not stem or "opt-" in tag or (cache_tag and tag != cache_tag):
        return None
    folder = rel.parent.relative_to(TASK_MIRROR)
    return (folder / f"{stem}.py").as_posix()


def offer(store: BytecodeStore, target: Path) -> Offered:
    """Fill `target` (a fresh folder, to be mounted writable into the probe) from the store: the mirror
    folder of every folder holding a dependency module, world-writable so the sandbox user can add to it,
    and a copy of each stored timestamp pyc of a member. Anything else in the store is removed."""
    target.mkdir(mode=0o777, exist_ok=True)
    target.chmod(0o777)  # whatever the umask: the sandbox user is another user
    folders: set[PurePosixPath] = set()
    for member in store.members:
        if member.endswith(".py"):
            folder = PurePosixPath(TASK_MIRROR) / PurePosixPath(member).parent
            folders.update((folder, *folder.parents))
    for folder in sorted(folders):  # parents first
        (target / folder).mkdir(exist_ok=True)
        (target / folder).chmod(0o777)
    files: dict[str, tuple[int, int]] = {}
    root = store.folder / TASK_MIRROR
    for dirpath, _, names in _walk(root):
        for name in names:
            source = Path(dirpath, name)
            rel = PurePosixPath(source.relative_to(store.folder).as_posix())
            if name.startswith("."):
                continue  # a concurrent harvest's file being written
            try:
                data = source.read_bytes()
                if member_of(rel) not in store.members or not _timestamp_pyc(data):
                    source.unlink()  # not something harvest writes: planted, or left by an interrupted copy
                    continue
                copy = target / rel
                copy.write_bytes(data)
                stat = copy.stat()
            except OSError:
                continue  # a store that cannot be read only costs compiling
            files[rel.as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return Offered(target, files)


def harvest(store: BytecodeStore, offered: Offered, task_root: Path, magic: bytes, cache_tag: str,
            loaded: frozenset[str]) -> Harvest:
    """Add to the store the pycs the probe wrote for dependency members (`task_root` holds the sources as the
    probe saw them); `loaded` are the pyc paths (under the prefix) of the modules the import loaded."""
    reused = sum(1 for rel in loaded if rel in offered.files and _unchanged(offered, rel))
    kept = 0
    for dirpath, _, names in _walk(offered.folder / TASK_MIRROR):
        for name in names:
            written = Path(dirpath, name)
            rel = PurePosixPath(written.relative_to(offered.folder).as_posix())
            member = member_of(rel, cache_tag)
            if member not in store.members or _unchanged(offered, rel.as_posix()):
                continue
            try:
                data = written.read_bytes()
                source = (task_root / member).stat()
            except OSError:
                continue
            if not _timestamp_pyc(data) or data[:4] != magic or not _matches(data, source):
                continue
            if not _store_atomically(data, store.folder / rel):
                break  # the store cannot be written: no point trying the rest
            kept += 1
    return Harvest(reused, kept)


def _walk(root: Path) -> list[tuple[str, list[str], list[str]]]:
    return list(os.walk(root))  # an empty list when the folder is not there


def _timestamp_pyc(data: bytes) -> bool:
    return len(data) > HEADER_BYTES and data[4:8] == TIMESTAMP_FLAGS


def _matches(data: bytes, source: os.stat_result) -> bool:
    """The importer's own check of a timestamp pyc against its source: mtime and size, 32 bits each."""
    mtime = int.from_bytes(data[8:12], "little")
    size = int.from_bytes(data[12:16], "little")
    return mtime == int(source.st_mtime) & 0xFFFFFFFF and size == source.st_size & 0xFFFFFFFF


def _unchanged(offered: Offered, rel: str) -> bool:
    """The copy `offer` made is still there as made: the import used it (or did not need it), not rewrote it."""
    try:
        stat = (offered.folder / rel).stat()
    except OSError:
        return False
    return offered.files.get(rel) == (stat.st_size, stat.st_mtime_ns)


def _store_atomically(data: bytes, path: Path) -> bool:
    """Whole or not at all (temp file and rename): builds sharing the cache entry may read it meanwhile."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.chmod(temp, 0o644)
            os.replace(temp, path)
        except BaseException:
            os.unlink(temp)
            raise
    except OSError:
        return False
    return True
