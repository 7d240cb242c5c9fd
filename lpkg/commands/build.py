"""`lpkg build`: discover -> install -> assemble -> verify -> publish, for one function folder.

Nothing reaches the output folder unless verification passed: the zip is written to a temporary
file beside its destination and moved into place in one step; a failure deletes it and leaves a
previous artifact untouched.

Before anything is installed, the inputs are compared with those recorded for the published zip
(lpkg.commands.uptodate): when nothing that decides the zip changed, the build ends there, with no container.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lpkg.commands import uptodate
from lpkg.config import FunctionSettings, Overrides, resolve_settings
from lpkg.errors import BuildFailed, EnvironmentProblem, LpkgError, UsageError
from lpkg.events import load_event
from lpkg.install import Installer, InstallRequest
from lpkg.install.cache import DEPENDENCY_BYTECODE, DEPENDENCY_ZIPS, DependencyCache, cache_home, cache_key
from lpkg.plan.discover import BuildPlan, discover
from lpkg.report import BuildReport, Finding, Severity, Stopwatch, notice, sort_findings
from lpkg.runtimes import Arch

if TYPE_CHECKING:
    from lpkg.archive.writer import Assembled
    from lpkg.commands.verify import VerifyOptions
    from lpkg.probing.request import NoProbe, Prober
    from lpkg.report import ArtifactReport


@dataclass(frozen=True)
class BuildOptions:
    test: bool = True  # run the probe (the real import) on the new zip
    probe_mode: str = "auto"
    backend: str = "auto"  # docker | local | auto
    cache: bool = True  # reuse installed dependencies, and a published zip, whose inputs have not changed
    compile: bool = False  # ship .pyc written by the target interpreter


def choose_installer(mode: str, build_image: str, arch: Arch = "x86_64") -> Installer:
    """auto: the build image through Docker when a daemon answers and can run the target CPU, else pip for the
    target platform's wheels."""
    from lpkg.install.local import LocalInstaller

    if mode == "local":
        return LocalInstaller()
    from lpkg.containers.engine import docker_session
    from lpkg.install.docker import DockerInstaller
    from lpkg.probing.docker import emulation_problem

    try:
        session = docker_session()
    except EnvironmentProblem as problem:
        if mode == "docker":
            raise
        notice(f"{problem.message}: installing dependencies on this machine, for the runtime's platform "
               "(wheels only; --backend docker for the build image)")
        return LocalInstaller()
    emulation = emulation_problem(session, arch)
    if emulation is not None:
        if mode == "docker":
            raise EnvironmentProblem(f"cannot run the {arch} build image: {emulation}",
                                     hint="--backend local installs the runtime's binary wheels for that CPU")
        notice(f"cannot run the {arch} build image ({emulation}): installing dependencies with pip here, "
               "for the runtime's platform (wheels only)")
        return LocalInstaller()
    return DockerInstaller(session, build_image, arch)


@dataclass(frozen=True)
class Installed:
    """Where a request's dependencies are, and how they got there."""

    site: Path  # the folder pip installed into
    description: str
    kept_in: Path | None = None  # the cache entry holding `site`, where what is made from it may be kept too

    @property
    def zips_folder(self) -> Path | None:
        """Where the zipped dependency part is kept (lpkg.assemble.dependency_zip); None without the cache."""
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
    if cached is not None:
        return Installed(cached, description + f" (cached: {cached.parent.name}; --no-cache to reinstall)",
                         cached.parent)
    with cache.scratch() as scratch, watch.lap("install"):
        installer.install(request, scratch / "site")
        site = cache.store(key, scratch / "site")
    return Installed(site, description, site.parent)


def left_out_findings(assembled: Assembled) -> list[Finding]:
    return [
        Finding("BUILD_RUNTIME_SDK", Severity.INFO,
                f"{left_out} left out: the runtime's copy will be used (pin it in requirements to ship it)")
        for left_out in assembled.left_out
    ]


def verify_then_publish(
    assembled: Assembled, candidate: Path, options: VerifyOptions, prober: Prober | NoProbe | None, watch: Stopwatch,
    artifact: Path,
) -> tuple[ArtifactReport, Path | None]:
    """Verify `candidate` (the assembled zip, or a function standing in for it) and publish the assembled zip
    to `artifact` only if that passed; None when nothing was published."""
    from lpkg.archive.writer import publish
    from lpkg.commands.verify import verify_zip

    with watch.lap("verify"):
        verify_report = verify_zip(candidate, options, prober)
    if not verify_report.ok:
        return verify_report, None
    with watch.lap("publish"):
        return verify_report, publish(assembled.path, artifact)


def published_facts(final: Path, assembled: Assembled) -> dict[str, str]:
    from lpkg.checks.sizes import mb

    return {"zipped": mb(final.stat().st_size), "unzipped": mb(assembled.unzipped_bytes),
            "files": str(assembled.files), "sha256": assembled.sha256}


def install_request(settings: FunctionSettings, plan: BuildPlan, compile_bytecode: bool) -> InstallRequest:
    """What pip installs: the function's lock when it has one (which must be current), else its requirements."""
    from lpkg.install import lock

    path = lock.lock_path(settings.function_dir)
    if not path.is_file():
        return InstallRequest(plan.requirement_files, plan.dependencies, settings.runtime, settings.arch,
                              compile_bytecode=compile_bytecode)
    locked = lock.read_lock(path)
    inputs = lock.LockInputs(plan.requirement_files, plan.dependencies, settings.runtime, settings.arch)
    why = lock.staleness(locked, inputs)
    if why is not None:
        raise BuildFailed(f"{path}: {why}",
                          hint=f"run lpkg lock {settings.function_dir} (or delete the lock to build unpinned)")
    return InstallRequest((path,), (), settings.runtime, settings.arch, require_hashes=locked.hashed,
                          compile_bytecode=compile_bytecode)


def _image_facts(settings: FunctionSettings, request: InstallRequest, options: BuildOptions) -> dict[str, str] | None:
    """Which installer and probe the build would use, by identity (image IDs from the daemon); None when
    that cannot be told without starting the Docker machinery (then there is no shortcut)."""
    from lpkg.containers import image_ids

    facts: dict[str, str] = {}

    def docker_or_local(image: str, mode: str) -> str | None:
        if mode != "local":
            found = image_ids.image_id(image)
            if found is not None:
                return f"docker:{found}"
            if mode == "docker" or image_ids.daemon_present():
                return None  # the image is missing (would be pulled) or the daemon is not local: full build
        return "local"

    if not request.empty or options.compile:
        installer = docker_or_local(settings.build_image, options.backend)
        if installer is None:
            return None
        if installer == "local":
            from lpkg.install.local import LocalInstaller

            installer = LocalInstaller().identity()
        facts["installer"] = installer
    if options.test:
        probe = docker_or_local(settings.image, options.probe_mode)
        if probe is None:
            return None
        # The local probe imports with python3.X from PATH: which one it is counts too.
        facts["probe"] = probe if probe != "local" else f"local:{shutil.which(f'python{settings.runtime.minor}')}"
    return facts


def _inputs_digest(settings: FunctionSettings, plan: BuildPlan, request: InstallRequest,
                   options: BuildOptions) -> str | None:
    images = _image_facts(settings, request, options)
    if images is None:
        return None
    described = {
        "runtime": settings.runtime.name, "arch": settings.arch, "handler": plan.handler.string,
        "out": str(settings.artifact.absolute()), "build_image": settings.build_image, "image": settings.image,
        "layers": [[str(p.absolute()), *_stat(p)] for p in settings.layers],
        "source_roots": [str(p) for p in settings.source_roots], "exclude": list(settings.exclude),
        "declared": sorted(plan.declared), "timeout": settings.timeout,
    }
    return uptodate.inputs_digest(
        settings=described, options={k: v for k, v in dataclasses.asdict(options).items() if k != "cache"},
        files=plan.files, requirement_files=request.requirement_files, dependencies=request.dependencies,
        images=images,
    )


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def compiled_sources(installer: Installer, settings: FunctionSettings, plan: BuildPlan, scratch: Path,
                     cache: DependencyCache | None) -> Path:
    """A folder with the plan's .py files at their zip paths and their .pyc, written by the target
    interpreter; kept in the cache by content, so unchanged code is not compiled again."""
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
    event = load_event(settings.event) if settings.event else None
    if event is not None and not options.test:
        raise UsageError("--event calls the handler in the import test, which --no-test skips",
                         hint="drop one of --event and --no-test")
    with watch.lap("discover"):
        plan, discovered = discover(settings)
    findings: list[Finding] = list(discovered)

    def report(artifact: Path | None, **facts: str) -> BuildReport:
        watch.laps.append(("total", time.perf_counter() - started))
        return BuildReport(
            function=settings.name,
            function_dir=str(settings.function_dir),
            artifact=str(artifact) if artifact else None,
            intended=str(settings.artifact),
            handler=plan.handler.string,
            runtime=settings.runtime.name,
            arch=settings.arch,
            findings=sort_findings(findings),
            verify=verify_report,
            timings=tuple(watch.laps),
            facts=tuple(facts.items()),
        )

    verify_report = None
    if any(f.severity is Severity.ERROR for f in findings):
        return report(None)  # first-party code is broken: no container is started

    request = install_request(settings, plan, options.compile)
    with watch.lap("up-to-date check"):
        # A smoke invoke (--event) runs on every build: its result is not recorded.
        inputs = _inputs_digest(settings, plan, request, options) if event is None else None
        record = uptodate.lookup(settings.artifact, inputs) if inputs and options.cache else None
    if record is not None:
        watch.laps.append(("total", time.perf_counter() - started))
        return uptodate.recorded_report(
            record, function=settings.name, function_dir=str(settings.function_dir),
            handler=plan.handler.string, runtime=settings.runtime.name, arch=settings.arch,
            timings=tuple(watch.laps),
        )

    # Only a build that does the work needs zip writing, the checks and the probe machinery.
    from lpkg.archive.writer import assemble, dependency_zip, discard_unless_published
    from lpkg.commands.verify import DependencyPart, VerifyOptions
    from lpkg.probing.choose import choose_prober

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
                layers=settings.layers, timeout=settings.timeout, event=event, function_name=settings.name,
                dependencies=dependencies,
            )
            verify_report, final = verify_then_publish(assembled, assembled.path, verify_options, prober, watch,
                                                       settings.artifact)
            if final is None:
                return report(None, installed_with=installed.description)
    installer_description = installed.description
    if request.require_hashes:
        installer_description += f" (from {request.requirement_files[0].name}, --require-hashes)"
    built = report(final, **published_facts(final, assembled), installed_with=installer_description)
    if inputs is not None:
        uptodate.store(final, inputs, built)
    else:
        uptodate.forget(final)
    return built


def build_functions(
    function_dirs: Sequence[Path], overrides: Overrides, options: BuildOptions, jobs: int,
    on_done: Callable[[int, Path, BuildReport | None, float], None] | None = None,
) -> tuple[list[BuildReport], list[LpkgError]]:
    """Build several functions, `jobs` at a time, reports in the order given. `on_done(index, folder, report,
    seconds)` is called as each finishes (report None when it ended in an error). A function that ends in an
    error (pip failed, no daemon for --backend docker) does not stop the others: it is returned beside
    their reports (a single function's error is raised)."""
    reports: list[BuildReport | None] = [None] * len(function_dirs)
    errors: list[LpkgError] = []

    def one(index: int, folder: Path) -> None:
        started = time.perf_counter()
        try:
            reports[index] = build_function(folder, overrides, options)
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
