"""What decides a build's zip: the build's options, and the digest of its inputs that an up-to-date build
compares with the published zip's record (lpkg.commands.uptodate)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from lpkg.commands import uptodate
from lpkg.config import FunctionSettings
from lpkg.install import InstallRequest
from lpkg.plan.discover import BuildPlan


@dataclass(frozen=True)
class BuildOptions:
    test: bool = True  # run the probe (the real import) on the new zip
    probe_mode: str = "auto"
    backend: str = "auto"  # docker | local | auto
    cache: bool = True  # reuse installed dependencies, and a published zip, whose inputs have not changed
    compile: bool = False  # ship .pyc written by the target interpreter



def image_facts(settings: FunctionSettings, request: InstallRequest, options: BuildOptions) -> dict[str, str] | None:
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
        if probe == "local":
            # The local probe imports with python3.X from PATH: which one it is counts too.
            import shutil

            probe = f"local:{shutil.which(f'python{settings.runtime.minor}')}"
        facts["probe"] = probe
    return facts


def build_inputs_digest(settings: FunctionSettings, plan: BuildPlan, request: InstallRequest,
                   options: BuildOptions) -> str | None:
    images = image_facts(settings, request, options)
    if images is None:
        return None
    described = {
        "runtime": settings.runtime.name, "arch": settings.arch, "handler": plan.handler.string,
        "out": str(settings.artifact.absolute()), "build_image": settings.build_image, "image": settings.image,
        "layers": [[str(p.absolute()), *file_stat(p)] for p in settings.layers],
        "unseen_layers": list(settings.unseen_layers), "placeholders": list(settings.placeholders),
        "source_roots": [str(p) for p in settings.source_roots], "exclude": list(settings.exclude),
        "declared": sorted(plan.declared), "timeout": settings.timeout,
        "environment": [list(kv) for kv in settings.environment], "ignore": sorted(settings.ignore),
    }
    return uptodate.inputs_digest(
        settings=described, options={k: v for k, v in dataclasses.asdict(options).items() if k != "cache"},
        files=plan.files, requirement_files=request.requirement_files, dependencies=request.dependencies,
        images=images, requirements_base=request.requirements_base,
    )


def file_stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)

