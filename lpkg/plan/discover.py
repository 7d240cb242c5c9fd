"""Function folder -> what to build: the handler, the requirements, and the first-party code it reaches.

Files are read and `ast`-parsed, never imported: importing would run the user's code on the host.
The layout searched is the one the zip will have in /var/task: the function folder's files at the top,
then each first-party package (found in a source root, e.g. `lambda/shared/`) at its package path.

Only first-party failures are reported: an import whose top-level name is neither in the function folder
nor in a source root will come from the requirements, the stdlib or the runtime, and the probe judges it.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lpkg.config import FunctionSettings
from lpkg.handler import CANDIDATE_MODULES, Handler, infer_handler, started_by_wrapper
from lpkg.plan.requirements import declared_names, folder_requirements
from lpkg.plan.resolver import FoundModule, ModuleFinder
from lpkg.probe.sources import ImportStatement
from lpkg.report import Finding, Severity, sort_findings


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





# Records that `importer` imports these modules: (modules, importer or None for the handler, optional).
_Reach = Callable[[Iterable[FoundModule], "str | None", bool], None]


@dataclass
class _Problem:
    code: str
    module: FoundModule  # where the import is
    record: ImportStatement | None
    message: str  # without the consequence, which depends on whether the import always runs
    suggestion: str = ""  # " — did you mean ...?"


@dataclass
class _Walk:
    reached: dict[str, FoundModule] = field(default_factory=dict)
    edges: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)  # module -> (module, optional)
    problems: list[_Problem] = field(default_factory=list)
    external: set[str] = field(default_factory=set)


def discover(settings: FunctionSettings) -> tuple[BuildPlan, tuple[Finding, ...]]:
    """The build plan for a function folder, and what is wrong with its first-party code.

    Raises UsageError when the handler cannot be told (none or several candidates) or a file is unreadable.
    """
    finder = ModuleFinder(settings)
    handler = settings.handler or _infer(settings, finder)
    walk = _walk(finder, handler)
    mandatory, chains = _reachability(walk, handler)
    findings = [_finding(p, p.module.name in mandatory and not (p.record and p.record.optional), chains)
                for p in walk.problems]
    if started_by_wrapper(settings.environment, handler, lambda name: (settings.function_dir / name).is_file()) is None:
        findings += _check_handler(finder, handler)  # else verify says HANDLER_RUN_BY_WRAPPER

    tops: dict[str, FoundModule] = {}
    own_tops: dict[str, FoundModule] = {}  # the function folder's own top-level modules the walk reached
    for module in walk.reached.values():
        if "." not in module.name:
            (tops if module.origin == "first-party" else own_tops)[module.name] = module
    if settings.code_root:
        # A repository's root as the asset: its packages at their import paths, not its tests or infra code.
        function_files = _reached_files(finder, own_tops)
        function_files.update(finder.included_files())
    else:
        function_files = dict(finder.files(settings.function_dir, ""))
    first_party_files = _reached_files(finder, tops)
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
        declared=frozenset(declared_names(requirement_files, dependencies)),
        external_imports=tuple(sorted(walk.external)),
    )
    return plan, sort_findings(findings)


# --- finding modules where the zip will have them -------------------------------------------------


def _reached_files(finder: ModuleFinder, tops: dict[str, FoundModule]) -> dict[str, Path]:
    """(zip path, file) of each reached top-level module: a package's whole folder, a module's one file."""
    files: dict[str, Path] = {}
    for name, top in sorted(tops.items()):
        if top.directory is not None:
            files.update(finder.files(top.directory, name + "/"))
        elif top.file is not None and not finder.excluded_by_user(top.zip_path):
            files[top.zip_path] = top.file
    return files


# --- the walk from the handler ----------------------------------------------------------------------


def _infer(settings: FunctionSettings, finder: ModuleFinder) -> Handler:
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


def _walk(finder: ModuleFinder, handler: Handler) -> _Walk:
    walk = _Walk()
    queue: deque[FoundModule] = deque()

    def reach(modules: Iterable[FoundModule], importer: str | None, optional: bool) -> None:
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


def _follow(finder: ModuleFinder, walk: _Walk, module: FoundModule, record: ImportStatement, reach: _Reach) -> None:
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


def _relative_base(module: FoundModule, level: int) -> str | _BadRelative:
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


def _describe(module: FoundModule) -> str:
    kinds = {"package": "package", "namespace": "namespace package", "source": "module", "extension": "extension"}
    where = "first-party " if module.origin == "first-party" else ""
    return f"{where}{kinds[module.kind]} {module.name} ({module.zip_path})"


def _no_module(parent: FoundModule, wanted: list[str]) -> str:
    depth = parent.name.count(".") + 1
    missing = ".".join(wanted[: depth + 1])
    part = wanted[depth]
    if not parent.is_package:
        return f"no module {missing}: {_describe(parent)} is not a package"
    folder = parent.zip_path.rsplit("/", 1)[0] if parent.kind == "package" else parent.zip_path.rstrip("/")
    return (f"no module {missing}: {_describe(parent)} has no {folder}/{part}.py or {folder}/{part}/ "
            f"(No module named '{missing}')")


def _missing_name(finder: ModuleFinder, module: FoundModule, name: str) -> tuple[str, str] | None:
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


def _source_note(module: FoundModule) -> str:
    if module.origin != "first-party" or module.file is None:
        return ""
    return f" (source: {_display(module.file)})"


def _display(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def _check_handler(finder: ModuleFinder, handler: Handler) -> list[Finding]:
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


def _add_reached(walk: _Walk, finder: ModuleFinder, files: dict[str, Path],
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


def _syntax_findings(finder: ModuleFinder, walk: _Walk, files: dict[str, Path], mandatory: set[str],
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


