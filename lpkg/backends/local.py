"""Install dependencies with pip on this machine, asking for the target platform's wheels.

This is the backend inside a CDK bundling step (the SAM build image, where there is no Docker) and
anywhere without a daemon. pip is told the runtime's platform tags (from the runtime table), Python
version and ABI, so a macOS or Windows host still gets Linux wheels. Source distributions cannot be
built this way (only binary wheels are accepted): a requirement without such a wheel is an error that
names it and points to the build image.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lpkg.backends import (
    InstallRequest,
    compile_command,
    pip_failure,
    requirement_args,
    stage_requirements,
)
from lpkg.errors import BuildFailed, EnvironmentProblem, LpkgError
from lpkg.runtimes import Arch, Runtime

# pip's words for "nothing on the index fits these tags": with --only-binary that means no wheel.
_NO_MATCH = re.compile(r"No matching distribution found for (?P<requirement>\S+)")


def platform_args(runtime: Runtime, arch: Arch) -> list[str]:
    """pip's arguments that describe the Lambda runtime instead of this machine."""
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", runtime.minor,
            "--abi", f"cp{runtime.version[0]}{runtime.version[1]}", "--abi", "abi3", "--abi", "none"]
    for tag in runtime.wheel_platforms(arch):
        args += ["--platform", tag]
    return args


def local_pip_failure(output: str, runtime: Runtime, arch: Arch, exit_code: int) -> LpkgError:
    """A requirement with no wheel for the target is named; anything else is pip's own message."""
    match = _NO_MATCH.search(output)
    if match is None:
        return pip_failure(output, "this machine (target platform wheels)", exit_code)
    requirement = match["requirement"]
    platforms = runtime.wheel_platforms(arch)
    return BuildFailed(
        f"{requirement} has no wheel for {runtime.name} on {arch} ({platforms[-1]} … {platforms[0]}), "
        "and without Docker lpkg installs wheels only",
        hint=f"build with --backend docker, where pip can build {requirement} from source in the build image; "
        "or pick a release of it that ships such a wheel",
    )


class LocalInstaller:
    def __init__(self) -> None:
        self.description = f"pip of {sys.executable}, for the target platform's wheels (no Docker)"

    def identity(self) -> str:
        try:
            pip_version = importlib.metadata.version("pip")
        except importlib.metadata.PackageNotFoundError:
            pip_version = "none"
        return f"local-platform-wheels:pip {pip_version}"

    def install(self, request: InstallRequest, target: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="lpkg-requirements-") as scratch:
            staged, deps_file = stage_requirements(request, Path(scratch))
            args = requirement_args(
                request, {p: str(Path(scratch) / rel) for p, rel in staged.items()},
                str(Path(scratch) / deps_file) if deps_file else None,
            )
            command = [
                sys.executable, "-m", "pip", "install", "--target", str(target), "--no-compile",
                "--disable-pip-version-check", "--progress-bar", "off",
                *platform_args(request.runtime, request.arch), *args,
            ]
            # pip's output goes to our stderr as it comes; stdout stays free for --json.
            proc = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise local_pip_failure(proc.stderr, request.runtime, request.arch, proc.returncode)
        if request.compile_bytecode:
            self.compile_sources(request.runtime, target, target)

    def compile_sources(self, runtime: Runtime, sources: Path, target: Path) -> None:
        """compileall with a local interpreter of the runtime's minor version (the .pyc format is the same
        for every patch release of a minor version)."""
        local = _local_interpreter(runtime)
        if sources != target:
            shutil.copytree(sources, target, dirs_exist_ok=True)
        # Exit status ignored: a file that does not compile (a template, another Python's code) gets no .pyc.
        subprocess.run(compile_command(local, str(target)), stdout=sys.stderr, check=False)


def _local_interpreter(runtime: Runtime) -> str:
    if sys.version_info[:2] == runtime.version:
        return sys.executable
    found = shutil.which(f"python{runtime.minor}")
    if found is None:
        raise EnvironmentProblem(
            f"--compile without Docker needs a local python{runtime.minor} to write {runtime.name}'s bytecode",
            hint="install it, start Docker, or build without --compile",
        )
    return found
