"""Install dependencies on this machine, asking for the target platform's wheels: uv where it can say
the runtime's platform, pip otherwise.

This is the backend inside a CDK bundling step (the SAM build image, where there is no Docker) and
anywhere without a daemon. The installer is told the runtime's platform (the manylinux tags of the runtime
table), Python version and ABI, so a macOS or Windows host still gets Linux wheels. Source distributions
cannot be built this way (only binary wheels are accepted): a requirement without such a wheel is an error
that names it and points to the build image.

uv first: it was measured 6-22x faster than pip for this step and installed the same files
(benchmarks/local_install.py). But uv's --python-platform knows manylinux 2.17, 2.28 and 2.31 upwards, not
2.26 (python3.9-3.11): there it asks for manylinux_2_17, a subset of what loads, and when that finds no wheel
pip is asked with every tag up to manylinux_2_26 before lpkg gives up. Any other failure of uv is also
retried with pip, whose answer is final.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lpkg.errors import BuildFailed, EnvironmentProblem, LpkgError
from lpkg.install import (
    InstallRequest,
    ca_bundle,
    compile_command,
    index_unreachable,
    pip_failure,
    requirement_args,
    stage_requirements,
)
from lpkg.install.path_requirements import portable_direct_urls
from lpkg.report import notice
from lpkg.runtimes import ARCHITECTURES, Arch, Runtime

# The glibc minors uv's --python-platform has manylinux names for (uv 0.13).
UV_MANYLINUX_GLIBC = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)
# pip's and uv's words for "nothing on the index fits these tags": with binary wheels only, no wheel.
_NO_WHEEL = re.compile(
    r"No matching distribution found for (?P<pip>\S+)"
    r"|Because (?P<uv>\S+) has no (?:usable wheels|wheels with a matching)"
)
# The host's pip settings, as uv spells them.
_UV_SETTINGS = {"PIP_INDEX_URL": "UV_DEFAULT_INDEX", "PIP_EXTRA_INDEX_URL": "UV_INDEX",
                "PIP_TRUSTED_HOST": "UV_INSECURE_HOST"}


def platform_args(runtime: Runtime, arch: Arch) -> list[str]:
    """pip's arguments that describe the Lambda runtime instead of this machine."""
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", runtime.minor,
            "--abi", runtime.wheel_abi, "--abi", "abi3", "--abi", "none"]
    for tag in runtime.wheel_platforms(arch):
        args += ["--platform", tag]
    return args


def uv_platform(runtime: Runtime, arch: Arch) -> tuple[str, bool]:
    """uv's --python-platform for the runtime: the newest manylinux it names that loads there, and whether
    that is exactly the runtime's glibc (else uv sees fewer wheels than would load)."""
    newest = max(minor for minor in UV_MANYLINUX_GLIBC if minor <= runtime.glibc[1])
    return f"{ARCHITECTURES[arch].machine}-manylinux_2_{newest}", newest == runtime.glibc[1]


def uv_args(runtime: Runtime, arch: Arch) -> list[str]:
    return ["--python-platform", uv_platform(runtime, arch)[0], "--python-version", runtime.minor,
            "--only-binary", ":all:"]


def find_uv() -> str | None:
    """The uv binary: the `uv` package's (a dependency of lpkg), else one on PATH."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def uv_environment() -> dict[str, str]:
    environment = dict(os.environ)
    for pip_key, uv_key in _UV_SETTINGS.items():
        if environ_value := os.environ.get(pip_key):
            environment.setdefault(uv_key, environ_value)
    ca = ca_bundle()
    if ca is not None:
        environment.setdefault("SSL_CERT_FILE", str(ca))  # a proxy that re-signs TLS
    return environment


def missing_wheel(output: str) -> str | None:
    match = _NO_WHEEL.search(output)
    return (match["pip"] or match["uv"]) if match else None


def local_failure(output: str, runtime: Runtime, arch: Arch, exit_code: int) -> LpkgError:
    """A requirement with no wheel for the target is named; anything else is the installer's own message."""
    requirement = missing_wheel(output)
    if requirement is None or index_unreachable(output):  # an unreachable index finds no wheel either
        return pip_failure(output, "this machine (target platform wheels)", exit_code)
    platforms = runtime.wheel_platforms(arch)
    return BuildFailed(
        f"{requirement} has no wheel for {runtime.name} on {arch} ({platforms[-1]} … {platforms[0]}), "
        "and without Docker lpkg installs wheels only",
        hint=f"build with --backend docker, where pip can build {requirement} from source in the build image; "
        "or pick a release of it that ships such a wheel",
    )


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "none"


class LocalInstaller:
    def __init__(self, use_uv: bool = True) -> None:
        self.uv = find_uv() if use_uv else None
        tool = f"uv ({self.uv})" if self.uv else f"pip of {sys.executable}"
        self.description = f"{tool}, for the target platform's wheels (no Docker)"

    def identity(self) -> str:
        tools = f"uv {_version('uv')}, pip {_version('pip')}" if self.uv else f"pip {_version('pip')}"
        return f"local-platform-wheels:{tools}"

    def install(self, request: InstallRequest, target: Path) -> None:
        runtime, arch = request.runtime, request.arch
        with tempfile.TemporaryDirectory(prefix="lpkg-requirements-") as scratch:
            local_projects = Path(scratch) / "local"
            staged, deps_file = stage_requirements(request, Path(scratch), str(local_projects))
            args = requirement_args(
                request, {p: str(Path(scratch) / rel) for p, rel in staged.items()},
                str(Path(scratch) / deps_file) if deps_file else None,
            )
            # uv's --only-binary refuses to build a path requirement's project; pip builds a local folder
            # and still takes only wheels for everything else.
            if self.uv is not None and not local_projects.is_dir():
                platform, exact = uv_platform(runtime, arch)
                proc = self._run([self.uv, "pip", "install", "--target", str(target), *uv_args(runtime, arch), *args],
                                 uv_environment())
                if proc.returncode == 0:
                    (target / ".lock").unlink(missing_ok=True)  # uv's lock of the target folder, not a package
                    self._compile_if_asked(request, target)
                    return
                if exact and missing_wheel(proc.stderr) is not None:
                    raise local_failure(proc.stderr, runtime, arch, proc.returncode)
                # Either uv saw fewer wheels than load on this runtime, or uv itself could not work here (its
                # cache folder, index settings): pip has the last word.
                why = (f"uv found no wheel within {platform}" if missing_wheel(proc.stderr)
                       else f"uv failed (exit {proc.returncode})")
                notice(f"{why}; asking pip, with every tag up to {runtime.wheel_platforms(arch)[0]}")
                shutil.rmtree(target, ignore_errors=True)
            proc = self._run([sys.executable, "-m", "pip", "install", "--target", str(target), "--no-compile",
                              "--disable-pip-version-check", "--progress-bar", "off",
                              *platform_args(runtime, arch), *args], None)
        if proc.returncode != 0:
            raise local_failure(proc.stderr, runtime, arch, proc.returncode)
        portable_direct_urls(target, local_projects)
        self._compile_if_asked(request, target)

    def _compile_if_asked(self, request: InstallRequest, target: Path) -> None:
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

    @staticmethod
    def _run(command: list[str], environment: dict[str, str] | None) -> subprocess.CompletedProcess[str]:
        # The installer's output goes to our stderr as it comes; stdout stays free for --json. Its errors
        # are kept too, to name a requirement without a wheel.
        proc = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True, env=environment)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
        return proc


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
