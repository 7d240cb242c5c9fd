"""Install dependencies with pip on this machine, asking for the target platform's wheels.

This is the backend inside a CDK bundling step (the SAM build image, where there is no Docker) and
anywhere without a daemon. pip is told the runtime's platform, Python version and ABI, so a macOS or
Windows host still gets Linux wheels; source distributions cannot be built this way (only binary
wheels are accepted), which pip says by naming the package."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tempfile
from pathlib import Path

from lpkg.backends import InstallRequest, manylinux_platforms, pip_failure, requirement_args, stage_requirements


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
