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
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_WAIT_SECONDS = 900.0
INVOKE_GRACE_SECONDS = 2.0  # beyond the function's timeout, for the job to print its stack and end
FAULTHANDLER_TIMEOUT = "Timeout ("  # how faulthandler.dump_traceback_later's report begins
DUMP_SIGNAL = "SIGUSR1"  # asks a hung job for its stack (importer.py registers faulthandler for it)
STACK_DUMP_SECONDS = 1.0  # how long the job gets to write it before it is killed
MAX_LAYER_STAND_INS = 8  # modules of unseen layers stood in for, one more import try each


def lambda_sys_path(lambda_path: list[str]) -> list[str]:
    """sys.path as the Lambda runtime orders it (lpkg's runtime table, given), then this interpreter's stdlib."""
    stdlib = [p for p in sys.path if p and "site-packages" not in p and "dist-packages" not in p and p != HERE]
    return lambda_path + stdlib


def lambda_environment(args: argparse.Namespace, layer_stand_ins: tuple[str, ...] = ()) -> dict[str, str]:
    """The variables Lambda sets before init; boto3 clients created at import time need the region."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key in ("PATH", "LD_LIBRARY_PATH", "LANG", "TZ", "HOME", "TMPDIR")
    }
    if args.environment:
        # The function's own variables first: Lambda's reserved ones below cannot be overridden by them.
        with open(args.environment, encoding="utf-8") as f:
            env.update({str(k): str(v) for k, v in json.load(f).items()})
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    env.update(
        {
            "LAMBDA_TASK_ROOT": args.task_root,
            "LAMBDA_RUNTIME_DIR": args.runtime_dir,
            "_HANDLER": args.handler,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{minor}",
            "AWS_LAMBDA_FUNCTION_NAME": args.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{args.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "probe",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            # Lambda gives the execution role's credentials; these are well-formed and worthless, so an
            # SDK signs its requests (which the sandbox's missing network then stops) instead of failing
            # to find credentials first.
            "AWS_ACCESS_KEY_ID": "ASIAXXXXLPKGPROBE000",
            "AWS_SECRET_ACCESS_KEY": "lpkg/probe/has/no/real/credentials/0000000",
            "AWS_SESSION_TOKEN": "lpkg-probe-session-token",
            "_X_AMZN_TRACE_ID": "Root=1-6749f000-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0",
            "PYTHONDONTWRITEBYTECODE": "1",
            # For the jobs: which modules the runtime provides, and whether to stand in for them (local probe).
            "LPKG_PROBE_RUNTIME_PROVIDED": args.runtime_provided,
            "LPKG_PROBE_STAND_INS": "1" if args.stand_ins else "0",
            # Layers Lambda attaches that the import test has not got: a module missing may be theirs.
            "LPKG_PROBE_UNSEEN_LAYERS": args.unseen_layers,
            "LPKG_PROBE_LAYER_STAND_INS": ",".join(layer_stand_ins),
            # Variables whose value is a deploy-time placeholder: the import says which it read.
            "LPKG_PROBE_PLACEHOLDERS": args.placeholders,
            "LPKG_PROBE_MEMORY_MB": str(args.memory_mb),
            "PYTHONNOUSERSITE": "1",
        }
    )
    return env


def start_job(job: str, args: argparse.Namespace, scratch: str, before_go: bool = False,
              layer_stand_ins: tuple[str, ...] = ()) -> tuple[subprocess.Popen[bytes], str, int | None]:
    """Start one job in a fresh interpreter, in a process group of its own (so whatever processes the
    packaged code starts can be stopped with it); it writes its result to a file in `scratch`, and its
    output goes to a file (a pipe would stay open as long as any process the code started lives). Started
    `before_go` (the files are not all there yet), it waits, once its interpreter and its own modules are
    loaded, for the pipe whose other end (returned) the entry closes at the go file. (The entry is the
    container's first process: were it to die, the kernel would kill the jobs with it.)"""
    script = os.path.join(HERE, "importer.py" if job == "import" else "walk.py")
    result_path = os.path.join(scratch, f"{job}.json")
    command = [
        sys.executable,
        "-I",  # isolated: no PYTHON* variables of whoever started lpkg, no user site, no script folder
        "-S",  # no site: sys.path is exactly Lambda's, set by the job
        "-B",  # no .pyc written (-I ignores PYTHONDONTWRITEBYTECODE)
        script,
        "--handler", args.handler,
        "--result", result_path,
        "--sys-path", json.dumps(lambda_sys_path(json.loads(args.lambda_path))),
        "--lambda-path", args.lambda_path,
        "--task-root", args.task_root,
        "--opt", args.opt,
        "--runtime-dir", args.runtime_dir,
        "--probe-lib", os.path.join(HERE, "lib"),
        "--timeout", str(args.timeout),
    ]
    go_read, go_write = os.pipe() if before_go else (None, None)
    if go_read is not None:
        command += ["--go-fd", str(go_read)]
    if job == "import" and args.pycache:
        command += ["--pycache", args.pycache]
        if args.pycache_kept:
            command += ["--pycache-kept", args.pycache_kept]
    if job == "import" and args.event:
        command += ["--event", args.event, "--invoke-timeout", str(args.invoke_timeout),
                    "--response-limit", str(args.response_limit)]
    with open(os.path.join(scratch, f"{job}.out"), "wb") as output:
        proc = subprocess.Popen(
            command,
            cwd=args.task_root,
            env=lambda_environment(args, layer_stand_ins),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(go_read,) if go_read is not None else (),
        )
    if go_read is not None:
        os.close(go_read)
    return proc, result_path, go_write


def unseen_layer_module(result: dict[str, Any], args: argparse.Namespace) -> str | None:
    """The top-level module the import stopped at, when a layer Lambda attaches but lpkg has not got may
    provide it: not found, and neither the zip nor a layer here has it (a package they have lacks a part)."""
    if not args.unseen_layers or result.get("exception") != "ModuleNotFoundError":
        return None
    top = str(result.get("missing_name") or "").split(".")[0]
    packaged = [p for p in json.loads(args.lambda_path) if p.startswith((args.task_root, args.opt))]
    if not top or any(os.path.exists(os.path.join(p, top)) or os.path.exists(os.path.join(p, top + ".py"))
                      for p in packaged):
        return None
    return top


def network_interfaces() -> list[str] | None:
    """The network interfaces of this process's network namespace (/proc/net/dev: two header lines, then one
    line per interface), or None where that cannot be read."""
    try:
        with open("/proc/net/dev", encoding="ascii", errors="replace") as dev:
            lines = dev.read().splitlines()[2:]
    except OSError:
        return None
    return sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)


def wait_for(path: str) -> bool:
    """Until lpkg writes the go file (the files are unpacked); False if it never comes."""
    give_up = time.monotonic() + MAX_WAIT_SECONDS
    while not os.path.exists(path):
        if time.monotonic() > give_up:
            return False
        time.sleep(0.002)
    return True


def exit_with(lpkg_pid: int, jobs: list[subprocess.Popen[bytes]]) -> None:
    """End, with the jobs, once lpkg's process is gone. lpkg killed with SIGKILL cannot stop a local probe,
    whose jobs would otherwise run on to their timeout for nobody. (Its pid, not getppid(): an interpreter
    wrapper may stand between, and lpkg may be gone before this line runs.)"""

    def alive() -> bool:
        try:
            os.kill(lpkg_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True

    def watch() -> None:
        while alive():
            time.sleep(0.2)
        for proc in list(jobs):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the job and every process it left in its group (a fork bomb's survivors)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """proc.wait(timeout), woken by the exit itself where the kernel can say so (a pidfd, Linux 5.3+): Popen's
    own wait with a timeout polls, with sleeps growing to 50 ms, and so noticed each job's end up to 50 ms late
    (about 40 ms of every probe of a small function)."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # Python < 3.9, an older kernel, or already reaped
        proc.wait(timeout=timeout)
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        ready = poller.poll(timeout * 1000)
    finally:
        os.close(pidfd)
    if not ready:
        raise subprocess.TimeoutExpired(proc.args, timeout)
    proc.wait()  # it has ended: this only reaps it


def finish_job(
    proc: subprocess.Popen[bytes], result_path: str, started: float, deadline: float, invoke_timeout: float
) -> dict[str, Any]:
    """Wait for a job until the deadline (a hang is killed), then read what it wrote."""
    output_path = result_path[: -len(".json")] + ".out"
    try:
        wait_exit(proc, max(0.5, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        finished = False
        if _read(result_path).get("invoke", {}).get("status") == "running":
            # The import finished in time and the handler is being called: the call has its own
            # clock (the function's timeout), kept by the job itself.
            try:
                wait_exit(proc, invoke_timeout + INVOKE_GRACE_SECONDS)
                finished = True
            except subprocess.TimeoutExpired:
                pass
        if not finished:
            _stop_with_stack(proc)
            if _read(result_path).get("invoke", {}).get("status") != "running":
                return {"status": "timeout", "seconds": round(time.monotonic() - started, 3),
                        "output": _read_tail(output_path)}
    _stop_group(proc)
    output = _read_tail(output_path)
    elapsed = round(time.monotonic() - started, 3)
    result = _read(result_path)
    if not result:
        # The child died before writing: killed (memory), or the code called os._exit.
        return {"status": "crashed", "returncode": proc.returncode, "seconds": elapsed, "output": _tail(output)}
    result["seconds"] = elapsed
    result["output"] = _tail(output)
    invoked = result.get("invoke")
    if isinstance(invoked, dict) and invoked.get("status") == "running":
        result["invoke"] = _unfinished_invoke(invoked, proc.returncode, _tail(output), result_path)
    return result


def _unfinished_invoke(
    invoked: dict[str, Any], returncode: int | None, output: str, result_path: str
) -> dict[str, Any]:
    """The job ended while the handler was running: stopped at the timeout (faulthandler printed the
    stack where it was), or the process died (memory, os._exit, a crash in native code)."""
    try:
        with open(result_path + ".output", "rb") as fh:
            printed = _tail(fh.read())
    except OSError:
        printed = ""
    if FAULTHANDLER_TIMEOUT in output:
        return {"status": "timeout", "seconds": invoked.get("timeout"), "stack": output, "output": printed}
    return {"status": "crashed", "returncode": returncode, "stack": output, "output": printed}


def _stop_with_stack(proc: subprocess.Popen[bytes]) -> None:
    """Ask the job for the stack it is at (it registered faulthandler for DUMP_SIGNAL), then kill it and
    every process it started; the stack is in its output file."""
    signum = getattr(signal, DUMP_SIGNAL, None)
    if signum is not None:
        proc.send_signal(signum)
        try:
            proc.wait(timeout=STACK_DUMP_SECONDS)  # it may end by itself meanwhile
        except subprocess.TimeoutExpired:
            pass
    _stop_group(proc)


def _read(result_path: str) -> dict[str, Any]:
    try:
        with open(result_path, encoding="utf-8") as fh:
            result = json.load(fh)
    except (OSError, ValueError):
        return {}
    return result if isinstance(result, dict) else {}


def _read_tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            return _tail(fh.read(), limit)
    except OSError:
        return ""


def _tail(data: bytes | str | None, limit: int = 4000) -> str:
    if data is None:
        return ""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text[-limit:]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handler", required=True)
    parser.add_argument("--task-root", default="/var/task")
    parser.add_argument("--opt", default="/opt")
    parser.add_argument("--runtime-dir", default="/var/runtime")
    parser.add_argument("--lambda-path", required=True, help="JSON list: sys.path before the stdlib")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--jobs", default="import,walk")
    parser.add_argument("--runtime-provided", default="", help="comma-separated modules the runtime ships")
    parser.add_argument("--stand-ins", action="store_true")
    parser.add_argument("--unseen-layers", default="", help="comma-separated layers attached in Lambda but not here")
    parser.add_argument("--placeholders", default="", help="comma-separated variables holding placeholders")
    parser.add_argument("--event", help="a JSON file: after the import, call the handler with it")
    parser.add_argument("--invoke-timeout", type=float, default=30.0, help="the function's timeout, for the call")
    parser.add_argument("--function-name", default="lpkg-probe", help="AWS_LAMBDA_FUNCTION_NAME")
    parser.add_argument("--environment", help="a JSON object: the function's environment variables")
    parser.add_argument("--response-limit", type=int, default=6 * 1024 * 1024, help="bytes a response may have")
    parser.add_argument("--wait-for", help="start only once this file exists (the files are being unpacked)")
    parser.add_argument("--memory-mb", type=int, default=0, help="the function's memory; 0: no limit")
    parser.add_argument("--pycache", help="a writable folder for the task root's dependency bytecode (importer.py)")
    parser.add_argument("--pycache-kept", help="a read-only folder of bytecode kept from earlier probes")
    parser.add_argument("--exit-with", type=int, help="lpkg's pid: end when it is gone (the local probe)")
    parser.add_argument("--no-network", action="store_true",
                        help="run no job if any network interface but the loopback is here (the Docker probe)")
    return parser.parse_args()


def retry_with_layer_stand_ins(result: dict[str, Any], args: argparse.Namespace, scratch: str, deadline: float,
                               jobs: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    """The import job's result; where it stopped at a module a layer lpkg has not got may provide, the job
    again with a stand-in for that module, and so on for the next one."""
    stand_ins: tuple[str, ...] = ()
    while len(stand_ins) < MAX_LAYER_STAND_INS:
        missing = unseen_layer_module(result, args)
        if missing is None or missing in stand_ins:
            break
        stand_ins += (missing,)
        proc, result_path, _ = start_job("import", args, scratch, layer_stand_ins=stand_ins)
        jobs.append(proc)
        result = finish_job(proc, result_path, time.monotonic(), deadline, args.invoke_timeout)
    return result


def main() -> int:
    args = parse_args()
    jobs: list[subprocess.Popen[bytes]] = []
    if args.exit_with:
        exit_with(args.exit_with, jobs)
    document: dict[str, Any] = {
        "python": ".".join(str(n) for n in sys.version_info[:3]),
        "user": os.getuid() if hasattr(os, "getuid") else None,
    }
    if args.pycache:
        # What a pyc of this interpreter looks like, for lpkg to keep only those.
        import importlib.util

        document["bytecode"] = {"magic": importlib.util.MAGIC_NUMBER.hex(), "cache_tag": sys.implementation.cache_tag}
    if args.no_network:
        interfaces = network_interfaces()
        if interfaces is not None and set(interfaces) - {"lo"}:
            # The sandbox was not what lpkg asked the daemon for: no packaged code runs.
            document["network"] = {"isolated": False, "interfaces": interfaces}
            sys.stdout.write(json.dumps(document))
            return 0
    # The jobs run side by side: the real import and the graph walk are independent.
    with tempfile.TemporaryDirectory(prefix="lpkg-probe-") as scratch:
        running = {}
        for job in args.jobs.split(","):
            if job == "walk" and sys.version_info < (3, 10):
                document[job] = {"status": "skipped", "reason": "modulegraph2 needs Python 3.10 or newer"}
                continue
            try:
                running[job] = start_job(job, args, scratch, before_go=bool(args.wait_for))
                jobs.append(running[job][0])
            except OSError as exc:  # no process to be had
                document[job] = {"status": "failed", "message": f"could not start: {exc}"}
        if args.wait_for and not wait_for(args.wait_for):
            for proc in jobs:
                _stop_group(proc)
            return 1  # lpkg went away; nothing to probe
        for _, _, go in running.values():
            if go is not None:
                os.close(go)
        started = time.monotonic()
        deadline = started + args.timeout
        for job, (proc, result_path, _) in running.items():
            document[job] = finish_job(proc, result_path, started, deadline, args.invoke_timeout)
            if job == "import":
                document[job] = retry_with_layer_stand_ins(document[job], args, scratch, deadline, jobs)
    sys.stdout.write(json.dumps(document))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
