"""The only module that talks to Docker (through the docker SDK).

A container is a context manager: created labelled, used, and removed in __exit__ whatever
happened — Ctrl-C and SIGTERM included (the CLI turns SIGTERM into KeyboardInterrupt).
Files go in and out as tar archives, or, with a daemon on this machine, through bind mounts of lpkg's
own scratch folders — never of the user's tree.
"""

from __future__ import annotations

import datetime
import functools
import io
import os
import platform
import re
import socket
import tarfile
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions

from lpkg.errors import EnvironmentProblem, LpkgError
from lpkg.files import process_running
from lpkg.runtimes import ARCH_ALIASES, ARCHITECTURES, Arch

LABEL = "io.lpkg"
LABEL_OWNER = "io.lpkg.owner"  # host:pid of the lpkg process that created it
LABEL_ID = "io.lpkg.id"  # this container's own, to find it when the create call was interrupted


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class RunResult:
    exit_code: int | None  # None when it was killed at the timeout
    stdout: bytes
    stderr: bytes
    timed_out: bool
    oom_killed: bool


class DockerSession:
    """A client that answered a ping; translates the SDK's errors at this boundary."""

    def __init__(self) -> None:
        try:
            self.client = docker.from_env(timeout=120)
            self.client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            where = os.environ.get("DOCKER_HOST", "the default socket")
            raise EnvironmentProblem(
                f"no Docker daemon answers at {where} ({_short(exc)})",
                hint="start Docker, or use --probe local to import in a local interpreter (not sandboxed)",
            ) from None
        self.remove_leftovers()
        host = os.environ.get("DOCKER_HOST", "")
        # Bind mounts name this machine's folders; only a daemon on this machine can see them.
        # LPKG_DOCKER_COPY=1 copies instead (e.g. Docker Desktop without file sharing for the temp folder).
        self.is_local = (host == "" or host.startswith(("unix://", "npipe://"))) and \
            os.environ.get("LPKG_DOCKER_COPY") != "1"
        # A daemon on a Unix socket of a Linux host shares this kernel (and its binfmt_misc emulators).
        self.shares_kernel = (host == "" or host.startswith("unix://")) and platform.system() == "Linux"
        self._info: dict[str, Any] | None = None
        self._image_ids: dict[str, str] = {}  # looked up once per process

    def _daemon_info(self) -> dict[str, Any]:
        if self._info is None:
            try:
                self._info = dict(self.client.info())
            except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
                raise EnvironmentProblem(f"Docker did not say what it runs on: {_short(exc)}") from None
        return self._info

    def architecture(self) -> str:
        """The daemon's CPU as it reports it ("x86_64", "aarch64")."""
        return str(self._daemon_info().get("Architecture", ""))

    def user_namespace(self) -> str | None:
        """Who a container's root is on the daemon's machine: None for root itself; "rootless" for the user
        running a rootless daemon; "remapped" for a subordinate user (userns-remap)."""
        options = self._daemon_info().get("SecurityOptions") or []
        if "name=rootless" in options:
            return "rootless"
        if "name=userns" in options:
            return "remapped"
        return None

    def runs_natively(self, arch: Arch) -> bool:
        return ARCH_ALIASES.get(self.architecture()) == arch

    def platform_for(self, arch: Arch) -> str | None:
        """The --platform to ask for `arch` containers: None for the daemon's own CPU (any daemon can do
        that; the option needs API 1.41), else e.g. "linux/arm64", run under emulation."""
        return None if self.runs_natively(arch) else ARCHITECTURES[arch].docker_platform

    def has_image(self, image: str) -> bool:
        return self._lookup(image) is not None

    def image_id(self, image: str) -> str:
        found = self._lookup(image)
        if found is None:
            raise EnvironmentProblem(f"Docker could not look up image {image}: it is not there",
                                     hint="docker pull it, or name a local image with --image/--build-image")
        return found

    def _lookup(self, image: str) -> str | None:
        """The image's ID, None when the daemon does not have it; asked once per process."""
        if image not in self._image_ids:
            try:
                self._image_ids[image] = str(self.client.images.get(image).id)
            except docker.errors.ImageNotFound:
                return None
            except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
                raise EnvironmentProblem(f"Docker could not look up image {image}: {_short(exc)}") from None
        return self._image_ids[image]

    def ensure_image(self, image: str, platform: str | None = None) -> None:
        if self.has_image(image):
            return
        try:
            self.client.images.pull(image, platform=platform)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise EnvironmentProblem(
                f"image {image} is not here and could not be pulled ({_short(exc)})",
                hint="docker pull it, or name a local image with --image",
            ) from None

    def remove_leftovers(self) -> None:
        """Remove containers of killed lpkg runs: on this host, those whose process is gone; from other
        hosts sharing the daemon (CI runners), only stopped ones older than an hour — theirs may be live."""
        host = socket.gethostname()
        try:
            # Sparse: the list's own fields (labels, state, creation time) are all this needs; without it the
            # SDK inspects each container listed (0.2 s with one other lpkg's container on a shared daemon).
            stale = self.client.containers.list(all=True, filters={"label": LABEL}, sparse=True)
        except (docker.errors.APIError, requests.exceptions.RequestException):
            return
        for container in stale:
            labels = container.attrs.get("Labels") or {}
            owner_host, _, pid = str(labels.get(LABEL_OWNER, "")).partition(":")
            if owner_host == host:
                if pid.isdigit() and process_running(int(pid)):
                    continue
            elif container.attrs.get("State") == "running" or not _older_than(container.attrs.get("Created"), 3600):
                continue
            try:
                container.remove(force=True)
            except (docker.errors.APIError, requests.exceptions.RequestException):
                pass

    def remove_own(self) -> None:
        """Remove every container this process made (an interrupted parallel build: the threads using them then
        end at once instead of waiting out pip or the probe)."""
        try:
            own = self.client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={_owner()}"}, sparse=True)
            for container in own:
                container.remove(force=True)
        except (docker.errors.APIError, requests.exceptions.RequestException):
            pass

    def container(self, image: str, command: Sequence[str], **options: Any) -> Container:
        return Container(self, image, command, options)


@functools.lru_cache(maxsize=1)
def docker_session() -> DockerSession:
    """The process's one session: one ping and one sweep of leftovers, however many zips or functions."""
    return DockerSession()


def _older_than(created: object, seconds: float) -> bool:
    """A container's creation time against the clock: the list's Unix seconds, or inspect's RFC 3339 time
    (nanoseconds, 'Z')."""
    now = datetime.datetime.now(datetime.timezone.utc)
    if isinstance(created, (int, float)) and not isinstance(created, bool):
        return now.timestamp() - created > seconds
    try:
        stamp = datetime.datetime.fromisoformat(str(created)[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return False
    return (now - stamp).total_seconds() > seconds


def _failed(what: str, exc: BaseException) -> EnvironmentProblem:
    """A Docker call that failed; a lost connection is said as such (the daemon stopped or restarted)."""
    if isinstance(exc, (requests.exceptions.ConnectionError, urllib3.exceptions.HTTPError)):
        where = os.environ.get("DOCKER_HOST", "the default socket")
        return EnvironmentProblem(
            f"lost the Docker daemon at {where} while {what} ({_short(exc)})",
            hint="the daemon stopped or restarted: start it and run again (the next run removes the containers "
            "this one left)",
        )
    return EnvironmentProblem(f"Docker failed while {what}: {_short(exc)}")


# The daemon's words for an image of another platform than the one asked for.
_PLATFORM_MISMATCH = re.compile(r"does not match the specified platform: wanted (?P<wanted>[\w/.-]+), "
                                r"actual: (?P<actual>[\w/.-]+)")


def _missing_executable(error: str) -> str | None:
    """The program a container could not start because the image lacks it, from the runtime's error
    ('exec: "/var/lang/bin/python3.12": stat /var/lang/bin/python3.12: no such file or directory')."""
    found = re.search(r'exec: "([^"]+)": (?:stat [^:]*: no such file or directory|executable file not found)', error)
    return found.group(1) if found else None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


class Container:
    def __init__(self, session: DockerSession, image: str, command: Sequence[str], options: Mapping[str, Any]):
        self.session = session
        self.image = image
        self.command = list(command)
        self.options = dict(options)
        self._container: Any = None
        self._started = False

    def __enter__(self) -> Container:
        token = uuid.uuid4().hex
        labels = {LABEL: "1", LABEL_OWNER: _owner(), LABEL_ID: token}
        try:
            self._container = self.session.client.containers.create(
                self.image, self.command, labels=labels, detach=True, **self.options
            )
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM while the daemon made it: it may exist without our having its ID.
            self._remove_labelled(token)
            raise
        except docker.errors.ImageNotFound as exc:
            mismatch = _PLATFORM_MISMATCH.search(str(exc))
            if mismatch is not None:
                # The image is here, for another CPU than the function's (Architectures, --arch).
                raise EnvironmentProblem(
                    f"image {self.image} is for {mismatch['actual']}, and this function runs on {mismatch['wanted']}",
                    hint="name an image of that CPU with --image/--build-image, or check the function's "
                    "architecture (--arch, or Architectures in the project)",
                ) from None
            raise EnvironmentProblem(
                f"image {self.image} is not available to the Docker daemon",
                hint="docker pull it, or name a local image with --image/--build-image",
            ) from None
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise _failed(f"creating a container from {self.image}", exc) from None
        return self

    def _remove_labelled(self, token: str) -> None:
        try:
            labelled = self.session.client.containers.list(all=True, filters={"label": f"{LABEL_ID}={token}"},
                                                           sparse=True)
            for container in labelled:
                container.remove(force=True)
        except (docker.errors.APIError, requests.exceptions.RequestException):
            pass  # the next run's remove_leftovers() takes it

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._container is not None:
            try:
                self._container.remove(force=True)
            except (docker.errors.APIError, requests.exceptions.RequestException):
                pass  # the next run's remove_leftovers() takes it
            self._container = None

    def put_archive(self, path: str, data: bytes | IO[bytes]) -> None:
        try:
            ok = self._container.put_archive(path, data)
        except (docker.errors.APIError, requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise _failed("copying files into the container", exc) from None
        if not ok:
            raise EnvironmentProblem(f"Docker refused the files for {path} in the container")

    def put_folders(self, folders: Mapping[str, Path]) -> None:
        """Copy host folders into the container ({path under /: host folder}) as root-owned files:
        a non-root user in the container can read them and cannot change them."""

        def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            return info

        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for arcname, folder in folders.items():
                tar.add(folder, arcname=arcname.strip("/"), filter=owned_by_root)
        self.put_archive("/", buffer.getvalue())

    def get_archive_file(self, path: str) -> tempfile.SpooledTemporaryFile[bytes]:
        """`path` in the container as a tar, spooled to disk when large."""
        spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        try:
            stream, _ = self._container.get_archive(path)
            for chunk in stream:
                spool.write(chunk)
        except docker.errors.NotFound:
            spool.close()
            raise LpkgError(f"{path} was not produced in the container") from None
        except (docker.errors.APIError, requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
            spool.close()
            raise _failed(f"copying {path} out of the container", exc) from None
        spool.seek(0)
        return spool

    def start(self) -> None:
        try:
            self._container.start()
        except docker.errors.APIError as exc:
            missing = _missing_executable(str(exc))
            if missing is not None:
                # The image is not a Lambda Python image of this runtime: say that, not runc's words.
                raise EnvironmentProblem(
                    f"image {self.image} has no {missing}, which lpkg runs in it",
                    hint="it is not a Lambda Python image of the function's runtime: name that runtime's image, "
                    "or check the runtime (--runtime, or the Runtime the project declares)",
                ) from None
            raise _failed(f"starting the container from {self.image}", exc) from None
        except requests.exceptions.RequestException as exc:
            raise _failed(f"starting the container from {self.image}", exc) from None
        self._started = True

    def run(self, timeout: float, stream_output: IO[str] | None = None) -> RunResult:
        """Start (unless started already), wait up to `timeout` seconds (then kill), and collect the output.

        With `stream_output`, what the container prints goes there as it comes (pip's progress)."""
        if not self._started:
            self.start()
        container = self._container
        try:
            if stream_output is not None:
                for chunk in container.logs(stdout=True, stderr=True, stream=True, follow=True):
                    stream_output.write(chunk.decode("utf-8", "replace"))
                    stream_output.flush()
            timed_out = False
            deadline = time.monotonic() + timeout
            try:
                status = container.wait(timeout=max(1.0, deadline - time.monotonic()))
                exit_code: int | None = int(status.get("StatusCode", -1))
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                # docker-py reports a read timeout on a unix socket as a ConnectionError: before the
                # deadline it is a lost daemon, not a timeout.
                if time.monotonic() < deadline:
                    raise
                timed_out = True
                exit_code = None
                container.kill()
            container.reload()
            oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
            stdout = container.logs(stdout=True, stderr=False)
            stderr = container.logs(stdout=False, stderr=True)
        except (docker.errors.APIError, requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise _failed(f"running the container from {self.image}", exc) from None
        return RunResult(exit_code, stdout, stderr, timed_out, oom)
