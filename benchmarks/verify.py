"""How long `lpkg verify` takes on a zip holding numpy and pandas, beside `python -m zipfile -t`.

    python benchmarks/verify.py [--image IMAGE] [--runs 5] [--probe docker|local|none]

The zip is built once (pip install --target for CPython 3.11 manylinux x86_64, plus a handler
that imports both) and cached in the temp folder. Both commands run as separate processes,
alternately, so machine noise hits both; the medians and their ratio are printed.
Aim: lpkg verify at most 3x the zipfile test.
"""

from __future__ import annotations

import argparse
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


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", default="lpkg-standin/lambda-python:3.11-x86_64")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--probe", default="docker", choices=["docker", "local", "none"])
    args = parser.parse_args()

    zip_path = build_zip("3.11")
    with zipfile.ZipFile(zip_path) as zf:
        members = len(zf.infolist())
        unzipped = sum(i.file_size for i in zf.infolist())
    lpkg = [sys.executable, "-m", "lpkg", "verify", str(zip_path), "--runtime", "python3.11",
            "--probe", args.probe, "--image", args.image]
    baseline = [sys.executable, "-m", "zipfile", "-t", str(zip_path)]
    timed(lpkg)  # warm the page cache and Docker's image layers once
    lpkg_times: list[float] = []
    base_times: list[float] = []
    for _ in range(args.runs):
        base_times.append(timed(baseline))
        lpkg_times.append(timed(lpkg))
    lpkg_median, base_median = statistics.median(lpkg_times), statistics.median(base_times)
    print(f"zip: numpy + pandas, {members} members, {zip_path.stat().st_size / 1e6:.1f} MB zipped, "
          f"{unzipped / 1e6:.1f} MB unzipped")
    print(f"python -m zipfile -t   median {base_median:6.2f} s   runs: {' '.join(f'{t:.2f}' for t in base_times)}")
    runs = " ".join(f"{t:.2f}" for t in lpkg_times)
    print(f"lpkg verify ({args.probe:<6})  median {lpkg_median:6.2f} s   runs: {runs}")
    print(f"ratio lpkg / zipfile -t: {lpkg_median / base_median:.2f}x (aim: at most 3x)")


if __name__ == "__main__":
    main()
