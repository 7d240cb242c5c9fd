"""The Docker probe's entry runs no packaged code where it sees a network (--no-network): the guard behind
the sandbox's network namespace (lpkg/probing/docker.py gets it from runc, not from Docker's network "none").
Run on this machine, whose network namespace has interfaces besides the loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ENTRY = Path(__file__).resolve().parent.parent / "lpkg" / "probe" / "entry.py"


def interfaces_here() -> list[str]:
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)


def run_entry(task_root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-I", "-S", str(ENTRY), "--handler", "handler.handler", "--task-root", str(task_root),
               "--lambda-path", json.dumps([str(task_root)]), "--jobs", "import", "--timeout", "30", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=task_root)


@pytest.fixture
def marking_handler(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "imported"
    task_root = tmp_path / "task"
    task_root.mkdir()
    (task_root / "handler.py").write_text(f"open({str(marker)!r}, 'w').close()\n\n\ndef handler(event, context):\n"
                                          "    return 1\n")
    return task_root, marker


@pytest.mark.skipif(not Path("/proc/net/dev").exists(), reason="needs Linux's /proc/net/dev")
def test_with_a_network_the_entry_imports_nothing_and_says_so(marking_handler: tuple[Path, Path]) -> None:
    task_root, marker = marking_handler
    here = interfaces_here()
    if set(here) <= {"lo"}:
        pytest.skip("this machine has no interface but the loopback")
    guarded = run_entry(task_root, "--no-network")
    assert guarded.returncode == 0, guarded.stderr
    document = json.loads(guarded.stdout)
    assert document["network"] == {"isolated": False, "interfaces": here}
    assert "import" not in document
    assert not marker.exists()
    # The same entry without the guard imports the handler: the guard, not the arguments, stopped it.
    unguarded = run_entry(task_root)
    assert json.loads(unguarded.stdout)["import"]["status"] == "ok", unguarded.stdout + unguarded.stderr
    assert marker.exists()


def test_lpkg_turns_the_entrys_refusal_into_an_environment_error() -> None:
    from lpkg.containers.engine import RunResult
    from lpkg.errors import EnvironmentProblem
    from lpkg.probing.docker import _document_of

    refused = {"python": "3.11.2", "network": {"isolated": False, "interfaces": ["eth0", "lo"]}}
    result = RunResult(0, json.dumps(refused).encode(), b"", timed_out=False, oom_killed=False)
    with pytest.raises(EnvironmentProblem) as raised:
        _document_of(result, 30.0, "some/image:3.11")
    assert raised.value.exit_code == 3
    assert "had a network (eth0, lo): nothing was imported in it" in str(raised.value)
    isolated = RunResult(0, json.dumps({"python": "3.11.2", "import": {"status": "ok"}}).encode(), b"", False, False)
    assert _document_of(isolated, 30.0, "some/image:3.11")["import"] == {"status": "ok"}
