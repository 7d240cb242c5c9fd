"""Install dependencies with pip on this machine, asking for the target platform's wheels.

This is the backend inside a CDK bundling step (the SAM build image, where there is no Docker) and
anywhere without a daemon. pip is told the runtime's platform, Python version and ABI, so a macOS or
Windows host still gets Linux wheels; source distributions cannot be built this way (only binary
wheels are accepted), which pip says by naming the package."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lpkg.backends import (
    InstallRequest,
    compile_command,
    manylinux_platforms,
    pip_failure,
    requirement_args,
    stage_requirements,
)
from lpkg.errors import EnvironmentProblem
from lpkg.runtimes import Runtime


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
        runtime = request.runtime
        platforms: list[str] = []
        for tag in manylinux_platforms(runtime, request.arch):
            platforms += ["--platform", tag]
        with tempfile.TemporaryDirectory(prefix="lpkg-requirements-") as scratch:
            staged, deps_file = stage_requirements(request, Path(scratch))
            args = requirement_args(
                request, {p: str(Path(scratch) / rel) for p, rel in staged.items()},
                str(Path(scratch) / deps_file) if deps_file else None,
            )
            command = [
                sys.executable, "-m", "pip", "install", "--target", str(target), "--no-compile",
                "--disable-pip-version-check", "--only-binary=:all:", "--implementation", "cp",
                "--python-version", runtime.minor, "--abi", f"cp{runtime.version[0]}{runtime.version[1]}",
                "--abi", "abi3", "--abi", "none",
                *platforms, *args,
            ]
            # pip's output goes to our stderr as it comes; stdout stays free for --json.
            proc = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise pip_failure(proc.stderr, "this machine (target platform wheels)", proc.returncode)
        if request.compile_bytecode:
            self.compile_sources(runtime, target, target)

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
