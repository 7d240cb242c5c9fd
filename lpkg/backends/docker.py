"""Install dependencies inside the Lambda build image, so wheels match it and sdists are built in it."""

from __future__ import annotations

import os
import sys
import tarfile
import tempfile
from pathlib import Path

from lpkg.backends import (
    InstallRequest,
    ca_bundle,
    pip_environment,
    pip_failure,
    requirement_args,
    stage_requirements,
)
from lpkg.container import DockerSession

INPUT = "/lpkg-in"
OUTPUT = "/lpkg-out"
CACHE_VOLUME = "lpkg-pip-cache"  # pip's download cache, kept between builds
CACHE = "/lpkg-cache"


class DockerInstaller:
    def __init__(self, session: DockerSession, image: str) -> None:
        self.session = session
        self.image = image
        self.description = f"pip in {image}"
        session.ensure_image(image)

    def identity(self) -> str:
        return f"docker:{self.session.image_id(self.image)}"

    def install(self, request: InstallRequest, target: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="lpkg-requirements-") as scratch:
            staged, deps_file = stage_requirements(request, Path(scratch))
            environment = pip_environment()
            ca = ca_bundle()
            if ca is not None:
                (Path(scratch) / "ca.pem").write_bytes(ca.read_bytes())
                environment["PIP_CERT"] = f"{INPUT}/ca.pem"
            environment["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
            environment["PIP_ROOT_USER_ACTION"] = "ignore"
            args = requirement_args(request, {p: f"{INPUT}/{rel}" for p, rel in staged.items()},
                                    f"{INPUT}/{deps_file}" if deps_file else None)
            command = [
                request.runtime.interpreter, "-m", "pip", "install", "--target", OUTPUT,
                "--cache-dir", CACHE, "--no-compile", "--progress-bar", "off", *args,
            ]
            options: dict[str, object] = {
                "entrypoint": [],
                "environment": environment,
                "volumes": {CACHE_VOLUME: {"bind": CACHE, "mode": "rw"}},
                "working_dir": INPUT,
            }
            network = os.environ.get("LPKG_DOCKER_NETWORK")
            if network:
                options["network_mode"] = network
            with self.session.container(self.image, command, **options) as container:
                container.put_folders({INPUT: Path(scratch)})
                result = container.run(timeout=3600, stream_output=sys.stderr)
                if result.exit_code != 0:
                    output = (result.stdout + result.stderr).decode("utf-8", "replace")
                    raise pip_failure(output, self.image, result.exit_code)
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
