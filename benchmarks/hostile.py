"""Time and peak memory of `lpkg verify` on each zip of the hostile corpus, beside `python -m zipfile -t`.

    python benchmarks/hostile.py [--runs 1] [--many]

Each command runs as its own child process, forked by a small measuring interpreter; its CPU time and
peak resident memory come from wait4 (the command and the workers it forked and waited for). The floor
of the peak column is that measurer's own few MB, which a forked child starts with. lpkg runs the host
checks alone (`--probe none`): the corpus is about reading archives. `--many` adds the 100,000-member
zip (about 10 MB, written to the temp folder once). zipfile -t stops at the first bad member and cannot
open some zips at all; it is the baseline of what reading the zip costs, not a verdict.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import make_hostile_fixtures  # the corpus's own writer, for the 100,000-member zip  # noqa: E402


@dataclass(frozen=True)
class Measure:
    wall: float
    cpu: float
    peak_mb: float
    exit_code: int


# Run by a small interpreter of its own: a child's peak memory counts the pages of whatever it was forked
# from, so the command is forked from this few-MB process, never from the benchmark with its zips in memory.
_MEASURER = """
import json, os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(json.dumps([time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss,
                  os.waitstatus_to_exitcode(status)]))
"""


def measure(command: list[str]) -> Measure:
    """Wall and CPU time, and peak resident memory (the command and the workers it waited for: wait4)."""
    out = subprocess.run([sys.executable, "-I", "-S", "-c", _MEASURER, *command], capture_output=True, text=True,
                         check=True).stdout
    wall, cpu, peak_kb, exit_code = json.loads(out)
    return Measure(wall, cpu, peak_kb / 1024, exit_code)


def median_of(command: list[str], runs: int) -> Measure:
    results = [measure(command) for _ in range(runs)]
    return Measure(
        statistics.median(r.wall for r in results),
        statistics.median(r.cpu for r in results),
        max(r.peak_mb for r in results),
        results[-1].exit_code,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--many", action="store_true", help="add the 100,000-member zip")
    args = parser.parse_args()

    corpus = sorted(make_hostile_fixtures.OUT.glob("*.zip"))
    if args.many:
        many = Path(tempfile.gettempdir()) / "lpkg-bench-many-members.zip"
        if not many.exists():
            make_hostile_fixtures.many_members_zip(many)
        corpus.append(many)
    print(f"{'zip':34} {'exit':>4} {'wall s':>7} {'cpu s':>6} {'peak MB':>8}   {'zipfile -t':>10} {'peak MB':>8}"
          f"   {'wall ratio':>10}")
    worst_wall, worst_peak = ("", 0.0), ("", 0.0)
    for path in corpus:
        lpkg = median_of([sys.executable, "-m", "lpkg", "verify", "--probe", "none", "--runtime", "python3.11",
                          str(path)], args.runs)
        base = median_of([sys.executable, "-m", "zipfile", "-t", str(path)], args.runs)
        print(f"{path.name:34} {lpkg.exit_code:>4} {lpkg.wall:7.2f} {lpkg.cpu:6.2f} {lpkg.peak_mb:8.1f}   "
              f"{base.wall:10.2f} {base.peak_mb:8.1f}   {lpkg.wall / base.wall:9.1f}x")
        worst_wall = max(worst_wall, (path.name, lpkg.wall), key=lambda item: item[1])
        worst_peak = max(worst_peak, (path.name, lpkg.peak_mb), key=lambda item: item[1])
    print(f"slowest: {worst_wall[0]} {worst_wall[1]:.2f} s; most memory: {worst_peak[0]} {worst_peak[1]:.1f} MB")


if __name__ == "__main__":
    main()
