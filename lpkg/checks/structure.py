"""Archive structure: names that would escape the task root or cannot be created, duplicates, overlapping
members, encryption, compression, emptiness."""

from __future__ import annotations

import collections
import zipfile

from lpkg.archive.reader import KNOWN_METHODS, ZipArchive, ZipMember
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
        findings += _member_findings(member, label + member.name)
    for member, why in archive.overlaps():
        findings.append(Finding(
            "ZIP_OVERLAP", Severity.ERROR,
            f"member's data as the directory states it is not where the directory says: {why} (overlapping "
            "members are how a small zip unpacks to gigabytes; or the zip is damaged) — nothing was unpacked; "
            "rebuild the zip",
            member=label + member.name,
        ))
    return findings + _name_findings(archive, label)


def _member_findings(member: ZipMember, where: str) -> list[Finding]:
    """What is wrong with one member on its own: its name, encryption, compression."""
    findings: list[Finding] = []
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
    if member.encrypted or member.is_dir:
        pass  # an encrypted member's method is the cipher's business; it is reported as encrypted
    elif member.compress_type not in _READABLE_METHODS:
        unknown = member.compress_type not in KNOWN_METHODS
        findings.append(Finding(
            "ZIP_COMPRESSION", Severity.ERROR if unknown else Severity.WARNING,
            f"member uses compression method {member.compress_type}, "
            + ("which no unzip tool knows; it was not extracted" if unknown
               else "not stored/deflate; unzip tools commonly reject it")
            + " — re-zip with standard deflate (zip -r, or lpkg build)",
            member=where,
        ))
    too_long = member.too_long_reason
    if too_long and not reason:
        findings.append(Finding(
            "ZIP_NAME_TOO_LONG", Severity.ERROR,
            f"member cannot be unpacked on Linux: {too_long}; it was not extracted — shorten the path",
            member=where,
        ))
    if member.name_not_utf8:
        findings.append(Finding(
            "ZIP_NAME_ENCODING", Severity.WARNING,
            "member name has non-ASCII bytes but is not marked UTF-8; read here as CP437, other unzip tools "
            "may pick another encoding and Python imports only the exact name — re-zip with UTF-8 names",
            member=where,
        ))
    return findings


def _name_findings(archive: ZipArchive, label: str) -> list[Finding]:
    """Names in conflict with each other: a file and a folder, names differing in case, duplicates."""
    findings: list[Finding] = []
    folders = archive.folder_names()
    lowered: dict[str, set[str]] = collections.defaultdict(set)
    for member in archive.members:
        name = member.path
        if not member.is_dir and name in folders:
            findings.append(Finding(
                "ZIP_PATH_CONFLICT", Severity.ERROR,
                "member is a file, and other members use the same name as a folder; it was not extracted "
                "— rebuild the zip",
                member=label + member.name,
            ))
        if name:
            lowered[name.lower()].add(name)
    for names in lowered.values():
        if len(names) > 1:
            first, *others = sorted(names)
            findings.append(Finding(
                "ZIP_CASE_CONFLICT", Severity.WARNING,
                f"names that differ only in case: {', '.join(others)}; on macOS or Windows one replaces the "
                "other when unzipped, so a zip rebuilt there loses one — rename one of them",
                member=label + first,
            ))
    counts = collections.Counter(m.path for m in archive.members if not m.is_dir)
    for name, count in sorted(counts.items()):
        if count > 1:
            findings.append(Finding(
                "ZIP_DUPLICATE", Severity.ERROR,
                f"{count} members have this name; which one Lambda unpacks is undefined — rebuild the zip",
                member=label + name,
            ))
    return findings
