"""How long `lpkg verify` takes on a zip holding numpy and pandas, beside `python -m zipfile -t`.

    python benchmarks/verify.py [--image IMAGE] [--runs 5] [--probe docker|local|none] [--python PYTHON]
                                [--before PYTHON]

The zip is built once (pip install --target for CPython 3.11 manylinux x86_64, plus a handler
that imports both) and cached in the temp folder, with a second zip that differs only in the handler.
In rounds, each command a separate process, so machine noise hits every column alike:
  python -m zipfile -t A     the CRC test alone, the floor
  lpkg verify A, first       with an empty lpkg cache and member store (fresh folders each round)
  lpkg verify B, second      the next verify with them, of the zip whose handler was edited, at A's path (a
                             rebuilt dist/fn.zip: bytecode kept by content is reused only for the same path)
  lpkg verify A, no store    LPKG_MEMBER_STORE=off: every member inflated, every module compiled (as before the store)
  lpkg verify A, before      with --before: the lpkg another interpreter has installed (e.g. a venv of main)
Medians, CPU times (user + system of the process and its children, which other load inflates less),
the ratios and the aims are printed. Aims: first at most 3x the zipfile test, second at most 1.5x.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HANDLER = (
    "import numpy as np\nimport pandas as pd\n\n"
    "def handler(event, context):\n    return int(pd.Series(np.arange(3)).sum())\n"
)


WORK = Path(tempfile.gettempdir()) / "lpkg-bench-verify"
AIMS = (("first verify / zipfile -t", "first", 3.0), ("second verify / zipfile -t", "second", 1.5),
        ("no store / zipfile -t", "off", 3.0))


def build_zips(python_minor: str) -> tuple[Path, Path]:
    """The numpy + pandas zip, and a copy whose handler differs (a comment), made once."""
    first = build_zip(python_minor)
    second = first.with_name(first.stem + "-edited.zip")
    if not second.exists():
        partial = second.with_suffix(".partial")
        with zipfile.ZipFile(first) as source, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as out:
            for info in source.infolist():
                data = source.read(info)
                if info.filename == "handler.py":
                    data += b"\n# edited\n"
                out.writestr(info, data)
        partial.rename(second)
    return first, second


def build_zip(python_minor: str) -> Path:
    cache = Path(tempfile.gettempdir()) / f"lpkg-bench-numpy-pandas-cp{python_minor.replace('.', '')}"
    zip_path = cache.with_suffix(".zip")
    if zip_path.exists():
        return zip_path
    site = cache / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site), "--platform", "manylinux2014_x86_64",
         "--python-version", python_minor, "--only-binary=:all:", "numpy", "pandas"],
        check=True,
    )
    (site / "handler.py").write_text(HANDLER)
    partial = zip_path.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(site.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(site).as_posix())
    partial.rename(zip_path)
    return zip_path


IMPORT_LAP = "import (inside the probe)"
import_laps: dict[str, list[float]] = {}


def timed(command: list[str], env: dict[str, str] | None = None, case: str = "") -> tuple[float, float]:
    """Wall time and CPU time (user + system, children included: not the container's) of the command; the
    probe's own import time, from lpkg's --json report, goes to import_laps[case]."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    stdout, stderr = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{stderr.decode()[-2000:]}")
    if case and b'"artifacts"' in stdout:
        laps = json.loads(stdout)["artifacts"][0].get("timings") or {}
        if IMPORT_LAP in laps:
            import_laps.setdefault(case, []).append(float(laps[IMPORT_LAP]))
    return elapsed, cpu_of_children()


_cpu_seen = 0.0


def cpu_of_children() -> float:
    """CPU seconds the children waited for since the last call (os.times counts every child reaped)."""
    global _cpu_seen
    times = os.times()
    total = times.children_user + times.children_system
    spent, _cpu_seen = total - _cpu_seen, total
    return spent


def row(label: str, walls: list[float], cpus: list[float], case: str = "") -> str:
    runs = " ".join(f"{t:.2f}" for t in walls)
    inside = f"  import in the probe {statistics.median(import_laps[case]):5.2f} s" if case in import_laps else ""
    return (f"{label:<26} median {statistics.median(walls):6.2f} s  cpu {statistics.median(cpus):6.2f} s{inside}   "
            f"runs: {runs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", default="lpkg-standin/lambda-python:3.11-x86_64")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--probe", default="docker", choices=["docker", "local", "none"])
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter that runs lpkg (another venv's, for a before/after)")
    parser.add_argument("--before", help="also, in the same rounds, the lpkg this interpreter has installed")
    args = parser.parse_args()

    first_zip, second_zip = build_zips("3.11")
    with zipfile.ZipFile(first_zip) as zf:
        members = len(zf.infolist())
        unzipped = sum(i.file_size for i in zf.infolist())

    def lpkg(zip_path: Path, python: str = args.python) -> list[str]:
        return [python, "-m", "lpkg", "verify", str(zip_path), "--runtime", "python3.11",
                "--probe", args.probe, "--image", args.image, "--json"]

    baseline = [sys.executable, "-m", "zipfile", "-t", str(first_zip)]
    WORK.mkdir(exist_ok=True)
    artifact = WORK / "function.zip"
    warm_up = {"LPKG_CACHE_DIR": str(WORK / "warm-up"), "LPKG_MEMBER_STORE": "off"}
    timed(lpkg(first_zip), warm_up)  # the page cache and the image's layers
    cases = ["zipfile", "first", "second", "off", *(["before"] if args.before else [])]
    walls: dict[str, list[float]] = {case: [] for case in cases}
    cpus: dict[str, list[float]] = {case: [] for case in cases}
    load_before = os.getloadavg()
    cpu_of_children()
    shm = Path("/dev/shm")
    scratch = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    for run in range(args.runs):
        # An empty cache and member store (beside the scratch folders, as lpkg keeps it) for each first verify.
        cache = {"LPKG_CACHE_DIR": str(WORK / f"cache-{run}"),
                 "LPKG_MEMBER_STORE": str(scratch / f"lpkg-bench-members-{run}")}
        for folder in cache.values():
            shutil.rmtree(folder, ignore_errors=True)
        rounds = [("zipfile", baseline, None), ("first", lpkg(artifact), cache),
                  ("second", lpkg(artifact), cache), ("off", lpkg(first_zip), warm_up)]
        if args.before:
            rounds.append(("before", lpkg(first_zip, args.before), warm_up))
        for case, command, env in rounds:
            if case in ("first", "second"):
                shutil.copyfile(first_zip if case == "first" else second_zip, artifact)
            wall, cpu = timed(command, env, case)
            walls[case].append(wall)
            cpus[case].append(cpu)
        for folder in cache.values():
            shutil.rmtree(folder, ignore_errors=True)
    load_after = os.getloadavg()
    shutil.rmtree(WORK / "warm-up", ignore_errors=True)
    print(f"zip: numpy + pandas, {members} members, {first_zip.stat().st_size / 1e6:.1f} MB zipped, "
          f"{unzipped / 1e6:.1f} MB unzipped; probe {args.probe}, image {args.image}")
    print(row("python -m zipfile -t", walls["zipfile"], cpus["zipfile"]))
    print(row("lpkg verify, first", walls["first"], cpus["first"], "first"))
    print(row("lpkg verify, second", walls["second"], cpus["second"], "second"))
    print(row("lpkg verify, no store", walls["off"], cpus["off"], "off"))
    if args.before:
        print(row("lpkg verify, before", walls["before"], cpus["before"], "before"))
    print("ratios (wall):                     ratio    aim  met?   (cpu ratio)")
    base, base_cpu = statistics.median(walls["zipfile"]), statistics.median(cpus["zipfile"])
    for label, case, aim in [*AIMS, *([("before / zipfile -t", "before", 3.0)] if args.before else [])]:
        ratio = statistics.median(walls[case]) / base
        cpu_ratio = statistics.median(cpus[case]) / base_cpu
        print(f"  {label:<30} {ratio:6.2f}x {aim:5.2f}x  {'yes' if ratio <= aim else 'no':4}   ({cpu_ratio:.2f}x)")
    print(f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in load_before)} before, "
          f"{' '.join(f'{x:.2f}' for x in load_after)} after ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
