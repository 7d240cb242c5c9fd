"""The local backend's install step: pip against uv, same requirements, same target platform.

    python benchmarks/local_install.py [--runs 3] [--runtime python3.12] [REQUIREMENT ...]

Each tool installs the requirements into its own `--target` folder for the Lambda runtime's platform
(pip: every manylinux tag the runtime table lists, --only-binary=:all:; uv: --python-platform with the
newest manylinux it knows that is not newer than the runtime's glibc). Runs alternate between the tools;
"cold" runs get an empty download cache, "warm" runs reuse the one a first run filled. Prints the medians,
their ratio, and whether both produced the same files (path and content; the installer's own
bookkeeping in *.dist-info -- INSTALLER, RECORD, REQUESTED, direct_url.json -- is left out).
Needs uv on PATH or in this interpreter's environment (`pip install uv`).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lpkg.install.local import find_uv, platform_args, uv_args
from lpkg.runtimes import RUNTIMES, Runtime

DEFAULT_REQUIREMENTS = ["numpy==2.2.6", "pandas==2.2.3", "pydantic==2.12.5", "requests==2.32.3"]
BOOKKEEPING = {"INSTALLER", "RECORD", "REQUESTED", "direct_url.json"}


def uv_binary() -> str:
    found = find_uv()
    if found is None:
        raise SystemExit("uv not found: pip install uv")
    return found


def pip_command(runtime: Runtime, target: Path, cache: Path, requirements: list[str]) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), "--no-compile",
            "--cache-dir", str(cache), "--disable-pip-version-check", *platform_args(runtime, "x86_64"),
            *requirements]


def uv_command(runtime: Runtime, target: Path, cache: Path, requirements: list[str]) -> list[str]:
    return [uv_binary(), "pip", "install", "--quiet", "--target", str(target), "--cache-dir", str(cache),
            *uv_args(runtime, "x86_64"), *requirements]


def files_of(folder: Path) -> dict[str, str]:
    found = {}
    for path in folder.rglob("*"):
        if path.is_file() and not (path.parent.name.endswith(".dist-info") and path.name in BOOKKEEPING):
            found[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--runtime", default="python3.12", choices=list(RUNTIMES))
    parser.add_argument("requirements", nargs="*", default=DEFAULT_REQUIREMENTS)
    args = parser.parse_args()
    runtime = RUNTIMES[args.runtime]
    tools = {"pip": pip_command, "uv": uv_command}
    times: dict[tuple[str, str], list[float]] = {(t, c): [] for t in tools for c in ("cold", "warm")}
    with tempfile.TemporaryDirectory(prefix="lpkg-bench-install-") as scratch:
        root = Path(scratch)
        results: dict[str, dict[str, str]] = {}
        for run in range(args.runs):
            for tool, command in tools.items():
                for kind in ("cold", "warm"):
                    cache = root / f"{tool}-cache-{run}" if kind == "cold" else root / f"{tool}-cache-warm"
                    if kind == "warm" and not cache.exists():
                        timed(command(runtime, root / f"{tool}-prime", cache, args.requirements))
                    target = root / f"{tool}-{kind}-{run}"
                    times[(tool, kind)].append(timed(command(runtime, target, cache, args.requirements)))
                    results[tool] = files_of(target)
                    shutil.rmtree(target, ignore_errors=True)
                    if kind == "cold":
                        shutil.rmtree(cache, ignore_errors=True)
    print(f"{runtime.name} x86_64: {' '.join(args.requirements)}  ({args.runs} runs each)")
    print(f"  pip platforms: {', '.join(runtime.wheel_platforms('x86_64'))}")
    print(f"  uv {' '.join(uv_args(runtime, 'x86_64'))}")
    for kind in ("cold", "warm"):
        pip_s = statistics.median(times[("pip", kind)])
        uv_s = statistics.median(times[("uv", kind)])
        print(f"  {kind} cache: pip {pip_s:6.2f} s   uv {uv_s:6.2f} s   pip/uv {pip_s / uv_s:4.1f}x")
    same = results["pip"] == results["uv"]
    print(f"  same files: {'yes' if same else 'NO'} ({len(results['pip'])} pip, {len(results['uv'])} uv)")
    if not same:
        only_pip = sorted(set(results["pip"]) - set(results["uv"]))
        only_uv = sorted(set(results["uv"]) - set(results["pip"]))
        differ = sorted(k for k in set(results["pip"]) & set(results["uv"]) if results["pip"][k] != results["uv"][k])
        for label, names in (("only pip", only_pip), ("only uv", only_uv), ("content differs", differ)):
            if names:
                print(f"    {label} ({len(names)}): {', '.join(names[:5])}{' …' if len(names) > 5 else ''}")


if __name__ == "__main__":
    main()
