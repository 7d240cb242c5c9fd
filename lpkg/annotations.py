"""Findings as CI annotations: GitHub Actions workflow commands (`::error file=…,line=…::…`) and a GitLab code
quality report (a JSON array of issues), each pointing at the file and line in the repository.

A finding's member is a zip path; a build knows which source file each first-party member came from, so its
annotations point at that file. Members of a zip from elsewhere (verify) have no file in the repository: those
annotations name the member in the message and carry no file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from lpkg.report import ArtifactReport, BuildReport, Finding, Severity

GITLAB_REPORT = "gl-code-quality-report.json"  # the name GitLab's documentation uses for the artifact
GITHUB_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
# GitLab's code quality severities: info, minor, major, critical, blocker.
GITLAB_SEVERITIES = {Severity.ERROR: "critical", Severity.WARNING: "minor", Severity.INFO: "info"}


@dataclass(frozen=True)
class Annotation:
    finding: Finding
    file: str | None  # repository-relative path, "/"-separated; None where the finding has no source file
    subject: str  # the function or artifact the finding is about

    @property
    def message(self) -> str:
        where = ""
        if self.file is None and self.finding.member:
            where = f" (zip member {self.finding.location()})"
        chain = f" [import chain: {' -> '.join(self.finding.chain)}]" if self.finding.chain else ""
        return f"{self.subject}: {self.finding.message}{where}{chain}"


def _relative(path: str, cwd: Path) -> str:
    try:
        return Path(os.path.relpath(path, cwd)).as_posix()
    except ValueError:  # another drive (Windows)
        return Path(path).as_posix()


def build_annotations(reports: Sequence[BuildReport], cwd: Path) -> list[Annotation]:
    out: list[Annotation] = []
    for report in reports:
        sources: Mapping[str, str] = dict(report.sources)
        for finding in report.all_findings():
            source = sources.get(finding.member or "")
            out.append(Annotation(finding, _relative(source, cwd) if source else None, report.function))
    return out


def verify_annotations(reports: Sequence[ArtifactReport]) -> list[Annotation]:
    return [Annotation(finding, None, report.artifact) for report in reports for finding in report.findings]


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_commands(annotations: Iterable[Annotation]) -> str:
    """One workflow command per finding (GitHub's `::error file={name},line={line},title={title}::{message}`)."""
    lines = []
    for a in annotations:
        properties = [f"title={_escape_property(a.finding.code)}"]
        if a.file is not None:
            properties.insert(0, f"file={_escape_property(a.file)}")
            if a.finding.line is not None:
                properties.insert(1, f"line={a.finding.line}")
        lines.append(f"::{GITHUB_LEVELS[a.finding.severity]} {','.join(properties)}::{_escape_data(a.message)}")
    return "\n".join(lines)


def gitlab_report(annotations: Iterable[Annotation]) -> str:
    """A code quality report: description, check_name, fingerprint, severity, location.path and lines.begin."""
    issues = []
    for a in annotations:
        path = a.file or a.subject
        fingerprint = hashlib.sha256(
            "\0".join((a.finding.code, path, a.finding.member or "", str(a.finding.line or ""),
                       a.finding.message)).encode()).hexdigest()
        issues.append({
            "description": a.message,
            "check_name": a.finding.code,
            "fingerprint": fingerprint,
            "severity": GITLAB_SEVERITIES[a.finding.severity],
            "location": {"path": path, "lines": {"begin": a.finding.line or 1}},
        })
    return json.dumps(issues, indent=2)


def detected_ci(environ: Mapping[str, str]) -> str | None:
    """The CI whose annotations to add to the human output: GitHub Actions or GitLab CI, else None."""
    if environ.get("GITHUB_ACTIONS") == "true":
        return "github"
    if environ.get("GITLAB_CI") == "true":
        return "gitlab"
    return None


def emit_report(report: Callable[[], str], annotations: Callable[[], list[Annotation]],
                output_format: str | None) -> None:
    """The report on stdout in the format asked for; under a CI that reads annotations, the human report and them."""
    if output_format == "github":
        click.echo(github_commands(annotations()))
        return
    if output_format == "gitlab":
        click.echo(gitlab_report(annotations()))
        return
    click.echo(report())
    ci = detected_ci(os.environ) if output_format is None else None
    if ci == "github":
        commands = github_commands(annotations())
        if commands:
            click.echo(commands)
    elif ci == "gitlab":
        Path(GITLAB_REPORT).write_text(gitlab_report(annotations()), encoding="utf-8")
        click.echo(f"lpkg: code quality report written to {GITLAB_REPORT}", err=True)
