"""Walking and removing folder trees without recursion: a zip (or a package's build step) may nest
folders thousands deep, deeper than os.walk's or shutil.rmtree's recursion can go. And a path given by
the user, resolved."""

from __future__ import annotations

import errno
import os
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
