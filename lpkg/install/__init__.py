"""How dependencies get installed for the target runtime: in the Lambda build image through Docker,
or with pip on this machine asking for the target platform's wheels (inside the build image of a
CDK bundling step, or wherever there is no Docker)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lpkg.errors import BuildFailed, EnvironmentProblem, LpkgError, UsageError
from lpkg.runtimes import TASK_ROOT, Arch, Runtime

# The host's pip settings that decide where packages come from; passed on to the install.
PIP_SETTINGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST")
PROXY_SETTINGS = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")


@dataclass(frozen=True)
class InstallRequest:
    requirement_files: tuple[Path, ...]
    dependencies: tuple[str, ...]  # requirement strings (from a pyproject.toml)
    runtime: Runtime
    arch: Arch
    require_hashes: bool = False  # a lock with hashes: pip checks every download, installs nothing unlisted
    compile_bytecode: bool = False  # .pyc written by the target interpreter (unchecked-hash)
    requirements_base: Path | None = None  # where relative path requirements point from (default: each file's folder)
    origin: str | None = None  # where the requirements came from, when not a file of the user's (a project lock)

    @property
    def empty(self) -> bool:
        return not self.requirement_files and not self.dependencies


class Installer(Protocol):
    description: str

    def identity(self) -> str:
        """What, besides the request, decides what gets installed (for the dependency cache's key)."""
        ...

    def install(self, request: InstallRequest, target: Path) -> None:
        """pip install --target `target` everything the request names; raise BuildFailed if pip fails."""
        ...

    def compile_sources(self, runtime: Runtime, sources: Path, target: Path) -> None:
        """Copy `sources` to `target` with a .pyc beside each .py, written by the runtime's interpreter."""
        ...


def pip_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {key: environ[key] for key in (*PIP_SETTINGS, *PROXY_SETTINGS) if environ.get(key)}


def ca_bundle(environ: Mapping[str, str] | None = None) -> Path | None:
    """The CA bundle pip is told to trust (a proxy that re-signs TLS needs it passed on)."""
    environ = os.environ if environ is None else environ
    for key in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = environ.get(key)
        if value and Path(value).is_file():
            return Path(value)
    return None


def requirement_args(request: InstallRequest, staged: Mapping[Path, str], deps_file: str | None) -> list[str]:
    """pip's -r arguments, naming each requirements file where it was staged."""
    args: list[str] = []
    for path in request.requirement_files:
        args += ["-r", staged[path]]
    if deps_file is not None:
        args += ["-r", deps_file]
    if request.require_hashes:
        # A lock lists every distribution with its hashes: nothing else may come in, nothing unchecked.
        args += ["--require-hashes", "--no-deps"]
    return args


def compile_command(interpreter: str, folder: str) -> list[str]:
    """compileall with the target interpreter: hash-based .pyc that are never checked against the source
    (Lambda's task root is read-only and never changes), so no timestamp goes into the zip; file names in
    code objects say /var/task, where the code will be."""
    return [interpreter, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash",
            "-d", TASK_ROOT, folder]


def stage_requirements(request: InstallRequest, folder: Path, local_mount: str) -> tuple[dict[Path, str], str | None]:
    """Copy each requirements file, with the .txt files beside it (for `-r base.txt` lines), into its own
    subfolder of `folder`; write pyproject dependencies to deps.txt. Returns paths relative to `folder`.
    A path requirement's project is copied into folder/local too, its line pointing at `local_mount`, where pip
    sees that folder (writable: building a wheel writes into the project)."""
    import shutil

    from lpkg.install.path_requirements import stage_path_requirements

    staged: dict[Path, str] = {}
    for index, path in enumerate(request.requirement_files):
        if not path.is_file():
            raise UsageError(f"{path}: requirements file not found")
        sub = folder / str(index)
        sub.mkdir(parents=True)
        for sibling in {path, *path.parent.glob("*.txt")}:
            shutil.copyfile(sibling, sub / sibling.name)
        stage_path_requirements(sub / path.name, path, folder, local_mount, request.requirements_base)
        staged[path] = f"{index}/{path.name}"
    deps_file = None
    if request.dependencies:
        (folder / "deps.txt").write_text("\n".join(request.dependencies) + "\n", encoding="utf-8")
        deps_file = "deps.txt"
    return staged, deps_file


# pip's words when the index cannot be reached at all (as opposed to: no such release).
_NETWORK_SIGNS = ("NewConnectionError", "name resolution", "ConnectTimeout", "ProxyError", "SSLError",
                  "CERTIFICATE_VERIFY_FAILED", "Network is unreachable", "Connection refused")


def index_unreachable(output: str) -> bool:
    """pip or uv said it could not reach the index (then "no matching distribution" is a consequence)."""
    return any(sign in output for sign in _NETWORK_SIGNS)


def pip_failure(output: str, where: str, exit_code: int | None) -> LpkgError:
    """One readable error from pip's output: a network problem (exit 3) or a failed install (exit 1)."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    tail = "\n    ".join(lines[-8:])
    if index_unreachable(output):
        return EnvironmentProblem(
            f"pip in {where} could not reach the package index:\n    {tail}",
            hint="check the network (LPKG_DOCKER_NETWORK sets the build container's), PIP_INDEX_URL, "
            "and PIP_CERT for a proxy that re-signs TLS",
        )
    return BuildFailed(
        f"pip install in {where} failed (exit {exit_code}):\n    {tail}",
        hint="check the requirement names and versions; a package without a wheel for the runtime is built "
        "from source only in the build image (--backend docker)",
    )
