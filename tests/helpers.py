"""Helpers for tests: run lpkg as users do, and write real zips."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
PROJECT = FIXTURES / "projects" / "rds-dashboard" / "lambda"


@dataclass(frozen=True)
class LpkgRun:
    returncode: int
    stdout: str
    stderr: str


def run_lpkg(
    *args: str | Path, env: Mapping[str, str] | None = None, timeout: float = 600, cwd: Path | None = None
) -> LpkgRun:
    """lpkg as users run it: a separate process, real exit codes."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "lpkg", *map(str, args)],
        capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd,
    )
    return LpkgRun(proc.returncode, proc.stdout, proc.stderr)


def write_zip(path: Path, files: Mapping[str, str | bytes], modes: Mapping[str, int] | None = None) -> Path:
    """A zip of the given members (Unix modes 0644 unless named in `modes`)."""
    modes = modes or {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (0o100000 | modes.get(name, 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content.encode() if isinstance(content, str) else content)
    return path


def zip_folders(path: Path, folders: Mapping[Path, str]) -> Path:
    """Zip whole folders: {source folder: prefix in the zip} (prefix "" = zip root)."""
    files: dict[str, bytes] = {}
    for folder, prefix in folders.items():
        for file in sorted(folder.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                files[prefix + file.relative_to(folder).as_posix()] = file.read_bytes()
    return write_zip(path, files)


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module, so tests can call the fixture writers directly."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


class StalledIndex:
    """A package index on 127.0.0.1 that accepts connections and never answers: pip sits in its download
    step (for its timeout times its retries, over a minute) until the build is interrupted. No real index
    is involved, so the test is neither slow nor dependent on download speed."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(connection)
            self.connected.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for connection in self._held:
            connection.close()
        self._server.close()


class DaemonProxy:
    """A unix socket that forwards every connection to the real daemon's, until kill()."""

    def __init__(self, path: Path, daemon: str, mode: int | None = None) -> None:
        self.path = path
        self.daemon = daemon
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        if mode is not None:
            path.chmod(mode)  # 0o666: a user outside the docker group can reach the daemon through it
        self.server.listen(64)
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._killed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while not self._killed.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.daemon)
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def kill(self) -> None:
        """The daemon is gone: the socket file disappears and every open connection is cut."""
        self._killed.set()
        self.server.close()
        self.path.unlink(missing_ok=True)
        with self._lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()


def containers_of(pid: int, *, docker_host: str | None = None) -> list[str]:
    """IDs of the containers (any state) that the lpkg process `pid` on this host created."""
    from lpkg.containers.engine import LABEL, LABEL_OWNER  # (the docker SDK only in the tests that use Docker)

    env = {**os.environ, **({"DOCKER_HOST": docker_host} if docker_host else {})}
    command = ["docker", "ps", "-aq", "--filter", f"label={LABEL}",
               "--filter", f"label={LABEL_OWNER}={socket.gethostname()}:{pid}"]
    return subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout.split()


def assert_no_container(pid: int) -> None:
    deadline = time.monotonic() + 10
    while containers_of(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert containers_of(pid) == [], "a container of the interrupted run was left behind"


def real_daemon_socket() -> str:
    """The path of the shared daemon's unix socket (the test skips when it is not on one)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip("the daemon is not on a unix socket here")
    return host[len("unix://"):]
