"""Lambda's size limits, judged from the central directories before anything is unpacked."""

from __future__ import annotations

import collections
from collections.abc import Sequence

from lpkg.archive.reader import ZipArchive
from lpkg.report import Finding, Severity
from lpkg.runtimes import MAX_LAYERS, UNZIPPED_LIMIT_BYTES, ZIPPED_DIRECT_UPLOAD_BYTES


def mb(n: int) -> str:
    """Decimal units, as the AWS console shows sizes."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def largest_top_level(archives: Sequence[ZipArchive], count: int = 5) -> list[tuple[str, int]]:
    """The biggest top-level folders (packages) by unzipped size, across the zip and its layers."""
    sizes: collections.Counter[str] = collections.Counter()
    for archive in archives:
        for member in archive.members:
            if member.is_dir:
                continue
            name = member.path
            parts = name.split("/")
            # Layers keep packages under python/ or python/lib/pythonX.Y/site-packages/.
            if parts[0] == "python" and len(parts) > 1:
                parts = parts[4:] if len(parts) > 4 and parts[1] == "lib" else parts[1:]
            sizes[parts[0] if parts else name] += member.size
    return sizes.most_common(count)


def describe_largest(archives: Sequence[ZipArchive]) -> str:
    return ", ".join(f"{name} {mb(size)}" for name, size in largest_top_level(archives))


def check_sizes(archive: ZipArchive, layers: Sequence[ZipArchive]) -> list[Finding]:
    findings: list[Finding] = []
    everything = [archive, *layers]
    total = sum(a.claimed_unzipped_size for a in everything)
    if total > UNZIPPED_LIMIT_BYTES:
        findings.append(Finding(
            "SIZE_UNZIPPED", Severity.ERROR,
            f"unzipped size {mb(total)} (with {len(layers)} layer(s)) is over Lambda's limit of "
            f"{UNZIPPED_LIMIT_BYTES:,} bytes; largest: {describe_largest(everything)} — drop what the "
            "function does not import, move big dependencies to a container image, or split the function",
        ))
    if archive.zipped_size > ZIPPED_DIRECT_UPLOAD_BYTES:
        findings.append(Finding(
            "SIZE_ZIPPED", Severity.WARNING,
            f"zip is {mb(archive.zipped_size)}, over the 50 MB direct-upload limit: deploy it through S3 "
            "(CDK and SAM do so for assets)",
        ))
    if len(layers) > MAX_LAYERS:
        findings.append(Finding("LAYER_COUNT", Severity.ERROR,
                                f"{len(layers)} layers; a function can use at most {MAX_LAYERS}"))
    return findings
