"""File permissions: Lambda runs code as a non-root user, so everything must be world-readable."""

from __future__ import annotations

import stat

from lpkg.archive.reader import ZipArchive
from lpkg.report import Finding, Severity


def check_permissions(archive: ZipArchive, label: str = "") -> list[Finding]:
    findings: list[Finding] = []
    for member in archive.members:
        if member.mode is None or member.unsafe_reason:
            continue
        if member.is_dir:
            bad = (member.mode & (stat.S_IROTH | stat.S_IXOTH)) != (stat.S_IROTH | stat.S_IXOTH)
            need = "0755"
        else:
            bad = not member.mode & stat.S_IROTH
            need = "0644 (0755 for executables)"
        if bad:
            findings.append(Finding(
                "PERM_NOT_READABLE", Severity.ERROR,
                f"mode {member.mode:04o} is not readable by others; Lambda runs your code as a non-root user, "
                f"so this fails with Permission denied — chmod to {need} before zipping",
                member=label + member.name,
            ))
    return findings
