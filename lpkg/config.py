"""Build settings from `[tool.lpkg]` in pyproject.toml or from lpkg.toml, resolved per function.

Precedence, per setting: command-line flags > `[tool.lpkg.functions.<folder name>]` > the defaults
table > built-in defaults. Paths written in a file are relative to that file's folder.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lpkg.errors import UsageError
from lpkg.files import resolved
from lpkg.handler import CANDIDATE_MODULES, Handler, defined_handlers, parse_handler
from lpkg.runtimes import (
    DEFAULT_RUNTIME,
    DEFAULT_TIMEOUT_SECONDS,
    Arch,
    Runtime,
    get_runtime,
    parse_arch,
)

if TYPE_CHECKING:
    from lpkg.config_file import ProjectConfig

LPKG_TOML = "lpkg.toml"
PYPROJECT = "pyproject.toml"
DEFAULT_ARCH: Arch = "x86_64"
DEFAULT_OUT = "dist"
T = TypeVar("T")

# The environment variable names Lambda reserves: a function cannot set them, so neither can lpkg's settings.
RESERVED_ENV = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Table:
    """One table of a config file, validated; None means "not set here"."""

    runtime: Runtime | None = None
    arch: Arch | None = None
    out: Path | None = None
    build_image: str | None = None
    image: str | None = None
    layers: tuple[Path, ...] | None = None
    source_roots: tuple[Path, ...] | None = None
    exclude: tuple[str, ...] | None = None
    handler: Handler | None = None
    timeout: float | None = None
    event: str | None = None  # a built-in event's name, or an absolute path
    env: tuple[tuple[str, str], ...] | None = None  # environment variables for the import test and the invoke
    ignore: tuple[str, ...] | None = None  # contract-check codes left out of the report
    requirements_base: Path | None = None  # what relative path requirements are relative to


NOT_SET = Table()


@dataclass(frozen=True)
class Overrides:
    """Command-line flags; None (or an empty tuple) means the flag was not given. Paths as the user typed them."""

    runtime: str | None = None
    arch: str | None = None
    handler: str | None = None
    out: Path | None = None
    build_image: str | None = None
    image: str | None = None
    layers: tuple[Path, ...] = ()
    source_roots: tuple[Path, ...] = ()
    exclude: tuple[str, ...] = ()
    timeout: float | None = None
    event: str | None = None  # as typed: a built-in event's name, `-`, or a path relative to the cwd
    env: tuple[str, ...] = ()  # --env KEY=VALUE, as typed
    name: str | None = None  # the artifact's name, where a project file names the function (default: the folder)
    env_declared: tuple[tuple[str, str], ...] = ()  # variables a project file declares (flags and config win)
    code_root: bool = False  # the folder is a repository's root (a project file's asset): take only what is imported
    requirements_base: Path | None = None  # --requirements-base
    include: tuple[str, ...] = ()  # zip-path globs a project file adds to a code root (serverless package.patterns)
    unseen_layers: tuple[str, ...] = ()  # layers a project file attaches that are not built here (ARNs)
    env_placeholders: tuple[str, ...] = ()  # keys of env_declared whose value is a deploy-time placeholder


@dataclass(frozen=True)
class FunctionSettings:
    """Everything a build of one function folder needs to know, resolved. Paths are absolute."""

    function_dir: Path
    name: str  # the folder name: the artifact's name and the key of its per-function table
    runtime: Runtime
    arch: Arch
    handler: Handler | None  # None: inferred from the folder's files
    out: Path
    build_image: str
    image: str
    layers: tuple[Path, ...]
    source_roots: tuple[Path, ...]
    exclude: tuple[str, ...]  # glob patterns, matched against zip paths
    config_file: Path | None
    timeout: float = DEFAULT_TIMEOUT_SECONDS  # the function's timeout: for the import test and the smoke invoke
    event: str | None = None  # the smoke invoke's event: a built-in's name, `-`, or an absolute path
    environment: tuple[tuple[str, str], ...] = ()  # set for the import test and the smoke invoke, sorted by name
    ignore: frozenset[str] = frozenset()  # contract-check codes left out of the report
    code_root: bool = False  # only the modules and packages the handler's imports reach go in, not the whole folder
    requirements_base: Path | None = None  # relative path requirements point from here (default: their file's folder)
    include: tuple[str, ...] = ()  # with code_root: files matching these zip-path globs go in too (data, templates)
    unseen_layers: tuple[str, ...] = ()  # attached in Lambda, not to the import test: what they provide is unchecked
    placeholders: tuple[str, ...] = ()  # environment keys still holding a declared placeholder (no flag set them)

    @property
    def artifact(self) -> Path:
        return self.out / f"{self.name}.zip"


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; a syntax error or an unreadable file is a UsageError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({exc})") from None
    # Imported here: most builds read no TOML (see _may_name_lpkg), and tomllib costs ~2 ms of start-up.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # tomllib is 3.11+; needs the dependency `tomli; python_version < "3.11"`
        import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(exc)
        where = f"{path}:{line}" if line else str(path)
        raise UsageError(f"{where}: invalid TOML: {exc}", hint="fix the file's syntax") from None
    return data


def _toml_error_line(exc: Exception) -> int | None:
    # tomllib has .lineno only from 3.14 (tomli 2.1); older versions put "(at line N, column M)" in the message.
    line = getattr(exc, "lineno", None)
    if isinstance(line, int):
        return line
    match = re.search(r"at line (\d+)", str(exc))
    return int(match.group(1)) if match else None


def find_config(start: Path) -> Path | None:
    """The nearest lpkg.toml, or pyproject.toml with a [tool.lpkg] table, from `start` upwards.

    A pyproject.toml without [tool.lpkg] (a function's own, holding its dependencies) does not stop the
    search; the search stops at the repository root (a folder with .git), like ruff's.
    """
    for folder in (start, *start.parents):
        lpkg_toml = folder / LPKG_TOML
        if lpkg_toml.is_file():
            return lpkg_toml
        pyproject = folder / PYPROJECT
        if pyproject.is_file() and _may_name_lpkg(pyproject) and _has_lpkg_table(read_toml(pyproject)):
            return pyproject
        if (folder / ".git").exists():
            return None
    return None


def _may_name_lpkg(pyproject: Path) -> bool:
    """False when the file cannot hold [tool.lpkg]: however that table is written, the word is in the file.
    Most pyproject.toml files on the way up (the repository's own) are then not parsed at all."""
    try:
        return b"lpkg" in pyproject.read_bytes()
    except OSError:
        return True  # read_toml says what is wrong with it


def _has_lpkg_table(data: Mapping[str, Any]) -> bool:
    tool = data.get("tool")
    return isinstance(tool, dict) and "lpkg" in tool


def checked_env(name: str, value: str) -> tuple[str, str]:
    """One environment variable, as Lambda accepts it: a valid name that Lambda does not reserve."""
    if not _ENV_NAME.match(name):
        raise UsageError(f"{name!r} is not a valid environment variable name",
                         hint="letters, digits and _, not starting with a digit")
    if name in RESERVED_ENV:
        raise UsageError(f"{name} is reserved by Lambda: a function cannot set it")
    return name, value


def parse_env_flag(spec: str) -> tuple[str, str]:
    """--env KEY=VALUE."""
    name, sep, value = spec.partition("=")
    if not sep:
        raise UsageError(f"--env {spec!r}: expected KEY=VALUE")
    return checked_env(name.strip(), value)


def checked_ignore(codes: tuple[str, ...]) -> tuple[str, ...]:
    """Codes of the contract checks only: other findings say the zip would not work, and stay."""
    from lpkg.report import CONTRACT_CODES

    unknown = [c for c in codes if c not in CONTRACT_CODES]
    if unknown:
        raise UsageError(f"cannot ignore {', '.join(unknown)}",
                         hint=f"only the contract checks' codes can be ignored: {', '.join(sorted(CONTRACT_CODES))}")
    return codes


def still_placeholders(flags: Overrides, environment: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """The declared placeholders (flags.env_placeholders) that `environment`, merged from the declaration, the
    config and --env, still holds as declared: neither the config nor --env replaced them."""
    declared, final = dict(flags.env_declared), dict(environment)
    return tuple(key for key in flags.env_placeholders if key in final and final[key] == declared.get(key))


def _merged_env(*layers: tuple[tuple[str, str], ...] | None) -> tuple[tuple[str, str], ...]:
    """Key by key, later layers winning (as SAM merges Globals into a function)."""
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(layer or ())
    return tuple(sorted(merged.items()))


def resolve_against(base: Path, value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def resolve_settings(
    function_dir: Path,
    overrides: Overrides | None = None,
    *,
    cwd: Path | None = None,
    config: ProjectConfig | None = None,
) -> FunctionSettings:
    """Settings for one function folder. `config` defaults to the file found from the folder upwards.

    Paths on the command line are relative to `cwd` (default: the current directory), as is the built-in
    output folder `dist`.
    """
    flags = overrides or Overrides()
    here = (cwd or Path.cwd()).absolute()
    folder = resolved(resolve_against(here, function_dir))
    if not folder.is_dir():
        raise UsageError(f"{function_dir}: not a folder", hint="give the function's folder, e.g. lambda/my-function")
    if config is None:
        config = _config_from(find_config(folder))
    tables = config.functions if config else {}
    own = tables.get(flags.name or folder.name, tables.get(folder.name, NOT_SET))
    dflt = config.defaults if config else NOT_SET
    config_path = config.path if config else None

    def cli_paths(values: tuple[Path, ...]) -> tuple[Path, ...] | None:
        return tuple(resolve_against(here, p) for p in values) or None

    runtime = _first(get_runtime(flags.runtime) if flags.runtime else None, own.runtime, dflt.runtime)
    runtime = runtime or get_runtime(DEFAULT_RUNTIME)
    arch: Arch = _first(parse_arch(flags.arch) if flags.arch else None, own.arch, dflt.arch) or DEFAULT_ARCH
    source_roots = _first(cli_paths(flags.source_roots), own.source_roots, dflt.source_roots) or (folder.parent,)
    for root in source_roots:
        if not root.is_dir():
            origin = "--source-root" if flags.source_roots else f"source-roots in {config_path}"
            raise UsageError(f"{root}: not a folder ({origin})", hint="source roots are folders that hold packages")
    out = _first(resolve_against(here, flags.out) if flags.out else None, dflt.out) or here / DEFAULT_OUT
    environment = _merged_env(flags.env_declared, dflt.env, own.env, tuple(parse_env_flag(e) for e in flags.env))
    return FunctionSettings(
        function_dir=folder,
        name=flags.name or folder.name,
        runtime=runtime,
        arch=arch,
        handler=_first(parse_handler(flags.handler) if flags.handler is not None else None, own.handler),
        out=out.absolute(),
        build_image=_first(flags.build_image, dflt.build_image) or runtime.build_image(arch),
        image=_first(flags.image, dflt.image) or runtime.runtime_image(arch),
        layers=tuple(p.absolute() for p in _first(cli_paths(flags.layers), dflt.layers) or ()),
        source_roots=tuple(dict.fromkeys(p.resolve() for p in source_roots)),
        exclude=_first(flags.exclude or None, own.exclude, dflt.exclude) or (),
        config_file=config_path,
        timeout=_first(flags.timeout, own.timeout, dflt.timeout) or DEFAULT_TIMEOUT_SECONDS,
        event=_first(_cli_event(flags.event, here), own.event, dflt.event),
        environment=environment,
        ignore=frozenset((dflt.ignore or ()) + (own.ignore or ())),
        code_root=flags.code_root,
        include=flags.include,
        unseen_layers=flags.unseen_layers,
        placeholders=still_placeholders(flags, environment),
        requirements_base=_first(resolve_against(here, flags.requirements_base) if flags.requirements_base else None,
                                 own.requirements_base, dflt.requirements_base),
    )


def _cli_event(spec: str | None, here: Path) -> str | None:
    if spec is None or spec == "-" or is_builtin_event(spec):
        return spec
    return str(resolve_against(here, spec))


def is_builtin_event(spec: str) -> bool:
    """A built-in event's name (not a path)."""
    from lpkg.events import is_builtin  # lpkg.events builds every built-in event at import: only with --event

    return is_builtin(spec)


def _config_from(path: Path | None) -> ProjectConfig | None:
    if path is None:
        return None
    from lpkg.config_file import load_config  # the tables' validation: only when there is a file

    return load_config(path)


def _first(*values: T | None) -> T | None:
    """The first value that is set: a flag, then the function's table, then the defaults table."""
    return next((v for v in values if v is not None), None)


def find_function_dirs(cwd: Path, source_roots: tuple[Path, ...] = ()) -> tuple[Path, ...]:
    """What `lpkg build` with no folder builds: the functions the config file names (each a folder of that
    name under the source roots or beside the file), else every folder under the source roots (flags, the
    config's, else the current folder) with a handler file — a top-level handler.py, lambda_function.py, …
    defining handler or lambda_handler. Nothing found is a usage error."""
    here = cwd.absolute()
    config = _config_from(find_config(here))
    base = config.path.parent if config and config.path else here
    configured = config.defaults.source_roots if config else None
    roots = tuple(resolve_against(here, p) for p in source_roots) or configured or (here,)
    if config and config.functions:
        folders = []
        for name in config.functions:
            candidates = [root / name for root in roots] + [base / name]
            folder = next((c for c in candidates if c.is_dir()), None)
            if folder is None:
                raise UsageError(f"{config.path}: function {name!r} has no folder under "
                                 f"{', '.join(str(r) for r in roots)}", hint="name the table after the folder")
            folders.append(folder)
        return tuple(folders)
    folders = [folder for root in roots if root.is_dir() for folder in sorted(root.iterdir())
               if folder.is_dir() and not folder.name.startswith(".") and _has_handler(folder)]
    if not folders:
        raise UsageError(f"no function folders under {', '.join(str(r) for r in roots)}",
                         hint="give the function folders (lpkg build lambda/orders …), --source-root, or "
                         "[functions.<name>] tables in lpkg.toml")
    return tuple(folders)


def _has_handler(folder: Path) -> bool:
    for module in CANDIDATE_MODULES:
        path = folder / f"{module}.py"
        if path.is_file():
            try:
                if defined_handlers(path.read_text(encoding="utf-8", errors="replace")):
                    return True
            except SyntaxError:
                return True  # a broken handler file is still a function: its build says what is wrong
    return False
