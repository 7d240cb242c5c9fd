"""lpkg build end to end (issue 3): the real CLI, the stand-in image as build image and runtime image.

Builds that several tests only inspect run once per module (fixtures below). Tests that download from the
package index are marked `network` as well; the in-image (CDK) test needs no Docker at all, so it is not
marked `docker`.
"""

from __future__ import annotations

import compileall
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import FIXTURES, LpkgRun, StalledIndex, run_lpkg

from lpkg.checks.sizes import mb
from lpkg.containers.engine import LABEL, LABEL_OWNER

RDS_DASHBOARD = FIXTURES / "projects" / "rds-dashboard"
NATIVE_DEPS = FIXTURES / "projects" / "native-deps"
BUILD_ENV = {"LPKG_DOCKER_NETWORK": "host"}  # pip in the build container reaches the index over the host's network
# Not the file's mtime nor "now": 2001-09-09, to prove timestamps in the zip do not come from the sources.
OTHER_MTIME = 1_000_000_000
SHARED_MEMBERS = {"shared/__init__.py", "shared/aws_clients.py", "shared/config.py", "shared/logger.py"}

Json = dict[str, Any]


# --- helpers ------------------------------------------------------------------------------------------------


def build_args(function_dir: Path, out: Path, image: str, *extra: str) -> list[str]:
    return ["build", str(function_dir), "--runtime", "python3.11", "--build-image", image, "--image", image,
            "--out", str(out), "--json", *extra]


def run_build(function_dir: Path, out: Path, image: str, *extra: str, umask: int | None = None) -> LpkgRun:
    """`lpkg build --json` of one function; with `umask`, the lpkg process runs under that umask."""
    args = build_args(function_dir, out, image, *extra)
    if umask is None:
        return run_lpkg(*args, env=BUILD_ENV)
    mask = umask
    proc = subprocess.run(
        [sys.executable, "-m", "lpkg", *args], capture_output=True, text=True, timeout=600,
        env={**os.environ, **BUILD_ENV}, preexec_fn=lambda: os.umask(mask),
    )
    return LpkgRun(proc.returncode, proc.stdout, proc.stderr)


def function_report(run: LpkgRun) -> Json:
    """The one function's report from `--json`: stdout is exactly one JSON document, and nothing crashed."""
    assert "Traceback" not in run.stderr, run.stderr
    document = json.loads(run.stdout)
    assert len(document["functions"]) == 1, document
    report: Json = document["functions"][0]
    return report


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def members(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as zf:
        return zf.namelist()


def entries(folder: Path) -> list[str]:
    """What is in a folder, hidden files included; [] when the folder does not exist."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def add_clutter(function_dir: Path) -> None:
    """What a developer's function folder also holds and a Lambda zip must not: bytecode, the function's
    tests, dev requirements, OS files."""
    compileall.compile_dir(function_dir.parent, quiet=1)  # __pycache__/ in the function folder and shared/
    (function_dir / "tests").mkdir()
    (function_dir / "tests" / "test_handler.py").write_text("from handler import handler\n")
    (function_dir / "requirements-dev.txt").write_text("pytest\n")
    (function_dir / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")


def copy_project(source: Path, dest: Path, *, clutter: str | None = None, scramble: bool = False) -> Path:
    """Copy a fixture project; with `clutter`, add clutter to that function's folder. With `scramble`, every
    file and folder then gets another mtime and the modes a umask of 077 gives (0600 files, 0700 folders):
    what differs between two checkouts, never the content."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))
    if clutter is not None:
        add_clutter(dest / "lambda" / clutter)
    if scramble:
        for path in sorted(dest.rglob("*"), reverse=True):  # children before their folder
            path.chmod(0o700 if path.is_dir() else 0o600)
            os.utime(path, (OTHER_MTIME, OTHER_MTIME))
    return dest


def lpkg_containers(pid: int, *, running_only: bool) -> list[str]:
    """IDs of containers carrying lpkg's label that the lpkg process `pid` created (other runs on this
    daemon, e.g. a concurrent test session, are not counted)."""
    command = ["docker", "ps", "-q", "--filter", f"label={LABEL}",
               "--filter", f"label={LABEL_OWNER}={socket.gethostname()}:{pid}"]
    if not running_only:
        command.insert(2, "-a")
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()


@dataclass(frozen=True)
class Built:
    run: LpkgRun
    report: Json
    out: Path
    zip: Path


def build_into(function_dir: Path, out: Path, image: str) -> Built:
    run = run_build(function_dir, out, image)
    return Built(run, function_report(run), out, out / f"{function_dir.name}.zip")


def verify_exit(zip_path: Path, image: str) -> tuple[int, Json]:
    run = run_lpkg("verify", zip_path, "--runtime", "python3.11", "--image", image, "--json")
    assert "Traceback" not in run.stderr, run.stderr
    document: Json = json.loads(run.stdout)
    return run.returncode, document


# --- builds that several tests inspect ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compliance_checker(tmp_path_factory: pytest.TempPathFactory, standin_image: str) -> Built:
    project = copy_project(RDS_DASHBOARD, tmp_path_factory.mktemp("copy-a") / "rds-dashboard",
                           clutter="compliance-checker")
    return build_into(project / "lambda" / "compliance-checker", tmp_path_factory.mktemp("out-a"), standin_image)


@pytest.fixture(scope="module")
def numpy_stats(tmp_path_factory: pytest.TempPathFactory, standin_image: str) -> Built:
    project = copy_project(NATIVE_DEPS, tmp_path_factory.mktemp("copy-a") / "native-deps")
    return build_into(project / "lambda" / "numpy-stats", tmp_path_factory.mktemp("out-a"), standin_image)


@pytest.fixture(scope="module")
def pydantic_api(tmp_path_factory: pytest.TempPathFactory, standin_image: str) -> Built:
    return build_into(NATIVE_DEPS / "lambda" / "pydantic-api", tmp_path_factory.mktemp("out"), standin_image)


# --- the post-mortem's project --------------------------------------------------------------------------------


@pytest.mark.docker
def test_compliance_checker_zip_holds_handler_and_shared_at_its_package_path(compliance_checker: Built) -> None:
    assert compliance_checker.run.returncode == 0, compliance_checker.run.stdout + compliance_checker.run.stderr
    assert compliance_checker.report["ok"] is True
    assert compliance_checker.report["artifact"] == str(compliance_checker.zip)
    assert entries(compliance_checker.out) == ["compliance-checker.zip"]  # no temporary file left beside it
    names = members(compliance_checker.zip)
    files = {n for n in names if not n.endswith("/")}
    # Exactly the handler and the shared package the handler imports; the clutter stayed out.
    assert files == {"handler.py", *SHARED_MEMBERS}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if "requirements" in n or n.startswith("tests/") or ".DS_Store" in n]


@pytest.mark.docker
def test_compliance_checker_zip_passes_lpkg_verify(compliance_checker: Built, standin_image: str) -> None:
    status, document = verify_exit(compliance_checker.zip, standin_image)
    assert status == 0, document
    assert document["ok"] is True


@pytest.mark.docker
def test_build_report_has_sha256_sizes_largest_and_phase_timings(compliance_checker: Built) -> None:
    report = compliance_checker.report
    facts = report["facts"]
    assert facts["sha256"] == sha256_of(compliance_checker.zip)
    assert facts["zipped"] == mb(compliance_checker.zip.stat().st_size)
    with zipfile.ZipFile(compliance_checker.zip) as zf:
        assert facts["unzipped"] == mb(sum(info.file_size for info in zf.infolist()))
        assert int(facts["files"]) == len([i for i in zf.infolist() if not i.is_dir()])
    assert report["largest"].startswith("shared ")  # the biggest top-level entry first
    assert "handler.py" in report["largest"]
    timings = report["timings"]
    assert {"discover", "assemble", "verify", "publish", "total"} <= set(timings)
    assert all(seconds >= 0 for seconds in timings.values())
    assert timings["total"] >= timings["verify"]
    assert "install" not in timings  # no requirements: no build container was needed


@pytest.mark.docker
def test_class_method_imported_as_function_fails_and_keeps_previous_artifact(
    tmp_path: Path, standin_image: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    previous = out / "query-handler.zip"
    previous.write_bytes(b"the previous good artifact, whatever its bytes")
    before = previous.stat()
    run = run_build(RDS_DASHBOARD / "lambda" / "query-handler", out, standin_image)
    assert run.returncode == 1
    report = function_report(run)
    assert report["ok"] is False
    assert report["artifact"] is None
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert [(f["member"], f["line"]) for f in errors] == [("handler.py", 7)]
    assert "get_rds_client" in errors[0]["message"]
    assert "AWSClients" in errors[0]["message"]
    # Nothing new in --out: no zip, no hidden temporary file; the old artifact byte for byte, not rewritten.
    assert entries(out) == ["query-handler.zip"]
    assert previous.read_bytes() == b"the previous good artifact, whatever its bytes"
    assert previous.stat().st_mtime_ns == before.st_mtime_ns
    assert previous.stat().st_ino == before.st_ino


@pytest.mark.docker
@pytest.mark.parametrize("previous_artifact", [True, False], ids=["previous-artifact", "no-out-folder"])
def test_zip_that_fails_the_import_test_is_never_published(
    tmp_path: Path, standin_image: str, previous_artifact: bool
) -> None:
    """Discovery passes, so a temporary zip is written in --out; the probe fails, and it must go again."""
    function = tmp_path / "lambda" / "needs-table"
    function.mkdir(parents=True)
    (function / "handler.py").write_text(
        "import os\n\nTABLE = os.environ['TABLE_NAME']\n\n\ndef handler(event, context):\n    return TABLE\n"
    )
    out = tmp_path / "dist" / "nested"
    if previous_artifact:
        out.mkdir(parents=True)
        (out / "needs-table.zip").write_bytes(b"old")
    run = run_build(function, out, standin_image)
    assert run.returncode == 1
    report = function_report(run)
    assert "INIT_EXCEPTION" in {f["code"] for f in report["findings"]}
    assert "verify" in report["timings"]  # it did get as far as the import test
    if previous_artifact:
        assert entries(out) == ["needs-table.zip"]
        assert (out / "needs-table.zip").read_bytes() == b"old"
    else:
        assert not (tmp_path / "dist").exists()  # the folders made for the temporary zip are gone too


@pytest.mark.docker
def test_syntax_error_in_shared_module_fails_before_any_container(tmp_path: Path, standin_image: str) -> None:
    project = copy_project(RDS_DASHBOARD, tmp_path / "rds-dashboard")
    config = project / "lambda" / "shared" / "config.py"
    lines = config.read_text().splitlines()
    lines.insert(11, "def broken(:")  # becomes line 12
    config.write_text("\n".join(lines) + "\n")
    function = project / "lambda" / "compliance-checker"
    # A requirement, so that going on would start the build container (the name need not exist: it never runs).
    (function / "requirements.txt").write_text("lpkg-test-never-installed==1.0\n")
    out = tmp_path / "out"
    run = run_build(function, out, standin_image)
    assert run.returncode == 1
    report = function_report(run)
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert [(f["member"], f["line"]) for f in errors] == [("shared/config.py", 12)]
    assert "does not parse" in errors[0]["message"]
    assert errors[0]["chain"] == ["handler", "shared.config"]
    # Stopped after discovery: neither the install (build container) nor the import test (runtime container) ran.
    assert set(report["timings"]) == {"discover", "total"}
    assert report["probe"] is None
    assert entries(out) == []
    human = run_lpkg(*[a for a in build_args(function, out, standin_image) if a != "--json"], env=BUILD_ENV)
    assert human.returncode == 1
    assert "shared/config.py:12: FIRST_PARTY_SYNTAX error" in human.stdout


# --- native wheels --------------------------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.network
def test_numpy_function_builds_with_its_extension_modules_and_verifies(numpy_stats: Built, standin_image: str) -> None:
    assert numpy_stats.run.returncode == 0, numpy_stats.run.stdout + numpy_stats.run.stderr[-3000:]
    names = members(numpy_stats.zip)
    assert "handler.py" in names
    assert "numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so" in names
    assert "requirements.txt" not in names
    assert "Successfully installed numpy-2.2.6" in numpy_stats.run.stderr  # pip's progress goes to stderr
    report = numpy_stats.report
    assert "install" in report["timings"]
    largest = report["largest"].split(", ")
    assert len(largest) == 5 and largest[0].startswith("numpy ")
    status, document = verify_exit(numpy_stats.zip, standin_image)
    assert status == 0, document


@pytest.mark.docker
@pytest.mark.network
def test_pydantic_function_builds_with_pydantic_core_and_verifies(pydantic_api: Built, standin_image: str) -> None:
    assert pydantic_api.run.returncode == 0, pydantic_api.run.stdout + pydantic_api.run.stderr[-3000:]
    names = members(pydantic_api.zip)
    assert "pydantic_core/_pydantic_core.cpython-311-x86_64-linux-gnu.so" in names
    assert any(n.startswith("pydantic/") for n in names)
    assert "requirements.txt" not in names
    status, document = verify_exit(pydantic_api.zip, standin_image)
    assert status == 0, document


# --- determinism ----------------------------------------------------------------------------------------------


def assert_same_zip_from_scrambled_copy(first: Built, project: Path, function: str, tmp_path: Path,
                                        image: str) -> None:
    """Build `function` from a scrambled copy of `project` under umask 077 and compare with `first`."""
    assert first.run.returncode == 0, first.run.stderr[-3000:]
    clutter = function if function == "compliance-checker" else None  # as in the first copy
    copy = copy_project(project, tmp_path / "copy-b", clutter=clutter, scramble=True)
    function_dir = copy / "lambda" / function
    out = tmp_path / "out-b"
    # --no-cache: pip really runs again (under the umask), rather than the first build's install being reused.
    second = run_build(function_dir, out, image, "--no-cache", umask=0o077)
    assert second.returncode == 0, second.stdout + second.stderr[-3000:]
    zip_b = out / f"{function}.zip"
    assert stat.S_IMODE(zip_b.stat().st_mode) == 0o600  # the umask really applied to the lpkg process
    assert sha256_of(zip_b) == sha256_of(first.zip)
    assert function_report(second)["facts"]["sha256"] == first.report["facts"]["sha256"] == sha256_of(zip_b)
    with zipfile.ZipFile(zip_b) as zf:  # modes normalised, whatever the sources' modes were
        modes = {stat.S_IMODE(info.external_attr >> 16) for info in zf.infolist()}
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert modes <= {0o644, 0o755}


@pytest.mark.docker
def test_same_function_twice_gives_the_same_zip_whatever_mtimes_and_umask(
    compliance_checker: Built, tmp_path: Path, standin_image: str
) -> None:
    assert_same_zip_from_scrambled_copy(compliance_checker, RDS_DASHBOARD, "compliance-checker", tmp_path,
                                        standin_image)


@pytest.mark.docker
@pytest.mark.network
def test_same_numpy_function_twice_gives_the_same_zip(numpy_stats: Built, tmp_path: Path, standin_image: str) -> None:
    assert_same_zip_from_scrambled_copy(numpy_stats, NATIVE_DEPS, "numpy-stats", tmp_path, standin_image)


@pytest.mark.docker
@pytest.mark.network
def test_unchanged_requirements_reuse_the_installed_dependencies(
    numpy_stats: Built, tmp_path: Path, standin_image: str
) -> None:
    assert numpy_stats.run.returncode == 0, numpy_stats.run.stderr[-3000:]
    copy = copy_project(NATIVE_DEPS, tmp_path / "again")
    again = run_build(copy / "lambda" / "numpy-stats", tmp_path / "out", standin_image)
    report = function_report(again)
    assert again.returncode == 0
    assert "install" not in report["timings"]  # pip did not run
    assert "cached" in report["facts"]["installed_with"]
    assert sha256_of(tmp_path / "out" / "numpy-stats.zip") == sha256_of(numpy_stats.zip)


# --- interrupting the pip step --------------------------------------------------------------------------------


@pytest.fixture
def stalled_index() -> Iterator[StalledIndex]:
    index = StalledIndex()
    yield index
    index.close()


def _default_sigint() -> None:
    # A shell that starts pytest in the background makes SIGINT ignored; Python keeps an ignored SIGINT, so
    # give the lpkg process the default disposition, as an interactive shell would (Python then installs
    # its KeyboardInterrupt handler).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.docker
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_during_pip_removes_the_container_and_writes_nothing(
    tmp_path: Path, standin_image: str, stalled_index: StalledIndex, signum: signal.Signals
) -> None:
    function = tmp_path / "lambda" / "slow-deps"
    function.mkdir(parents=True)
    (function / "handler.py").write_text("def handler(event, context):\n    return {}\n")
    (function / "requirements.txt").write_text("lpkg-test-stalled-download==1.0\n")
    out = tmp_path / "out"
    scratch = tmp_path / "tmp"  # lpkg's temporary folders go here, to check they are removed too
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("PIP_")}
    env.update(BUILD_ENV, PIP_INDEX_URL=stalled_index.url, TMPDIR=str(scratch))
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with stdout.open("w") as out_file, stderr.open("w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lpkg", *build_args(function, out, standin_image)],
            stdout=out_file, stderr=err_file, env=env, preexec_fn=_default_sigint,
        )
        try:
            # Interrupt only once the build container runs and pip inside it is waiting on the index.
            deadline = time.monotonic() + 120
            while not (lpkg_containers(proc.pid, running_only=True) and stalled_index.connected.is_set()):
                if proc.poll() is not None:
                    pytest.fail(f"lpkg ended (exit {proc.returncode}) before pip ran: {stderr.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    pytest.fail("no lpkg build container with pip waiting on the index within 120 s")
                time.sleep(0.1)
            proc.send_signal(signum)
            returncode = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    err = stderr.read_text()
    assert returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert "interrupted" in err
    assert json.loads(stdout.read_text())["error"]["exit_code"] == 130  # --json: still one document
    deadline = time.monotonic() + 5
    while lpkg_containers(proc.pid, running_only=False) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lpkg_containers(proc.pid, running_only=False) == [], "lpkg's build container was left behind"
    assert entries(out) == []  # no zip, no temporary file
    assert entries(scratch) == []  # the staged requirements and the dependency folder are gone


# --- inside the build image (a CDK bundling command): no Docker there ------------------------------------------


@pytest.mark.network
def test_in_image_build_needs_no_docker_client(tmp_path: Path) -> None:
    """`--no-test --backend local`, as a CDK bundling command runs it inside the build image: no daemon, no
    docker command, not even the docker SDK importable. numpy comes as wheels for the target platform."""
    no_sdk = tmp_path / "no-docker-sdk"
    (no_sdk / "docker").mkdir(parents=True)
    (no_sdk / "docker" / "__init__.py").write_text("raise ImportError('the docker SDK must not be needed here')\n")
    empty_path = tmp_path / "empty-bin"
    empty_path.mkdir()
    env = {"DOCKER_HOST": "unix:///nonexistent.sock", "PYTHONPATH": str(no_sdk), "PATH": str(empty_path)}
    out = tmp_path / "asset-output"
    for project, function in ((RDS_DASHBOARD, "compliance-checker"), (NATIVE_DEPS, "numpy-stats")):
        run = run_lpkg("build", project / "lambda" / function, "--runtime", "python3.11", "--no-test",
                       "--backend", "local", "--out", out, "--json", env=env)
        assert run.returncode == 0, run.stdout + run.stderr[-3000:]
        report = function_report(run)
        zip_path = out / f"{function}.zip"
        assert report["artifact"] == str(zip_path)
        assert report["probe"].startswith("not run")
        assert report["facts"]["sha256"] == sha256_of(zip_path)
    assert entries(out) == ["compliance-checker.zip", "numpy-stats.zip"]
    assert SHARED_MEMBERS <= set(members(out / "compliance-checker.zip"))
    assert "numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so" in members(out / "numpy-stats.zip")
    # The host checks read the ELF files: Linux, x86_64, the runtime's CPython and glibc.
    check = run_lpkg("verify", out / "numpy-stats.zip", "--runtime", "python3.11", "--probe", "none",
                     "--json", env=env)
    assert check.returncode == 0, check.stdout


@pytest.mark.docker
def test_a_handler_module_named_with_a_hyphen_builds_and_is_checked(tmp_path: Path, standin_image: str) -> None:
    """aws-samples/serverless-patterns deploys `producer-function.lambda_handler`: the runtime imports it with
    importlib.import_module, which needs no identifier. lpkg builds it, with the shared code it imports, and
    still refuses what is wrong in it."""
    function_dir = tmp_path / "fn" / "producer"
    (function_dir.parent / "shared").mkdir(parents=True)
    (function_dir.parent / "shared" / "__init__.py").write_text("")
    (function_dir.parent / "shared" / "names.py").write_text("STREAM = 'orders'\n")
    function_dir.mkdir()
    handler = function_dir / "producer-function.py"
    handler.write_text("from shared.names import STREAM\n\n\ndef lambda_handler(event, context):\n"
                       "    return STREAM\n")
    good = run_build(function_dir, tmp_path / "dist", standin_image, "--handler", "producer-function.lambda_handler")
    assert good.returncode == 0, good.stdout + good.stderr
    assert function_report(good)["handler"] == "producer-function.lambda_handler"
    with zipfile.ZipFile(tmp_path / "dist" / "producer.zip") as built:
        assert {"producer-function.py", "shared/names.py"} <= set(built.namelist())
    handler.write_text("from shared.names import STREEM\n\n\ndef lambda_handler(event, context):\n"
                       "    return STREEM\n")
    bad = run_build(function_dir, tmp_path / "dist", standin_image, "--handler", "producer-function.lambda_handler")
    assert bad.returncode == 1
    errors = [(f["code"], f["member"], f["line"]) for f in function_report(bad)["findings"] if f["severity"] == "error"]
    assert errors == [("FIRST_PARTY_MISSING", "producer-function.py", 1)]
