"""Without Docker (issue 5): a dead daemon per process (DOCKER_HOST at a socket nobody listens on — the
shared daemon is never touched), the local backend's platform tags, the probe in a local interpreter or
not at all."""

from __future__ import annotations

import json
import shutil
import socket
import zipfile
from pathlib import Path

import pytest
from helpers import FIXTURES, REPO, run_lpkg, write_zip

from lpkg.errors import BuildFailed
from lpkg.install.local import local_failure
from lpkg.runtimes import RUNTIMES

RDS_DASHBOARD = FIXTURES / "projects" / "rds-dashboard"
needs_python311 = pytest.mark.skipif(shutil.which("python3.11") is None, reason="no python3.11 on PATH")


@pytest.fixture()
def dead_docker(tmp_path: Path) -> dict[str, str]:
    """DOCKER_HOST at a Unix socket that was bound and closed: connecting is refused, as with a stopped daemon."""
    path = tmp_path / "dead-docker.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()
    return {"DOCKER_HOST": f"unix://{path}"}


def test_wheel_platforms_follow_the_runtimes_glibc() -> None:
    al2 = RUNTIMES["python3.11"].wheel_platforms("x86_64")
    assert al2[0] == "manylinux_2_26_x86_64"
    assert al2[-3:] == ("manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")
    assert "manylinux_2_27_x86_64" not in al2 and "manylinux_2_17_x86_64" in al2
    al2023 = RUNTIMES["python3.12"].wheel_platforms("arm64")
    assert al2023[0] == "manylinux_2_34_aarch64"
    assert al2023[-1] == "manylinux2014_aarch64"  # manylinux1/2010 were never defined for aarch64
    assert len(al2023) == 34 - 17 + 1 + 1


def test_no_wheel_is_named_and_points_to_docker() -> None:
    pip_output = (
        "ERROR: Could not find a version that satisfies the requirement psycopg2==2.9.9 (from versions: none)\n"
        "ERROR: No matching distribution found for psycopg2==2.9.9\n"
    )
    error = local_failure(pip_output, RUNTIMES["python3.11"], "x86_64", 1)
    assert isinstance(error, BuildFailed)
    assert "psycopg2==2.9.9 has no wheel for python3.11 on x86_64" in error.message
    assert error.hint is not None and "--backend docker" in error.hint


@pytest.mark.network
def test_local_backend_names_the_dependency_without_a_wheel(tmp_path: Path, dead_docker: dict[str, str]) -> None:
    function = tmp_path / "lambda" / "db"
    function.mkdir(parents=True)
    (function / "handler.py").write_text("def handler(event, context):\n    return 1\n")
    # psycopg2 (not -binary) is published as a source distribution only.
    (function / "requirements.txt").write_text("psycopg2==2.9.9\n")
    run = run_lpkg("build", function, "--runtime", "python3.11", "--out", tmp_path / "out", env=dead_docker)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "installing dependencies on this machine" in run.stderr  # the auto backend's one line
    assert "psycopg2==2.9.9 has no wheel for python3.11 on x86_64" in run.stderr
    assert "--backend docker" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@needs_python311
def test_readme_first_command_builds_and_verifies_without_docker(tmp_path: Path, dead_docker: dict[str, str]) -> None:
    """The README's first command, run from a fresh folder, on a machine where no Docker daemon answers."""
    run = run_lpkg("build", RDS_DASHBOARD / "lambda" / "compliance-checker", env=dead_docker, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    notices = [line for line in run.stderr.splitlines() if "no Docker daemon answers" in line]
    assert len(notices) == 1, run.stderr
    assert "importing the handler with" in notices[0] and "NOT sandboxed" in notices[0]
    artifact = tmp_path / "dist" / "compliance-checker.zip"
    with zipfile.ZipFile(artifact) as zf:
        assert {"handler.py", "shared/aws_clients.py"} <= set(zf.namelist())
    assert "probe: local:" in run.stdout
    # ... and the zip verifies the same way.
    check = run_lpkg("verify", artifact, "--runtime", "python3.11", "--json", env=dead_docker, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["artifacts"][0]["probe"].startswith("local:")
    # The post-mortem's function still fails at its line, without Docker.
    broken = run_lpkg("build", RDS_DASHBOARD / "lambda" / "query-handler", env=dead_docker, cwd=tmp_path)
    assert broken.returncode == 1
    assert "handler.py:7" in broken.stdout
    assert not (tmp_path / "dist" / "query-handler.zip").exists()


def test_no_docker_and_no_interpreter_checks_statically_and_says_what_was_not(
    tmp_path: Path, dead_docker: dict[str, str]
) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    z = write_zip(tmp_path / "ok.zip", {"handler.py": "import requests\ndef handler(e, c):\n    return 1\n"})
    run = run_lpkg("verify", z, "--runtime", "python3.11", "--json", env={**dead_docker, "PATH": str(empty_bin)})
    assert run.returncode == 0, run.stdout + run.stderr  # a warning, not a failure
    artifact = json.loads(run.stdout)["artifacts"][0]
    warning = next(f for f in artifact["findings"] if f["code"] == "PROBE_NOT_RUN")
    assert warning["severity"] == "warning"
    assert "no local python3.11" in warning["message"]
    assert "Not checked: the real import" in warning["message"]
    assert artifact["probe"].startswith("not run: no Docker daemon answers")
    assert "static checks only" in run.stderr
    # Asked for explicitly, a local probe that cannot be had is still an environment problem (exit 3).
    explicit = run_lpkg("verify", z, "--runtime", "python3.11", "--probe", "local", env={"PATH": str(empty_bin)})
    assert explicit.returncode == 3


def test_local_probe_runs_isolated(tmp_path: Path) -> None:
    """A scrubbed environment (Lambda's variables, not the caller's), Lambda's sys.path (nothing from
    PYTHONPATH) and the scratch task root as working folder: what the handler sees at import."""
    code = (
        "import json, os, sys\n"
        "SEEN = {'cwd': os.getcwd(), 'env': sorted(os.environ), 'path': sys.path}\n"
        "raise RuntimeError(json.dumps(SEEN))\n"
        "def handler(e, c):\n    return 1\n"
    )
    z = write_zip(tmp_path / "env.zip", {"handler.py": code})
    run = run_lpkg("verify", z, "--runtime", "python3.11", "--probe", "local", "--json",
                   env={"LPKG_TEST_CALLER_SECRET": "must-not-leak", "PYTHONPATH": str(REPO)})
    if run.returncode == 3:
        pytest.skip("no local python3.11")
    failure = next(f for f in json.loads(run.stdout)["artifacts"][0]["findings"] if f["code"] == "INIT_EXCEPTION")
    seen = json.loads(failure["message"].split("RuntimeError: ", 1)[1].split(" — ")[0])
    assert "LPKG_TEST_CALLER_SECRET" not in seen["env"] and "PYTHONPATH" not in seen["env"]
    assert "AWS_LAMBDA_FUNCTION_NAME" in seen["env"]
    assert str(REPO) not in seen["path"] and seen["path"][0] == "/var/task"
    assert seen["cwd"] == "/var/task"  # said as Lambda's path; really the scratch copy's task root
