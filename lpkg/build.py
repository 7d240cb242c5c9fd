"""`lpkg build`: discover -> install -> assemble -> verify -> publish, for one function folder.

Nothing reaches the output folder unless verification passed: the zip is written to a temporary
file beside its destination and moved into place in one step; a failure deletes it and leaves a
previous artifact untouched.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lpkg.assemble import assemble, discard_unless_published, publish
from lpkg.backends import Installer, InstallRequest
from lpkg.backends.cache import DependencyCache, cache_key
from lpkg.checks.sizes import mb
from lpkg.config import Overrides, resolve_settings
from lpkg.discover import discover
from lpkg.errors import EnvironmentProblem, UsageError
from lpkg.events import load_event
from lpkg.probing import choose_prober
from lpkg.report import BuildReport, Finding, Severity, sort_findings
from lpkg.verify import Stopwatch, VerifyOptions, verify_zip


@dataclass(frozen=True)
class BuildOptions:
    test: bool = True  # run the probe (the real import) on the new zip
    probe_mode: str = "auto"
    backend: str = "auto"  # docker | local | auto
    cache: bool = True  # reuse installed dependencies whose inputs have not changed


def choose_installer(mode: str, build_image: str) -> Installer:
    """auto: the build image through Docker when a daemon answers, else pip for the target platform."""
    from lpkg.backends.local import LocalInstaller

    if mode == "local":
        return LocalInstaller()
    from lpkg.backends.docker import DockerInstaller
    from lpkg.container import docker_session

    try:
        session = docker_session()
    except EnvironmentProblem:
        if mode == "docker":
            raise
        return LocalInstaller()
    return DockerInstaller(session, build_image)


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

    request = InstallRequest(plan.requirement_files, plan.dependencies, settings.runtime, settings.arch)
    with tempfile.TemporaryDirectory(prefix="lpkg-deps-") as scratch:
        installer_description = "none (no requirements)"
        deps = Path(scratch) / "site"
        if not request.empty:
            installer = choose_installer(options.backend, settings.build_image)
            installer_description = installer.description
            cache = DependencyCache() if options.cache else None
            key = cache_key(request, installer.identity()) if cache else ""
            cached = cache.lookup(key) if cache else None
            if cached is not None:
                deps = cached
                installer_description += f" (cached: {cached.parent.name}; --no-cache to reinstall)"
            else:
                with watch.lap("install"):
                    installer.install(request, deps)
                if cache is not None:
                    deps = cache.store(key, deps)
        with watch.lap("assemble"):
            assembled = assemble(settings.out, settings.name, plan.files, [deps] if deps.is_dir() else [],
                                 pinned=plan.declared)
        with discard_unless_published(assembled):
            for left_out in assembled.left_out:
                findings.append(Finding(
                    "BUILD_RUNTIME_SDK", Severity.INFO,
                    f"{left_out} left out: the runtime's copy will be used (pin it in requirements to ship it)",
                ))
            prober = choose_prober(options.probe_mode, settings.runtime, settings.image) if options.test else None
            verify_options = VerifyOptions(
                runtime=settings.runtime, arch=settings.arch, handler=plan.handler.string,
                layers=settings.layers, timeout=settings.timeout, event=event, function_name=settings.name,
            )
            with watch.lap("verify"):
                verify_report = verify_zip(assembled.path, verify_options, prober)
            if not verify_report.ok:
                return report(None, installed_with=installer_description)
            with watch.lap("publish"):
                final = publish(assembled.path, settings.artifact)
    return report(
        final,
        zipped=mb(final.stat().st_size),
        unzipped=mb(assembled.unzipped_bytes),
        files=str(assembled.files),
        sha256=assembled.sha256,
        installed_with=installer_description,
    )
