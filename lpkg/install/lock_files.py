"""Where a project keeps its lock (uv.lock, poetry.lock): found without reading it, so a build of a function
that has none pays for no lock parser (lpkg.install.project_locks reads one)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

LockKind = Literal["uv", "poetry"]
LOCK_FILES: tuple[tuple[LockKind, str], ...] = (("uv", "uv.lock"), ("poetry", "poetry.lock"))


def find_lock(folder: Path) -> tuple[LockKind, Path] | None:
    """The lock beside the project's pyproject.toml: uv.lock, else poetry.lock; from `folder` upwards."""
    for candidate in (folder, *folder.parents):
        for kind, name in LOCK_FILES:
            if (candidate / name).is_file():
                return kind, candidate / name
        if (candidate / ".git").exists():
            break
    return None
