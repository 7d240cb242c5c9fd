"""The probe's entry point. Runs with the *target* interpreter, inside the runtime container
(or, without Docker, in an isolated local subprocess). Standard library only; Python >= 3.9.

It never imports packaged code itself: each job (the real import, the graph walk) runs in a
fresh child interpreter that writes its result to a file, so whatever the packaged code prints,
raises or hangs, this process prints exactly one JSON document on stdout.

    python entry.py --handler MODULE.FUNCTION --task-root /var/task --opt /opt --timeout 30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_WAIT_SECONDS = 900.0


def lambda_sys_path(task_root: str, opt: str, runtime_dir: str) -> list[str]:
    """sys.path as the Lambda runtime orders it, then this interpreter's stdlib."""
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    entries = [task_root, f"{opt}/python/lib/python{minor}/site-packages", f"{opt}/python"]
    if sys.version_info >= (3, 11):
        entries.append(f"/var/lang/lib/python{minor}/site-packages")
    entries.append(runtime_dir)
    stdlib = [p for p in sys.path if p and "site-packages" not in p and "dist-packages" not in p and p != HERE]
    return entries + stdlib


def lambda_environment(args: argparse.Namespace) -> dict[str, str]:
    """The variables Lambda sets before init; boto3 clients created at import time need the region."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key in ("PATH", "LD_LIBRARY_PATH", "LANG", "TZ", "HOME", "TMPDIR")
    }
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    env.update(
        {
            "LAMBDA_TASK_ROOT": args.task_root,
            "LAMBDA_RUNTIME_DIR": args.runtime_dir,
            "_HANDLER": args.handler,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{minor}",
            "AWS_LAMBDA_FUNCTION_NAME": "lpkg-probe",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/lpkg-probe",
            "AWS_LAMBDA_LOG_STREAM_NAME": "probe",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "PYTHONDONTWRITEBYTECODE": "1",
            # For the jobs: which modules the runtime provides, and whether to stand in for them (local probe).
            "LPKG_PROBE_RUNTIME_PROVIDED": args.runtime_provided,
            "LPKG_PROBE_STAND_INS": "1" if args.stand_ins else "0",
            "PYTHONNOUSERSITE": "1",
        }
    )
    return env


def start_job(
    job: str, args: argparse.Namespace, scratch: str, deadline: float
) -> tuple[subprocess.Popen[bytes], str]:
    """Start one job in a fresh interpreter; it writes its result to a file in `scratch`."""
    script = os.path.join(HERE, "importer.py" if job == "import" else "walk.py")
    result_path = os.path.join(scratch, f"{job}.json")
    command = [
        sys.executable,
        "-S",  # no site: sys.path is exactly Lambda's, set by the job
        script,
        "--handler", args.handler,
        "--result", result_path,
        "--sys-path", json.dumps(lambda_sys_path(args.task_root, args.opt, args.runtime_dir)),
        "--task-root", args.task_root,
        "--opt", args.opt,
        "--runtime-dir", args.runtime_dir,
        "--probe-lib", os.path.join(HERE, "lib"),
        "--timeout", str(round(max(1.0, deadline - time.monotonic()), 3)),
    ]
    proc = subprocess.Popen(
        command,
        cwd=args.task_root,
        env=lambda_environment(args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return proc, result_path


def finish_job(proc: subprocess.Popen[bytes], result_path: str, started: float, deadline: float) -> dict[str, Any]:
    """Wait for a job until the deadline (a hang is killed), then read what it wrote."""
    try:
        output, _ = proc.communicate(timeout=max(0.5, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        return {"status": "timeout", "seconds": round(time.monotonic() - started, 3), "output": _tail(output)}
    elapsed = round(time.monotonic() - started, 3)
    try:
        with open(result_path, encoding="utf-8") as fh:
            result: dict[str, Any] = json.load(fh)
    except (OSError, ValueError):
        # The child died before writing: killed (memory), or the code called os._exit.
        return {"status": "crashed", "returncode": proc.returncode, "seconds": elapsed, "output": _tail(output)}
    result["seconds"] = elapsed
    result["output"] = _tail(output)
    return result


def _tail(data: bytes | str | None, limit: int = 4000) -> str:
    if data is None:
        return ""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text[-limit:]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handler", required=True)
    parser.add_argument("--task-root", default="/var/task")
    parser.add_argument("--opt", default="/opt")
    parser.add_argument("--runtime-dir", default="/var/runtime")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--jobs", default="import,walk")
    parser.add_argument("--runtime-provided", default="", help="comma-separated modules the runtime ships")
    parser.add_argument("--stand-ins", action="store_true")
    parser.add_argument("--wait-for", help="start only once this file exists (the files are being unpacked)")
    args = parser.parse_args()
    if args.wait_for:
        give_up = time.monotonic() + MAX_WAIT_SECONDS
        while not os.path.exists(args.wait_for):
            if time.monotonic() > give_up:
                return 1  # lpkg went away; nothing to probe
            time.sleep(0.005)
    deadline = time.monotonic() + args.timeout
    document: dict[str, Any] = {
        "python": ".".join(str(n) for n in sys.version_info[:3]),
        "user": os.getuid() if hasattr(os, "getuid") else None,
    }
    # The jobs run side by side: the real import and the graph walk are independent.
    with tempfile.TemporaryDirectory(prefix="lpkg-probe-") as scratch:
        running = {}
        for job in args.jobs.split(","):
            if job == "walk" and sys.version_info < (3, 10):
                document[job] = {"status": "skipped", "reason": "modulegraph2 needs Python 3.10 or newer"}
                continue
            running[job] = (time.monotonic(), *start_job(job, args, scratch, deadline))
        for job, (started, proc, result_path) in running.items():
            document[job] = finish_job(proc, result_path, started, deadline)
    sys.stdout.write(json.dumps(document))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
