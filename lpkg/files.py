"""Walking and removing folder trees without recursion: a zip (or a package's build step) may nest
folders thousands deep, deeper than os.walk's or shutil.rmtree's recursion can go."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


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
