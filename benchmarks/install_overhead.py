"""Where lpkg's `install` lap spends its time beyond pip: the Docker backend's install of one lock, step by
step, beside a bare `docker run … pip install --target` of the same lock in the same image.

    python benchmarks/install_overhead.py [--image IMAGE] [--runs 5] [--compile] [--lpkg-from CHECKOUT]

Each round runs, in turn: the bare command (benchmarks/build.py's `bare_pip`), the same with its target and
TMPDIR in a bind-mounted host folder (as lpkg writes with a local daemon), lpkg's install with the output
bind-mounted (what a daemon on this machine gets), and lpkg's install copied out through the API as a tar (what
a remote daemon gets; LPKG_DOCKER_COPY=1). Alternating lets the machine's noise hit all of them alike; pip's
download cache (the Docker volume) is warmed once first. `--lpkg-from` measures another checkout's lpkg (an
older one has only the copy path). Printed: medians and runs, each side's difference from bare pip and
ratio to it, the part of the lap outside the container's run and lpkg's own CPU time in it (both steadier than
the totals on a busy machine), and the median time of each Docker call inside the lap.
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import inspect
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STEPS: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
current_mode = ""


def timed_step(owner: Any, name: str, label: str) -> None:
    """Record how long each call of owner.name takes, under (the current mode, `label`)."""
    original: Callable[..., Any] | None = getattr(owner, name, None)
    if original is None:
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            result = original(*args, **kwargs)
            if inspect.isgenerator(result):  # time it to its end
                result = list(result)
            return result
        finally:
            STEPS[(current_mode, label)].append(time.perf_counter() - start)

    setattr(owner, name, wrapper)


def median(times: list[float]) -> float:
    return statistics.median(times) if times else float("nan")


def runs_line(label: str, times: list[float]) -> str:
    return f"{label:<40} median {median(times):6.2f} s   runs: " + " ".join(f"{t:.2f}" for t in times)


def main() -> None:
    global current_mode
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", default="lpkg-standin/lambda-python:3.11-x86_64")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="with --compile (compileall after pip)")
    parser.add_argument("--lpkg-from", type=Path, default=REPO, help="the checkout whose lpkg is measured")
    args = parser.parse_args()
    sys.path[:0] = [str(args.lpkg_from.resolve()), str(REPO / "benchmarks")]
    build = importlib.import_module("build")  # benchmarks/build.py: the bare command and the fixture
    container = importlib.import_module("lpkg.containers.engine")
    docker_backend = importlib.import_module("lpkg.install.docker")
    backends = importlib.import_module("lpkg.install")
    runtimes = importlib.import_module("lpkg.runtimes")
    print(f"lpkg from {Path(docker_backend.__file__).parent.parent.parent}")

    network = os.environ.setdefault("LPKG_DOCKER_NETWORK", "host")
    lock = build.PROJECT / "orders" / "requirements.lock"
    bare = build.bare_pip(args.image, lock, network)
    request = backends.InstallRequest((lock,), (), runtimes.get_runtime(build.RUNTIME), "x86_64",
                                      require_hashes=True, compile_bytecode=args.compile)

    start = time.perf_counter()
    session = container.DockerSession()
    session_time = time.perf_counter() - start
    start = time.perf_counter()
    installers = {"bind mounts": docker_backend.DockerInstaller(session, args.image)}
    setup_time = time.perf_counter() - start
    os.environ["LPKG_DOCKER_COPY"] = "1"
    installers["copy (tar)"] = docker_backend.DockerInstaller(container.DockerSession(), args.image)
    del os.environ["LPKG_DOCKER_COPY"]
    if getattr(installers["bind mounts"], "writes_here", None) is not True:
        del installers["bind mounts"]  # an lpkg without the bind-mount path, or a daemon elsewhere

    timed_step(container.Container, "__enter__", "create container")
    timed_step(container.Container, "put_folders", "put_folders (inputs in)")
    timed_step(container.Container, "start", "start")
    timed_step(container.Container, "run", "run (start, pip, wait, logs)")
    timed_step(container.Container, "get_archive_file", "get_archive_file (tar out)")
    timed_step(container.Container, "__exit__", "remove container")
    timed_step(docker_backend, "_extract_stripped", "extract on the host")
    timed_step(docker_backend, "_make_safe", "check what was written (links out)")

    # The same bare command writing as lpkg does with a local daemon: into a bind-mounted host folder, with
    # pip's temporary folder on that mount (the plain one writes to the container's own layer).
    work = Path(tempfile.mkdtemp(prefix="lpkg-bench-install-"))
    image_at = bare.index(args.image)
    bare_bind = [*bare[:image_at], "-v", f"{work / 'bare'}:/out", "-e", "TMPDIR=/out/.tmp", *bare[image_at:]]
    bare_bind[bare_bind.index("/tmp/site")] = "/out"

    subprocess.run(bare, check=True, capture_output=True)  # warm pip's download cache and the image's pages
    times: dict[str, list[float]] = {"bare": [], "bare, bind-mounted": [], **{mode: [] for mode in installers}}
    outside_run: dict[str, list[float]] = {mode: [] for mode in installers}  # the lap minus the container's run
    cpu: dict[str, list[float]] = {mode: [] for mode in installers}  # lpkg's own CPU time in the lap
    files: dict[str, int] = {}
    try:
        for run in range(args.runs):
            start = time.perf_counter()
            subprocess.run(bare, check=True, capture_output=True)
            times["bare"].append(time.perf_counter() - start)
            (work / "bare" / ".tmp").mkdir(parents=True)
            start = time.perf_counter()
            subprocess.run(bare_bind, check=True, capture_output=True)
            times["bare, bind-mounted"].append(time.perf_counter() - start)
            shutil.rmtree(work / "bare")
            for mode, installer in installers.items():
                current_mode = mode
                target = work / f"site-{run}"
                start, start_cpu = time.perf_counter(), time.process_time()
                installer.install(request, target)
                times[mode].append(time.perf_counter() - start)
                cpu[mode].append(time.process_time() - start_cpu)
                outside_run[mode].append(times[mode][-1] - STEPS[(mode, "run (start, pip, wait, logs)")][-1])
                files[mode] = sum(len(names) for _, _, names in os.walk(target))
                shutil.rmtree(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"lock {lock.relative_to(build.REPO)} in {args.image}, {build.RUNTIME}"
          f"{', --compile' if args.compile else ''}; files installed: {files}; {args.runs} rounds")
    print("bare: " + " ".join(bare))
    print(runs_line("bare docker run pip install --target", times["bare"]))
    print(runs_line("the same, target and TMPDIR bind-mounted", times["bare, bind-mounted"]))
    for mode in installers:
        print(runs_line(f"lpkg install lap, {mode}", times[mode]))
    for mode in installers:
        for bare_kind in ("bare", "bare, bind-mounted"):
            difference = median(times[mode]) - median(times[bare_kind])
            print(f"  {mode}: {difference:+.2f} s over {bare_kind} pip, "
                  f"ratio {median(times[mode]) / median(times[bare_kind]):.3f}x")
    for mode in installers:
        print(f"  {mode}: the lap outside the container's run (set-up, copies, removal) median "
              f"{median(outside_run[mode]) * 1000:.0f} ms; lpkg's own CPU time in the lap median "
              f"{median(cpu[mode]) * 1000:.0f} ms")
    print(f"outside the lap, once per build: Docker session (ping, sweep) {session_time * 1000:.0f} ms; "
          f"installer set-up (image lookup, daemon info) {setup_time * 1000:.0f} ms")
    print("inside the lap, median per call:")
    for (mode, label), step_times in STEPS.items():
        print(f"  {mode:<12} {label:<36} {median(step_times) * 1000:8.0f} ms  ({len(step_times)} calls)")


if __name__ == "__main__":
    main()
