"""Command line: parse, call one function, render, exit. The one place that calls sys.exit."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

import click

from lpkg import __version__
from lpkg.errors import EnvironmentProblem, FindingsFailed, Interrupted, LpkgError, UsageError
from lpkg.files import run_scratch
from lpkg.options import (
    build_and_test_options,
    env_option,
    event_option,
    format_option,
    json_option,
    layer_option,
    no_cache_option,
    project_options,
    timeout_option,
)
from lpkg.runtimes import (
    ARCH_ALIASES,
    DEFAULT_RUNTIME,
    DEFAULT_TIMEOUT_SECONDS,
    RUNTIMES,
    get_runtime,
    parse_arch,
)

if TYPE_CHECKING:
    from lpkg.report import ArtifactReport

# The machinery behind each command (zip reading, Docker, ELF parsing, ...) is imported inside the command:
# start-up time counts, and an up-to-date `lpkg build` is over in about 100 ms.

_json_mode = False

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lpkg")
def cli() -> None:
    """Package AWS Lambda Python functions and prove, before deploy, that they import."""


@cli.command()
@click.argument("zips", nargs=-1, type=click.Path(path_type=Path))
@click.option("--handler", help="MODULE.FUNCTION; when absent, found in handler.py, lambda_function.py, app.py, …")
@click.option("--runtime", type=click.Choice(list(RUNTIMES)),
              help="Lambda runtime; default: the CPython version of the zip's extension modules, "
              f"else {DEFAULT_RUNTIME}.")
@click.option("--arch", type=click.Choice(list(ARCH_ALIASES)), help="Default x86_64 (or what a project file declares).")
@layer_option
@click.option("--out", type=click.Path(path_type=Path),
              help="With a project file: where lpkg build wrote the zips (default dist).")
@click.option("--image", help="Runtime image for the probe; default public.ecr.aws/lambda/python:3.X-ARCH.")
@timeout_option
@click.option("--probe", "probe_mode", type=click.Choice(["auto", "docker", "local", "none"]), default="auto",
              show_default=True,
              help="Where the handler is imported: Docker runtime image; a local python3.X (not sandboxed); "
              "nowhere (host checks only). auto: Docker, else local.")
@event_option
@env_option
@format_option
@project_options
@click.option("--cdk-out", type=click.Path(path_type=Path),
              help="A synthesized CDK app (cdk.out): verify every Python function's asset against its template.")
@json_option
def verify(
    zips: tuple[Path, ...],
    handler: str | None,
    runtime: str | None,
    arch: str | None,
    layers: tuple[Path, ...],
    out: Path | None,
    image: str | None,
    timeout: float | None,
    probe_mode: str,
    event_spec: str | None,
    env: tuple[str, ...],
    output_format: str | None,
    template: Path | None,
    serverless: Path | None,
    terraform: Path | None,
    only: tuple[str, ...],
    cdk_out: Path | None,
    as_json: bool,
) -> None:
    """Check Lambda zips for what would fail at import (and, with --event, at the first call), before deploy."""
    from lpkg.commands.verify_targets import verify_targets
    from lpkg.config import Overrides

    global _json_mode
    as_json = as_json or output_format == "json"
    _json_mode = as_json
    flags = Overrides(runtime=runtime, arch=arch, handler=handler, out=out, image=image, layers=layers,
                      timeout=timeout, event=event_spec, env=env)
    reports = verify_targets(zips, flags, probe_mode, cdk_out=cdk_out, project=(template, serverless, terraform, only),
                             progress=_progress)
    _render_verify(reports, as_json, output_format)


def _render_verify(reports: list[ArtifactReport], as_json: bool, output_format: str | None = None) -> None:
    from lpkg.annotations import emit_report, verify_annotations
    from lpkg.report import render_human, render_json

    emit_report(lambda: render_json(reports) if as_json else render_human(reports, color=sys.stdout.isatty()),
                lambda: verify_annotations(reports), None if as_json else output_format)
    if not all(r.ok for r in reports):
        raise FindingsFailed("verification found errors", hint=None)


@cli.command()
@click.argument("function_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Output folder; default dist/ (or `out` in the config).")
@click.option("--runtime", type=click.Choice(list(RUNTIMES)), help=f"Lambda runtime; default {DEFAULT_RUNTIME}.")
@click.option("--arch", type=click.Choice(list(ARCH_ALIASES)), help="Default x86_64.")
@click.option("--handler", help="MODULE.FUNCTION; default: inferred from the function folder.")
@build_and_test_options
@layer_option
@click.option("--source-root", "source_roots", multiple=True, type=click.Path(path_type=Path),
              help="Folder holding first-party packages (repeatable); default: the function folder's parent.")
@click.option("--requirements-base", type=click.Path(path_type=Path, file_okay=False),
              help="What relative path requirements (../shared, -e ../common) are relative to; default: the "
              "requirements file's folder (pip itself uses the folder it runs in).")
@event_option
@env_option
@format_option
@click.option("--no-cache", is_flag=True,
              help="Rebuild and run pip even if nothing changed (cache: LPKG_CACHE_DIR, else ~/.cache/lpkg; "
              "see lpkg cache info).")
@click.option("--compile", "compile_bytecode", is_flag=True,
              help="Ship .pyc written by the runtime's interpreter (unchecked-hash), so cold starts skip compiling.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=min(4, os.cpu_count() or 1), show_default=True,
              help="Functions built at the same time.")
@project_options
@json_option
def build(
    function_dirs: tuple[Path, ...],
    out: Path | None,
    runtime: str | None,
    arch: str | None,
    handler: str | None,
    build_image: str | None,
    image: str | None,
    layers: tuple[Path, ...],
    source_roots: tuple[Path, ...],
    requirements_base: Path | None,
    no_test: bool,
    backend: str,
    probe_mode: str,
    timeout: float | None,
    event_spec: str | None,
    env: tuple[str, ...],
    output_format: str | None,
    no_cache: bool,
    compile_bytecode: bool,
    jobs: int,
    template: Path | None,
    serverless: Path | None,
    terraform: Path | None,
    only: tuple[str, ...],
    as_json: bool,
) -> None:
    """Build each function folder into OUT/<folder name>.zip, published only when it verifies.

    With a project file (--template, --serverless, --terraform): each Python function it declares, into
    OUT/<function name>.zip, with the declared settings. With no folder: the project file here (template.yaml,
    serverless.yml, *.tf), else the functions lpkg.toml names, else every folder with a handler under the
    source roots."""
    from lpkg.commands.inputs import BuildOptions
    from lpkg.commands.targets import run_builds, spec_from_flags
    from lpkg.config import Overrides
    from lpkg.report import render_build_human, render_build_json

    global _json_mode
    as_json = as_json or output_format == "json"
    _json_mode = as_json

    overrides = Overrides(runtime=runtime, arch=arch, handler=handler, out=out, build_image=build_image,
                          image=image, layers=layers, source_roots=source_roots, timeout=timeout,
                          event=event_spec, env=env,
                          requirements_base=requirements_base)
    options = BuildOptions(test=not no_test, probe_mode=probe_mode, backend=backend, cache=not no_cache,
                           compile=compile_bytecode)
    spec = spec_from_flags(template, serverless, terraform, only)
    if spec is not None and function_dirs:
        raise UsageError("give function folders or a project file, not both")
    reports, errors = run_builds(function_dirs, spec, overrides, options, jobs,
                                 lambda line: click.echo(f"lpkg: {line}", err=True), _progress)
    if errors:
        # The first error ends the run (its message and exit status); what did build is said on stderr above.
        raise errors[0]
    from lpkg.annotations import build_annotations, emit_report

    color = sys.stdout.isatty()
    emit_report(lambda: render_build_json(reports) if as_json else render_build_human(reports, color=color),
                lambda: build_annotations(reports, Path.cwd()), None if as_json else output_format)
    if not all(r.ok for r in reports):
        raise FindingsFailed("build failed")


@cli.command()
@click.argument("name", required=False)
def events(name: str | None) -> None:
    """List the built-in events for --event, or print one (to start an event file from)."""
    from lpkg.events import BUILTIN_EVENTS, builtin_event

    if name is None:
        width = max(len(e.usage) for e in BUILTIN_EVENTS.values())
        for event in BUILTIN_EVENTS.values():
            click.echo(f"{event.usage:<{width}}  {event.summary}")
        click.echo("\nlpkg events NAME prints one; --event NAME calls the handler with it.")
        return
    found = builtin_event(name)
    if found is None:
        raise UsageError(f"no built-in event {name!r}", hint="`lpkg events` lists them")
    click.echo(found.body)


@cli.command()
@click.argument("function_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--runtime", type=click.Choice(list(RUNTIMES)), help=f"Lambda runtime; default {DEFAULT_RUNTIME}.")
@click.option("--arch", type=click.Choice(list(ARCH_ALIASES)), help="Default x86_64.")
@click.option("--build-image", help="Image pip-compile runs in; default: as for lpkg build.")
@click.option("--backend", type=click.Choice(["auto", "docker", "local"]), default="auto", show_default=True,
              help="Where pip-compile runs: the build image (Docker), or here when this Python is the runtime's.")
@click.option("--check", is_flag=True, help="Only check: exit 1 when a lock is missing or stale. No container.")
@click.option("--upgrade", is_flag=True, help="Resolve afresh instead of keeping the existing lock's pins.")
def lock(
    function_dirs: tuple[Path, ...],
    runtime: str | None,
    arch: str | None,
    build_image: str | None,
    backend: str,
    check: bool,
    upgrade: bool,
) -> None:
    """Pin each function's requirements, with hashes, for its runtime: FUNCTION_DIR/requirements.lock."""
    from lpkg.commands.lock import check_function, lock_function
    from lpkg.config import Overrides

    overrides = Overrides(runtime=runtime, arch=arch, build_image=build_image)
    outcomes = []
    for function_dir in function_dirs or (Path("."),):
        if check:
            outcome = check_function(function_dir, overrides)
        else:
            _progress(f"locking {function_dir}")
            outcome = lock_function(function_dir, overrides, backend=backend, upgrade=upgrade)
        outcomes.append(outcome)
        where = outcome.path if outcome.path is not None else function_dir
        click.echo(f"{where}: {outcome.status}" + (f" ({outcome.detail})" if outcome.detail else ""))
    if not all(o.ok for o in outcomes):
        raise FindingsFailed("lock check failed")


@cli.group()
def cache() -> None:
    """lpkg's cache: installed dependencies, compiled code, records of published zips."""


@cache.command("info")
def cache_info() -> None:
    """Where the cache is and how big each part is (and verify's member store)."""
    from lpkg.commands.cache_report import member_store_line
    from lpkg.install.cache import cache_usage

    for line in cache_usage():
        click.echo(line)
    click.echo(member_store_line())


@cache.command("clear")
def cache_clear() -> None:
    """Delete the cache folder's contents and verify's member store (the next build installs and verifies again)."""
    from lpkg.commands.cache_report import clear_member_store
    from lpkg.install.cache import clear_cache

    click.echo(f"removed {clear_cache()}")
    removed = clear_member_store()
    if removed is not None:
        click.echo(removed)


@cache.command("prune")
@click.option("--to", "to_mb", type=click.IntRange(0), metavar="MB",
              help="Keep at most this many MB (default: 3/4 of LPKG_MEMBER_STORE_MB, default 1024).")
def cache_prune(to_mb: int | None) -> None:
    """Shrink verify's member store, dropping what was used least recently."""
    from lpkg.commands.cache_report import prune_member_store

    click.echo(prune_member_store(to_mb))


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("dist"), show_default=True,
              help="Output folder.")
@click.option("--name", help="The zip's name (without .zip); default: the folder's name, or the requirements "
              "file's (its folder's for requirements*.txt).")
@click.option("--runtime", type=click.Choice(list(RUNTIMES)), default=DEFAULT_RUNTIME, show_default=True,
              help="Lambda runtime the layer is for.")
@click.option("--arch", type=click.Choice(list(ARCH_ALIASES)), default="x86_64", show_default=True)
@build_and_test_options
@click.option("--layer", "layers", multiple=True, type=click.Path(path_type=Path),
              help="A layer the new one is used with (repeatable), before it in /opt order.")
@no_cache_option
@json_option
def layer(
    source: Path,
    out: Path,
    name: str | None,
    runtime: str,
    arch: str,
    build_image: str | None,
    image: str | None,
    layers: tuple[Path, ...],
    no_test: bool,
    backend: str,
    probe_mode: str,
    timeout: float | None,
    no_cache: bool,
    as_json: bool,
) -> None:
    """Build a layer zip (code under python/) from a requirements file or a folder, published only when it
    verifies: each top-level module it provides imports in the runtime image."""
    global _json_mode
    _json_mode = as_json
    from lpkg.commands.inputs import BuildOptions
    from lpkg.commands.layer import LayerSettings, build_layer, default_name
    from lpkg.report import render_build_human, render_build_json

    for path in layers:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
    rt = get_runtime(runtime)
    lambda_arch = parse_arch(arch)
    settings = LayerSettings(
        source=source, out=out.absolute(), name=name or default_name(source), runtime=rt, arch=lambda_arch,
        build_image=build_image or rt.build_image(lambda_arch), image=image or rt.runtime_image(lambda_arch),
        layers=tuple(p.absolute() for p in layers), timeout=timeout or DEFAULT_TIMEOUT_SECONDS,
    )
    options = BuildOptions(test=not no_test, probe_mode=probe_mode, backend=backend, cache=not no_cache)
    _progress(f"building layer {settings.name} from {source}")
    report = build_layer(settings, options)
    click.echo(render_build_json([report]) if as_json else render_build_human([report], color=sys.stdout.isatty()))
    if not report.ok:
        raise FindingsFailed("layer build failed")


def _progress(message: str) -> None:
    """Progress for a person at a terminal; scripts and CI logs get only the report."""
    if sys.stderr.isatty():
        click.echo(f"lpkg: {message} …", err=True)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every context manager, so containers are removed


def main(argv: list[str] | None = None) -> NoReturn:
    signal.signal(signal.SIGTERM, _on_sigterm)
    with run_scratch():  # every temporary file of the run in one folder, removed at the end whatever happened
        status = _run(argv)
    sys.exit(status)


def _run(argv: list[str] | None) -> int:
    try:
        cli.main(args=argv, prog_name="lpkg", standalone_mode=False)
        status = 0
    except FindingsFailed as exc:
        status = exc.exit_code
    except LpkgError as exc:
        status = _report_error(exc)
    except click.exceptions.Abort:
        status = _report_error(Interrupted("interrupted; nothing was written"))
    except KeyboardInterrupt:
        status = _report_error(Interrupted("interrupted; nothing was written"))
    except OSError as exc:
        # The machine refused: disk full, no permission, a file vanished. Not lpkg's to fix.
        where = f": {exc.filename}" if exc.filename else ""
        status = _report_error(EnvironmentProblem(f"{exc.strerror or exc}{where}"))
    except click.ClickException as exc:
        exc.show()
        status = exc.exit_code
    except click.exceptions.Exit as exc:
        status = exc.exit_code
    return status


def _report_error(exc: LpkgError) -> int:
    click.echo(f"lpkg: error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"  hint: {exc.hint}", err=True)
    if _json_mode:
        import json

        click.echo(json.dumps({"ok": False, "error": {"message": exc.message, "hint": exc.hint,
                                                      "exit_code": exc.exit_code}}))
    return exc.exit_code
