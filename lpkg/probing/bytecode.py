"""The compiled form of a cached dependency install, kept between builds so the probe's import skips
compiling unchanged dependency modules (lpkg build; the Docker probe on a local daemon only).

The store is a folder in the layout of sys.pycache_prefix (store/var/task/pkg/mod.cpython-311.pyc for
/var/task/pkg/mod.py). The probe gets two bytecode folders: the kept one, mounted read-only (for this store,
the store itself, after `offer` has removed anything harvest would not have written), and a fresh writable
one holding only the mirror folder of every dependency folder. The probe's importer reads a task-root
source's bytecode from the kept folder when it has it and writes what it compiles into the writable one
(lpkg/probe/importer.py). After the probe, `harvest` keeps what the import compiled anew. The sandbox can
read the kept bytecode and never change it: nothing is copied for it, and nothing it writes reaches the store
but through harvest.

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

import contextlib
import errno
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lpkg.archive.members import stored_path
from lpkg.files import write_atomically
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
    """The probe's two bytecode folders: `kept` (mounted read-only) and its pycs, `writable` (empty but for
    the mirror folders), where whatever the probe compiled is."""

    kept: Path
    files: frozenset[str]  # the pycs in `kept`, as paths under it
    writable: Path


@dataclass(frozen=True)
class Harvest:
    reused: int  # dependency modules the import loaded from the store's bytecode
    kept: int  # compiled by this probe and added to the store


def member_of(rel: str, cache_tag: str | None = None) -> str | None:
    """The task-root member a pyc path under a pycache prefix is the bytecode of: var/task/pkg/mod.TAG.pyc ->
    pkg/mod.py (any tag unless given; never an optimised .opt-N.pyc)."""
    if not rel.startswith(TASK_MIRROR + "/") or not rel.endswith(".pyc"):
        return None
    folder, _, name = rel[len(TASK_MIRROR) + 1:].rpartition("/")
    stem, dot, tag = name[:-len(".pyc")].rpartition(".")
    if not dot or not stem or "opt-" in tag or (cache_tag is not None and tag != cache_tag):
        return None
    return f"{folder}/{stem}.py" if folder else f"{stem}.py"


def offer(store: BytecodeStore, writable: Path) -> Offered:
    """The store itself is the kept folder, once anything harvest would not have written is removed from it;
    `writable` (a fresh folder, to be mounted writable into the probe) gets the mirror folder of every folder
    holding a dependency module, world-writable so the sandbox user can add to it."""
    _make_mirrors(writable, _folders_of(member for member in store.members if member.endswith(".py")))
    files = set()
    for dirpath, _, names in os.walk(store.folder / TASK_MIRROR):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, 0o755)  # readable by the sandbox user, whatever the umask was
        for name in names:
            if name.startswith("."):
                continue  # a concurrent harvest's file being written
            source = os.path.join(dirpath, name)
            rel = os.path.relpath(source, store.folder).replace(os.sep, "/")
            try:
                if member_of(rel) not in store.members or not _timestamp_pyc(_header(source)):
                    os.unlink(source)  # not something harvest writes: planted, or garbage
                    continue
            except OSError:
                continue  # a store that cannot be read only costs compiling
            files.add(rel)
    return Offered(store.folder, frozenset(files), writable)


def _header(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(HEADER_BYTES + 1)


def _folders_of(members: Iterable[str]) -> set[str]:
    """The task-root mirror and the folder of each member with its parents."""
    folders = {TASK_MIRROR}
    for member in members:
        folder = member.rpartition("/")[0]
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    return folders


def harvest(store: BytecodeStore, offered: Offered, task_root: Path, magic: bytes, cache_tag: str,
            reused: frozenset[str]) -> Harvest:
    """Add to the store the pycs the probe wrote for dependency members (`task_root` holds the sources as the
    probe saw them); `reused` are the pyc paths (under the kept folder) of the modules the import loaded."""
    kept = 0
    for rel, _, data in _fresh_pycs(offered, task_root, magic, cache_tag, lambda member: member in store.members):
        if not _store_atomically(data, store.folder / rel):
            break  # the store cannot be written: no point trying the rest
        kept += 1
    return Harvest(len(reused & offered.files), kept)


def _fresh_pycs(offered: Offered, task_root: Path, magic: bytes, cache_tag: str,
                wanted: Callable[[str], bool]) -> Iterator[tuple[str, str, bytes]]:
    """(path under the prefix, member, bytes) of each pyc the probe wrote for a source `wanted` accepts: a
    timestamp pyc of this interpreter's magic, matching the source as unpacked."""
    for dirpath, _, names in os.walk(offered.writable / TASK_MIRROR):
        for name in names:
            written = os.path.join(dirpath, name)
            rel = os.path.relpath(written, offered.writable).replace(os.sep, "/")
            member = member_of(rel, cache_tag)
            if member is None or not wanted(member):
                continue
            try:
                with open(written, "rb") as fh:
                    data = fh.read()
                source = os.stat(task_root / member)
            except OSError:
                continue
            if _timestamp_pyc(data) and data[:4] == magic and _matches(data, source):
                yield rel, member, data


def _make_mirrors(target: Path, folders: set[str]) -> None:
    """`target` and the mirror of each folder under it, world-writable whatever the umask: the sandbox user
    is another user."""
    os.makedirs(target, exist_ok=True)
    os.chmod(target, 0o777)
    for folder in sorted(f if f == TASK_MIRROR else f"{TASK_MIRROR}/{f}" for f in folders):  # parents first
        for part in _parents(folder):
            path = os.path.join(target, part)
            if not os.path.isdir(path):
                os.mkdir(path)
                os.chmod(path, 0o777)


def _parents(folder: str) -> list[str]:
    """a/b/c -> a, a/b, a/b/c"""
    parts = folder.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _timestamp_pyc(data: bytes) -> bool:
    return len(data) > HEADER_BYTES and data[4:8] == TIMESTAMP_FLAGS


def _matches(data: bytes, source: os.stat_result) -> bool:
    """The importer's own check of a timestamp pyc against its source: mtime and size, 32 bits each."""
    mtime = int.from_bytes(data[8:12], "little")
    size = int.from_bytes(data[12:16], "little")
    return mtime == int(source.st_mtime) & 0xFFFFFFFF and size == source.st_size & 0xFFFFFFFF


def _store_atomically(data: bytes, path: Path) -> bool:
    """Whole or not at all (temp file and rename): builds sharing the cache entry may read it meanwhile."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data, 0o644)
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class KeyedBytecode:
    """Bytecode kept by its source's content, in the member store (lpkg.archive.members), for a verify that
    has no dependency cache entry. Safe for the same reasons as above, with the content instead of the cache
    entry pinning the source: the key covers the member's compressed bytes, mode and mtime, its path and the
    cache tag. And with the same scope: whatever the sandbox leaves in its writable bytecode folder could be
    kept, so the key also covers the verified zip's own path, and only a later verify of the zip at that path
    (a rebuilt dist/fn.zip) may load it, as only builds of the same install share the store above. A zip
    from elsewhere can never plant bytecode that another zip's verify would run. `keys` (task-root member ->
    member key) is filled once the zip is unpacked, before the probe runs."""

    folder: Path  # the member store
    cache_tag: str  # the runtime's interpreter's, e.g. cpython-311
    scope: str  # the verified zip's absolute path
    keys: dict[str, str]


def pyc_key(store: KeyedBytecode, member_key: str, member: str) -> str:
    decided = f"pyc\0{member_key}\0{member}\0{store.cache_tag}\0{store.scope}"
    return hashlib.sha256(decided.encode("utf-8", "surrogateescape")).hexdigest()


def offer_keyed(store: KeyedBytecode, kept: Path, writable: Path) -> Offered:
    """Link (copy, across file systems) the pycs the store keeps for these sources into `kept` (a fresh folder,
    to be mounted read-only), in the layout of a pycache prefix; `writable` gets the mirror folders."""
    folders = _folders_of(store.keys)
    _make_mirrors(writable, folders)
    made: set[str] = set()
    files = set()
    for member, key in store.keys.items():
        source = stored_path(store.folder, pyc_key(store, key, member))
        rel = f"{TASK_MIRROR}/{_pyc_name(member, store.cache_tag)}"
        try:
            if not _timestamp_pyc(_header(source)):
                continue
            _make_folders(kept, rel.rpartition("/")[0], made)
            _link_or_copy(source, os.path.join(kept, rel))
        except OSError:
            continue  # not compiled yet: the import compiles it, and harvest keeps it
        files.add(rel)
    return Offered(kept, frozenset(files), writable)


def _make_folders(root: Path, folder: str, made: set[str]) -> None:
    """`folder` under `root` with its parents, 0755 (for the sandbox user to read)."""
    for part in _parents(folder):
        if part not in made:
            path = os.path.join(root, part)
            with contextlib.suppress(FileExistsError):
                os.mkdir(path)
            os.chmod(path, 0o755)
            made.add(part)


def _link_or_copy(source: str, target: str) -> None:
    """A hard link: the folder is mounted read-only, so the sandbox cannot change the store through it."""
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.copyfile(source, target)
        os.chmod(target, 0o644)


def harvest_keyed(store: KeyedBytecode, offered: Offered, task_root: Path, magic: bytes, cache_tag: str,
                  reused: frozenset[str]) -> tuple[Harvest, int]:
    """Keep the pycs the probe compiled for keyed sources; also the bytes added to the store."""
    kept = added = 0
    if cache_tag != store.cache_tag:
        return Harvest(len(reused & offered.files), 0), 0
    for _, member, data in _fresh_pycs(offered, task_root, magic, cache_tag, lambda member: member in store.keys):
        if not _store_atomically(data, Path(stored_path(store.folder, pyc_key(store, store.keys[member], member)))):
            break
        kept += 1
        added += len(data)
    return Harvest(len(reused & offered.files), kept), added


def _pyc_name(member: str, cache_tag: str) -> str:
    """pkg/mod.py -> pkg/mod.TAG.pyc (the layout under a pycache prefix)."""
    return f"{member[:-len('.py')]}.{cache_tag}.pyc"


def shipped_bytecode_folders(task_root: Path, names: frozenset[str], cache_tag: str) -> set[str]:
    """The task-root folders holding a pyc of the zip's own that the runtime's interpreter would load instead of
    compiling its source (a hash-based one, or a timestamp one matching the unpacked source): the import must
    read those as Lambda does, so their folders get no mirror (the importer would look there instead)."""
    folders = set()
    suffix = f".{cache_tag}.pyc"
    for name in names:
        folder, _, file_name = name.rpartition("/__pycache__/")
        if not file_name.endswith(suffix) or "/" in file_name:
            continue
        if (not folder and not name.startswith("__pycache__/")) or folder in folders:
            continue
        source = f"{folder}/{file_name[:-len(suffix)]}.py" if folder else f"{file_name[:-len(suffix)]}.py"
        try:
            with open(task_root / name, "rb") as fh:
                header = fh.read(HEADER_BYTES)
            source_stat = os.stat(task_root / source)
        except OSError:
            continue  # no source beside it, or not unpacked: nothing to compile either way
        if len(header) == HEADER_BYTES and (header[4:8] != TIMESTAMP_FLAGS or _matches(header, source_stat)):
            folders.add(folder)
    return folders
