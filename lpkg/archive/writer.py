"""Writing the function's zip deterministically, to a temporary file, and publishing it atomically.

The same inputs give a byte-identical zip whatever the files' mtimes, owners or the umask: the dependency
part comes first and the function's own files after it, each sorted, directory entries are written for
every folder, timestamps are fixed (SOURCE_DATE_EPOCH, else 1980-01-01), permissions are normalised,
compression is fixed (deflate level 6; stored for files that are compressed already, by suffix), and no
extra fields or comment are written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import stat
import sys
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lpkg.archive.contents import CHUNK, RUNTIME_SDK, collect
from lpkg.archive.reader import source_date_epoch
from lpkg.errors import EnvironmentProblem, LpkgError, UsageError
from lpkg.files import owned_name, owned_temporary_file, remove_stale, write_atomically
from lpkg.names import canonical_name

COMPRESSION = zipfile.ZIP_DEFLATED
COMPRESSLEVEL = 6  # zlib's default, named so it never changes with a library's default
# Already compressed (botocore's service models are 12 MB of .json.gz): deflating them again costs
# a third of the zip's writing time and saves nothing, so they are stored as they are.
STORED_SUFFIXES = frozenset({".gz", ".tgz", ".bz2", ".xz", ".lzma", ".zst", ".zip", ".whl", ".jar", ".egg",
                             ".png", ".jpg", ".jpeg", ".gif", ".webp", ".woff", ".woff2"})
FILE_MODE = 0o644
EXEC_MODE = 0o755  # files with any execute bit
DIR_MODE = 0o755
_UNIX = 3  # create_system: the external attributes hold Unix mode bits
_MSDOS_DIR = 0x10
# The runtime provides these (boto3 and what it needs); a copy in the zip is left out unless pinned.
# Bump when the dependency part's layout changes: kept parts of older lpkg versions are then rewritten.
DEPENDENCY_ZIP_FORMAT = 3


@dataclass(frozen=True)
class DependencyZip:
    """The dependency part of a function's zip: a zip of what pip installed (runtime SDK and bytecode left
    out as the options say). It is written once per install and set of options and kept beside the install
    in the cache, so a build after a code-only change copies it instead of walking and compressing the
    dependencies again; the function's own files are then appended."""

    path: Path
    files: int
    unzipped_bytes: int
    left_out: tuple[str, ...]  # runtime SDK distributions left out ("boto3 1.35.0")
    names: frozenset[str]  # every member, folders ("x/") included


@dataclass(frozen=True)
class Assembled:
    """A zip written to a temporary file next to where it will be published."""

    path: Path  # the temporary zip
    files: int
    unzipped_bytes: int
    sha256: str
    left_out: tuple[str, ...]  # runtime SDK distributions left out ("boto3 1.35.0"): the runtime's copy is used
    created_dirs: tuple[Path, ...] = ()  # folders made for the temporary file, removed again if not published
    dependency_members: frozenset[str] = frozenset()  # file members copied from the dependency part


def dependency_zip(
    dependency_dirs: Sequence[Path],
    scratch: Path,
    *,
    pinned: Iterable[str] = (),
    keep_bytecode: bool = False,
    dependency_prefix: str = "",
    keep_in: Path | None = None,
) -> DependencyZip | None:
    """The dependency part for `dependency_dirs` (folders pip installed into, each the zip's top, under
    `dependency_prefix`): read from `keep_in` when an earlier build wrote it there with the same options,
    else written (to `keep_in` for the next build, or to `scratch`). None when there are no folders.

    Left out: `__pycache__` and `*.pyc` (unless `keep_bytecode`: the folders then hold .pyc written by the
    target interpreter), and boto3, botocore and s3transfer unless one of them is in `pinned` (canonical
    requirement names)."""
    folders = [d for d in dependency_dirs if d.is_dir()]
    if not folders:
        return None
    keep_sdk = bool({canonical_name(p) for p in pinned} & set(RUNTIME_SDK))
    variant = hashlib.sha256(json.dumps({
        "format": DEPENDENCY_ZIP_FORMAT, "keep_sdk": keep_sdk, "keep_bytecode": keep_bytecode,
        "prefix": dependency_prefix, "stamp": source_date_epoch(), "level": COMPRESSLEVEL,
        "zlib": zlib.ZLIB_RUNTIME_VERSION, "folders": [str(d) for d in folders],
    }).encode()).hexdigest()[:16]
    if keep_in is not None:
        kept = _kept_dependency_zip(keep_in / f"{variant}.zip")
        if kept is not None:
            return kept
    entries, left_out = collect((), folders, keep_sdk, keep_bytecode, dependency_prefix)
    folder = keep_in if keep_in is not None else scratch
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp = owned_temporary_file(folder, f".{variant}.", ".tmp")  # (and a part a killed build was writing goes)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w") as zf:
            files, size = _write_members(zf, entries)
            names = sorted(zf.namelist())
        final = folder / f"{variant}.zip"
        # The facts beside it first, then the zip: a zip without its facts is never taken for whole.
        write_atomically(final.with_suffix(".json"), json.dumps(
            {"files": files, "unzipped_bytes": size, "left_out": list(left_out), "zip_size": os.path.getsize(temp),
             "names": names}
        ).encode())
        os.replace(temp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return DependencyZip(final, files, size, left_out, frozenset(names))


def _kept_dependency_zip(path: Path) -> DependencyZip | None:
    try:
        facts = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        if not isinstance(facts, dict) or path.stat().st_size != facts["zip_size"]:
            return None
        return DependencyZip(path, int(facts["files"]), int(facts["unzipped_bytes"]),
                             tuple(str(d) for d in facts["left_out"]), frozenset(str(n) for n in facts["names"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def assemble(
    out_dir: Path,
    name: str,
    files: Iterable[tuple[str, Path]],
    dependencies: DependencyZip | None = None,
    *,
    first_party_dirs: Sequence[Path] = (),
) -> Assembled:
    """Write the function's zip to a temporary file in `out_dir` and return it: the dependency part (a copy
    of `dependencies`) first, then `files` ((zip path, source file) pairs) and the contents of
    `first_party_dirs` (the function's code compiled by the target interpreter: .pyc kept), each part in
    sorted order with a directory entry for every folder. `__pycache__` and `*.pyc` in `files` are left out.
    A zip path that two inputs provide with different content is an error. The caller verifies the
    temporary zip, then calls `publish`, inside `discard_unless_published` so a failure leaves nothing behind.
    """
    entries, _ = collect(files, first_party_dirs, keep_sdk=True, keep_bytecode=True)
    present = dependencies.names if dependencies is not None else frozenset()
    clashes = sorted(set(entries) & present)
    if dependencies is not None and clashes:
        with zipfile.ZipFile(dependencies.path) as deps:
            for member in clashes:
                _same_as_member(deps, member, entries.pop(member))
    temp, fd, created = _open_temporary(out_dir, name)
    left_out = dependencies.left_out if dependencies is not None else ()
    try:
        with os.fdopen(fd, "w+b") as raw:
            count = size = 0
            if dependencies is not None:
                with open(dependencies.path, "rb") as part:
                    shutil.copyfileobj(part, raw, CHUNK)
                count, size = dependencies.files, dependencies.unzipped_bytes
            raw.seek(0)
            # "a" on the copy appends after its members and writes one directory for both parts.
            with zipfile.ZipFile(raw, "a" if dependencies is not None else "w") as zf:
                more, more_size = _write_members(zf, entries, present)
            raw.flush()
            os.fsync(raw.fileno())
        digest = _sha256(temp)
    except BaseException:  # also Ctrl-C: a half-written zip must not stay behind
        with discard_unless_published(Assembled(temp, 0, 0, "", left_out, tuple(created))):
            raise
    return Assembled(temp, count + more, size + more_size, digest, left_out, tuple(created),
                     frozenset(n for n in present if not n.endswith("/")))


def _open_temporary(out_dir: Path, name: str) -> tuple[Path, int, list[Path]]:
    """A new temporary file for the zip in `out_dir` (made if missing): its path, its descriptor, the folders
    made for it. Its name carries this run's host and pid, so a later run removes it if this one is killed;
    that sweep, of dead runs' temporary zips of `name`, is done here."""
    for _ in range(3):
        created = _make_dirs(out_dir)
        remove_stale(out_dir, f".{name}.")
        temp = out_dir / owned_name(f".{name}.", ".zip.tmp")
        try:
            # O_EXCL: never clobber; 0o666 so the published zip gets the user's usual umask, not mkstemp's 0600.
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileNotFoundError:
            continue  # another run that had made --out removed it again (its build failed): make it again
        except OSError as exc:
            _remove_dirs(created)
            raise EnvironmentProblem(f"{out_dir}: cannot write there ({exc.strerror})") from None
        return temp, fd, created
    raise EnvironmentProblem(f"{out_dir}: the folder keeps disappearing", hint="is another program removing it?")


def _same_as_member(deps: zipfile.ZipFile, member: str, source: Path) -> None:
    """A function file at a path the dependencies also fill: fine when the content is the same."""
    try:
        same = source.read_bytes() == deps.read(member)
    except OSError:
        same = False
    if not same:
        raise LpkgError(
            f"{member} would come from both {source} and the installed dependencies, with different content",
            hint="remove one: a module vendored in the function folder and installed as a dependency?",
        )


def write_zip(raw: IO[bytes], entries: dict[str, Path]) -> tuple[int, int]:
    """Write a zip of `entries` (zip path -> file) and the folders above them; returns (files, bytes)."""
    with zipfile.ZipFile(raw, "w") as zf:
        return _write_members(zf, entries)


def _write_members(zf: zipfile.ZipFile, entries: dict[str, Path], present: frozenset[str] = frozenset()
                   ) -> tuple[int, int]:
    """Add `entries` and a directory entry for each folder above them (unless in `present`), in sorted order."""
    stamp = source_date_epoch()
    names: set[str] = set(entries)
    for member in entries:
        parent = posixpath.dirname(member)
        while parent and parent + "/" not in names:
            names.add(parent + "/")
            parent = posixpath.dirname(parent)
    total = 0
    for member in sorted(names - set(present)):
        info = zipfile.ZipInfo(member, stamp)
        info.create_system = _UNIX
        if member.endswith("/"):
            info.external_attr = ((stat.S_IFDIR | DIR_MODE) << 16) | _MSDOS_DIR
            info.compress_type = zipfile.ZIP_STORED
            zf.writestr(info, b"")
            continue
        source = entries[member]
        try:
            st = os.stat(source)
            src = open(source, "rb")  # closed by the with below
        except OSError as exc:
            raise UsageError(f"{source}: cannot read ({exc.strerror})", hint=f"needed for {member}") from None
        mode = EXEC_MODE if st.st_mode & 0o111 else FILE_MODE
        info.external_attr = (stat.S_IFREG | mode) << 16
        if posixpath.splitext(member)[1].lower() in STORED_SUFFIXES:
            info.compress_type = zipfile.ZIP_STORED
        else:
            info.compress_type = COMPRESSION
            _set_compresslevel(info, COMPRESSLEVEL)
        info.file_size = st.st_size  # lets zipfile decide on zip64 up front, as it would for writestr
        # A failure from here on is the output's (disk full): an OSError for the caller, not "cannot read".
        with src, zf.open(info, "w") as dst:
            _copy(src, dst, source, member)
        total += info.file_size
    return len(entries), total


def _copy(src: IO[bytes], dst: IO[bytes], source: Path, member: str) -> None:
    while True:
        try:
            chunk = src.read(CHUNK)
        except OSError as exc:
            raise UsageError(f"{source}: cannot read ({exc.strerror})", hint=f"needed for {member}") from None
        if not chunk:
            return
        dst.write(chunk)


def _set_compresslevel(info: zipfile.ZipInfo, level: int) -> None:
    # zipfile's own writers set this attribute; ZipFile.open(info, "w") has no parameter for it.
    if sys.version_info >= (3, 13):
        info.compress_level = level
    else:
        info._compresslevel = level  # type: ignore[attr-defined]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _make_dirs(folder: Path) -> list[Path]:
    """Create `folder` and missing parents; the ones created, deepest first (the order to remove them)."""
    missing: list[Path] = []
    current = folder.absolute()
    while not current.exists() and not current.is_symlink():
        missing.append(current)
        current = current.parent
    if not current.is_dir():
        # The user's mistake, not the machine's: --out (or a folder above it) names a file.
        what = "is a file, not a folder" if current.is_file() else "is not a folder"
        raise UsageError(f"{current}: {what}" + (f" (needed for {folder})" if missing else ""),
                         hint="give --out a folder, or remove the file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblem(f"{folder}: cannot create the output folder ({exc.strerror})") from None
    return missing


def _remove_dirs(created: Iterable[Path]) -> None:
    for folder in created:
        with contextlib.suppress(OSError):  # not empty: something else is there now, keep it
            folder.rmdir()


def publish(temp_zip: Path, final_path: Path) -> Path:
    """Move the verified zip into place in one step: readers see the old artifact or the new, never half."""
    try:
        final_path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp_zip, final_path)
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot move {temp_zip} to {final_path} ({exc.strerror})",
            hint="the temporary zip is written in the output folder so the move stays on one file system",
        ) from None
    return final_path


@contextlib.contextmanager
def discard_unless_published(assembled: Assembled) -> Iterator[Assembled]:
    """Delete the temporary zip (and the folders made for it, if empty) when the block ends without it
    having been published — an exception, a failed verification, Ctrl-C or SIGTERM."""
    try:
        yield assembled
    finally:
        with contextlib.suppress(FileNotFoundError):
            assembled.path.unlink()
        _remove_dirs(assembled.created_dirs)
