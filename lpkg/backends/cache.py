"""Installed dependencies kept between builds, so a commit that does not touch the requirements does
not run pip again.

The key is everything that decides what pip installs: the requirement files' bytes, the pyproject
dependencies, the runtime, the architecture, and the identity of the installer (the build image's
ID, or the local pip's target platform). An unpinned requirement is therefore frozen at what it
resolved to when first cached; `--no-cache` (or removing the folder) takes a fresh resolution.
Entries are written to a temporary folder and renamed into place, so a killed build leaves none half made.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from lpkg.backends import InstallRequest

CACHE_VERSION = "1"


def cache_root() -> Path:
    configured = os.environ.get("LPKG_CACHE_DIR")
    if configured:
        return Path(configured) / "deps"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lpkg" / "deps"


def cache_key(request: InstallRequest, installer_identity: str) -> str:
    digest = hashlib.sha256()
    facts = {
        "version": CACHE_VERSION,
        "runtime": request.runtime.name,
        "arch": request.arch,
        "installer": installer_identity,
        "dependencies": list(request.dependencies),
        "files": [_requirements_bytes(p) for p in request.requirement_files],
    }
    digest.update(json.dumps(facts, sort_keys=True).encode())
    return digest.hexdigest()[:32]


def _requirements_bytes(path: Path) -> str:
    # The file and the .txt files beside it (`-r base.txt` lines), as they will be staged.
    parts = [f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in sorted(path.parent.glob("*.txt"))]
    return f"{path.name}|{'|'.join(parts)}"


class DependencyCache:
    """root/<key>/site holds what pip installed; root/<key>/complete says it is whole."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_root()

    def lookup(self, key: str) -> Path | None:
        entry = self.root / key
        return entry / "site" if (entry / "complete").is_file() else None

    def store(self, key: str, installed: Path) -> Path:
        """Move a finished install into the cache and return where it now is (another build's copy if
        that one got there first). `installed` is consumed."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        try:
            shutil.move(str(installed), staging / "site")
            (staging / "complete").touch()
            try:
                os.rename(staging, self.root / key)
            except OSError:
                existing = self.lookup(key)
                if existing is not None:
                    return existing
                shutil.rmtree(self.root / key, ignore_errors=True)  # a half entry of an older lpkg
                os.rename(staging, self.root / key)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.root / key / "site"
