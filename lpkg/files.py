"""Walking and removing folder trees without recursion: a zip (or a package's build step) may nest
folders thousands deep, deeper than os.walk's or shutil.rmtree's recursion can go. And a path given by
the user, resolved."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from lpkg.errors import UsageError


def resolved(path: Path) -> Path:
    """`path` absolute, its links followed. A symlink loop is the user's to fix (exit 2): pathlib raises
    RuntimeError for it before Python 3.13 and quietly stops following after."""
    try:
        os.stat(path)
        return path.resolve()
    except RuntimeError:
        pass
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            return path.resolve()  # missing or unreadable: the caller says what it needed
    raise UsageError(f"{path}: a symlink loop (a link that leads back to itself)",
                     hint="point the link at the real folder, or give the real folder") from None


def entries_below(folder: Path) -> Iterator[os.DirEntry[str]]:
    """Every entry below `folder`, each folder before what it holds; links are not followed."""
    pending = [str(folder)]
    while pending:
        with os.scandir(pending.pop()) as listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                yield entry


def remove_tree(root: Path) -> None:
    """Remove `root` and everything below it."""
    folders = [str(root)]
    for entry in entries_below(root):
        if entry.is_dir(follow_symlinks=False):
            folders.append(entry.path)
        else:
            os.unlink(entry.path)
    for folder in reversed(folders):  # each folder was listed before its subfolders
        os.rmdir(folder)


# --- temporary files and folders a killed run leaves, and the sweep that removes them -------------------
# Each carries "lpkg-<host>-<pid>-" in its name (owned_name). SIGKILL gives a run no chance to remove its own;
# the next run removes those of processes on this host that are gone (a live run's are never touched).

_OWNED = re.compile(r"lpkg-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-")


@functools.lru_cache(maxsize=1)
def _host() -> str:
    # A short tag of the host name (names stay short and carry no host name); zlib and os.uname, as every
    # command pays for this at start-up (hashlib, socket and secrets cost milliseconds to import).
    import zlib

    node = os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")
    return f"{zlib.crc32(node.encode()):08x}"


def owned_name(prefix: str, suffix: str = "") -> str:
    """A unique name for a temporary file or folder of this process, that a later run can tell is stale."""
    return f"{prefix}lpkg-{_host()}-{os.getpid()}-{os.urandom(6).hex()}{suffix}"


def is_stale(name: str) -> bool:
    """Whether `name` is owned_name's, of a process on this host that is no longer running."""
    owner = _OWNED.search(name)
    return owner is not None and owner["host"] == _host() and not process_running(int(owner["pid"]))


def remove_stale(folder: Path, prefix: str) -> None:
    """Remove what dead lpkg runs left in `folder` under names starting with `prefix`."""
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix) and is_stale(e.name)]
    except OSError:
        return  # no folder, or not ours to list: nothing to sweep
    for entry in entries:
        with contextlib.suppress(OSError):  # another run sweeping at the same moment
            if entry.is_dir(follow_symlinks=False):
                remove_tree(Path(entry.path))
            else:
                os.unlink(entry.path)


def owned_temporary_file(folder: Path, prefix: str, suffix: str = "") -> tuple[int, str]:
    """tempfile.mkstemp's (descriptor, path) in `folder`, named by owned_name, after removing what dead runs
    left there under `prefix`: for a file written beside its destination and renamed into place."""
    remove_stale(folder, prefix)
    path = str(folder / owned_name(prefix, suffix))
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600), path


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Whole or not at all: written beside `path` under an owned name, then renamed over it (readers never see
    part of it, and a killed run's temporary file is swept by the next). Raises OSError."""
    fd, temp = owned_temporary_file(path.parent, f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        if mode != 0o600:
            os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def process_running(pid: int) -> bool:
    """Whether a process of this host has that id (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _temp_folder() -> str:
    """The folder tempfile would choose, without importing it: TMPDIR, TEMP or TMP if a folder, else /tmp."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        value = os.environ.get(name)
        if value and os.path.isdir(value):
            return value
    return "/tmp" if os.path.isdir("/tmp") else os.getcwd()


@contextlib.contextmanager
def run_scratch() -> Iterator[None]:
    """One temporary folder for this run, made the process's TMPDIR (so also that of the tools it starts, pip
    and uv): removed when the run ends, and on the next run's start if it was killed before it could be."""
    base = Path(_temp_folder())
    remove_stale(base, "lpkg-run-")
    folder = base / owned_name("lpkg-run-")
    try:
        folder.mkdir(mode=0o700)
    except OSError:
        yield  # the temporary folder is not writable: each command says so where it needs one
        return
    # tempfile reads TMPDIR when first asked (and is not imported yet on the up-to-date path); if it was
    # asked already, its answer is set too.
    tempfile = sys.modules.get("tempfile")
    previous_env, previous_dir = os.environ.get("TMPDIR"), getattr(tempfile, "tempdir", None)
    os.environ["TMPDIR"] = str(folder)
    if tempfile is not None:
        setattr(tempfile, "tempdir", str(folder))  # noqa: B010 - a module found in sys.modules, untyped
    try:
        yield
    finally:
        if tempfile is not None:
            setattr(tempfile, "tempdir", previous_dir)  # noqa: B010
        if previous_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = previous_env
        with contextlib.suppress(OSError):  # a file a container made that is not ours to delete: the sweep tries again
            remove_tree(folder)
