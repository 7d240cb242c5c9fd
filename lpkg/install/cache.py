"""Installed dependencies kept between builds, so a commit that does not touch the requirements does
not run pip again.

The key is everything that decides what pip installs: the requirement files' bytes, the pyproject
dependencies, the runtime, the architecture, and the identity of the installer (the build image's
ID, or the local pip's target platform). An unpinned requirement is therefore frozen at what it
resolved to when first cached; `--no-cache` (or removing the folder) takes a fresh resolution.
Entries are written to a temporary folder and renamed into place, so a killed build leaves none half made.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lpkg.files import owned_name, remove_stale
from lpkg.install import Installer, InstallRequest
from lpkg.report import Stopwatch

CACHE_VERSION = "2"


def cache_home() -> Path:
    """lpkg's cache folder: LPKG_CACHE_DIR, else $XDG_CACHE_HOME/lpkg, else ~/.cache/lpkg."""
    configured = os.environ.get("LPKG_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lpkg"


def cache_root() -> Path:
    return cache_home() / "deps"


def cache_key(request: InstallRequest, installer_identity: str) -> str:
    digest = hashlib.sha256()
    facts = {
        "version": CACHE_VERSION,
        "runtime": request.runtime.name,
        "arch": request.arch,
        "installer": installer_identity,
        "dependencies": list(request.dependencies),
        "files": [requirements_fingerprint(p, request.requirements_base) for p in request.requirement_files],
        "require_hashes": request.require_hashes,
        "compile": request.compile_bytecode,
    }
    digest.update(json.dumps(facts, sort_keys=True).encode())
    return digest.hexdigest()[:32]


def requirements_fingerprint(path: Path, base: Path | None = None, projects: bool = True) -> str:
    """The file and the .txt files beside it (`-r base.txt` lines), as they will be staged, and the contents of
    each local project it names (`../shared`): a change there is a change of what gets installed."""
    from lpkg.install.path_requirements import path_requirements, project_digest

    files = sorted({path, *path.parent.glob("*.txt")})
    parts = [f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in files]
    if projects:
        parts += [f"{r.written}:{project_digest(r.folder)}" for r in path_requirements(path, base)]
    return f"{path.name}|{'|'.join(parts)}"


# Made from an entry's install and kept beside it: the dependency part of the zip, and its bytecode.
DEPENDENCY_ZIPS = "zip"
DEPENDENCY_BYTECODE = "pyc"
# Beside the parts: DependencyCache.installing's lock files, empty, one per install key.
LOCKS = "locks"


def remove_stale_scratch() -> None:
    """Remove what killed runs left in the cache: installs under way, entries being stored (the sweep each
    DependencyCache.scratch does too, for a build that installs nothing)."""
    for part in (cache_root(), cache_home() / "pyc"):
        remove_stale(part, ".")


class DependencyCache:
    """root/<key>/site holds what pip installed; root/<key>/complete says it is whole. Beside them,
    root/<key>/zip holds the zipped dependency part (lpkg.assemble.dependency_zip) and root/<key>/pyc the
    bytecode the probe compiled for it."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_root()

    def lookup(self, key: str) -> Path | None:
        entry = self.root / key
        return entry / "site" if (entry / "complete").is_file() else None

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path]:
        """An empty folder on the cache's file system, removed afterwards: install there, and `store` is a
        rename (from a system temp folder on tmpfs it would copy every file)."""
        import shutil

        self.root.mkdir(parents=True, exist_ok=True)
        remove_stale(self.root, ".")  # installs and entries half stored by killed runs
        folder = self.root / owned_name(".install.")
        folder.mkdir(mode=0o700)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def installing(self, key: str) -> Iterator[None]:
        """Held while `key` is being installed: another build of the same inputs (a thread of this run, or
        another lpkg) waits, then finds the entry, instead of running pip a second time. A lock file's flock
        (per open file, so threads conflict too) goes with the process, so a killed run holds nothing."""
        locks = self.root.parent / LOCKS
        locks.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(locks / f"{self.root.name}-{key}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def store(self, key: str, installed: Path) -> Path:
        """Move a finished install into the cache and return where it now is (another build's copy if
        that one got there first). `installed` is consumed."""
        import shutil

        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / owned_name(f".{key}.")
        staging.mkdir(mode=0o700)
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


# Parts of the cache folder: what each holds.
CACHE_PARTS = (
    ("deps", "installed dependencies, per requirements/lock, runtime, arch and build image"),
    ("pyc", "first-party code compiled by the target interpreter (--compile)"),
    ("builds", "records of published zips and the inputs they were built from"),
)


def _size(folder: Path) -> tuple[int, int]:
    """(bytes, files) below `folder`, symlinks not followed."""
    total = count = 0
    for current, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(current, name)).st_size
            except OSError:
                continue
            count += 1
    return total, count


def cache_usage() -> list[str]:
    home = cache_home()
    lines = [f"cache folder: {home} (LPKG_CACHE_DIR sets it)"]
    for part, meaning in CACHE_PARTS:
        size, files = _size(home / part)
        folder = home / part
        entries = sum(1 for e in folder.iterdir() if not e.name.startswith(".")) if folder.is_dir() else 0
        lines.append(f"  {part + '/':8} {size / 1e6:9.1f} MB  {entries:5} entries  {files:7} files  {meaning}")
    lines.append("pip's download cache is the Docker volume lpkg-pip-cache, or lpkg-pip-cache-uid<uid> for a user who "
                 "is not root (docker volume rm it)")
    return lines


def clear_cache() -> str:
    import shutil

    home = cache_home()
    freed = 0
    for part, _ in CACHE_PARTS:
        freed += _size(home / part)[0]
        shutil.rmtree(home / part, ignore_errors=True)
    shutil.rmtree(home / LOCKS, ignore_errors=True)
    return f"{freed / 1e6:.1f} MB from {home}"


@dataclass(frozen=True)
class Installed:
    """Where a request's dependencies are, and how they got there."""

    site: Path  # the folder pip installed into
    description: str
    kept_in: Path | None = None  # the cache entry holding `site`, where what is made from it may be kept too

    @property
    def zips_folder(self) -> Path | None:
        """Where the zipped dependency part is kept (lpkg.archive.writer.dependency_zip); None without the cache."""
        return self.kept_in / DEPENDENCY_ZIPS if self.kept_in is not None else None

    @property
    def bytecode_folder(self) -> Path | None:
        """Where the probe keeps the dependencies' bytecode (lpkg.probing.bytecode); None without the cache."""
        return self.kept_in / DEPENDENCY_BYTECODE if self.kept_in is not None else None


def install_dependencies(
    installer: Installer, request: InstallRequest, use_cache: bool, watch: Stopwatch, target: Path
) -> Installed:
    """Install the request into a cache entry (reused when these inputs were installed before), or into
    `target` without the cache (`target` is then also the folder returned)."""
    description = installer.description
    if not use_cache:
        with watch.lap("install"):
            installer.install(request, target)
        return Installed(target, description)
    cache = DependencyCache()
    key = cache_key(request, installer.identity())
    cached = cache.lookup(key)
    if cached is None:
        with cache.installing(key):
            cached = cache.lookup(key)  # installed by the build this one waited for
            if cached is None:
                with cache.scratch() as scratch, watch.lap("install"):
                    installer.install(request, scratch / "site")
                    site = cache.store(key, scratch / "site")
                return Installed(site, description, site.parent)
    return Installed(cached, description + f" (cached: {cached.parent.name}; --no-cache to reinstall)",
                     cached.parent)

