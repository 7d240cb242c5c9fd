"""Install dependencies inside the Lambda build image, so wheels match it and sdists are built in it."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from lpkg.containers.engine import DockerSession, RunResult
from lpkg.errors import BuildFailed, EnvironmentProblem
from lpkg.files import entries_below
from lpkg.install import (
    InstallRequest,
    ca_bundle,
    compile_command,
    pip_environment,
    pip_failure,
    requirement_args,
    stage_requirements,
)
from lpkg.install.path_requirements import LOCAL_PROJECTS
from lpkg.runtimes import Arch, Runtime

INPUT = "/lpkg-in"
OUTPUT = "/lpkg-out"
CACHE_VOLUME = "lpkg-pip-cache"  # pip's download cache, kept between builds
CACHE = "/lpkg-cache"
# The container's temporary folder, inside OUTPUT's mount: pip --target installs into a temporary folder and
# then moves each package into the target, a rename on one mount but a copy of every file across two
# (measured: seconds for requests + pydantic + boto3). Removed before the output is used.
TEMPORARY = ".lpkg-tmp"
# Run by the image's interpreter as root: give the cache volume's top folder to the caller, then become the
# caller (no extra groups) and run the command. Python is in every build image; su and setpriv need not be.
AS_CALLER = """\
import os, sys
uid, gid = int(sys.argv[1]), int(sys.argv[2])
if os.stat(sys.argv[3]).st_uid != uid:
    os.chown(sys.argv[3], uid, gid)
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
os.execvp(sys.argv[4], sys.argv[4:])
"""


class DockerInstaller:
    def __init__(self, session: DockerSession, image: str, arch: Arch = "x86_64") -> None:
        self.session = session
        self.image = image
        self.platform = session.platform_for(arch)
        self.description = f"pip in {image}"
        session.ensure_image(image, self.platform)
        # A daemon on this machine writes the output straight into a folder of ours (a bind mount) instead of
        # handing it back as a tar to unpack. Not when it maps users (userns-remap): its root is then a
        # stranger to our folders.
        self.writes_here = session.is_local and session.user_namespace() != "remapped"
        # Whose the written files are: on a daemon that runs as root, the container's root would own them,
        # and a caller who is not root could not even delete what an interrupted pip left. So the command runs
        # as the caller; rootless Docker's root already is the caller.
        # (Windows has no user ids; Docker Desktop gives bind-mounted files to the Windows user anyway.)
        uid, gid = (os.getuid(), os.getgid()) if hasattr(os, "getuid") else (0, 0)
        rootful = session.user_namespace() is None
        self.caller = (uid, gid) if self.writes_here and rootful and uid != 0 else None
        # pip's cache belongs to one user: the caller's own volume when the command runs as the caller.
        self.cache_volume = CACHE_VOLUME if self.caller is None else f"{CACHE_VOLUME}-uid{self.caller[0]}"

    def identity(self) -> str:
        return f"docker:{self.session.image_id(self.image)}"

    def install(self, request: InstallRequest, target: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="lpkg-requirements-") as scratch:
            staged, deps_file = stage_requirements(request, Path(scratch), LOCAL_PROJECTS)
            args = requirement_args(request, {p: f"{INPUT}/{rel}" for p, rel in staged.items()},
                                    f"{INPUT}/{deps_file}" if deps_file else None)
            command = [
                request.runtime.interpreter, "-m", "pip", "install", "--target", OUTPUT,
                "--cache-dir", CACHE, "--no-compile", "--progress-bar", "off", *args,
            ]
            if (Path(scratch) / "local").is_dir():
                # Path requirements: building their wheels writes into the project, and INPUT is read-only.
                command = ["/bin/sh", "-c", f"cp -R {INPUT}/local {LOCAL_PROJECTS} && exec {shlex.join(command)}"]
            if request.compile_bytecode:
                # pip's own compile step writes timestamp .pyc; compileall after it writes reproducible ones.
                # A file that does not compile (a template, another Python's code) just gets no .pyc.
                command = ["/bin/sh", "-c", f"{shlex.join(command)} && "
                           f"{{ {shlex.join(compile_command(request.runtime.interpreter, OUTPUT))} || true; }}"]
            self.run(command, Path(scratch), target, what="pip install", interpreter=request.runtime.interpreter)

    def compile_sources(self, runtime: Runtime, sources: Path, target: Path) -> None:
        """Compile the .py files under `sources` with the image's interpreter; the tree, with its
        __pycache__ folders, lands in `target`."""
        with tempfile.TemporaryDirectory(prefix="lpkg-sources-") as scratch:
            compile_all = shlex.join(compile_command(runtime.interpreter, OUTPUT))
            self.run(["/bin/sh", "-c", f"{compile_all} || true"], Path(scratch), target, what="compileall",
                     interpreter=runtime.interpreter, seed=sources)

    def run(self, command: Sequence[str], inputs: Path, target: Path, *, what: str,
            interpreter: str | None = None, seed: Path | None = None) -> None:
        """Run `command` in the build image with `inputs` at INPUT (plus the host's CA bundle as INPUT/ca.pem)
        and the host's pip settings; OUTPUT starts as a copy of `seed` (else empty), and what is in it when the
        command succeeds ends up in `target` (missing or empty; nothing lands there when it fails).
        `interpreter`: the image's Python (run as the caller needs one; default: the image's `python3`)."""
        environment = pip_environment()
        ca = ca_bundle()
        if ca is not None:
            (inputs / "ca.pem").write_bytes(ca.read_bytes())
            environment["PIP_CERT"] = f"{INPUT}/ca.pem"
        environment["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        environment["PIP_ROOT_USER_ACTION"] = "ignore"
        volumes: dict[str, dict[str, str]] = {self.cache_volume: {"bind": CACHE, "mode": "rw"}}
        options: dict[str, object] = {"entrypoint": [], "environment": environment, "volumes": volumes,
                                      "working_dir": INPUT}
        if self.platform is not None:
            options["platform"] = self.platform
        network = os.environ.get("LPKG_DOCKER_NETWORK")
        if network:
            options["network_mode"] = network
        if not self.writes_here:
            self._run_copying(command, inputs, target, what, options, seed)
            return
        if self.caller is not None:
            uid, gid = self.caller
            environment["HOME"] = "/tmp"  # the caller has no home in the image; sdist builds may want one
            command = [interpreter or "python3", "-I", "-S", "-c", AS_CALLER, str(uid), str(gid), CACHE, *command]
        target.parent.mkdir(parents=True, exist_ok=True)
        # Beside the target, so that moving it there is a rename; removed whatever happens.
        output = Path(tempfile.mkdtemp(prefix=".lpkg-output-", dir=target.parent))
        try:
            if seed is not None:
                shutil.copytree(seed, output, dirs_exist_ok=True)
            (output / TEMPORARY).mkdir()
            environment["TMPDIR"] = f"{OUTPUT}/{TEMPORARY}"
            volumes[str(inputs)] = {"bind": INPUT, "mode": "ro"}
            volumes[str(output)] = {"bind": OUTPUT, "mode": "rw"}
            with self.session.container(self.image, [*command], **options) as container:
                self._finish(container.run(timeout=3600, stream_output=sys.stderr), what)
            temporary = output / TEMPORARY
            if temporary.is_dir() and not temporary.is_symlink():
                shutil.rmtree(temporary)
            else:
                temporary.unlink(missing_ok=True)
            _make_safe(output, f"{what} in {self.image}")
            target.mkdir(exist_ok=True)
            for entry in os.scandir(output):
                os.rename(entry.path, target / entry.name)
        finally:
            shutil.rmtree(output, ignore_errors=True)

    def _run_copying(self, command: Sequence[str], inputs: Path, target: Path, what: str,
                     options: dict[str, object], seed: Path | None) -> None:
        """A daemon elsewhere: the inputs go in, and OUTPUT comes back, as tar archives through its API."""
        with self.session.container(self.image, [*command], **options) as container:
            container.put_folders({INPUT: inputs, **({OUTPUT: seed} if seed is not None else {})})
            self._finish(container.run(timeout=3600, stream_output=sys.stderr), what)
            archive = container.get_archive_file(OUTPUT)
        with archive:
            target.mkdir(parents=True, exist_ok=True)
            _extract_stripped(archive, target, Path(OUTPUT).name)

    def _finish(self, result: RunResult, what: str) -> None:
        """Raise the one error that says why the command failed, if it did."""
        if result.exit_code == 0:
            return
        output = (result.stdout + result.stderr).decode("utf-8", "replace")
        failure = pip_failure(output, self.image, result.exit_code)
        if what == "pip install" or isinstance(failure, EnvironmentProblem):
            raise failure
        raise BuildFailed(f"{what} in {self.image} failed (exit {result.exit_code}):\n    "
                          + "\n    ".join(output.strip().splitlines()[-8:]),
                          hint="check the requirement names and versions")


def _make_safe(folder: Path, writer: str) -> None:
    """What a container wrote into a folder of ours gets what tarfile's data filter gives an archive from it:
    a link leading out of the folder (which would put this machine's files into the zip) or a special file
    (a device node root made in the container) is refused; set-id bits and group/other write are cleared."""
    root = os.path.realpath(folder)
    for entry in entries_below(folder):
        if entry.is_symlink():
            resolved = os.path.realpath(entry.path)
            if resolved != root and not resolved.startswith(root + os.sep):
                raise BuildFailed(f"{writer} wrote {os.path.relpath(entry.path, folder)}, a link to "
                                  f"{os.readlink(entry.path)} outside the install; refused",
                                  hint="a package's build step made it: check the requirements")
            continue
        mode = entry.stat(follow_symlinks=False).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise BuildFailed(f"{writer} wrote {os.path.relpath(entry.path, folder)}, which is not a file, folder "
                              "or link; refused", hint="a package's build step made it: check the requirements")
        unsafe = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH
        if mode & unsafe:
            os.chmod(entry.path, stat.S_IMODE(mode) & ~unsafe)


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
