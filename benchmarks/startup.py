"""How long `lpkg build` takes when nothing changed, start-up included (issue 8 aims at about 100 ms:
0.1x `sam build --cached`), with lpkg installed as users install it: `pip install .`, not editable.

    python benchmarks/startup.py [--ref REF]... [--runs 15] [--image IMAGE] [--python PYTHON] [--instructions]
                                 [--function pinned|small]

The working tree, and each git REF given (e.g. --ref main~3, for before and after), is installed into a venv
of its own under the temp folder (made by PYTHON, default this interpreter; kept between runs, lpkg itself
reinstalled each time). Each builds the function (pinned: fixtures/projects/pinned-api/orders, the default;
small: fixtures/projects/small-api/greet, issue 16's) once (Docker with the stand-in image;
the dependencies are installed once, into an lpkg cache under the temp folder shared by the venvs), and
its next build must say it is up to date. Then, in rounds, so that machine noise hits every column alike:
  python -S -c pass            the venv's interpreter alone
  python -c pass               plus `site` (the venv's .pth files)
  python -c 'import click'     plus click, which every lpkg command imports: the floor of any lpkg command
  lpkg build, nothing changed  the console script, as a user types it
Wall time and CPU time (user + system: less inflated when other work shares the machine) are printed side
by side, medians with minimums in brackets, with the load average and the exact command; --instructions adds
each command's instruction count (valgrind), which does not depend on the load at all.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FUNCTIONS = {"pinned": REPO / "fixtures" / "projects" / "pinned-api" / "orders",
             "small": REPO / "fixtures" / "projects" / "small-api" / "greet"}
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


def build_command(venv: Path, image: str, function: Path) -> list[str]:
    out = WORK / "out" / function.name / venv.name
    return [str(venv / "bin" / "lpkg"), "build", str(function), "--runtime", "python3.11", "--build-image", image,
            "--image", image, "--out", str(out)]


def timed(command: Sequence[str], env: Mapping[str, str]) -> tuple[float, float]:
    """Wall time, and CPU time (user + system) of the process, which other load on the machine inflates less."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(command), env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed (wait status {status})")
    return wall, usage.ru_utime + usage.ru_stime


def instructions(command: Sequence[str], env: Mapping[str, str]) -> float:
    """Millions of instructions the command executes (valgrind's callgrind; hash seed fixed): the same on a
    busy machine as on a quiet one."""
    proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
                          env={**os.environ, **env, "PYTHONHASHSEED": "0"}, capture_output=True, text=True)
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or match is None:
        raise SystemExit(f"valgrind {' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    return int(match.group(1)) / 1e6


def cell(times: Sequence[float], scale: float = 1000) -> str:
    return f"{statistics.median(times) * scale:6.0f} ({min(times) * scale:.0f})"


def table(title: str, rows: Mapping[str, Mapping[str, Sequence[float]]], scale: float = 1000) -> None:
    labels = list(next(iter(rows.values())))
    width = max(16, *(len(label) + 4 for label in labels))
    print(f"\n{title}")
    print(f"{'':<30}" + "".join(f"{label:>{width}}" for label in labels))
    for name, row in rows.items():
        print(f"{name:<30}" + "".join(f"{cell(row[label], scale):>{width}}" for label in labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ref", action="append", default=[], help="a git ref to measure beside the working tree")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--image", default="lpkg-standin/lambda-python:3.11-x86_64",
                        help="build and runtime image of the first build (python3.11)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter the venvs are made with")
    parser.add_argument("--instructions", action="store_true",
                        help="also count each command's instructions once with valgrind (slow, but the same "
                        "however busy the machine is)")
    parser.add_argument("--function", choices=sorted(FUNCTIONS), default="pinned",
                        help="the function built (default pinned: fixtures/projects/pinned-api/orders)")
    args = parser.parse_args()

    env = {"LPKG_CACHE_DIR": str(WORK / "cache"), "LPKG_DOCKER_NETWORK": os.environ.get("LPKG_DOCKER_NETWORK", "host")}
    trees = [(WORKING_TREE, None), *((ref, ref) for ref in args.ref)]
    venvs = {label: install(label, source_tree(label, ref), args.python) for label, ref in trees}
    commands: dict[str, dict[str, list[str]]] = {}
    for label, venv in venvs.items():
        build = build_command(venv, args.image, FUNCTIONS[args.function])
        print(f"{label}: first build (installs the dependencies once, then verifies in Docker) …", file=sys.stderr)
        run(build, env)
        if "up_to_date: yes" not in run(build, env).stdout:
            raise SystemExit(f"{label}: the second build was not up to date; nothing to measure")
        python = str(venv / "bin" / "python")
        commands[label] = {"python -S -c pass": [python, "-S", "-c", "pass"], "python -c pass": [python, "-c", "pass"],
                           "python -c 'import click'": [python, "-c", "import click"],
                           "lpkg build, nothing changed": build}

    names = list(commands[WORKING_TREE])
    wall: dict[str, dict[str, list[float]]] = {name: {label: [] for label in venvs} for name in names}
    cpu: dict[str, dict[str, list[float]]] = {name: {label: [] for label in venvs} for name in names}
    load_before = os.getloadavg()[0]
    for _ in range(args.runs):
        for label in venvs:
            for name, command in commands[label].items():
                elapsed, used = timed(command, env)
                wall[name][label].append(elapsed)
                cpu[name][label].append(used)
    load_after = os.getloadavg()[0]

    print(f"\nload average {load_before:.1f} before, {load_after:.1f} after ({os.cpu_count()} CPUs); "
          f"median of {args.runs} runs (minimum)")
    table("wall time, ms", wall)
    table("CPU time (user + system), ms", cpu)
    if args.instructions:
        counts = {name: {label: [instructions(commands[label][name], env)] for label in venvs} for name in names}
        table("instructions, millions (valgrind, once)", counts, scale=1)
    ours = statistics.median(wall[names[-1]][WORKING_TREE])
    for label in args.ref:
        print(f"lpkg build, nothing changed, wall: working tree / {label}: "
              f"{ours / statistics.median(wall[names[-1]][label]):.2f}x")
    print(f"aim: {AIM_SECONDS * 1000:.0f} ms wall; working tree: {ours / AIM_SECONDS:.2f}x the aim")
    print(f"command: {' '.join(commands[WORKING_TREE][names[-1]])}  (LPKG_CACHE_DIR={env['LPKG_CACHE_DIR']})")

if __name__ == "__main__":
    main()
