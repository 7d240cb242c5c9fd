"""Two `lpkg build` runs at once, and runs killed with SIGKILL (issue 17), with real processes.

Two runs of one function into one --out (two terminals, or two CI jobs on one runner) both end cleanly, and
the zip in --out is always one whole, verified zip, the one one of them reported. A run killed with SIGKILL
cannot clean up after itself: whatever it leaves (its temporary zip in --out, its temporary folders, the
local probe's process, its containers) the next run removes.

Each run gets its own TMPDIR, LPKG_SCRATCH_DIR (where verify unpacks) and LPKG_CACHE_DIR, so a leftover is
seen. Phases are held still as in tests/test_failures.py: discover reads a named pipe, assemble deflates
random bytes, the import test sleeps in the handler's import.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import StalledIndex, assert_no_container, containers_of

HANDLER = "def handler(event, context):\n    return 1\n"
SLEEPING_HANDLER = "import time\n\ntime.sleep(300)\n\n\n" + HANDLER


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def function(self) -> Path:
        return self.root / "lambda" / "fn"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def artifact(self) -> Path:
        return self.out / "fn.zip"

    def env(self, **more: str) -> dict[str, str]:
        return {**os.environ, "TMPDIR": str(self.root / "tmp"), "LPKG_SCRATCH_DIR": str(self.root / "shm"),
                "LPKG_CACHE_DIR": str(self.root / "cache"), "LPKG_DOCKER_NETWORK": "host", **more}

    def command(self, *args: str) -> list[str]:
        # python3.11: the stand-in image's, and a local interpreter here.
        return [sys.executable, "-m", "lpkg", "build", str(self.function), "--runtime", "python3.11",
                "--out", str(self.out), "--json", *args]

    def leftovers(self) -> list[str]:
        """Everything a run may leave that is not the published zip or the cache's own entries."""
        found = [f"out/{p.name}" for p in self.out.iterdir() if p.name != "fn.zip"] if self.out.is_dir() else []
        found += [f"tmp/{p.name}" for p in (self.root / "tmp").iterdir()]
        found += [f"shm/{p.name}" for p in (self.root / "shm").iterdir()]
        cache = self.root / "cache"
        # The cache's own entries never start with a dot; its temporary files and folders all do.
        found += [f"cache/{p.relative_to(cache)}" for p in cache.rglob(".*")] if cache.is_dir() else []
        return found


def make_project(root: Path, handler: str = HANDLER, files: dict[str, bytes] | None = None) -> Project:
    project = Project(root)
    project.function.mkdir(parents=True)
    (project.function / "handler.py").write_text(handler)
    for name, content in (files or {}).items():
        (project.function / name).write_bytes(content)
    for folder in ("tmp", "shm"):
        (root / folder).mkdir()
    return project


@dataclass(frozen=True)
class Ended:
    exit_code: int
    stdout: str
    stderr: str
    pid: int


def start(project: Project, *args: str, tag: str = "run", **env: str) -> tuple[subprocess.Popen[bytes], Path]:
    logs = project.root / f"{tag}.{time.monotonic_ns()}"
    logs.mkdir()
    proc = subprocess.Popen(project.command(*args), stdout=(logs / "stdout").open("wb"),
                            stderr=(logs / "stderr").open("wb"), env=project.env(**env))
    return proc, logs


def finish(proc: subprocess.Popen[bytes], logs: Path, timeout: float = 300) -> Ended:
    proc.wait(timeout=timeout)
    ended = Ended(proc.returncode, (logs / "stdout").read_text(), (logs / "stderr").read_text(), proc.pid)
    assert "Traceback" not in ended.stderr, ended.stderr
    return ended


def run(project: Project, *args: str, **env: str) -> Ended:
    return finish(*start(project, *args, **env))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reported_sha256(ended: Ended) -> str:
    document = json.loads(ended.stdout)
    facts = dict(document["functions"][0]["facts"]) if "functions" in document else {}
    return str(facts.get("sha256", ""))


def verified(path: Path) -> bool:
    check = subprocess.run([sys.executable, "-m", "lpkg", "verify", "--probe", "none", str(path)],
                           capture_output=True, text=True)
    return check.returncode == 0


# --- two runs at once ------------------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(4))
def test_two_builds_at_once_into_one_out(tmp_path: Path, round_: int) -> None:
    # 8 MB of random bytes: a second or so of deflate, so the two runs overlap in every phase that writes.
    project = make_project(tmp_path, files={"blob.bin": os.urandom(8 << 20)})
    if round_ % 2:
        project.out.mkdir()  # and with --out missing, both create it
    # Other timestamps in each zip (SOURCE_DATE_EPOCH): the two zips differ, so which one won can be told.
    first = start(project, "--no-test", "--no-cache", "--backend", "local", tag="a", SOURCE_DATE_EPOCH="315532800")
    second = start(project, "--no-test", "--no-cache", "--backend", "local", tag="b", SOURCE_DATE_EPOCH="946684800")
    ended = [finish(*first), finish(*second)]
    assert [e.exit_code for e in ended] == [0, 0], [e.stderr for e in ended]
    shas = {reported_sha256(e) for e in ended}
    assert len(shas) == 2
    assert sha256(project.artifact) in shas, "the zip in --out is neither run's"
    assert verified(project.artifact)
    assert project.leftovers() == []


def test_two_failing_builds_at_once_leave_nothing(tmp_path: Path) -> None:
    # Verification fails (a .so for the wrong CPU) after the zip was written: both discard theirs, and the
    # --out they both created goes again, without one's removal failing the other.
    wrong_arch = Path(__file__).parent.parent / "fixtures" / "findings" / "native-wrong-arch-bad.zip"
    with zipfile.ZipFile(wrong_arch) as zf:
        native = {n: zf.read(n) for n in zf.namelist() if n.endswith(".so")}
    assert native, "the fixture holds a .so"
    for round_ in range(4):
        project = make_project(tmp_path / str(round_), files={"blob.bin": os.urandom(2 << 20)})
        for name, content in native.items():
            (project.function / Path(name).name).write_bytes(content)
        runs = [start(project, "--no-test", "--no-cache", "--backend", "local", tag=t) for t in "ab"]
        ended = [finish(*r) for r in runs]
        assert [e.exit_code for e in ended] == [1, 1], [e.stderr for e in ended]
        # Each removes the --out it created if it is empty then; the other's temporary zip may still be there
        # at that moment, so an empty --out can stay. Never a file.
        assert not project.out.exists() or list(project.out.iterdir()) == []
        assert project.leftovers() == []


# --- SIGKILL in each phase, then the next run --------------------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _wchan(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return ""


def _temporary_zip(project: Project) -> bool:
    return project.out.is_dir() and any(p.name.endswith(".zip.tmp") for p in project.out.iterdir())


def kill_when(project: Project, args: list[str], ready: Callable[[int], bool], limit: float = 180,
              **env: str) -> int:
    """Start a build, SIGKILL it once `ready(pid)`; its pid."""
    proc, logs = start(project, *args, tag="killed", **env)
    deadline = time.monotonic() + limit
    try:
        while not ready(proc.pid):
            if proc.poll() is not None:
                pytest.fail(f"lpkg ended (exit {proc.returncode}) too early: {(logs / 'stderr').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"lpkg did not reach the phase within {limit} s")
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    return proc.pid


def assert_next_run_cleans(project: Project, *args: str, **env: str) -> None:
    after = run(project, *args, **env)
    assert after.exit_code == 0, after.stderr[-3000:]
    assert verified(project.artifact)
    assert project.leftovers() == []


@pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux's /proc to see lpkg blocked")
def test_sigkill_in_discover(tmp_path: Path) -> None:
    project = make_project(tmp_path, "import shared\n\n\n" + HANDLER)
    shared = project.function.parent / "shared"
    shared.mkdir()
    os.mkfifo(shared / "__init__.py")
    kill_when(project, ["--no-test", "--backend", "local"], lambda pid: "wait_for_partner" in _wchan(pid))
    (shared / "__init__.py").unlink()
    (shared / "__init__.py").write_text("")
    assert_next_run_cleans(project, "--no-test", "--backend", "local")


def test_sigkill_in_assemble(tmp_path: Path) -> None:
    project = make_project(tmp_path, files={"blob.bin": os.urandom(120 << 20)})
    kill_when(project, ["--no-test", "--backend", "local"], lambda pid: _temporary_zip(project))
    assert project.leftovers(), "the killed run left its temporary zip (else this test proves nothing)"
    assert_next_run_cleans(project, "--no-test", "--backend", "local")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux's /proc to see the probe process")
def test_sigkill_in_the_local_import_test(tmp_path: Path) -> None:
    if not any((Path(p) / "python3.11").exists() for p in os.environ.get("PATH", "").split(os.pathsep)):
        pytest.skip("the local import test needs python3.11")
    project = make_project(tmp_path, SLEEPING_HANDLER)
    probes: list[int] = []

    def probing(pid: int) -> bool:
        probes[:] = _children(pid)
        return _temporary_zip(project) and bool(probes) and any((project.root / "shm").iterdir())

    kill_when(project, ["--probe", "local", "--timeout", "600"], probing)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in probes) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [p for p in probes if Path(f"/proc/{p}").exists() and "zombie" not in _status(p)]
    assert alive == [], "the import test's process outlived the killed run"
    (project.function / "handler.py").write_text(HANDLER)
    assert_next_run_cleans(project, "--probe", "local")


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return ""


@pytest.mark.docker
def test_sigkill_in_install(tmp_path: Path, standin_image: str) -> None:
    project = make_project(tmp_path)
    (project.function / "requirements.txt").write_text("lpkg-test-stalled-download==1.0\n")
    index = StalledIndex()
    env = {"PIP_INDEX_URL": index.url}
    try:
        pid = kill_when(project, ["--build-image", standin_image, "--image", standin_image],
                        lambda pid: bool(containers_of(pid)) and index.connected.is_set(), **env)
    finally:
        index.close()
    assert containers_of(pid), "the killed run's container is there (else this test proves nothing)"
    (project.function / "requirements.txt").write_text("# none\n")
    assert_next_run_cleans(project, "--build-image", standin_image, "--image", standin_image)
    assert_no_container(pid)


@pytest.mark.docker
def test_sigkill_in_the_docker_import_test(tmp_path: Path, standin_image: str) -> None:
    project = make_project(tmp_path, SLEEPING_HANDLER)
    pid = kill_when(project, ["--image", standin_image, "--timeout", "600"],
                    lambda pid: _temporary_zip(project) and bool(containers_of(pid)))
    (project.function / "handler.py").write_text(HANDLER)
    assert_next_run_cleans(project, "--image", standin_image)
    assert_no_container(pid)


@pytest.mark.docker
def test_two_builds_at_once_with_docker(tmp_path: Path, standin_image: str) -> None:
    project = make_project(tmp_path, files={"blob.bin": os.urandom(4 << 20)})
    args = ("--image", standin_image, "--no-cache")
    runs = [start(project, *args, tag=t, SOURCE_DATE_EPOCH=e) for t, e in (("a", "315532800"), ("b", "946684800"))]
    ended = [finish(*r) for r in runs]
    assert [e.exit_code for e in ended] == [0, 0], [e.stderr[-2000:] for e in ended]
    assert sha256(project.artifact) in {reported_sha256(e) for e in ended}
    assert verified(project.artifact)
    assert project.leftovers() == []
    for e in ended:
        assert containers_of(e.pid) == []


def test_the_sweep_spares_a_live_run(tmp_path: Path) -> None:
    """The next run removes what dead runs left, never what a live one is writing: a run still assembling
    when another starts keeps its temporary zip and publishes."""
    project = make_project(tmp_path, files={"blob.bin": os.urandom(60 << 20)})
    slow, slow_logs = start(project, "--no-test", "--no-cache", "--backend", "local", tag="slow")
    deadline = time.monotonic() + 120
    while not _temporary_zip(project):
        assert slow.poll() is None and time.monotonic() < deadline, (slow_logs / "stderr").read_text()
        time.sleep(0.02)
    other = run(project, "--no-test", "--no-cache", "--backend", "local")
    assert other.exit_code == 0, other.stderr
    ended = finish(slow, slow_logs)
    assert ended.exit_code == 0, ended.stderr
    assert verified(project.artifact)
    assert project.leftovers() == []


def test_the_sweep_removes_only_what_dead_runs_of_this_host_left(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    project.out.mkdir()
    # Names as a run that has ended made them (its process is gone): stale. One of another host: kept, its run
    # may be alive (an --out shared over the network). One of this live test process: kept.
    made = subprocess.run(
        [sys.executable, "-c", "from lpkg.files import owned_name; print(owned_name('.fn.', '.zip.tmp'))"],
        capture_output=True, text=True, check=True).stdout.strip()
    (project.out / made).write_bytes(b"half a zip")
    other_host = project.out / ".fn.lpkg-00000000-1-0123456789ab.zip.tmp"
    other_host.write_bytes(b"another host's")
    from lpkg.files import owned_name

    live = project.out / owned_name(".fn.", ".zip.tmp")
    live.write_bytes(b"a live run's")
    ended = run(project, "--no-test", "--backend", "local")
    assert ended.exit_code == 0, ended.stderr
    assert sorted(p.name for p in project.out.iterdir()) == sorted(["fn.zip", other_host.name, live.name])
