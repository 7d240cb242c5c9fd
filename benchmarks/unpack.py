"""CPU time of unpacking a zip the way verify's workers do, in this one process, four ways side by side:

  reader     every member through ZipArchive.read (as before the member store)
  inflate    one zlib call per member from its compressed bytes, no store
  fill       the same, adding each member to an empty member store (a first verify)
  linked     every member linked from that store (a second verify)

    python benchmarks/unpack.py [ZIP] [--runs 5]

ZIP defaults to benchmarks/verify.py's numpy + pandas zip (run that once to build it). The scratch folders and
the store are on the scratch folder verify uses (tmpfs when it has room). CPU time of this process, medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from lpkg.archive import members, unpack
from lpkg.archive.reader import ZipArchive, file_mode, normalized_name
from lpkg.commands.stores import scratch_parent

DEFAULT_ZIP = Path(tempfile.gettempdir()) / "lpkg-bench-numpy-pandas-cp311.zip"
CASES = ("reader", "inflate", "fill", "linked")


def jobs(zip_path: Path, root: str, with_facts: bool) -> list[unpack.UnpackJob]:
    with ZipArchive(zip_path) as archive:
        found = list(archive.safe_files())
    return [
        unpack.UnpackJob(
            str(zip_path), m.name, normalized_name(m.name), root, file_mode(m), m.mtime, m.compressed_size,
            members.MemberFacts(m.name, m.header_offset, m.compressed_size, m.size, m.crc, m.compress_type,
                                m.flag_bits, file_mode(m), m.mtime) if with_facts else None,
        )
        for m in found
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("zip", nargs="?", type=Path, default=DEFAULT_ZIP)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    parent = scratch_parent()
    store_folder = Path(tempfile.mkdtemp(prefix="lpkg-bench-unpack-store-", dir=parent))
    cpu: dict[str, list[float]] = {case: [] for case in CASES}
    try:
        for _ in range(args.runs):
            for case in CASES:
                if case == "fill":
                    shutil.rmtree(store_folder, ignore_errors=True)
                    os.mkdir(store_folder, 0o700)
                store = members.open_store(store_folder) if case in ("fill", "linked") else None
                root = tempfile.mkdtemp(prefix="lpkg-bench-unpack-", dir=parent)
                work = jobs(args.zip, root, case != "reader")
                started = time.process_time()
                result = unpack._unpack_share(work, 1 << 40, unpack._LocalCounter(), store)
                cpu[case].append(time.process_time() - started)
                shutil.rmtree(root)
                if result.corrupt or result.over_budget:
                    raise SystemExit(f"{case}: the zip did not unpack cleanly")
    finally:
        shutil.rmtree(store_folder, ignore_errors=True)
    print(f"{args.zip.name}: {len(work)} members; CPU seconds, median of {args.runs} (all runs)")
    for case in CASES:
        runs = " ".join(f"{t:.2f}" for t in cpu[case])
        print(f"  {case:<8} {statistics.median(cpu[case]):6.3f}   {runs}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
