"""How long `lpkg build` takes when nothing changed, start-up included (issue 8 aims at about 100 ms:
0.1x `sam build --cached`), with lpkg installed as users install it: `pip install .`, not editable.

    python benchmarks/startup.py [--ref REF]... [--runs 15] [--image IMAGE] [--python PYTHON]

The working tree, and each git REF given (e.g. --ref main~3, for before and after), is installed into a venv
of its own under the temp folder (made by PYTHON, default this interpreter; kept between runs, lpkg itself
reinstalled each time). Each builds fixtures/projects/pinned-api/orders once (Docker with the stand-in image;
the dependencies are installed once, into an lpkg cache under the temp folder shared by the venvs), and
its next build must say it is up to date. Then, in rounds, so that machine noise hits every column alike:
  python -S -c pass            the venv's interpreter alone
  python -c pass               plus `site` (the venv's .pth files)
  lpkg build, nothing changed  the console script, as a user types it
Medians (minimums in brackets) are printed side by side, with the load average and the exact command.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FUNCTION = REPO / "fixtures" / "projects" / "pinned-api" / "orders"
WORK = Path(tempfile.gettempdir()) / "lpkg-bench-startup"
WORKING_TREE = "working tree"
AIM_SECONDS = 0.1


def run(command: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(command), env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return proc


def source_tree(label: str, ref: str | None) -> Path:
    """The files of `ref` (None: the working tree's tracked files, as they are now) in a folder of their own,
    so no build/ or egg-info left in the checkout by an earlier install leaks in."""
    if ref is None:
        # A commit object of the working tree's state, or "" when it is clean; nothing in the checkout changes.
        ref = run(["git", "-C", str(REPO), "stash", "create"]).stdout.strip() or "HEAD"
    folder = WORK / "src" / label.replace(" ", "-").replace("/", "-")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", ref], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(folder)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"git archive {ref} failed")
    return folder


def install(label: str, source: Path, python: str) -> Path:
    """A venv with `source` installed by pip, not editable: the README's install command."""
    venv = WORK / "venvs" / source.name
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if not (venv / "bin" / "lpkg").exists():
        run([python, "-m", "venv", str(venv)])
        run([*pip, str(source)])
    else:  # the venv and lpkg's dependencies are kept; lpkg itself is this tree's
        run([*pip, "--force-reinstall", "--no-deps", str(source)])
    print(f"{label}: installed in {venv}", file=sys.stderr)
    return venv


def build_command(venv: Path, image: str) -> list[str]:
    out = WORK / "out" / venv.name
    return [str(venv / "bin" / "lpkg"), "build", str(FUNCTION), "--runtime", "python3.11", "--build-image", image,
            "--image", image, "--out", str(out)]


def timed(command: Sequence[str], env: Mapping[str, str]) -> float:
    start = time.perf_counter()
    run(command, env)
    return time.perf_counter() - start


def cell(times: Sequence[float]) -> str:
    return f"{statistics.median(times) * 1000:6.0f} ({min(times) * 1000:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ref", action="append", default=[], help="a git ref to measure beside the working tree")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--image", default="lpkg-standin/lambda-python:3.11-x86_64",
                        help="build and runtime image of the first build (python3.11)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter the venvs are made with")
    args = parser.parse_args()

    env = {"LPKG_CACHE_DIR": str(WORK / "cache"), "LPKG_DOCKER_NETWORK": os.environ.get("LPKG_DOCKER_NETWORK", "host")}
    trees = [(WORKING_TREE, None), *((ref, ref) for ref in args.ref)]
    venvs = {label: install(label, source_tree(label, ref), args.python) for label, ref in trees}
    commands = {}
    for label, venv in venvs.items():
        command = build_command(venv, args.image)
        print(f"{label}: first build (installs the dependencies once, then verifies in Docker) …", file=sys.stderr)
        run(command, env)
        if "up_to_date: yes" not in run(command, env).stdout:
            raise SystemExit(f"{label}: the second build was not up to date; nothing to measure")
        commands[label] = command

    rows: dict[str, dict[str, list[float]]] = {
        name: {label: [] for label in venvs}
        for name in ("python -S -c pass", "python -c pass", "lpkg build, nothing changed")
    }
    load_before = os.getloadavg()[0]
    for _ in range(args.runs):
        for label, venv in venvs.items():
            python = str(venv / "bin" / "python")
            rows["python -S -c pass"][label].append(timed([python, "-S", "-c", "pass"], env))
            rows["python -c pass"][label].append(timed([python, "-c", "pass"], env))
            rows["lpkg build, nothing changed"][label].append(timed(commands[label], env))
    load_after = os.getloadavg()[0]

    width = max(len(label) for label in venvs) + 4
    print(f"\nms, median of {args.runs} runs (minimum); load average {load_before:.1f} before, {load_after:.1f} after "
          f"({os.cpu_count()} CPUs)")
    print(f"{'':<30}" + "".join(f"{label:>{max(width, 16)}}" for label in venvs))
    for name, row in rows.items():
        print(f"{name:<30}" + "".join(f"{cell(row[label]):>{max(width, 16)}}" for label in venvs))
    no_change = rows["lpkg build, nothing changed"]
    ours = statistics.median(no_change[WORKING_TREE])
    for label in args.ref:
        print(f"working tree / {label}: {ours / statistics.median(no_change[label]):.2f}x")
    print(f"aim: {AIM_SECONDS * 1000:.0f} ms; working tree: {ours / AIM_SECONDS:.2f}x the aim")
    print(f"command: {' '.join(commands[WORKING_TREE])}  (LPKG_CACHE_DIR={env['LPKG_CACHE_DIR']})")


if __name__ == "__main__":
    main()
