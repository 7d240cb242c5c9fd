"""Install dependencies inside the Lambda build image, so wheels match it and sdists are built in it."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from lpkg.backends import (
    InstallRequest,
    ca_bundle,
    compile_command,
    pip_environment,
    pip_failure,
    requirement_args,
    stage_requirements,
)
from lpkg.container import DockerSession
from lpkg.errors import BuildFailed, EnvironmentProblem
from lpkg.runtimes import Arch, Runtime

INPUT = "/lpkg-in"
OUTPUT = "/lpkg-out"
CACHE_VOLUME = "lpkg-pip-cache"  # pip's download cache, kept between builds
CACHE = "/lpkg-cache"


class DockerInstaller:
    def __init__(self, session: DockerSession, image: str, arch: Arch = "x86_64") -> None:
        self.session = session
        self.image = image
        self.platform = session.platform_for(arch)
        self.description = f"pip in {image}"
        session.ensure_image(image, self.platform)

    def identity(self) -> str:
        return f"docker:{self.session.image_id(self.image)}"

    def install(self, request: InstallRequest, target: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="lpkg-requirements-") as scratch:
            staged, deps_file = stage_requirements(request, Path(scratch))
            args = requirement_args(request, {p: f"{INPUT}/{rel}" for p, rel in staged.items()},
                                    f"{INPUT}/{deps_file}" if deps_file else None)
            command = [
                request.runtime.interpreter, "-m", "pip", "install", "--target", OUTPUT,
                "--cache-dir", CACHE, "--no-compile", "--progress-bar", "off", *args,
            ]
            if request.compile_bytecode:
                # pip's own compile step writes timestamp .pyc; compileall after it writes reproducible ones.
                # A file that does not compile (a template, another Python's code) just gets no .pyc.
                command = ["/bin/sh", "-c", f"{shlex.join(command)} && "
                           f"{{ {shlex.join(compile_command(request.runtime.interpreter, OUTPUT))} || true; }}"]
            self.run(command, Path(scratch), target, what="pip install")

    def compile_sources(self, runtime: Runtime, sources: Path, target: Path) -> None:
        """Compile the .py files under `sources` with the image's interpreter; the tree, with its
        __pycache__ folders, lands in `target`."""
        with tempfile.TemporaryDirectory(prefix="lpkg-sources-") as scratch:
            shutil.copytree(sources, Path(scratch) / "src")
            compile_all = shlex.join(compile_command(runtime.interpreter, OUTPUT))
            command = ["/bin/sh", "-c", f"cp -R {INPUT}/src {OUTPUT} && {{ {compile_all} || true; }}"]
            self.run(command, Path(scratch), target, what="compileall")

    def run(self, command: Sequence[str], inputs: Path, target: Path, *, what: str) -> None:
        """Run `command` in the build image with `inputs` copied to INPUT (plus the host's CA bundle as
        INPUT/ca.pem) and the host's pip settings; unpack what it wrote to OUTPUT into `target`."""
        environment = pip_environment()
        ca = ca_bundle()
        if ca is not None:
            (inputs / "ca.pem").write_bytes(ca.read_bytes())
            environment["PIP_CERT"] = f"{INPUT}/ca.pem"
        environment["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        environment["PIP_ROOT_USER_ACTION"] = "ignore"
        options: dict[str, object] = {
            "entrypoint": [],
            "environment": environment,
            "volumes": {CACHE_VOLUME: {"bind": CACHE, "mode": "rw"}},
            "working_dir": INPUT,
        }
        if self.platform is not None:
            options["platform"] = self.platform
        network = os.environ.get("LPKG_DOCKER_NETWORK")
        if network:
            options["network_mode"] = network
        with self.session.container(self.image, [*command], **options) as container:
            container.put_folders({INPUT: inputs})
            result = container.run(timeout=3600, stream_output=sys.stderr)
            if result.exit_code != 0:
                output = (result.stdout + result.stderr).decode("utf-8", "replace")
                failure = pip_failure(output, self.image, result.exit_code)
                if what == "pip install" or isinstance(failure, EnvironmentProblem):
                    raise failure
                raise BuildFailed(f"{what} in {self.image} failed (exit {result.exit_code}):\n    "
                                  + "\n    ".join(output.strip().splitlines()[-8:]),
                                  hint="check the requirement names and versions")
            archive = container.get_archive_file(OUTPUT)
        with archive:
            target.mkdir(parents=True, exist_ok=True)
            _extract_stripped(archive, target, Path(OUTPUT).name)


def _extract_stripped(archive: tempfile.SpooledTemporaryFile[bytes], target: Path, top: str) -> None:
    """Unpack the tar Docker returned for OUTPUT into `target`, without its top folder."""
    archive.seek(0)
    with tarfile.open(fileobj=archive, mode="r|") as tar:
        for member in tar:
            parts = member.name.split("/", 1)
            if parts[0] != top or len(parts) == 1:
                continue
            member.name = parts[1]
            if hasattr(tarfile, "data_filter"):
                tar.extract(member, target, filter="data")
            elif member.isfile() or member.isdir():  # older Pythons: plain files and folders only
                if ".." in member.name.split("/") or member.name.startswith("/"):
                    continue
                tar.extract(member, target)
