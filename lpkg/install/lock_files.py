"""Where the locks are: a function's own (requirements.lock), a project's (uv.lock, poetry.lock), found without
reading them, so a build that has none pays for no lock reader (lpkg.install.lock, lpkg.install.project_locks)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

LOCK_FILE = "requirements.lock"  # a function's own lock (lpkg lock), beside its requirements
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
