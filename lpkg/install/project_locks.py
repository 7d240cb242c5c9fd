"""uv.lock and poetry.lock as the pinned set for one Lambda target, with hashes. Reads files only: nothing is
resolved or installed here.

From the project's own runtime dependencies (pyproject: `[project].dependencies`, `[tool.poetry.dependencies]`;
never dev groups, `[tool.poetry.group.*]`, `[dependency-groups]` or uv's dev-dependencies) the lock's
dependency graph is walked with each edge's environment marker evaluated for the target (its Python minor,
Linux, the architecture's machine). Each locked distribution keeps the hashes of the files that install on
the target: wheels whose tags the runtime accepts (its CPython ABI, manylinux up to its glibc) and the
sdist. A distribution with neither is an error naming it. Local path and editable packages (first-party
code the project builds) are returned apart, with their folders: they have no hash to pin.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from lpkg.config import read_toml
from lpkg.errors import UsageError
from lpkg.runtimes import ARCHITECTURES, Arch, Runtime

LockKind = Literal["uv", "poetry"]
LOCK_FILES: tuple[tuple[LockKind, str], ...] = (("uv", "uv.lock"), ("poetry", "poetry.lock"))
LOCAL_SOURCES = ("editable", "directory", "path", "virtual", "file")  # uv's and poetry's words for local code
_POETRY_LOCAL = ("directory", "file")
_POETRY_EXTRA_ITEM = re.compile(r"^([A-Za-z0-9][\w.\-]*(?:\[[^\]]*\])?) \(([^)]*)\)$")


@dataclass(frozen=True)
class Target:
    runtime: Runtime
    arch: Arch

    def markers(self, extra: str = "") -> dict[str, str]:
        """PEP 508 marker variables on this Lambda runtime (the patch version is not known: .0)."""
        minor = self.runtime.minor
        return {"implementation_name": "cpython", "implementation_version": f"{minor}.0", "os_name": "posix",
                "platform_machine": ARCHITECTURES[self.arch].machine, "platform_python_implementation": "CPython",
                "platform_release": "", "platform_system": "Linux", "platform_version": "",
                "python_full_version": f"{minor}.0", "python_version": minor, "sys_platform": "linux",
                "extra": extra}

    def tags(self) -> frozenset[Tag]:
        version = self.runtime.version
        platforms = [*self.runtime.wheel_platforms(self.arch), "linux_" + ARCHITECTURES[self.arch].machine]
        return frozenset([*cpython_tags(version, [self.runtime.wheel_abi, "abi3", "none"], platforms),
                          *compatible_tags(version, self.runtime.wheel_abi, platforms)])

    def allows(self, marker: str | None, extra: str = "") -> bool:
        if not marker:
            return True
        try:
            return Marker(marker).evaluate(self.markers(extra))
        except InvalidMarker:
            return True  # a marker packaging cannot read is kept: pip decides at install


@dataclass(frozen=True)
class LockedDistribution:
    name: str
    version: str
    hashes: tuple[str, ...]  # "sha256:<hex>" of every file that installs on the target

    @property
    def requirement_line(self) -> str:
        hashes = " ".join(f"--hash={h}" for h in self.hashes)
        return f"{self.name}=={self.version} {hashes}"


@dataclass(frozen=True)
class LocalPackage:
    name: str
    folder: Path  # absolute: a folder with a pyproject.toml/setup.py, or a wheel/sdist file
    editable: bool


@dataclass(frozen=True)
class ProjectLock:
    kind: LockKind
    path: Path
    project: str  # the root package's name
    distributions: tuple[LockedDistribution, ...]  # sorted by name
    local: tuple[LocalPackage, ...]  # first-party packages, to build from their folders

    def requirements_text(self) -> str:
        """Lines for `pip install --require-hashes --no-deps -r`: the set is complete, markers applied."""
        return "".join(f"{d.requirement_line}\n" for d in self.distributions)


def find_lock(folder: Path) -> tuple[LockKind, Path] | None:
    """The lock beside the project's pyproject.toml: uv.lock, else poetry.lock; from `folder` upwards."""
    for candidate in (folder, *folder.parents):
        for kind, name in LOCK_FILES:
            if (candidate / name).is_file():
                return kind, candidate / name
        if (candidate / ".git").exists():
            break
    return None


def read_project_lock(path: Path, target: Target) -> ProjectLock:
    kind: LockKind = "poetry" if path.name == "poetry.lock" else "uv"
    pyproject = read_toml(path.parent / "pyproject.toml") if (path.parent / "pyproject.toml").is_file() else {}
    data = read_toml(path)
    packages = data.get("package", [])
    if not isinstance(packages, list):
        raise UsageError(f"{path}: no [[package]] tables", hint="regenerate the lock (uv lock / poetry lock)")
    graph = (_UvGraph if kind == "uv" else _PoetryGraph)(path, packages, pyproject, target)
    return graph.walk()


@dataclass(frozen=True)
class _Edge:
    name: str
    version: str | None = None  # uv: when the lock holds several versions of the name
    specifier: str | None = None  # poetry: the constraint, to choose among several versions
    extras: tuple[str, ...] = ()


class _Graph:
    """A lock's packages by name, walked from the project's runtime dependencies."""

    def __init__(self, path: Path, packages: list[Any], pyproject: Mapping[str, Any], target: Target) -> None:
        self.path = path
        self.target = target
        self.pyproject = pyproject
        self.by_name: dict[str, list[dict[str, Any]]] = {}
        for package in packages:
            if isinstance(package, dict) and isinstance(package.get("name"), str):
                self.by_name.setdefault(canonicalize_name(package["name"]), []).append(package)

    def project_name(self) -> str:
        project = self.pyproject.get("project", {})
        poetry = self.pyproject.get("tool", {}).get("poetry", {})
        name = (project.get("name") if isinstance(project, dict) else None) or poetry.get("name")
        if not isinstance(name, str):
            raise UsageError(f"{self.path.parent / 'pyproject.toml'}: no project name",
                             hint="the lock's project needs [project].name (or [tool.poetry].name)")
        return str(canonicalize_name(name))

    def roots(self) -> list[_Edge]:
        raise NotImplementedError

    def edges(self, package: dict[str, Any], extras: tuple[str, ...]) -> list[_Edge]:
        raise NotImplementedError

    def source(self, package: dict[str, Any]) -> tuple[str, str | None]:
        raise NotImplementedError

    def walk(self) -> ProjectLock:
        seen: set[tuple[str, str, tuple[str, ...]]] = set()
        chosen: dict[str, dict[str, Any]] = {}
        pending = self.roots()
        while pending:
            edge = pending.pop()
            package = self.choose(edge)
            key = (canonicalize_name(package["name"]), str(package.get("version")), edge.extras)
            if key in seen:
                continue
            seen.add(key)
            chosen[key[0]] = package
            pending.extend(self.edges(package, edge.extras))
        project = self.project_name()
        chosen.pop(project, None)  # the project itself: the function's own code, which lpkg's discovery follows
        return ProjectLock(
            kind="uv" if isinstance(self, _UvGraph) else "poetry", path=self.path, project=project,
            distributions=tuple(self.distribution(p) for _, p in sorted(chosen.items()) if not self.is_local(p)),
            local=tuple(self.local_package(p) for _, p in sorted(chosen.items()) if self.is_local(p)),
        )

    def choose(self, edge: _Edge) -> dict[str, Any]:
        candidates = self.by_name.get(canonicalize_name(edge.name), [])
        if not candidates:
            raise UsageError(f"{self.path}: {edge.name} is required but not locked",
                             hint="the lock is out of date: regenerate it (uv lock / poetry lock)")
        if edge.version is not None:
            candidates = [c for c in candidates if str(c.get("version")) == edge.version] or candidates
        if len(candidates) > 1 and edge.specifier:
            candidates = [c for c in candidates if _satisfies(c.get("version"), edge.specifier)] or candidates
        return candidates[0]

    def is_local(self, package: dict[str, Any]) -> bool:
        return self.source(package)[0] in LOCAL_SOURCES

    def local_package(self, package: dict[str, Any]) -> LocalPackage:
        kind, where = self.source(package)
        folder = (self.path.parent / (where or ".")).resolve()
        return LocalPackage(str(package["name"]), folder, kind == "editable" or bool(package.get("develop")))

    def files(self, package: dict[str, Any]) -> list[tuple[str, str]]:
        raise NotImplementedError

    def distribution(self, package: dict[str, Any]) -> LockedDistribution:
        name, version = str(package["name"]), str(package.get("version"))
        kind, where = self.source(package)
        if kind not in ("registry", "legacy", "url", ""):
            raise UsageError(f"{self.path}: {name} comes from {kind} {where}: it cannot be pinned with a hash",
                             hint="depend on a released version, or on a local path lpkg builds")
        tags = self.target.tags()
        usable = [digest for filename, digest in self.files(package) if _installs(filename, tags)]
        if not usable:
            raise UsageError(f"{self.path}: {name} {version} has no wheel for {self.target.runtime.name} on "
                             f"{self.target.arch} (glibc {'.'.join(map(str, self.target.runtime.glibc))}) "
                             "and no sdist", hint="lock a version that publishes one, or build it into a layer")
        return LockedDistribution(name, version, tuple(sorted(set(usable))))


def _satisfies(version: Any, specifier: str) -> bool:
    try:
        return Version(str(version)) in SpecifierSet(specifier)
    except (InvalidVersion, InvalidSpecifier):
        return True


def _installs(filename: str, tags: frozenset[Tag]) -> bool:
    """A wheel whose tags the target accepts, or an sdist (built for the target at install)."""
    if not filename.endswith(".whl"):
        return filename.endswith((".tar.gz", ".zip", ".tar.bz2", ".tgz"))
    try:
        _, _, _, wheel_tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return False
    return not wheel_tags.isdisjoint(tags)


class _UvGraph(_Graph):
    def roots(self) -> list[_Edge]:
        root = self.choose(_Edge(self.project_name()))
        return [_Edge(str(root["name"]))]

    def edges(self, package: dict[str, Any], extras: tuple[str, ...]) -> list[_Edge]:
        declared: list[Any] = list(package.get("dependencies", []))
        optional = package.get("optional-dependencies", {})
        for extra in extras:
            declared += optional.get(extra, []) if isinstance(optional, dict) else []
        return [_Edge(str(d["name"]), d.get("version"), None, tuple(d.get("extra", ())))
                for d in declared if isinstance(d, dict) and "name" in d
                and self.target.allows(d.get("marker"))]

    def source(self, package: dict[str, Any]) -> tuple[str, str | None]:
        source = package.get("source", {})
        if isinstance(source, dict) and source:
            kind, where = next(iter(source.items()))
            return str(kind), str(where)
        return "", None

    def files(self, package: dict[str, Any]) -> list[tuple[str, str]]:
        entries = [*package.get("wheels", []), package.get("sdist") or {}]
        return [(str(e.get("url") or e.get("path") or e.get("filename", "")).rsplit("/", 1)[-1], str(e["hash"]))
                for e in entries if isinstance(e, dict) and e.get("hash")]


class _PoetryGraph(_Graph):
    def roots(self) -> list[_Edge]:
        project = self.pyproject.get("project", {})
        edges = [_requirement_edge(d, self.target) for d in project.get("dependencies", [])] \
            if isinstance(project, dict) else []
        poetry = self.pyproject.get("tool", {}).get("poetry", {}).get("dependencies", {})
        for name, spec in (poetry.items() if isinstance(poetry, dict) else ()):
            if canonicalize_name(name) != "python":
                edges += self._spec_edges(name, spec, ())
        return [e for e in edges if e is not None]

    def edges(self, package: dict[str, Any], extras: tuple[str, ...]) -> list[_Edge]:
        found: list[_Edge | None] = []
        for name, spec in package.get("dependencies", {}).items():
            found += self._spec_edges(name, spec, extras)
        declared_extras = package.get("extras", {})
        for extra in extras:
            found += [_requirement_edge(r, self.target) for r in declared_extras.get(extra, [])]
        return [e for e in found if e is not None]

    def _spec_edges(self, name: str, spec: Any, extras: tuple[str, ...]) -> list[_Edge | None]:
        """One dependency as poetry writes it: "^1.2", {version, markers, python, optional, extras}, or a
        list of those (one per marker). An optional one counts only through an extra that names it."""
        edges: list[_Edge | None] = []
        for item in spec if isinstance(spec, list) else [spec]:
            table = item if isinstance(item, dict) else {"version": item}
            if table.get("optional") and not extras:
                continue
            if not any(self.target.allows(table.get("markers"), extra) for extra in (extras or ("",))):
                continue
            if not _python_allows(table.get("python"), self.target):
                continue
            edges.append(_Edge(name, None, _pep440(table.get("version")), tuple(table.get("extras", ()))))
        return edges

    def source(self, package: dict[str, Any]) -> tuple[str, str | None]:
        source = package.get("source")
        if isinstance(source, dict):
            return str(source.get("type", "")), source.get("url")
        return "registry", None

    def is_local(self, package: dict[str, Any]) -> bool:
        return self.source(package)[0] in _POETRY_LOCAL

    def files(self, package: dict[str, Any]) -> list[tuple[str, str]]:
        return [(str(f.get("file", "")), str(f["hash"])) for f in package.get("files", [])
                if isinstance(f, dict) and f.get("hash")]


def _requirement_edge(text: Any, target: Target) -> _Edge | None:
    """A PEP 508 string ("requests[socks]>=2; python_version >= '3.9'") as an edge, None if its marker says no."""
    poetry_style = _POETRY_EXTRA_ITEM.match(str(text))  # "PySocks (>=1.5.6,!=1.5.7)" in [package.extras]
    try:
        requirement = Requirement(f"{poetry_style[1]}{poetry_style[2]}" if poetry_style else str(text))
    except InvalidRequirement:
        return None
    if requirement.marker is not None and not requirement.marker.evaluate(target.markers()):
        return None
    return _Edge(requirement.name, None, str(requirement.specifier) or None, tuple(sorted(requirement.extras)))


def _pep440(constraint: Any) -> str | None:
    """Poetry's constraint when it is already PEP 440 ("^1.2" and "~1.2" are not: no version choice then)."""
    if not isinstance(constraint, str) or constraint in ("*", ""):
        return None
    if constraint[:1] in "^~" and constraint[1:2] != "=":
        return None
    return constraint


def _python_allows(constraint: Any, target: Target) -> bool:
    spec = _pep440(constraint)
    return spec is None or _satisfies(target.runtime.minor, spec)

