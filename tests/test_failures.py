"""Failure injection with real parts (issue 6): `lpkg build` interrupted by SIGINT or SIGTERM in each phase,
the Docker daemon going away mid-build, the package index unreachable, the disk under --out full. Each ends
in one clear message and its documented exit code, without a traceback; no container of the run is left,
no partial artifact, and the previous artifact is intact (the same sha256).

How each phase is held still long enough to be interrupted, with nothing faked:
- discover: a first-party module is a named pipe, so reading it blocks (the kernel says `wait_for_partner`);
- install: pip waits on a package index that accepts connections and never answers (helpers.StalledIndex);
- assemble: 120 MB of random bytes take seconds to deflate; the temporary zip in --out shows it has begun;
- verify: the handler sleeps at import, in the probe container.

The daemon going away: a unix-socket proxy in front of the shared daemon (which must never be stopped here),
given to lpkg as DOCKER_HOST and killed mid-build. To lpkg that is exactly a daemon that vanished: new
connections are refused and open ones cut. The container it started is then still on the real daemon, as
a stopped container is on a daemon that restarts; the next lpkg run's sweep must remove it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import DaemonProxy, StalledIndex, assert_no_container, containers_of, real_daemon_socket

FUNCTION = "fn"
PREVIOUS = b"PK\x05\x06" + bytes(18)  # an empty zip: the artifact of an earlier, good build
BUILD_ENV = {"LPKG_DOCKER_NETWORK": "host"}


@dataclass(frozen=True)
class Project:
    function: Path
    out: Path
    scratch: Path  # lpkg's TMPDIR: its temporary folders must go too

    @property
    def artifact(self) -> Path:
        return self.out / f"{FUNCTION}.zip"


def make_project(root: Path, handler: str = "def handler(event, context):\n    return 1\n") -> Project:
    function = root / "lambda" / FUNCTION
    function.mkdir(parents=True)
    (function / "handler.py").write_text(handler)
    out, scratch = root / "out", root / "tmp"
    out.mkdir()
    scratch.mkdir()
    (out / f"{FUNCTION}.zip").write_bytes(PREVIOUS)
    return Project(function, out, scratch)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as an interactive shell leaves it (see test_build_docker)


@dataclass(frozen=True)
class Ended:
    exit_code: int
    stdout: str
    stderr: str
    pid: int


def run_until(project: Project, args: list[str], ready: Callable[[int], bool], action: Callable[[int], None],
              env: dict[str, str] | None = None, limit: float = 180) -> Ended:
    """Start `lpkg build --json`, wait until `ready(pid)`, do `action(pid)`, and wait for lpkg to end."""
    full_env = {**os.environ, **BUILD_ENV, "TMPDIR": str(project.scratch), **(env or {})}
    command = [sys.executable, "-m", "lpkg", "build", str(project.function), "--runtime", "python3.11",
               "--out", str(project.out), "--json", *args]
    stdout, stderr = project.scratch.parent / "stdout", project.scratch.parent / "stderr"
    with stdout.open("w") as out_file, stderr.open("w") as err_file:
        proc = subprocess.Popen(command, stdout=out_file, stderr=err_file, env=full_env, preexec_fn=_default_sigint)
        try:
            deadline = time.monotonic() + limit
            while not ready(proc.pid):
                if proc.poll() is not None:
                    pytest.fail(f"lpkg ended (exit {proc.returncode}) too early: {stderr.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"lpkg did not reach the phase within {limit} s")
                time.sleep(0.02)
            action(proc.pid)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return Ended(proc.returncode, stdout.read_text(), stderr.read_text(), proc.pid)


def assert_clean_failure(ended: Ended, project: Project, exit_code: int, words: str) -> None:
    assert ended.exit_code == exit_code, ended.stderr[-3000:]
    assert "Traceback" not in ended.stderr, ended.stderr
    assert f"lpkg: error: {words}" in ended.stderr
    assert json.loads(ended.stdout)["error"]["exit_code"] == exit_code  # --json: still one document
    # No partial artifact, the previous one intact, no temporary folders left.
    assert sorted(p.name for p in project.out.iterdir()) == [f"{FUNCTION}.zip"]
    assert hashlib.sha256(project.artifact.read_bytes()).digest() == hashlib.sha256(PREVIOUS).digest()
    assert list(project.scratch.iterdir()) == []


def _wchan(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return ""


def _temporary_zip(project: Project) -> bool:
    return any(p.name.endswith(".zip.tmp") for p in project.out.iterdir())


SIGNALS = pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])


# --- SIGINT and SIGTERM in each phase -------------------------------------------------------------------


@SIGNALS
@pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux's /proc to see lpkg blocked")
def test_interrupt_in_discover(tmp_path: Path, signum: signal.Signals) -> None:
    project = make_project(tmp_path, "import shared\n\n\ndef handler(event, context):\n    return 1\n")
    (project.function.parent / "shared").mkdir()
    os.mkfifo(project.function.parent / "shared" / "__init__.py")
    ended = run_until(project, ["--no-test", "--backend", "local"],
                      lambda pid: "wait_for_partner" in _wchan(pid), lambda pid: os.kill(pid, signum))
    assert_clean_failure(ended, project, 130, "interrupted")


@SIGNALS
@pytest.mark.docker
def test_interrupt_in_install(tmp_path: Path, standin_image: str, signum: signal.Signals) -> None:
    project = make_project(tmp_path)
    (project.function / "requirements.txt").write_text("lpkg-test-stalled-download==1.0\n")
    index = StalledIndex()
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("PIP_")}
    try:
        ended = run_until(project, ["--build-image", standin_image, "--image", standin_image],
                          lambda pid: bool(containers_of(pid)) and index.connected.is_set(),
                          lambda pid: os.kill(pid, signum), env={**env, "PIP_INDEX_URL": index.url})
    finally:
        index.close()
    assert_clean_failure(ended, project, 130, "interrupted")
    assert_no_container(ended.pid)


@SIGNALS
def test_interrupt_in_assemble(tmp_path: Path, signum: signal.Signals) -> None:
    project = make_project(tmp_path)
    (project.function / "blob.bin").write_bytes(os.urandom(120 << 20))  # seconds of deflate
    ended = run_until(project, ["--no-test", "--backend", "local"],
                      lambda pid: _temporary_zip(project), lambda pid: os.kill(pid, signum))
    assert_clean_failure(ended, project, 130, "interrupted")


@SIGNALS
@pytest.mark.docker
def test_interrupt_in_verify(tmp_path: Path, standin_image: str, signum: signal.Signals) -> None:
    project = make_project(tmp_path, "import time\n\ntime.sleep(300)\n\n\ndef handler(event, context):\n    return 1\n")

    def interrupt(pid: int) -> None:
        time.sleep(1)  # the probe's import is under way, sleeping
        os.kill(pid, signum)

    ended = run_until(project, ["--image", standin_image, "--timeout", "600"],
                      lambda pid: _temporary_zip(project) and bool(containers_of(pid)), interrupt)
    assert_clean_failure(ended, project, 130, "interrupted")
    assert_no_container(ended.pid)


# --- the Docker daemon going away mid-build ------------------------------------------------------------------


@pytest.fixture
def daemon_proxy() -> Iterator[DaemonProxy]:
    # A unix socket's path must stay under about 100 bytes; pytest's tmp_path can be longer.
    folder = Path(tempfile.mkdtemp(prefix="lpkg-proxy-", dir="/tmp"))
    proxy = DaemonProxy(folder / "docker.sock", real_daemon_socket())
    yield proxy
    proxy.kill()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.docker
def test_daemon_going_away_mid_build(tmp_path: Path, standin_image: str, daemon_proxy: DaemonProxy) -> None:
    project = make_project(tmp_path)
    (project.function / "requirements.txt").write_text("lpkg-test-stalled-download==1.0\n")
    index = StalledIndex()
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("PIP_")}
    env.update(PIP_INDEX_URL=index.url, DOCKER_HOST=daemon_proxy.url)
    try:
        ended = run_until(project, ["--build-image", standin_image, "--image", standin_image],
                          lambda pid: bool(containers_of(pid)) and index.connected.is_set(),
                          lambda pid: daemon_proxy.kill(), env=env)
    finally:
        index.close()
    assert_clean_failure(ended, project, 3, "lost the Docker daemon")
    # The daemon is back: the next run's sweep removes what the vanished one could not be told to.
    assert containers_of(ended.pid)
    sweep_code = "from lpkg.containers.engine import docker_session; docker_session()"
    sweep = subprocess.run([sys.executable, "-c", sweep_code], capture_output=True, text=True, timeout=120)
    assert sweep.returncode == 0, sweep.stderr
    assert_no_container(ended.pid)


# --- the package index unreachable ----------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens there once it is closed


@pytest.mark.parametrize("backend", [pytest.param("docker", marks=pytest.mark.docker), "local"])
def test_index_unreachable(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    project = make_project(tmp_path)
    (project.function / "requirements.txt").write_text("six==1.16.0\n")
    args = ["--no-test", "--backend", backend, "--no-cache"]
    if backend == "docker":
        image = request.getfixturevalue("standin_image")
        args += ["--build-image", image]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("PIP_")}
    # PIP_CONFIG_FILE: not this machine's pip.conf either, whose extra indexes would answer instead.
    env.update(BUILD_ENV, PIP_INDEX_URL=f"http://127.0.0.1:{closed_port()}/simple", PIP_RETRIES="1",
               PIP_CONFIG_FILE=os.devnull,
               TMPDIR=str(project.scratch))
    proc = subprocess.run(
        [sys.executable, "-m", "lpkg", "build", str(project.function), "--runtime", "python3.11",
         "--out", str(project.out), "--json", *args],
        capture_output=True, text=True, env=env, timeout=600,
    )
    ended = Ended(proc.returncode, proc.stdout, proc.stderr, 0)
    assert_clean_failure(ended, project, 3, "pip")
    assert "could not reach the package index" in proc.stderr


# --- a full disk under --out ------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, mounted for this test (root only)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_full_disk_under_out(tmp_path: Path, small_disk: Path) -> None:
    project = make_project(tmp_path)
    out = small_disk / "out"
    out.mkdir()
    (out / f"{FUNCTION}.zip").write_bytes(PREVIOUS)
    project = Project(project.function, out, project.scratch)
    (project.function / "blob.bin").write_bytes(os.urandom(2 << 20))  # incompressible: the zip is over 1 MiB
    proc = subprocess.run(
        [sys.executable, "-m", "lpkg", "build", str(project.function), "--runtime", "python3.11",
         "--out", str(out), "--json", "--no-test", "--backend", "local"],
        capture_output=True, text=True, env={**os.environ, "TMPDIR": str(project.scratch)}, timeout=300,
    )
    ended = Ended(proc.returncode, proc.stdout, proc.stderr, 0)
    assert_clean_failure(ended, project, 3, "")
    assert "No space left on device" in proc.stderr
