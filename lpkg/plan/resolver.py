"""Finding modules where the zip will have them: the function folder's files at the top, then each
first-party package of a source root at its package path, in the order CPython's path finder tries; and which
files of a folder belong in the zip. Files are listed and parsed, never imported."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal, NoReturn

from lpkg.config import FunctionSettings
from lpkg.errors import UsageError
from lpkg.probe.sources import SourceFacts, analyse_source

Origin = Literal["function", "first-party"]
Kind = Literal["source", "package", "extension", "namespace"]

# Never part of a Lambda zip: caches, VCS and virtualenv folders, tests, editor and OS files, build inputs.
EXCLUDED_DIRS = frozenset({
    "__pycache__", ".git", ".hg", ".svn", ".venv", "venv", "tests", "test", ".idea", ".vscode",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox",
})
EXCLUDED_FILES = (
    "*.pyc", "*.pyo", "test_*.py", "*_test.py", "conftest.py", ".DS_Store", "Thumbs.db", "*.swp", "*.swo", "*~",
    "requirements*.txt", "requirements*.lock", "pyproject.toml", "lpkg.toml",
)
# Extension modules: name.so, name.cpython-312-x86_64-linux-gnu.so, name.abi3.so, name.pyd.
_EXTENSION = re.compile(r"^(?P<stem>[A-Za-z_][A-Za-z0-9_]*)(\.[A-Za-z0-9_-]+)?\.(so|pyd)$")



@dataclass(frozen=True)
class FoundModule:
    """A module found on disk where the zip's layout puts it."""

    name: str  # dotted
    kind: Kind
    file: Path | None  # .py, __init__.py or extension file; None for a namespace package
    directory: Path | None  # the package folder, for packages and namespace packages
    origin: Origin
    root: Path  # the function folder or the source root it was found in

    @property
    def is_package(self) -> bool:
        return self.kind in ("package", "namespace")

    @property
    def zip_path(self) -> str:
        place = self.file if self.file is not None else self.directory
        assert place is not None
        rel = place.relative_to(self.root).as_posix()
        return rel if self.file is not None else rel + "/"


class ModuleFinder:
    """Module lookup over the function folder, then the source roots; file listings and parses cached."""

    def __init__(self, settings: FunctionSettings) -> None:
        self.settings = settings
        self.locations: list[tuple[Path, Origin]] = [(settings.function_dir, "function")]
        self.locations += [(root, "first-party") for root in settings.source_roots]
        self.target = settings.runtime.version
        self._listings: dict[Path, dict[str, bool]] = {}
        self._sources: dict[Path, SourceFacts] = {}
        self._out = os.path.realpath(settings.out)

    def listing(self, folder: Path) -> dict[str, bool]:
        """Entry name -> is a folder. Exact names, so a case-insensitive disk does not hide a wrong case."""
        if folder not in self._listings:
            entries: dict[str, bool] = {}
            try:
                with os.scandir(folder) as it:
                    for entry in it:
                        try:
                            entries[entry.name] = entry.is_dir()
                        except OSError:
                            continue
            except OSError:
                pass
            self._listings[folder] = entries
        return self._listings[folder]

    def probe(self, folder: Path, name: str, dotted: str, origin: Origin, root: Path) -> FoundModule | None:
        """The module `name` in `folder`, in the order CPython's path finder tries: package, extension,
        source, then a namespace package (a folder without __init__.py)."""
        entries = self.listing(folder)
        if entries.get(name):
            sub = self.listing(folder / name)
            if "__init__.py" in sub:
                return FoundModule(dotted, "package", folder / name / "__init__.py", folder / name, origin, root)
            init_ext = next((e for e in sorted(sub) if extension_stem(e) == "__init__"), None)
            if init_ext:
                return FoundModule(dotted, "package", folder / name / init_ext, folder / name, origin, root)
        extension = next((e for e in sorted(entries) if not entries[e] and extension_stem(e) == name), None)
        if extension:
            return FoundModule(dotted, "extension", folder / extension, None, origin, root)
        if entries.get(f"{name}.py") is False:
            return FoundModule(dotted, "source", folder / f"{name}.py", None, origin, root)
        if entries.get(name):
            return FoundModule(dotted, "namespace", None, folder / name, origin, root)
        return None

    def top(self, name: str, children: Sequence[str] = ()) -> FoundModule | None:
        """A first-party top-level module, or None when the name will come from elsewhere.

        Stdlib names are looked up in the function folder only: including a source root's `json.py`
        would shadow the stdlib in /var/task. A namespace package (a folder without __init__.py) counts
        only when it holds one of the `children` asked for, so a data folder that happens to share a
        third-party package's name does not capture it.
        """
        if not _module_name(name) or name in sys.builtin_module_names:
            return None
        stdlib = name in sys.stdlib_module_names
        namespaces: list[FoundModule] = []
        for root, origin in self.locations:
            if stdlib and origin == "first-party":
                continue
            module = self.probe(root, name, name, origin, root)
            if module is None:
                continue
            if module.kind != "namespace":
                return module  # a regular package or module anywhere wins over namespace portions, as in CPython
            namespaces.append(module)
        return next((m for m in namespaces if any(self.child(m, c) for c in children)), None)

    def child(self, package: FoundModule, name: str) -> FoundModule | None:
        if package.directory is None or not _module_name(name):
            return None
        return self.probe(package.directory, name, f"{package.name}.{name}", package.origin, package.root)

    def resolve(self, dotted: str, names: Sequence[str] = ()) -> list[FoundModule] | None:
        """The module of each prefix of `dotted` (`names`: what a from-import takes from it); None when its
        top level is not first-party. A list shorter than the dotted name means the next part is missing."""
        parts = dotted.split(".")
        top = self.top(parts[0], parts[1:2] or names)
        if top is None:
            return None
        found = [top]
        for part in parts[1:]:
            child = self.child(found[-1], part)
            if child is None:
                break
            found.append(child)
        return found

    def source(self, path: Path) -> SourceFacts:
        if path not in self._sources:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
            self._sources[path] = analyse_source(data, str(path), self.target)
        return self._sources[path]

    def module_source(self, module: FoundModule) -> SourceFacts | None:
        if module.file is None or module.kind == "extension":
            return None
        return self.source(module.file)

    # --- which files go into the zip ---

    def excluded_by_user(self, zip_path: str) -> str | None:
        """The user's exclude pattern that leaves this zip path out, if any."""
        return next((p for p in self.settings.exclude if matches_pattern(zip_path, p)), None)

    def included_files(self) -> dict[str, Path]:
        """Files of a code root that the project's own package patterns add (templates, data read at run time):
        no import reaches them, but the project says they belong in the zip. Excludes and lpkg's own
        exclusions (caches, .git) still win."""
        if not self.settings.include:
            return {}
        return {zip_path: file for zip_path, file in self.files(self.settings.function_dir, "")
                if any(matches_pattern(zip_path, pattern) for pattern in self.settings.include)}

    def files(self, folder: Path, prefix: str) -> Iterator[tuple[str, Path]]:
        """(zip path, file) for everything under `folder` that belongs in the zip."""
        seen: set[str] = set()
        for current, dirs, names in os.walk(folder, followlinks=True, onerror=unreadable_folder):
            real = os.path.realpath(current)
            if real in seen or real == self._out:  # a symlink loop, or the output folder inside the tree
                dirs[:] = []
                continue
            seen.add(real)
            base = Path(current)
            rel = base.relative_to(folder).as_posix()
            here = prefix + ("" if rel == "." else rel + "/")
            dirs[:] = sorted(
                d for d in dirs
                if d not in EXCLUDED_DIRS and not self.excluded_by_user(here + d)
            )
            for name in sorted(names):
                zip_path = here + name
                if any(fnmatchcase(name, p) for p in EXCLUDED_FILES) or self.excluded_by_user(zip_path):
                    continue
                if (base / name).is_file():
                    yield zip_path, base / name


def unreadable_folder(exc: OSError) -> NoReturn:
    """os.walk's onerror: a folder of the user's that cannot be listed would be left out of the zip unseen."""
    raise UsageError(f"{exc.filename}: cannot read the folder ({exc.strerror})",
                     hint="everything under the function folder goes into the zip: make it readable, "
                     "or leave it out with exclude in lpkg.toml") from None


def extension_stem(filename: str) -> str | None:
    match = _EXTENSION.match(filename)
    return match.group("stem") if match else None


def matches_pattern(zip_path: str, pattern: str) -> bool:
    """Glob against a zip path: a pattern without '/' matches any file or folder name at any depth; with
    '/', it matches the path from the top (or any of its parent folders). '*' crosses '/', as in fnmatch."""
    pat = pattern.strip().strip("/")
    if not pat:
        return False
    parts = zip_path.rstrip("/").split("/")
    alternatives = {pat, pat[3:]} if pat.startswith("**/") else {pat}
    for alt in alternatives:
        if "/" not in alt:
            if any(fnmatchcase(part, alt) for part in parts):
                return True
        elif any(fnmatchcase("/".join(parts[:i]), alt) for i in range(1, len(parts) + 1)):
            return True
    return False


def _module_name(name: str) -> bool:
    """A name the import system can find a file for: import statements give identifiers, but the runtime
    imports the handler's module with importlib.import_module, so `producer-function` is one too."""
    return bool(name) and not any(c in "./\\" or c.isspace() or not c.isprintable() for c in name)
