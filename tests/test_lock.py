"""The lock file's facts and staleness (pure: no container), and `lpkg lock --check` as users run it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from helpers import FIXTURES, run_lpkg

from lpkg.install.lock import INPUTS_MARK, LockInputs, check, read_lock, staleness, write_lock
from lpkg.runtimes import get_runtime

PINNED_API = FIXTURES / "projects" / "pinned-api"
LOCKED = "six==1.17.0 \\\n    --hash=sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274\n"


def function_copy(tmp_path: Path) -> Path:
    shutil.copytree(PINNED_API, tmp_path / "pinned-api")
    return tmp_path / "pinned-api" / "orders"


def inputs_of(function_dir: Path, runtime: str = "python3.11") -> LockInputs:
    return LockInputs((function_dir / "requirements.txt",), (), get_runtime(runtime), "x86_64")


def test_committed_fixture_lock_is_fresh_and_hashed() -> None:
    function_dir = PINNED_API / "orders"
    lock = read_lock(function_dir / "requirements.lock")
    assert lock.hashed
    assert lock.pins >= 10  # requests, pydantic, boto3 and what they need
    assert staleness(lock, inputs_of(function_dir)) is None


def test_changed_requirements_make_the_lock_stale(tmp_path: Path) -> None:
    function_dir = function_copy(tmp_path)
    (function_dir / "requirements.txt").write_text("requests==2.32.3\npydantic==2.10.6\n")
    why = staleness(read_lock(function_dir / "requirements.lock"), inputs_of(function_dir))
    assert why is not None and "requirements changed" in why


def test_another_runtime_makes_the_lock_stale() -> None:
    function_dir = PINNED_API / "orders"
    why = staleness(read_lock(function_dir / "requirements.lock"), inputs_of(function_dir, "python3.12"))
    assert why is not None and "python3.11 x86_64, not python3.12 x86_64" in why


def test_a_file_beside_the_requirements_counts_as_input(tmp_path: Path) -> None:
    # `-r base.txt` lines name siblings; lpkg stages every .txt beside the requirements file.
    function_dir = function_copy(tmp_path)
    (function_dir / "base.txt").write_text("six\n")
    assert staleness(read_lock(function_dir / "requirements.lock"), inputs_of(function_dir)) is not None


def test_hand_written_lock_without_hashes_is_not_hashed_and_not_ours(tmp_path: Path) -> None:
    lock_file = tmp_path / "requirements.lock"
    lock_file.write_text("six==1.17.0\n")
    lock = read_lock(lock_file)
    assert not lock.hashed
    why = staleness(lock, LockInputs((), ("six",), get_runtime("python3.11"), "x86_64"))
    assert why is not None and "not written by lpkg lock" in why


def test_write_lock_puts_the_inputs_line_first_and_reports_no_change(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("six\n")
    inputs = LockInputs((tmp_path / "requirements.txt",), (), get_runtime("python3.11"), "x86_64")
    path = tmp_path / "requirements.lock"
    assert write_lock(path, inputs, LOCKED) is True
    assert path.read_text().startswith(f"{INPUTS_MARK} python3.11 x86_64 sha256:")
    assert read_lock(path).hashed
    assert write_lock(path, inputs, LOCKED) is False  # same content: the file is left alone
    assert check("fn", tmp_path, inputs).status == "fresh"


def test_check_without_a_lock(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("six\n")
    inputs = LockInputs((tmp_path / "requirements.txt",), (), get_runtime("python3.11"), "x86_64")
    assert check("fn", tmp_path, inputs).status == "missing"
    assert check("fn", tmp_path, LockInputs((), (), get_runtime("python3.11"), "x86_64")).ok


def test_lock_check_command_exits_1_on_a_stale_lock(tmp_path: Path) -> None:
    function_dir = function_copy(tmp_path)
    fresh = run_lpkg("lock", "--check", function_dir, "--runtime", "python3.11")
    assert fresh.returncode == 0, fresh.stderr
    assert "fresh" in fresh.stdout
    (function_dir / "requirements.txt").write_text("requests==2.32.3\n")
    stale = run_lpkg("lock", "--check", function_dir, "--runtime", "python3.11")
    assert stale.returncode == 1
    assert "stale" in stale.stdout and "run lpkg lock" in stale.stdout
    assert "Traceback" not in stale.stderr


def test_build_with_a_stale_lock_fails_before_installing(tmp_path: Path) -> None:
    function_dir = function_copy(tmp_path)
    (function_dir / "requirements.txt").write_text("requests==2.32.3\n")
    run = run_lpkg("build", function_dir, "--runtime", "python3.11", "--backend", "local", "--probe", "local",
                   "--out", tmp_path / "out")
    assert run.returncode == 1
    assert "requirements.lock" in run.stderr and "lpkg lock" in run.stderr
    assert not (tmp_path / "out").exists()


def test_lock_without_docker_refuses_another_python_than_the_runtime(tmp_path: Path) -> None:
    # Markers are evaluated by the interpreter that locks: this Python may only lock for its own version.
    other = "python3.12" if sys.version_info[:2] != (3, 12) else "python3.11"
    function_dir = function_copy(tmp_path)
    run = run_lpkg("lock", function_dir, "--runtime", other, "--backend", "local")
    assert run.returncode == 3, run.stdout + run.stderr
    assert f"needs to run on {other}" in run.stderr
    assert "Traceback" not in run.stderr
    committed = (PINNED_API / "orders" / "requirements.lock").read_bytes()
    assert (function_dir / "requirements.lock").read_bytes() == committed  # left as it was
