"""`lpkg build`: discover -> install -> assemble -> verify -> publish, for one function folder.

Nothing reaches the output folder unless verification passed: the zip is written to a temporary
file beside its destination and moved into place in one step; a failure deletes it and leaves a
previous artifact untouched.

Before anything is installed, the inputs are compared with those recorded for the published zip
(lpkg.commands.uptodate): when nothing that decides the zip changed, the build ends there, with no container.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lpkg.commands import uptodate
from lpkg.commands.inputs import BuildOptions, build_inputs_digest
from lpkg.commands.publishing import left_out_findings, published_facts, verify_then_publish
from lpkg.config import FunctionSettings, Overrides, resolve_settings
from lpkg.errors import BuildFailed, LpkgError, UsageError
from lpkg.install import Installer, InstallRequest
from lpkg.install.cache import (
    DependencyCache,
    Installed,
    cache_home,
    install_dependencies,
    remove_stale_scratch,
)
from lpkg.install.choose import choose_installer
from lpkg.install.lock_files import LOCK_FILE, find_lock
from lpkg.install.path_requirements import path_requirement_findings
from lpkg.plan.discover import BuildPlan, discover
from lpkg.report import BuildReport, Finding, Severity, Stopwatch, sort_findings

if TYPE_CHECKING:
    from lpkg.events import Event
    from lpkg.report import ArtifactReport


def install_request(settings: FunctionSettings, plan: BuildPlan, compile_bytecode: bool) -> InstallRequest:
    """What pip installs: the function's lock when it has one (which must be current), else its requirements."""
    path = settings.function_dir / LOCK_FILE
    if not path.is_file() and not plan.requirement_files and not plan.dependencies \
            and find_lock(settings.function_dir) is not None:
        from lpkg.install.cache import cache_home
        from lpkg.install.project_locks import Target, pinned_requirements

        # No requirements of its own: the project's uv.lock / poetry.lock (above the folder) is the pinned set.
        pinned = pinned_requirements(settings.function_dir, Target(settings.runtime, settings.arch),
                                     cache_home() / "project-locks")
        if pinned is not None:
            # pip cannot check a hash of a folder: with local packages the pins hold, their hashes are not checked.
            return InstallRequest((pinned[0],), (), settings.runtime, settings.arch,
                                  require_hashes=not pinned[1].local, compile_bytecode=compile_bytecode,
                                  origin=f"{pinned[1].path}: {len(pinned[1].distributions)} pinned, "
                                  f"{len(pinned[1].local)} local, runtime dependencies only"
                                  + (", hashes not checked beside a local package" if pinned[1].local else ""))
    if not path.is_file():
        return InstallRequest(plan.requirement_files, plan.dependencies, settings.runtime, settings.arch,
                              compile_bytecode=compile_bytecode, requirements_base=settings.requirements_base)
    from lpkg.install import lock  # the lock's reader: only for a function that has a lock

    locked = lock.read_lock(path)
    inputs = lock.LockInputs(plan.requirement_files, plan.dependencies, settings.runtime, settings.arch)
    why = lock.staleness(locked, inputs)
    if why is not None:
        raise BuildFailed(f"{path}: {why}",
                          hint=f"run lpkg lock {settings.function_dir} (or delete the lock to build unpinned)")
    return InstallRequest((path,), (), settings.runtime, settings.arch, require_hashes=locked.hashed,
                          compile_bytecode=compile_bytecode)




def compiled_sources(installer: Installer, settings: FunctionSettings, plan: BuildPlan, scratch: Path,
                     cache: DependencyCache | None) -> Path:
    """A folder with the plan's .py files at their zip paths and their .pyc, written by the target
    interpreter; kept in the cache by content, so unchanged code is not compiled again."""
    import shutil

    sources = [(member, path) for member, path in plan.files if member.endswith(".py")]
    key = ""
    if cache is not None:
        key = uptodate.inputs_digest(
            settings={"runtime": settings.runtime.name, "arch": settings.arch}, options={},
            files=sources, requirement_files=(), dependencies=(), images={"installer": installer.identity()},
        )[:32]
        cached = cache.lookup(key)
        if cached is not None:
            return cached
    staged = scratch / "sources"
    for member, path in sources:
        (staged / member).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, staged / member)
    staged.mkdir(exist_ok=True)
    target = scratch / "compiled"
    installer.compile_sources(settings.runtime, staged, target)
    return cache.store(key, target) if cache is not None else target


def build_function(function_dir: Path, overrides: Overrides, options: BuildOptions) -> BuildReport:
    watch = Stopwatch()
    started = time.perf_counter()
    settings = resolve_settings(function_dir, overrides)
    # A bad event file is the user's to fix before any container starts.
    event = None
    if settings.event:
        from lpkg.events import load_event  # builds every built-in event at import: only with an event

        event = load_event(settings.event)
    if event is not None and not options.test:
        raise UsageError("--event calls the handler in the import test, which --no-test skips",
                         hint="drop one of --event and --no-test")
    with watch.lap("discover"):
        plan, discovered = discover(settings)
    findings: list[Finding] = list(discovered)
    findings += path_requirement_findings(plan.requirement_files, settings.requirements_base)
    sources = tuple((member, str(path)) for member, path in plan.files)

    def report(artifact: Path | None, verify_report: ArtifactReport | None = None, **facts: str) -> BuildReport:
        watch.laps.append(("total", time.perf_counter() - started))
        return BuildReport(
            function=settings.name, function_dir=str(settings.function_dir),
            artifact=str(artifact) if artifact else None, intended=str(settings.artifact),
            handler=plan.handler.string, runtime=settings.runtime.name, arch=settings.arch,
            findings=sort_findings(findings), verify=verify_report, timings=tuple(watch.laps),
            facts=tuple(facts.items()), sources=sources,
        )

    if any(f.severity is Severity.ERROR for f in findings):
        return report(None)  # first-party code is broken: no container is started

    request = install_request(settings, plan, options.compile)
    with watch.lap("up-to-date check"):
        # A smoke invoke (--event) runs on every build: its result is not recorded.
        inputs = build_inputs_digest(settings, plan, request, options) if event is None else None
        record = uptodate.lookup(settings.artifact, inputs) if inputs and options.cache else None
    if record is not None:
        watch.laps.append(("total", time.perf_counter() - started))
        return uptodate.recorded_report(
            record, function=settings.name, function_dir=str(settings.function_dir),
            handler=plan.handler.string, runtime=settings.runtime.name, arch=settings.arch,
            timings=tuple(watch.laps), sources=sources,
        )
    final, verify_report, facts = _build_zip(settings, plan, request, options, event, watch, findings)
    built = report(final, verify_report, **facts)
    if final is None:
        return built
    if inputs is not None:
        uptodate.store(final, inputs, built)
    else:
        uptodate.forget(final)
    return built


def _build_zip(settings: FunctionSettings, plan: BuildPlan, request: InstallRequest, options: BuildOptions,
               event: Event | None, watch: Stopwatch, findings: list[Finding],
               ) -> tuple[Path | None, ArtifactReport | None, dict[str, str]]:
    """Install, assemble, verify and publish: the published zip (None when verification failed), the
    verification's report and the facts to report. Findings of the way are added to `findings`."""
    # Only a build that does the work needs zip writing, the checks and the probe machinery.
    import tempfile

    from lpkg.archive.writer import assemble, dependency_zip, discard_unless_published
    from lpkg.commands.verify import DependencyPart, VerifyOptions
    from lpkg.probing.choose import choose_prober

    remove_stale_scratch()
    with tempfile.TemporaryDirectory(prefix="lpkg-deps-") as scratch:
        installed = Installed(Path(scratch) / "site", "none (no requirements)")
        installer = None
        if not request.empty or options.compile:
            installer = choose_installer(options.backend, settings.build_image, settings.arch)
        if installer is not None and not request.empty:
            installed = install_dependencies(installer, request, options.cache, watch, installed.site)
        compiled_dirs: list[Path] = []
        if installer is not None and options.compile:
            with watch.lap("compile"):
                pyc_cache = DependencyCache(cache_home() / "pyc") if options.cache else None
                compiled_dirs.append(compiled_sources(installer, settings, plan, Path(scratch), pyc_cache))
        with watch.lap("assemble"):
            part = dependency_zip([installed.site], Path(scratch) / "zip", pinned=plan.declared,
                                  keep_bytecode=options.compile, keep_in=installed.zips_folder)
            assembled = assemble(settings.out, settings.name, plan.files, part, first_party_dirs=compiled_dirs)
        with discard_unless_published(assembled):
            findings += left_out_findings(assembled)
            prober = (choose_prober(options.probe_mode, settings.runtime, settings.image, settings.arch)
                      if options.test else None)
            dependencies = None
            if installed.bytecode_folder is not None and assembled.dependency_members:
                dependencies = DependencyPart(installed.bytecode_folder, assembled.dependency_members)
            verify_options = VerifyOptions(
                runtime=settings.runtime, arch=settings.arch, handler=plan.handler.string,
                layers=settings.layers, unseen_layers=settings.unseen_layers, placeholders=settings.placeholders,
                timeout=settings.timeout, event=event,
                function_name=settings.name,
                dependencies=dependencies, environment=settings.environment, ignored_codes=settings.ignore,
                contract_cache=cache_home() if options.cache else None,
            )
            verify_report, final = verify_then_publish(assembled, assembled.path, verify_options, prober, watch,
                                                       settings.artifact)
            if final is None:
                return None, verify_report, {"installed_with": installed.description}
    installer_description = installed.description
    if request.origin is not None:
        installer_description += f" (from {request.origin}" + (", --require-hashes)" if request.require_hashes else ")")
    elif request.require_hashes:
        installer_description += f" (from {request.requirement_files[0].name}, --require-hashes)"
    return final, verify_report, {**published_facts(final, assembled), "installed_with": installer_description}


def build_functions(
    function_dirs: Sequence[Path], overrides: Overrides | Sequence[Overrides], options: BuildOptions, jobs: int,
    on_done: Callable[[int, Path, BuildReport | None, float], None] | None = None,
) -> tuple[list[BuildReport], list[LpkgError]]:
    """Build several functions, `jobs` at a time, reports in the order given. `on_done(index, folder, report,
    seconds)` is called as each finishes (report None when it ended in an error). A function that ends in an
    error (pip failed, no daemon for --backend docker) does not stop the others: it is returned beside
    their reports (a single function's error is raised). `overrides`: one for all, or one per function."""
    reports: list[BuildReport | None] = [None] * len(function_dirs)
    each = [overrides] * len(function_dirs) if isinstance(overrides, Overrides) else list(overrides)
    errors: list[LpkgError] = []

    def one(index: int, folder: Path) -> None:
        started = time.perf_counter()
        try:
            reports[index] = build_function(folder, each[index], options)
        except LpkgError as exc:
            errors.append(exc)
            if len(function_dirs) <= 1:
                raise
        finally:
            if on_done is not None:
                on_done(index, folder, reports[index], time.perf_counter() - started)

    if jobs <= 1 or len(function_dirs) <= 1:
        # In this thread: Ctrl-C and SIGTERM unwind through each container's context manager as they arrive.
        for index, folder in enumerate(function_dirs):
            one(index, folder)
        return [r for r in reports if r is not None], errors
    from concurrent.futures import ThreadPoolExecutor  # imports logging: not for one function

    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = [pool.submit(one, index, folder) for index, folder in enumerate(function_dirs)]
    try:
        for future in futures:
            future.exception()  # wait for all, whatever happened to one
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        _remove_own_containers()  # the builds still running fail at once; nothing of theirs is published
        raise
    pool.shutdown()
    for future in futures:
        exc = future.exception()
        if exc is not None and not isinstance(exc, LpkgError):
            raise exc
    return [r for r in reports if r is not None], errors


def _remove_own_containers() -> None:
    from lpkg.containers.engine import docker_session

    if docker_session.cache_info().currsize:  # only if this run reached a daemon
        docker_session().remove_own()
