"""Where lpkg's `install` lap spends its time beyond pip: the Docker backend's install of one lock, step by
step, beside a bare `docker run … pip install --target` of the same lock in the same image.

    python benchmarks/install_overhead.py [--image IMAGE] [--runs 5] [--copy] [--compile]

The two alternate, so the machine's noise hits both alike; pip's download cache (the Docker volume) is warmed
once first. `--copy` measures the copy-through-the-API path (LPKG_DOCKER_COPY=1, as for a remote daemon).
Printed: the median of each side, their difference and ratio, and the median time of each Docker call lpkg
makes inside the lap (what is left of the lap is pip itself).
"""

from __future__ import annotations

import argparse
import collections
import functools
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
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from build import PROJECT, RUNTIME, bare_pip  # noqa: E402  (benchmarks/build.py: the same bare command)

from lpkg import container  # noqa: E402
from lpkg.backends import InstallRequest  # noqa: E402
from lpkg.backends import docker as docker_backend  # noqa: E402
from lpkg.runtimes import get_runtime  # noqa: E402

STEPS: dict[str, list[float]] = collections.defaultdict(list)


def timed_step(owner: Any, name: str, label: str) -> None:
    """Record how long each call of owner.name takes, under `label`."""
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            result = original(*args, **kwargs)
            if inspect.isgenerator(result):  # time it to its end
                result = list(result)
            return result
        finally:
            STEPS[label].append(time.perf_counter() - start)

    setattr(owner, name, wrapper)


def instrument() -> None:
    timed_step(container.Container, "__enter__", "create container")
    timed_step(container.Container, "__exit__", "remove container")
    timed_step(container.Container, "put_folders", "put_folders (inputs in)")
    timed_step(container.Container, "start", "start")
    timed_step(container.Container, "run", "run (start, pip, wait, logs)")
    timed_step(container.Container, "get_archive_file", "get_archive_file (tar out)")
    timed_step(docker_backend, "_extract_stripped", "extract on the host")
    if hasattr(docker_backend, "_make_safe"):  # (bind mounts)
        timed_step(docker_backend, "_make_safe", "check what was written (links out)")


def median(times: list[float]) -> float:
    return statistics.median(times) if times else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", default="lpkg-standin/lambda-python:3.11-x86_64")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--copy", action="store_true", help="copy through the API (LPKG_DOCKER_COPY=1)")
    parser.add_argument("--compile", action="store_true", help="with --compile (compileall after pip)")
    args = parser.parse_args()
    network = os.environ.setdefault("LPKG_DOCKER_NETWORK", "host")
    if args.copy:
        os.environ["LPKG_DOCKER_COPY"] = "1"
    lock = PROJECT / "orders" / "requirements.lock"
    bare = bare_pip(args.image, lock, network)

    start = time.perf_counter()
    session = container.DockerSession()
    session_time = time.perf_counter() - start
    start = time.perf_counter()
    installer = docker_backend.DockerInstaller(session, args.image)
    setup_time = time.perf_counter() - start
    request = InstallRequest((lock,), (), get_runtime(RUNTIME), "x86_64", require_hashes=True,
                             compile_bytecode=args.compile)
    instrument()
    subprocess.run(bare, check=True, capture_output=True)  # warm pip's download cache and the image's pages

    bare_times: list[float] = []
    lap_times: list[float] = []
    work = Path(tempfile.mkdtemp(prefix="lpkg-bench-install-"))
    try:
        for run in range(args.runs):
            start = time.perf_counter()
            subprocess.run(bare, check=True, capture_output=True)
            bare_times.append(time.perf_counter() - start)
            target = work / f"site-{run}"
            start = time.perf_counter()
            installer.install(request, target)
            lap_times.append(time.perf_counter() - start)
            files = sum(len(names) for _, _, names in os.walk(target))
            shutil.rmtree(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mode = "copy through the API" if not session.is_local or args.copy else "bind mounts (local daemon)"
    print(f"lock {lock.relative_to(REPO)} in {args.image}, {RUNTIME}; lpkg: {mode}"
          f"{', --compile' if args.compile else ''}; {files} files installed; {args.runs} runs")
    print("bare: " + " ".join(bare))
    print(f"{'bare docker run pip install --target':<36} median {median(bare_times):6.2f} s   runs: "
          + " ".join(f"{t:.2f}" for t in bare_times))
    print(f"{'lpkg install lap':<36} median {median(lap_times):6.2f} s   runs: "
          + " ".join(f"{t:.2f}" for t in lap_times))
    print(f"{'difference':<36}        {median(lap_times) - median(bare_times):+6.2f} s   "
          f"ratio {median(lap_times) / median(bare_times):.3f}x")
    print(f"outside the lap, once per build: Docker session (ping, sweep) {session_time * 1000:.0f} ms; "
          f"installer set-up (image lookup) {setup_time * 1000:.0f} ms")
    print("inside the lap, median per call:")
    for label, times in STEPS.items():
        print(f"  {label:<34} {median(times) * 1000:8.0f} ms  ({len(times)} calls)")


if __name__ == "__main__":
    main()
