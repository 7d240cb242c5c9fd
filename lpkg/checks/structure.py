"""Archive structure: names that would escape the task root, duplicates, encryption, emptiness."""

from __future__ import annotations

import collections
import zipfile

from lpkg.archive import ZipArchive, normalized_name
from lpkg.report import Finding, Severity

_READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}


def check_structure(archive: ZipArchive, label: str = "") -> list[Finding]:
    """`label` prefixes member names for layers ("layer.zip!python/x.py")."""
    findings: list[Finding] = []
    files = [m for m in archive.members if not m.is_dir]
    if not files:
        findings.append(Finding("ZIP_EMPTY", Severity.ERROR,
                                "the zip holds no files: there is no code to run", member=label or None))
    for member in archive.members:
        where = label + member.name
        reason = member.unsafe_reason
        if reason:
            findings.append(Finding(
                "ZIP_UNSAFE_PATH", Severity.ERROR,
                f"member has an unsafe name ({reason}); it was not extracted — rebuild the zip from a folder "
                "with plain files (zip -r without -y, or lpkg build)",
                member=where,
            ))
        if member.encrypted:
            findings.append(Finding("ZIP_ENCRYPTED", Severity.ERROR,
                                    "member is encrypted; Lambda cannot read it: zip without a password",
                                    member=where))
        if member.compress_type not in _READABLE_METHODS and not member.is_dir:
            findings.append(Finding(
                "ZIP_COMPRESSION", Severity.WARNING,
                f"member uses compression method {member.compress_type} (not stored/deflate); unzip tools "
                "commonly reject it — re-zip with standard deflate (zip -r, or lpkg build)",
                member=where,
            ))
    counts = collections.Counter(normalized_name(m.name) for m in archive.members if not m.is_dir)
    for name, count in sorted(counts.items()):
        if count > 1:
            findings.append(Finding(
                "ZIP_DUPLICATE", Severity.ERROR,
                f"{count} members have this name; which one Lambda unpacks is undefined — rebuild the zip",
                member=label + name,
            ))
    return findings
