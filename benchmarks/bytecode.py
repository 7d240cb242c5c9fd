"""The probe's `import (inside the probe)` time for the pinned-api function (requests, pydantic, boto3) without
and with a filled store of compiled dependency modules (lpkg/bytecode.py), as a code-only rebuild sees it.

    python benchmarks/bytecode.py [--image IMAGE] [--runs 5]

The dependencies are installed once from the fixture's lock (pip install --target for CPython 3.11 manylinux
x86_64) and zipped with the handler; each run verifies that zip in the Docker probe, alternately without the
store and with it (filled by a first run), so machine noise hits both. Medians, runs and the ratio are printed,
and the findings of both are compared (they must be the same).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from lpkg.archive.reader import normalized_name
from lpkg.commands.verify import DependencyPart, VerifyOptions, verify_zip
from lpkg.probing.docker import DockerProber
from lpkg.runtimes import get_runtime

REPO = Path(__file__).resolve().parent.parent
FUNCTION = REPO / "fixtures" / "projects" / "pinned-api" / "orders"
IMPORT_LAP = "import (inside the probe)"


def build_zip() -> tuple[Path, frozenset[str]]:
    """The function's zip and the members that came from the dependency install."""
    cache = Path(tempfile.gettempdir()) / "lpkg-bench-bytecode-cp311"
    site = cache / "site"
    if not (site / "boto3").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site), "--no-compile",
             "--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--only-binary=:all:",
             "--require-hashes", "-r", str(FUNCTION / "requirements.lock")],
            check=True,
        )
    files = {f.relative_to(site).as_posix(): f for f in sorted(site.rglob("*"))
             if f.is_file() and "__pycache__" not in f.parts and f.relative_to(site).parts[0] != "bin"}
    zip_path = cache / "orders.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, file in files.items():
            zf.write(file, name)
        zf.write(FUNCTION / "handler.py", "handler.py")
    return zip_path, frozenset(normalized_name(name) for name in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", default="lpkg-standin/lambda-python:3.11-x86_64")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    zip_path, members = build_zip()
    runtime = get_runtime("python3.11")
    prober = DockerProber(args.image, runtime, "x86_64")
    with tempfile.TemporaryDirectory(prefix="lpkg-bench-bytecode-") as store:
        part = DependencyPart(Path(store), members)
        plain = VerifyOptions(runtime, "x86_64", handler="handler.handler")
        kept = VerifyOptions(runtime, "x86_64", handler="handler.handler", dependencies=part)
        first = verify_zip(zip_path, kept, prober)  # fills the store
        print(f"first run with an empty store: {first.probe.split('; ')[-1]}")
        times: dict[str, list[float]] = {"without the store": [], "with the store": []}
        findings = set()
        for _ in range(args.runs):
            for label, options in (("without the store", plain), ("with the store", kept)):
                report = verify_zip(zip_path, options, prober)
                times[label].append(dict(report.timings)[IMPORT_LAP])
                findings.add(tuple(report.findings))
        print(f"last run with the store: {report.probe.split('; ')[-1]}")
    for label, runs in times.items():
        print(f"{IMPORT_LAP} {label:<18} median {statistics.median(runs):5.2f} s   "
              f"runs: {' '.join(f'{t:.2f}' for t in runs)}")
    ratio = statistics.median(times["with the store"]) / statistics.median(times["without the store"])
    print(f"ratio with / without: {ratio:.2f}x; findings the same in every run: {len(findings) == 1}")


if __name__ == "__main__":
    main()
