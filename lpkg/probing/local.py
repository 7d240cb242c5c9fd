"""The probe in a subprocess of a local python3.X: where there is no Docker, and said so (not sandboxed)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lpkg.errors import EnvironmentProblem
from lpkg.probing.request import LAYER_DIR, TASK_DIR, ProbeOutcome, ProbeRequest, ProbeRun, parse_document, write_probe
from lpkg.runtimes import (
    PROBE_MEMORY_MB,
    RUNTIME_DIR,
    Runtime,
)


def local_interpreter(runtime: Runtime) -> str | None:
    """A python3.X of the runtime's minor version that answers: on PATH, or the Lambda images' own."""
    for candidate in (shutil.which(f"python{runtime.minor}"), runtime.interpreter):
        if candidate and Path(candidate).is_file() and _answers_as(candidate, runtime):
            return candidate  # (a pyenv shim of a version not installed does not answer)
    return None


def in_lambda_image(interpreter: str, runtime: Runtime) -> bool:
    """True inside a Lambda (build) image: its /var/lang/bin/python3.X is Lambda's interpreter on Lambda's OS."""
    return Path(interpreter).absolute().parent == Path(runtime.interpreter).parent


class LocalProber:
    """The probe in a subprocess of a local python3.X: isolated (-I, a scrubbed environment, a temporary
    working folder) but not sandboxed; other OS and glibc unless it is the Lambda image's own interpreter."""

    def __init__(self, runtime: Runtime) -> None:
        found = local_interpreter(runtime)
        if found is None:
            raise EnvironmentProblem(
                f"no Docker daemon and no local python{runtime.minor} to import the handler with",
                hint=f"start Docker, install python{runtime.minor}, or use --probe none for host checks only",
            )
        self.interpreter = found
        self.runtime = runtime
        if in_lambda_image(found, runtime):
            self.description = (
                f"local:{found} (the Lambda image's interpreter and OS; NOT sandboxed: the network is not cut off)"
            )
        else:
            self.description = (
                f"local:{found} (NOT sandboxed; this machine's OS and libraries, not Lambda's: "
                "native libraries and glibc are checked on the host only)"
            )

    @contextlib.contextmanager
    def prepare(self, root: Path, request: ProbeRequest) -> Iterator[ProbeRun]:
        # request.bytecode is not used: without a sandbox the probe could write anything into the store, and a
        # local probe is the fallback, not the path worth speeding up.
        yield lambda on_running: self.run(root, request, on_running)

    def run(self, root: Path, request: ProbeRequest, on_running: Callable[[], None] = lambda: None) -> ProbeOutcome:
        probe = write_probe(root, request)
        task_root, opt = str(root / TASK_DIR), str(root / LAYER_DIR)
        runtime_dir = str(root / RUNTIME_DIR.lstrip("/"))
        command = [
            self.interpreter, "-I", "-S", str(probe / "entry.py"),
            *request.entry_args(str(probe), self.runtime.provided_modules),
            "--task-root", task_root, "--opt", opt, "--runtime-dir", runtime_dir, "--stand-ins",
            "--memory-mb", str(PROBE_MEMORY_MB), "--exit-with", str(os.getpid()),
            "--lambda-path", json.dumps(self.runtime.sys_path(task_root, opt, runtime_dir)),
        ]
        with tempfile.TemporaryDirectory(prefix="lpkg-local-home-") as home:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "TMPDIR": home}
            on_running()
            try:
                proc = subprocess.run(
                    command, cwd=task_root, env=env, stdin=subprocess.DEVNULL,
                    capture_output=True, timeout=request.wall_seconds,
                )
            except subprocess.TimeoutExpired:
                document: dict[str, Any] = {"import": {"status": "timeout", "seconds": request.timeout}}
            else:
                document = parse_document(proc.stdout, proc.stderr, self.interpreter)
        return ProbeOutcome(document, task_root, opt, True, self.description)


def _answers_as(interpreter: str, runtime: Runtime) -> bool:
    try:
        proc = subprocess.run(
            [interpreter, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and proc.stdout.strip() == runtime.minor

