"""Fast and pinned (issue 8), end to end with the stand-in image: an unchanged rebuild starts no container,
any input change rebuilds, `lpkg lock` pins with hashes that `build` enforces, `--compile` ships .pyc
written by the target interpreter and the zip stays byte-identical."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from helpers import FIXTURES, LpkgRun, run_lpkg

from lpkg.containers.engine import LABEL
from lpkg.containers.image_ids import image_id

RDS_DASHBOARD = FIXTURES / "projects" / "rds-dashboard"
BUILD_ENV = {"LPKG_DOCKER_NETWORK": "host"}

Json = dict[str, Any]


def build_args(function_dir: Path, out: Path, image: str, *extra: str) -> list[str]:
    return ["build", str(function_dir), "--runtime", "python3.11", "--build-image", image, "--image", image,
            "--out", str(out), "--json", *extra]


def build(function_dir: Path, out: Path, image: str, *extra: str, env: dict[str, str] | None = None) -> LpkgRun:
    return run_lpkg(*build_args(function_dir, out, image, *extra), env={**BUILD_ENV, **(env or {})})


def report_of(run: LpkgRun) -> Json:
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    report: Json = json.loads(run.stdout)["functions"][0]
    return report


def up_to_date(report: Json) -> bool:
    return "up_to_date" in report["facts"]


def lpkg_containers_created(since: str, until: str) -> list[str]:
    """Containers with lpkg's label that the daemon created in the window (any lpkg run on this daemon)."""
    events = subprocess.run(
        ["docker", "events", "--since", since, "--until", until, "--filter", f"label={LABEL}",
         "--filter", "event=create", "--format", "{{.Actor.Attributes.io.lpkg.owner}}"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    return events.split()


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def checker(tmp_path: Path) -> Path:
    shutil.copytree(RDS_DASHBOARD, tmp_path / "rds-dashboard", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "rds-dashboard" / "lambda" / "compliance-checker"


@pytest.mark.docker
def test_image_id_without_the_sdk_matches_docker(standin_image: str) -> None:
    inspected = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", standin_image],
                               capture_output=True, text=True, check=True).stdout.strip()
    assert image_id(standin_image) == inspected
    assert image_id("lpkg-standin/no-such-image:0") is None


@pytest.mark.docker
def test_unchanged_rebuild_reports_up_to_date_and_starts_no_container(
    checker: Path, tmp_path: Path, standin_image: str
) -> None:
    out = tmp_path / "out"
    before_first = now()
    first = report_of(build(checker, out, standin_image))
    assert not up_to_date(first)
    # The events query sees a real build's containers (the import test's), so an empty answer below means something.
    assert lpkg_containers_created(before_first, now())
    zip_path = out / "compliance-checker.zip"
    stamp = zip_path.stat().st_mtime_ns
    before = now()
    # Started here rather than through run_lpkg, to know its pid: lpkg labels its containers with it.
    proc = subprocess.Popen([sys.executable, "-m", "lpkg", *build_args(checker, out, standin_image)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **BUILD_ENV})
    stdout, stderr = proc.communicate(timeout=600)
    after = now()
    second = report_of(LpkgRun(proc.returncode, stdout, stderr))
    assert up_to_date(second)
    assert second["artifact"] == str(zip_path.absolute())
    assert second["facts"]["sha256"] == first["facts"]["sha256"]
    assert "verify" not in second["timings"] and "assemble" not in second["timings"]
    assert zip_path.stat().st_mtime_ns == stamp  # not rewritten
    assert f"{socket.gethostname()}:{proc.pid}" not in lpkg_containers_created(before, after)


@pytest.mark.docker
def test_a_content_change_an_option_change_and_a_touched_zip_each_rebuild(
    checker: Path, tmp_path: Path, standin_image: str
) -> None:
    out = tmp_path / "out"
    zip_path = out / "compliance-checker.zip"
    report_of(build(checker, out, standin_image))
    # Only the mtime of a source changes: its content decides, so still up to date.
    os.utime(checker / "handler.py", (1_000_000_000, 1_000_000_000))
    assert up_to_date(report_of(build(checker, out, standin_image)))
    # The code changes: re-zipped and verified again (the import test ran).
    (checker / "handler.py").write_text((checker / "handler.py").read_text() + "\nEDITED = 1\n")
    edited = report_of(build(checker, out, standin_image))
    assert not up_to_date(edited) and "verify" in edited["timings"]
    # A first-party package the handler imports changes.
    shared = checker.parent / "shared" / "config.py"
    shared.write_text(shared.read_text() + "\n# edited\n")
    assert not up_to_date(report_of(build(checker, out, standin_image)))
    # An option that decides the verdict changes.
    assert not up_to_date(report_of(build(checker, out, standin_image, "--timeout", "45")))
    assert up_to_date(report_of(build(checker, out, standin_image, "--timeout", "45")))
    # The published zip was replaced by something else: rebuilt, not trusted.
    zip_path.write_bytes(zip_path.read_bytes())
    assert not up_to_date(report_of(build(checker, out, standin_image, "--timeout", "45")))
    # --no-cache always rebuilds.
    assert not up_to_date(report_of(build(checker, out, standin_image, "--timeout", "45", "--no-cache")))


@pytest.mark.docker
def test_failed_rebuild_keeps_the_record_of_the_good_zip(checker: Path, tmp_path: Path, standin_image: str) -> None:
    out = tmp_path / "out"
    report_of(build(checker, out, standin_image))
    handler = checker / "handler.py"
    good = handler.read_text()
    handler.write_text(good + "\nraise KeyError('TABLE_NAME')\n")
    broken = build(checker, out, standin_image)
    assert broken.returncode == 1
    handler.write_text(good)
    assert up_to_date(report_of(build(checker, out, standin_image)))  # the good zip is still the one published


@pytest.mark.docker
def test_cache_info_and_clear(checker: Path, tmp_path: Path, standin_image: str) -> None:
    cache = tmp_path / "cache"
    env = {"LPKG_CACHE_DIR": str(cache)}
    report_of(build(checker, tmp_path / "out", standin_image, env=env))
    info = run_lpkg("cache", "info", env=env)
    assert info.returncode == 0
    assert str(cache) in info.stdout and "builds/" in info.stdout
    assert run_lpkg("cache", "clear", env=env).returncode == 0
    assert not (cache / "builds").exists()
    assert not up_to_date(report_of(build(checker, tmp_path / "out", standin_image, env=env)))


# --- lock, --require-hashes, --compile (real packages from the index) -----------------------------------------


@pytest.fixture(scope="module")
def locked_function(tmp_path_factory: pytest.TempPathFactory, standin_image: str) -> Path:
    """A function needing `six` and `attrs`, locked in the build image by `lpkg lock`."""
    function_dir = tmp_path_factory.mktemp("locked") / "lambda" / "pinned"
    function_dir.mkdir(parents=True)
    (function_dir / "handler.py").write_text(
        "import attrs\nimport six\n\n\ndef handler(event, context):\n    return six.text_type(attrs.__name__)\n"
    )
    (function_dir / "requirements.txt").write_text("six==1.17.0\nattrs\n")
    run = run_lpkg("lock", function_dir, "--runtime", "python3.11", "--build-image", standin_image, env=BUILD_ENV)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    return function_dir


@pytest.mark.docker
@pytest.mark.network
def test_lock_writes_hashes_and_a_fresh_inputs_line(locked_function: Path) -> None:
    text = (locked_function / "requirements.lock").read_text()
    assert text.startswith("# lpkg-lock-inputs: python3.11 x86_64 sha256:")
    assert "six==1.17.0" in text and "attrs==" in text
    assert text.count("--hash=sha256:") >= 2
    assert "-r pinned/requirements.txt" in text  # annotations name the input as the function folder has it
    check = run_lpkg("lock", "--check", locked_function, "--runtime", "python3.11")
    assert check.returncode == 0, check.stdout


@pytest.mark.docker
@pytest.mark.network
def test_build_installs_the_lock_with_require_hashes(locked_function: Path, tmp_path: Path,
                                                      standin_image: str) -> None:
    report = report_of(build(locked_function, tmp_path / "out", standin_image))
    assert "--require-hashes" in report["facts"]["installed_with"]
    with zipfile.ZipFile(tmp_path / "out" / "pinned.zip") as zf:
        names = zf.namelist()
    assert "six.py" in names and "attrs/__init__.py" in names
    assert "requirements.lock" not in names


@pytest.mark.docker
@pytest.mark.network
def test_a_wrong_hash_in_the_lock_fails_the_install(locked_function: Path, tmp_path: Path,
                                                     standin_image: str) -> None:
    copy = tmp_path / "lambda" / "pinned"
    shutil.copytree(locked_function, copy)
    lock_file = copy / "requirements.lock"
    text = lock_file.read_text()
    start = text.index("six==1.17.0")
    end = text.index("# via", start)
    # Every hash listed for six becomes one of a file that does not exist.
    lock_file.write_text(text[:start] + re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, text[start:end])
                         + text[end:])
    run = build(copy, tmp_path / "out", standin_image, "--no-cache")
    assert run.returncode == 1, run.stdout
    assert "hash" in run.stderr.lower()
    assert not (tmp_path / "out" / "pinned.zip").exists()


@pytest.mark.docker
@pytest.mark.network
def test_compile_ships_unchecked_hash_pyc_and_the_zip_is_reproducible(
    locked_function: Path, tmp_path: Path, standin_image: str
) -> None:
    zips = []
    for attempt in ("a", "b"):
        out = tmp_path / attempt
        # --no-cache: the dependencies are installed and compiled afresh each time.
        report = report_of(build(locked_function, out, standin_image, "--compile", "--no-cache"))
        assert "compile" in report["timings"]
        zips.append(out / "pinned.zip")
    assert zips[0].read_bytes() == zips[1].read_bytes()
    with zipfile.ZipFile(zips[0]) as zf:
        names = set(zf.namelist())
        handler_pyc = zf.read("__pycache__/handler.cpython-311.pyc")
        six_pyc = zf.read("__pycache__/six.cpython-311.pyc")
    assert "attrs/__pycache__/__init__.cpython-311.pyc" in names
    for pyc in (handler_pyc, six_pyc):
        # PEP 552 flags word: bit 0 hash-based, bit 1 check_source; unchecked-hash is 0b01.
        assert int.from_bytes(pyc[4:8], "little") == 0b01
    # Code objects name the file where Lambda will have it.
    assert b"/var/task/handler.py" in handler_pyc


@pytest.mark.docker
@pytest.mark.network
def test_compiled_code_only_change_recompiles_the_function_only(
    locked_function: Path, tmp_path: Path, standin_image: str
) -> None:
    copy = tmp_path / "lambda" / "pinned"
    shutil.copytree(locked_function, copy)
    out = tmp_path / "out"
    report_of(build(copy, out, standin_image, "--compile"))
    (copy / "handler.py").write_text((copy / "handler.py").read_text() + "\nVERSION = 2\n")
    report = report_of(build(copy, out, standin_image, "--compile"))
    assert "install" not in report["timings"]  # dependencies (compiled) came from the cache
    with zipfile.ZipFile(out / "pinned.zip") as zf:
        pyc = zf.read("__pycache__/handler.cpython-311.pyc")
    assert b"VERSION" in pyc


@pytest.mark.docker
@pytest.mark.network
def test_code_only_change_reuses_the_zipped_dependencies_and_gives_the_uncached_zip(
    locked_function: Path, tmp_path: Path, standin_image: str
) -> None:
    copy = tmp_path / "lambda" / "pinned"
    shutil.copytree(locked_function, copy)
    env = {"LPKG_CACHE_DIR": str(tmp_path / "cache")}
    report_of(build(copy, tmp_path / "out", standin_image, env=env))
    parts = list((tmp_path / "cache" / "deps").glob("*/zip/*.zip"))
    assert len(parts) == 1
    part = parts[0]
    kept = (part.stat().st_ino, part.stat().st_mtime_ns)
    (copy / "handler.py").write_text((copy / "handler.py").read_text() + "\nEDITED = 1\n")
    edited = report_of(build(copy, tmp_path / "out", standin_image, env=env))
    assert "install" not in edited["timings"] and "verify" in edited["timings"]
    assert (part.stat().st_ino, part.stat().st_mtime_ns) == kept  # copied, not written again
    with zipfile.ZipFile(part) as zf:
        start_of_directory = zf.start_dir
    zip_bytes = (tmp_path / "out" / "pinned.zip").read_bytes()
    assert zip_bytes[:start_of_directory] == part.read_bytes()[:start_of_directory]
    # Byte for byte what a build that installs and zips everything afresh writes.
    fresh = report_of(build(copy, tmp_path / "fresh", standin_image, "--no-cache", env=env))
    assert fresh["facts"]["sha256"] == edited["facts"]["sha256"]
