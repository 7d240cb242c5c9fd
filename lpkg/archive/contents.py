"""What goes into a zip: zip path -> file, from the given files and the dependency folders (walked with
symlinks followed, bytecode left out unless asked for, the runtime's SDK left out unless pinned); the same
path from two different files is an error."""

from __future__ import annotations

import csv
import os
import posixpath
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from lpkg.errors import LpkgError
from lpkg.names import canonical_name

CHUNK = 1 << 20  # bytes read at a time, comparing and copying files
RUNTIME_SDK = ("boto3", "botocore", "s3transfer")
_DIST_INFO = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)\.dist-info$")


def collect(
    files: Iterable[tuple[str, Path]], dependency_dirs: Sequence[Path], keep_sdk: bool, keep_bytecode: bool = False,
    prefix: str = "",
) -> tuple[dict[str, Path], tuple[str, ...]]:
    """Zip path -> file for `files` and the folders' contents. With `keep_sdk` (any of boto3, botocore,
    s3transfer pinned: pinning one keeps all three, pip installed them as a set that works together) the
    runtime SDK stays in; else it is left out and named in the second value."""
    entries: dict[str, Path] = {}
    for member, source in files:
        _add(entries, _clean(member), source)
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
                ca, cb = fa.read(CHUNK), fb.read(CHUNK)
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
