"""Function folder -> what to build: the handler, the requirements, and the first-party code it reaches.

Files are read and `ast`-parsed, never imported: importing would run the user's code on the host.
The layout searched is the one the zip will have in /var/task: the function folder's files at the top,
then each first-party package (found in a source root, e.g. `lambda/shared/`) at its package path.

Only first-party failures are reported: an import whose top-level name is neither in the function folder
nor in a source root will come from the requirements, the stdlib or the runtime, and the probe judges it.
"""

from __future__ import annotations

import os
import re
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from lpkg.config import FunctionSettings, read_toml
from lpkg.errors import UsageError
from lpkg.handler import CANDIDATE_MODULES, Handler, infer_handler
from lpkg.names import canonical_name
from lpkg.probe.sources import ImportStatement, SourceFacts, analyse_source
from lpkg.report import Finding, Severity, sort_findings

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
REQUIREMENTS_TXT = "requirements.txt"
# Extension modules: name.so, name.cpython-312-x86_64-linux-gnu.so, name.abi3.so, name.pyd.
_EXTENSION = re.compile(r"^(?P<stem>[A-Za-z_][A-Za-z0-9_]*)(\.[A-Za-z0-9_-]+)?\.(so|pyd)$")


@dataclass(frozen=True)
class BuildPlan:
    """What to put in the zip, before any dependency is installed."""

    settings: FunctionSettings
    handler: Handler
    files: tuple[tuple[str, Path], ...]  # (zip path, source file), sorted by zip path
    first_party: tuple[str, ...]  # top-level names taken from the source roots, e.g. ("shared",)
    requirement_files: tuple[Path, ...]  # requirements.txt files: the function's first, then first-party ones
    dependencies: tuple[str, ...]  # requirement strings from [project].dependencies of a pyproject.toml
    declared: frozenset[str]  # canonical names of every declared requirement (pinning boto3 keeps it)
    external_imports: tuple[str, ...]  # top-level names imported that are neither first-party nor stdlib

    @property
    def function_dir(self) -> Path:
        return self.settings.function_dir

    @property
    def name(self) -> str:
        return self.settings.name


@dataclass(frozen=True)
class _Module:
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


# Records that `importer` imports these modules: (modules, importer or None for the handler, optional).
_Reach = Callable[[Iterable[_Module], "str | None", bool], None]


@dataclass
class _Problem:
    code: str
    module: _Module  # where the import is
    record: ImportStatement | None
    message: str  # without the consequence, which depends on whether the import always runs
    suggestion: str = ""  # " — did you mean ...?"


@dataclass
class _Walk:
    reached: dict[str, _Module] = field(default_factory=dict)
    edges: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)  # module -> (module, optional)
    problems: list[_Problem] = field(default_factory=list)
    external: set[str] = field(default_factory=set)


def discover(settings: FunctionSettings) -> tuple[BuildPlan, tuple[Finding, ...]]:
    """The build plan for a function folder, and what is wrong with its first-party code.

    Raises UsageError when the handler cannot be told (none or several candidates) or a file is unreadable.
    """
    finder = _Finder(settings)
    handler = settings.handler or _infer(settings, finder)
    walk = _walk(finder, handler)
    mandatory, chains = _reachability(walk, handler)
    findings = [_finding(p, p.module.name in mandatory and not (p.record and p.record.optional), chains)
                for p in walk.problems]
    findings += _check_handler(finder, handler)

    function_files = dict(finder.files(settings.function_dir, ""))
    first_party_files: dict[str, Path] = {}
    tops: dict[str, _Module] = {}
    for module in walk.reached.values():
        if module.origin == "first-party" and "." not in module.name:
            tops[module.name] = module
    for name, top in sorted(tops.items()):
        if top.directory is not None:
            first_party_files.update(finder.files(top.directory, name + "/"))
        elif top.file is not None and not finder.excluded_by_user(top.zip_path):
            first_party_files[top.zip_path] = top.file
    files = {**first_party_files, **function_files}  # the function's own file wins a clash, as in /var/task
    findings += _add_reached(walk, finder, files, chains)
    findings += _syntax_findings(finder, walk, files, mandatory, chains)

    requirement_files, dependencies = folder_requirements(settings.function_dir)
    for top in (tops[n] for n in sorted(tops)):
        if top.directory is not None:
            more_files, more_deps = folder_requirements(top.directory)
            requirement_files += more_files
            dependencies += more_deps
    plan = BuildPlan(
        settings=settings,
        handler=handler,
        files=tuple(sorted(files.items())),
        first_party=tuple(sorted(tops)),
        requirement_files=tuple(dict.fromkeys(requirement_files)),
        dependencies=tuple(dict.fromkeys(dependencies)),
        declared=frozenset(_declared_names(requirement_files, dependencies)),
        external_imports=tuple(sorted(walk.external)),
    )
    return plan, sort_findings(findings)


# --- finding modules where the zip will have them -------------------------------------------------


class _Finder:
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

    def probe(self, folder: Path, name: str, dotted: str, origin: Origin, root: Path) -> _Module | None:
        """The module `name` in `folder`, in the order CPython's path finder tries: package, extension,
        source, then a namespace package (a folder without __init__.py)."""
        entries = self.listing(folder)
        if entries.get(name):
            sub = self.listing(folder / name)
            if "__init__.py" in sub:
                return _Module(dotted, "package", folder / name / "__init__.py", folder / name, origin, root)
            init_ext = next((e for e in sorted(sub) if _extension_stem(e) == "__init__"), None)
            if init_ext:
                return _Module(dotted, "package", folder / name / init_ext, folder / name, origin, root)
        extension = next((e for e in sorted(entries) if not entries[e] and _extension_stem(e) == name), None)
        if extension:
            return _Module(dotted, "extension", folder / extension, None, origin, root)
        if entries.get(f"{name}.py") is False:
            return _Module(dotted, "source", folder / f"{name}.py", None, origin, root)
        if entries.get(name):
            return _Module(dotted, "namespace", None, folder / name, origin, root)
        return None

    def top(self, name: str, children: Sequence[str] = ()) -> _Module | None:
        """A first-party top-level module, or None when the name will come from elsewhere.

        Stdlib names are looked up in the function folder only: including a source root's `json.py`
        would shadow the stdlib in /var/task. A namespace package (a folder without __init__.py) counts
        only when it holds one of the `children` asked for, so a data folder that happens to share a
        third-party package's name does not capture it.
        """
        if not name.isidentifier() or name in sys.builtin_module_names:
            return None
        stdlib = name in sys.stdlib_module_names
        namespaces: list[_Module] = []
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

    def child(self, package: _Module, name: str) -> _Module | None:
        if package.directory is None or not name.isidentifier():
            return None
        return self.probe(package.directory, name, f"{package.name}.{name}", package.origin, package.root)

    def resolve(self, dotted: str, names: Sequence[str] = ()) -> list[_Module] | None:
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

    def module_source(self, module: _Module) -> SourceFacts | None:
        if module.file is None or module.kind == "extension":
            return None
        return self.source(module.file)

    # --- which files go into the zip ---

    def excluded_by_user(self, zip_path: str) -> str | None:
        """The user's exclude pattern that leaves this zip path out, if any."""
        return next((p for p in self.settings.exclude if _matches(zip_path, p)), None)

    def files(self, folder: Path, prefix: str) -> Iterator[tuple[str, Path]]:
        """(zip path, file) for everything under `folder` that belongs in the zip."""
        seen: set[str] = set()
        for current, dirs, names in os.walk(folder, followlinks=True):
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


def _extension_stem(filename: str) -> str | None:
    match = _EXTENSION.match(filename)
    return match.group("stem") if match else None


def _matches(zip_path: str, pattern: str) -> bool:
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


# --- the walk from the handler ----------------------------------------------------------------------


def _infer(settings: FunctionSettings, finder: _Finder) -> Handler:
    sources: dict[str, str | None] = {}
    entries = finder.listing(settings.function_dir)
    for module in CANDIDATE_MODULES:
        member = f"{module}.py"
        if entries.get(member) is False and not finder.excluded_by_user(member):
            try:
                sources[member] = (settings.function_dir / member).read_text(encoding="utf-8", errors="replace")
            except OSError:
                sources[member] = None
    return infer_handler(sources)


def _walk(finder: _Finder, handler: Handler) -> _Walk:
    walk = _Walk()
    queue: deque[_Module] = deque()

    def reach(modules: Iterable[_Module], importer: str | None, optional: bool) -> None:
        for module in modules:
            if importer is not None:
                walk.edges.setdefault(importer, []).append((module.name, optional))
            if module.name not in walk.reached:
                walk.reached[module.name] = module
                queue.append(module)

    handler_chain = finder.resolve(handler.module)
    if handler_chain is None or len(handler_chain) < handler.module.count(".") + 1:
        return walk  # _check_handler reports it
    reach(handler_chain, None, False)
    while queue:
        module = queue.popleft()
        source = finder.module_source(module)
        if source is None or source.syntax_error:
            continue
        for record in source.imports:
            _follow(finder, walk, module, record, reach)
    return walk


def _follow(finder: _Finder, walk: _Walk, module: _Module, record: ImportStatement, reach: _Reach) -> None:
    if record.level:
        target = _relative_base(module, record.level)
        if isinstance(target, _BadRelative):
            walk.problems.append(_Problem("FIRST_PARTY_MISSING", module, record, target.reason))
            return
        dotted = f"{target}.{record.module}" if record.module else target
    else:
        dotted = record.module
    chain = finder.resolve(dotted, record.names)
    if chain is None:
        top = dotted.split(".")[0]
        if top not in sys.stdlib_module_names and top not in sys.builtin_module_names:
            walk.external.add(top)
        return
    reach(chain, module.name, record.optional)
    wanted = dotted.split(".")
    if len(chain) < len(wanted):
        walk.problems.append(_Problem("FIRST_PARTY_MISSING", module, record, _no_module(chain[-1], wanted)))
        return
    target_module = chain[-1]
    for name in record.names:
        if name == "*":
            continue
        sub = finder.child(target_module, name) if target_module.is_package else None
        if sub is not None:
            reach([sub], module.name, record.optional)
            continue
        missing = _missing_name(finder, target_module, name)
        if missing:
            walk.problems.append(_Problem("FIRST_PARTY_MISSING", module, record, *missing))


@dataclass(frozen=True)
class _BadRelative:
    reason: str


def _relative_base(module: _Module, level: int) -> str | _BadRelative:
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    if not package:
        return _BadRelative(
            f"{module.name} is a top-level module of the zip, so a relative import in it fails: "
            "attempted relative import with no known parent package — import absolutely"
        )
    bits = package.split(".")
    if level - 1 >= len(bits):
        return _BadRelative(
            f"attempted relative import beyond top-level package {bits[0]} (the top of the zip) — import absolutely"
        )
    return ".".join(bits[: len(bits) - (level - 1)])


def _describe(module: _Module) -> str:
    kinds = {"package": "package", "namespace": "namespace package", "source": "module", "extension": "extension"}
    where = "first-party " if module.origin == "first-party" else ""
    return f"{where}{kinds[module.kind]} {module.name} ({module.zip_path})"


def _no_module(parent: _Module, wanted: list[str]) -> str:
    depth = parent.name.count(".") + 1
    missing = ".".join(wanted[: depth + 1])
    part = wanted[depth]
    if not parent.is_package:
        return f"no module {missing}: {_describe(parent)} is not a package"
    folder = parent.zip_path.rsplit("/", 1)[0] if parent.kind == "package" else parent.zip_path.rstrip("/")
    return (f"no module {missing}: {_describe(parent)} has no {folder}/{part}.py or {folder}/{part}/ "
            f"(No module named '{missing}')")


def _missing_name(finder: _Finder, module: _Module, name: str) -> tuple[str, str] | None:
    """Why `from module import name` fails and a suggestion, or None when it works or cannot be known."""
    if module.kind == "namespace":
        return (f"{_describe(module)} is a folder without __init__.py and has no submodule {name} "
                f"(cannot import name '{name}' from '{module.name}')", "")
    source = finder.module_source(module)
    if source is None or source.syntax_error or source.dynamic or name in source.names:
        return None
    message = (f"{_describe(module)} defines no top-level name {name} "
               f"(cannot import name '{name}' from '{module.name}')")
    owners = sorted({cls for cls, method in source.methods if method == name})
    if owners:
        cls = owners[0]
        return message, (f" — {name} is a method of class {cls}: did you mean "
                         f"`from {module.name} import {cls}` and `{cls}.{name}()`?")
    import difflib  # only to suggest a name in an error

    close = difflib.get_close_matches(name, sorted(source.names), n=1)
    return message, (f" — did you mean {close[0]}?" if close else "")


def _reachability(walk: _Walk, handler: Handler) -> tuple[set[str], dict[str, tuple[str, ...]]]:
    """Modules imported whenever the handler is (following only imports that always run), and for every
    module reached, the shortest import chain from the handler (through always-run imports first)."""
    start = [m for m in walk.reached if handler.module == m or handler.module.startswith(m + ".")]
    chains: dict[str, tuple[str, ...]] = {}
    mandatory: set[str] = set()
    for follow_optional in (False, True):
        queue = deque(start)
        seen = set(start)
        for name in start:
            chains.setdefault(name, (name,))
        while queue:
            name = queue.popleft()
            if not follow_optional:
                mandatory.add(name)
            for target, optional in walk.edges.get(name, []):
                if target in seen or (optional and not follow_optional):
                    continue
                seen.add(target)
                chains.setdefault(target, (*chains[name], target))
                queue.append(target)
    return mandatory, chains


# --- findings ---------------------------------------------------------------------------------------

_OPTIONAL_NOTE = ("; the import is inside a function, a try/except ImportError or `if TYPE_CHECKING`, "
                  "so it fails only when that code runs")


def _finding(problem: _Problem, always: bool, chains: dict[str, tuple[str, ...]]) -> Finding:
    module = problem.module
    record = problem.record
    consequence = ("; Lambda would fail with Runtime.ImportModuleError when it imports the handler"
                   if always else _OPTIONAL_NOTE)
    # The finding's location already says file:line; the message quotes the statement.
    text = f"`{record.text}`: " if record else ""
    return Finding(
        problem.code,
        Severity.ERROR if always else Severity.WARNING,
        f"{text}{problem.message}{consequence}{problem.suggestion}{_source_note(module)}",
        member=module.zip_path,
        line=record.line if record else None,
        chain=chains.get(module.name, (module.name,)),
    )


def _source_note(module: _Module) -> str:
    if module.origin != "first-party" or module.file is None:
        return ""
    return f" (source: {_display(module.file)})"


def _display(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def _check_handler(finder: _Finder, handler: Handler) -> list[Finding]:
    chain = finder.resolve(handler.module)
    wanted = handler.module.split(".")
    files = ", ".join(handler.module_files()[:2])
    if chain is None:
        return [Finding(
            "HANDLER_MISSING", Severity.WARNING,
            f"handler {handler.string}: module {handler.module} is neither in the function folder nor in a "
            f"source root (looked for {files}), so it must come from a dependency or a layer — check the "
            "handler setting",
        )]
    if len(chain) < len(wanted):
        return [Finding(
            "HANDLER_MISSING", Severity.ERROR,
            f"handler {handler.string}: {_no_module(chain[-1], wanted)}; Lambda would fail with "
            "Runtime.ImportModuleError — check the handler setting",
            member=chain[-1].zip_path,
        )]
    module = chain[-1]
    source = finder.module_source(module)
    if source is None or source.syntax_error or source.dynamic or handler.function in source.names:
        return []
    return [Finding(
        "HANDLER_MISSING", Severity.ERROR,
        f"handler {handler.string}: {module.zip_path} defines no top-level {handler.function}; Lambda would fail "
        "with Runtime.HandlerNotFound — check the handler setting",
        member=module.zip_path,
    )]


def _add_reached(walk: _Walk, finder: _Finder, files: dict[str, Path],
                 chains: dict[str, tuple[str, ...]]) -> list[Finding]:
    """Reached modules always go in, even where a built-in rule (tests/, test_*.py) would leave them out;
    a user's exclude pattern is obeyed (the module may come from a layer), with a warning."""
    findings: list[Finding] = []
    for module in walk.reached.values():
        if module.file is None or module.zip_path in files:
            continue
        pattern = finder.excluded_by_user(module.zip_path)
        if pattern is None:
            files[module.zip_path] = module.file
            continue
        chain = chains.get(module.name, (module.name,))
        importer = f" (from {chain[-2]})" if len(chain) > 1 else ""
        findings.append(Finding(
            "FIRST_PARTY_EXCLUDED", Severity.WARNING,
            f"{module.name} is imported{importer} but the exclude pattern {pattern!r} leaves "
            f"{module.zip_path} out of the zip: it must come from a layer, or the import fails",
            member=module.zip_path,
            chain=chain,
        ))
    return findings


def _syntax_findings(finder: _Finder, walk: _Walk, files: dict[str, Path], mandatory: set[str],
                     chains: dict[str, tuple[str, ...]]) -> list[Finding]:
    """Every .py file going into the zip must parse; one the handler imports is an error."""
    by_file = {m.file: m for m in walk.reached.values() if m.file is not None}
    host = f"{sys.version_info[0]}.{sys.version_info[1]}"
    findings: list[Finding] = []
    for zip_path, path in sorted(files.items()):
        if not zip_path.endswith(".py"):
            continue
        error = finder.source(path).syntax_error
        if error is None:
            continue
        line, reason = error
        module = by_file.get(path)
        newer = finder.source(path).maybe_newer_syntax
        first_party = not (path == finder.settings.function_dir or finder.settings.function_dir in path.parents)
        note = f" (source: {_display(path)})" if first_party else ""
        if module is None:
            severity = Severity.WARNING
            effect = "the handler does not import it, but it is in the zip: whatever imports it fails"
        elif module.name in mandatory and not newer:
            severity = Severity.ERROR
            effect = "Lambda would fail with Runtime.UserCodeSyntaxError when it imports the handler"
        else:
            severity = Severity.WARNING
            effect = ("it may be syntax newer than the Python " + host + " lpkg runs on; the probe on the target "
                      "interpreter decides" if newer else "it is imported only when optional code runs")
        findings.append(Finding(
            "FIRST_PARTY_SYNTAX", severity,
            f"does not parse ({reason}); {effect}{note}",
            member=zip_path,
            line=line,
            chain=chains.get(module.name, ()) if module else (),
        ))
    return findings


# --- requirements -----------------------------------------------------------------------------------


def folder_requirements(folder: Path) -> tuple[list[Path], list[str]]:
    """A folder's requirements.txt, else the [project].dependencies of its pyproject.toml."""
    txt = folder / REQUIREMENTS_TXT
    if txt.is_file():
        return [txt], []
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        return [], []
    project = read_toml(pyproject).get("project", {})
    deps = project.get("dependencies", []) if isinstance(project, dict) else []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise UsageError(f"{pyproject}: [project].dependencies must be a list of requirement strings")
    return [], list(deps)


_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def _declared_names(files: Iterable[Path], dependencies: Iterable[str]) -> set[str]:
    names = {canonical_name(m.group(1)) for d in dependencies if (m := _NAME.match(d))}
    seen: set[Path] = set()
    pending = list(files)
    while pending:
        path = pending.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for raw in text.replace("\\\n", " ").splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            include = re.match(r"^(?:-r|--requirement)[\s=]+(\S+)", line)
            if include:
                pending.append(path.parent / include.group(1))
            elif not line.startswith("-") and (m := _NAME.match(line)):
                names.add(canonical_name(m.group(1)))
    return names
