"""Findings and reports as frozen data, and their two renderings (human lines, one JSON document)."""

from __future__ import annotations

import contextlib
import enum
import json
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lpkg.invocation import Invocation

# The contract checks' codes (lpkg.checks.contracts): the only codes a user may ignore (`ignore` in the config,
# `# lpkg: ignore[CODE]` on a line), since they say a call will fail, not that the zip cannot load.
CONTRACT_CODES = frozenset({"CONTEXT_ATTRIBUTE_MISSING", "ATTRIBUTE_MISSING", "NAME_UNDEFINED",
                            "CALL_SIGNATURE_MISMATCH"})


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


class Stopwatch:
    """The time per phase, for the reports' `timings`."""

    def __init__(self) -> None:
        self.laps: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def lap(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.laps.append((name, time.perf_counter() - start))


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
    invocation: Invocation | None = None  # with --event, once the import succeeded

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        """Warnings allowed: the outcome is the worst severity found."""
        return (worst(self.findings) or Severity.INFO) < Severity.ERROR

    def to_json(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "ok": self.ok,
            "handler": self.handler,
            "runtime": self.runtime,
            "arch": self.arch,
            "probe": self.probe,
            "findings": [f.to_json() for f in self.findings],
            "invocation": self.invocation.to_json() if self.invocation else None,
            "timings": {name: round(sec, 3) for name, sec in self.timings},
            "facts": dict(self.facts),
        }


@dataclass(frozen=True)
class BuildReport:
    """One function's build: what discovery found, and the verification of the zip it produced."""

    function: str
    function_dir: str
    artifact: str | None  # the published zip; None when nothing was written
    intended: str  # where it would be published
    handler: str
    runtime: str
    arch: str
    findings: tuple[Finding, ...]  # discovery and build findings (verification's are in `verify`)
    verify: ArtifactReport | None
    timings: tuple[tuple[str, float], ...] = ()
    facts: tuple[tuple[str, str], ...] = ()
    sources: tuple[tuple[str, str], ...] = ()  # first-party zip path -> its source file, for annotations

    @property
    def ok(self) -> bool:
        return self.artifact is not None

    def all_findings(self) -> tuple[Finding, ...]:
        return sort_findings((*self.findings, *(self.verify.findings if self.verify else ())))

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "function_dir": self.function_dir,
            "ok": self.ok,
            "artifact": self.artifact,
            "intended": self.intended,
            "handler": self.handler,
            "runtime": self.runtime,
            "arch": self.arch,
            "findings": [f.to_json() for f in self.all_findings()],
            "facts": dict(self.facts),
            "largest": dict(self.verify.facts).get("largest") if self.verify else None,
            "probe": self.verify.probe if self.verify else None,
            "invocation": self.verify.invocation.to_json() if self.verify and self.verify.invocation else None,
            "timings": {name: round(sec, 3) for name, sec in self.timings},
        }


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: (-f.severity, f.member or "", f.line or 0, f.code)))


def render_human(reports: Sequence[ArtifactReport], color: bool = False) -> str:
    out: list[str] = []
    for report in reports:
        if report.handler is None and report.runtime == "-":  # a CDK template's own findings
            out.append(report.artifact)
        else:
            out.append(f"{report.artifact} ({report.runtime}, {report.arch}, handler {report.handler or '?'})")
        for finding in report.findings:
            out += _finding_lines(finding, report.artifact, color)
        if report.invocation is not None:
            out += report.invocation.lines()
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


def _finding_lines(finding: Finding, fallback: str, color: bool) -> list[str]:
    codes = {Severity.ERROR: "31", Severity.WARNING: "33", Severity.INFO: "36"}
    code = f"\x1b[{codes[finding.severity]}m{finding.code}\x1b[0m" if color else finding.code
    lines = [f"  {finding.location() or fallback}: {code} {finding.severity.label}: {finding.message}"]
    if finding.chain:
        lines.append(f"      import chain: {' -> '.join(finding.chain)}")
    if finding.distribution:
        lines.append(f"      from distribution: {finding.distribution}")
    return lines


def render_build_human(reports: Sequence[BuildReport], color: bool = False) -> str:
    out: list[str] = []
    for report in reports:
        out.append(f"{report.function} ({report.runtime}, {report.arch}, handler {report.handler})")
        for finding in report.all_findings():
            out += _finding_lines(finding, report.function_dir, color)
        if report.verify is not None and report.verify.invocation is not None:
            out += report.verify.invocation.lines()
        for key, value in report.facts:
            out.append(f"  {key}: {value}")
        if report.verify is not None:
            out.append(f"  largest: {dict(report.verify.facts).get('largest', '')}")
            out.append(f"  probe: {report.verify.probe}")
        out.append("  time: " + ", ".join(f"{name} {sec:.1f}s" for name, sec in report.timings))
        if report.ok:
            out.append(f"  built: {report.artifact}")
        else:
            out.append(f"  FAILED: nothing written to {report.intended}")
    failed = sum(1 for r in reports if not r.ok)
    out.append(f"{len(reports) - failed} built, {failed} failed")
    return "\n".join(out)


def render_build_json(reports: Sequence[BuildReport]) -> str:
    return json.dumps({"ok": all(r.ok for r in reports), "functions": [r.to_json() for r in reports]}, indent=2)


def render_json(reports: Sequence[ArtifactReport]) -> str:
    doc = {
        "ok": all(r.ok for r in reports),
        "artifacts": [r.to_json() for r in reports],
    }
    return json.dumps(doc, indent=2, sort_keys=False)


_said: set[str] = set()
_said_lock = threading.Lock()


def notice(message: str) -> None:
    """One line on stderr about a choice lpkg made for the user (e.g. no Docker: building without it),
    said once per process however many functions it applies to. stdout stays free for --json."""
    with _said_lock:
        if message in _said:
            return
        _said.add(message)
    print(f"lpkg: {message}", file=sys.stderr, flush=True)
