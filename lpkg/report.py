"""Findings and reports as frozen data, and their two renderings (human lines, one JSON document)."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    """Ordered so that the worst of a list is its max()."""

    INFO = 0
    WARNING = 1
    ERROR = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    code: str  # stable, documented in the README
    severity: Severity
    message: str  # what is wrong and what to do
    member: str | None = None  # zip member or source file
    line: int | None = None
    chain: tuple[str, ...] = ()  # import chain from the handler
    distribution: str | None = None  # the installed distribution the member belongs to

    def location(self) -> str:
        if self.member is None:
            return ""
        return self.member if self.line is None else f"{self.member}:{self.line}"

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.label,
            "message": self.message,
            "member": self.member,
            "line": self.line,
            "chain": list(self.chain),
            "distribution": self.distribution,
        }


def worst(findings: Iterable[Finding]) -> Severity | None:
    return max((f.severity for f in findings), default=None)


@dataclass(frozen=True)
class ArtifactReport:
    """What verification found in one zip (with its layers)."""

    artifact: str
    handler: str | None
    runtime: str
    arch: str
    findings: tuple[Finding, ...]
    probe: str  # "docker:<image>", "local:<interpreter> (not sandboxed)" or "skipped: <why>"
    timings: tuple[tuple[str, float], ...] = ()
    facts: tuple[tuple[str, str], ...] = field(default=())  # e.g. sizes, sha256

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "ok": self.ok,
            "handler": self.handler,
            "runtime": self.runtime,
            "arch": self.arch,
            "probe": self.probe,
            "findings": [f.to_json() for f in self.findings],
            "timings": {name: round(sec, 3) for name, sec in self.timings},
            "facts": dict(self.facts),
        }


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: (-f.severity, f.member or "", f.line or 0, f.code)))


def render_human(reports: Sequence[ArtifactReport], color: bool = False) -> str:
    def paint(text: str, severity: Severity) -> str:
        if not color:
            return text
        codes = {Severity.ERROR: "31", Severity.WARNING: "33", Severity.INFO: "36"}
        return f"\x1b[{codes[severity]}m{text}\x1b[0m"

    out: list[str] = []
    for report in reports:
        out.append(f"{report.artifact} ({report.runtime}, {report.arch}, handler {report.handler or '?'})")
        for finding in report.findings:
            where = finding.location() or report.artifact
            line = f"  {where}: {paint(finding.code, finding.severity)} {finding.severity.label}: {finding.message}"
            out.append(line)
            if finding.chain:
                out.append(f"      import chain: {' -> '.join(finding.chain)}")
            if finding.distribution:
                out.append(f"      from distribution: {finding.distribution}")
        for key, value in report.facts:
            out.append(f"  {key}: {value}")
        out.append(f"  probe: {report.probe}")
        verdict = "ok" if report.ok else "FAILED"
        out.append(
            f"  {verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
            + (f" in {dict(report.timings)['total']:.1f}s" if "total" in dict(report.timings) else "")
        )
    failed = sum(1 for r in reports if not r.ok)
    out.append(f"{len(reports)} artifact(s) checked, {failed} failed")
    return "\n".join(out)


def render_json(reports: Sequence[ArtifactReport]) -> str:
    doc = {
        "ok": all(r.ok for r in reports),
        "artifacts": [r.to_json() for r in reports],
    }
    return json.dumps(doc, indent=2, sort_keys=False)
