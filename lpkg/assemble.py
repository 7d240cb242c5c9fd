"""Writing the function's zip deterministically, to a temporary file, and publishing it atomically.

The same inputs give a byte-identical zip whatever the files' mtimes, owners or the umask: members are
sorted, directory entries are written for every folder, timestamps are fixed (SOURCE_DATE_EPOCH, else
1980-01-01), permissions are normalised, compression is fixed, and no extra fields or comment are written.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import posixpath
import re
import secrets
import stat
import sys
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lpkg.archive import source_date_epoch
from lpkg.dists import canonical_name
from lpkg.errors import EnvironmentProblem, LpkgError, UsageError

COMPRESSION = zipfile.ZIP_DEFLATED
COMPRESSLEVEL = 6  # zlib's default, named so it never changes with a library's default
FILE_MODE = 0o644
EXEC_MODE = 0o755  # files with any execute bit
DIR_MODE = 0o755
_UNIX = 3  # create_system: the external attributes hold Unix mode bits
_MSDOS_DIR = 0x10
_CHUNK = 1 << 20
# The runtime provides these (boto3 and what it needs); a copy in the zip is left out unless pinned.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer")
_DIST_INFO = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)\.dist-info$")


@dataclass(frozen=True)
class Assembled:
    """A zip written to a temporary file next to where it will be published."""

    path: Path  # the temporary zip
    files: int
    unzipped_bytes: int
    sha256: str
    left_out: tuple[str, ...]  # runtime SDK distributions left out ("boto3 1.35.0"): the runtime's copy is used
    created_dirs: tuple[Path, ...] = ()  # folders made for the temporary file, removed again if not published


def assemble(
    out_dir: Path,
    name: str,
    files: Iterable[tuple[str, Path]],
    dependency_dirs: Sequence[Path] = (),
    *,
    pinned: Iterable[str] = (),
    keep_bytecode: bool = False,
    dependency_prefix: str = "",
) -> Assembled:
    """Write `files` ((zip path, source file) pairs) and the contents of `dependency_dirs` (folders pip
    installed into, each the zip's top) to a temporary zip in `out_dir` and return it.

    `__pycache__` and `*.pyc` are left out everywhere (with `keep_bytecode`, only from `files`: the
    dependency folders then hold .pyc written by the target interpreter); boto3, botocore and s3transfer
    are left out of the dependency folders unless one of them is in `pinned` (canonical requirement
    names). The dependencies go under `dependency_prefix` ("python/" in a layer). A zip path that two
    inputs provide with different content is an error. The caller verifies
    the temporary zip, then calls `publish`, inside `discard_unless_published` so a failure leaves nothing
    behind.
    """
    entries, left_out = _collect(files, dependency_dirs, {canonical_name(p) for p in pinned}, keep_bytecode,
                                 dependency_prefix)
    created = _make_dirs(out_dir)
    temp = out_dir / f".{name}.{secrets.token_hex(6)}.zip.tmp"
    try:
        # O_EXCL: never clobber; 0o666 so the published zip gets the user's usual umask, not mkstemp's 0600.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        _remove_dirs(created)
        raise EnvironmentProblem(f"{out_dir}: cannot write there ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as raw:
            count, size = write_zip(raw, entries)
            raw.flush()
            os.fsync(raw.fileno())
        digest = _sha256(temp)
    except BaseException:  # also Ctrl-C: a half-written zip must not stay behind
        with discard_unless_published(Assembled(temp, 0, 0, "", left_out, tuple(created))):
            raise
    return Assembled(temp, count, size, digest, left_out, tuple(created))


def write_zip(raw: IO[bytes], entries: dict[str, Path]) -> tuple[int, int]:
    """Write a zip of `entries` (zip path -> file) and the folders above them; returns (files, bytes)."""
    stamp = source_date_epoch()
    names: set[str] = set(entries)
    for member in entries:
        parent = posixpath.dirname(member)
        while parent and parent + "/" not in names:
            names.add(parent + "/")
            parent = posixpath.dirname(parent)
    total = 0
    with zipfile.ZipFile(raw, "w") as zf:
        for member in sorted(names):
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
            chunk = src.read(_CHUNK)
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


def _collect(
    files: Iterable[tuple[str, Path]], dependency_dirs: Sequence[Path], pinned: set[str], keep_bytecode: bool = False,
    prefix: str = "",
) -> tuple[dict[str, Path], tuple[str, ...]]:
    entries: dict[str, Path] = {}
    for member, source in files:
        _add(entries, _clean(member), source)
    # Pinning any of them keeps all three: pip installed them as a set that works together.
    keep_sdk = bool(pinned & set(RUNTIME_SDK))
    left_out: set[str] = set()
    for folder in dependency_dirs:
        sdk_files, sdk_dists = (set(), {}) if keep_sdk else _sdk_files(folder)
        left_out.update(sdk_dists.values())
        for member, source in _walk(folder, keep_bytecode):
            top = member.split("/", 1)[0]
            if member in sdk_files:
                continue
            if top in RUNTIME_SDK and not keep_sdk:  # a copy without a RECORD to say what it holds
                left_out.add(sdk_dists.get(top, top))
                continue
            _add(entries, prefix + member, source, keep_bytecode)
    return entries, tuple(sorted(left_out))


def _clean(member: str) -> str:
    name = member.replace("\\", "/")
    normal = posixpath.normpath(name)
    if not name or name.startswith("/") or normal.startswith("../") or normal == ".." or name.endswith("/"):
        raise LpkgError(f"{member!r} is not a file path inside a zip")
    return normal


def _is_bytecode(member: str) -> bool:
    return member.endswith((".pyc", ".pyo")) or "__pycache__" in member.split("/")


def _add(entries: dict[str, Path], member: str, source: Path, keep_bytecode: bool = False) -> None:
    if _is_bytecode(member) and not keep_bytecode:
        return
    previous = entries.get(member)
    if previous is None or _same_file(previous, source):
        entries.setdefault(member, source)
        return
    raise LpkgError(
        f"{member} would come from both {previous} and {source}, with different content",
        hint="remove one: a module vendored in the function folder and installed as a dependency, "
        "or two source roots with the same package?",
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
        if os.path.getsize(a) != os.path.getsize(b):
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                ca, cb = fa.read(_CHUNK), fb.read(_CHUNK)
                if ca != cb:
                    return False
                if not ca:
                    return True
    except OSError:
        return False


def _walk(folder: Path, keep_bytecode: bool = False) -> Iterator[tuple[str, Path]]:
    """(zip path, file) for every file below `folder`, following symlinks (without loops); `__pycache__`
    folders only with `keep_bytecode`."""
    seen: set[str] = set()
    for current, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(current)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if keep_bytecode or d != "__pycache__")
        rel = Path(current).relative_to(folder).as_posix()
        prefix = "" if rel == "." else rel + "/"
        for name in sorted(names):
            path = Path(current) / name
            if path.is_file():
                yield prefix + name, path


def _sdk_files(folder: Path) -> tuple[set[str], dict[str, str]]:
    """Zip paths that belong to the runtime SDK distributions in a pip --target folder (their dist-info and
    what their RECORD lists), and canonical name -> "name version" for each."""
    files: set[str] = set()
    dists: dict[str, str] = {}
    try:
        top = sorted(os.listdir(folder))
    except OSError:
        return files, dists
    for entry in top:
        match = _DIST_INFO.match(entry)
        name = canonical_name(match.group("name")) if match else ""
        if not match or name not in RUNTIME_SDK:
            continue
        dists[name] = f"{name} {match.group('version')}"
        dist_info = folder / entry
        files.update(f"{entry}/{member}" for member, _ in _walk(dist_info))
        try:
            rows = list(csv.reader((dist_info / "RECORD").read_text(encoding="utf-8", errors="replace").splitlines()))
        except OSError:
            continue
        for row in rows:
            if row and row[0]:
                normal = posixpath.normpath(row[0].replace("\\", "/"))
                if not normal.startswith("../"):
                    files.add(normal)
    return files, dists


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _make_dirs(folder: Path) -> list[Path]:
    """Create `folder` and missing parents; the ones created, deepest first (the order to remove them)."""
    missing: list[Path] = []
    current = folder.absolute()
    while not current.exists():
        missing.append(current)
        current = current.parent
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
