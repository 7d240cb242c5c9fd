"""The probe's sandbox (issue 6): a handler that allocates 10 GB at import, forks without end, writes outside
/tmp or opens a socket is reported as such, with its file and line, and the host is unaffected: the lpkg
process stays small, no container is left, nothing is written on the host, no connection reaches it."""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import StalledIndex, write_zip

from lpkg.containers.engine import LABEL, LABEL_OWNER

HOST_MARKER = Path("/etc/lpkg-sandbox-marker")


@dataclass(frozen=True)
class Case:
    code: str
    line: int
    handler: str
    severity: str = "error"  # the network's is a warning: Lambda's init has one, the probe has not


CASES = {
    "allocates-10-gb": Case("INIT_OUT_OF_MEMORY", 3,
                            "CHUNK = 100 * 1024 * 1024\n"
                            "\n"
                            "BLOCKS = [bytearray(b'x' * CHUNK) for _ in range(100)]  # 10 GB, touched\n"),
    "forks-without-end": Case("INIT_PROCESS_LIMIT", 4,
                              "import os\n"
                              "\n"
                              "while True:\n"
                              "    os.fork()\n"),
    "writes-outside-tmp": Case("INIT_WRITES_OUTSIDE_TMP", 3,
                               "import pathlib\n"
                               "\n"
                               f"pathlib.Path('{HOST_MARKER}').write_text('escaped')\n"),
    "opens-a-socket": Case("INIT_NETWORK", 3,
                           "import socket\n"
                           "\n"
                           "socket.create_connection(('127.0.0.1', {port}), timeout=5)\n", "warning"),
}
HANDLER_TAIL = "\n\ndef handler(event, context):\n    return 1\n"


def lpkg_containers(pid: int) -> list[str]:
    command = ["docker", "ps", "-aq", "--filter", f"label={LABEL}", "--filter", f"label={LABEL_OWNER}=" +
               f"{socket.gethostname()}:{pid}"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.docker
@pytest.mark.parametrize("name", sorted(CASES))
def test_probe_reports_the_limit_with_file_and_line_and_the_host_is_unaffected(
    name: str, tmp_path: Path, standin_image: str
) -> None:
    case = CASES[name]
    listener = StalledIndex()  # a port on the host's loopback; the probe's connection must never arrive
    try:
        source = case.handler.replace("{port}", str(listener.port)) + HANDLER_TAIL
        zip_path = write_zip(tmp_path / f"{name}.zip", {"handler.py": source})
        proc = subprocess.Popen(
            [sys.executable, "-m", "lpkg", "verify", str(zip_path), "--runtime", "python3.11", "--image",
             standin_image, "--timeout", "60", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        stdout, stderr = proc.communicate(timeout=300)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        listener.close()
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == (1 if case.severity == "error" else 0), stderr
    document: dict[str, Any] = json.loads(stdout)
    findings = document["artifacts"][0]["findings"]
    found = [f for f in findings if f["severity"] == case.severity]
    assert [(f["code"], f["member"], f["line"]) for f in found] == [(case.code, "handler.py", case.line)], findings
    # The host: no container left, nothing written outside the sandbox, no connection, and lpkg itself small
    # (the 10 GB were the container's problem; ru_maxrss is the largest child of this test so far, in KiB).
    assert lpkg_containers(proc.pid) == []
    assert not HOST_MARKER.exists()
    assert not listener.connected.is_set()
    assert usage.ru_maxrss < 1024 * 1024


@pytest.mark.docker
def test_tmp_is_writable_and_the_good_twin_passes(tmp_path: Path, standin_image: str) -> None:
    # The read-only root file system leaves /tmp writable, as Lambda does.
    source = "import pathlib\n\npathlib.Path('/tmp/cache.json').write_text('{}')\n" + HANDLER_TAIL
    zip_path = write_zip(tmp_path / "writes-tmp.zip", {"handler.py": source})
    run = subprocess.run(
        [sys.executable, "-m", "lpkg", "verify", str(zip_path), "--runtime", "python3.11", "--image", standin_image,
         "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "read-only except /tmp" in json.loads(run.stdout)["artifacts"][0]["probe"]
