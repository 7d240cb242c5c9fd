"""CI annotations (issue 15, part 5): GitHub workflow commands and a GitLab code quality report, pointing at the
repository file and line; checked against the formats as GitHub and GitLab document them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import FIXTURES, run_lpkg

from lpkg.annotations import Annotation, github_commands, gitlab_report
from lpkg.report import Finding, Severity

QUERY_HANDLER = FIXTURES / "projects" / "rds-dashboard" / "lambda" / "query-handler"
REPO = FIXTURES.parent
# GitHub: ::{error|warning|notice} file={name},line={line},title={title}::{message}, every property optional.
# Data escapes %, CR and LF; property values also ':' and ','.
GITHUB_COMMAND = re.compile(r"^::(error|warning|notice)(?: ((?:[a-z]+=[^,:]*)(?:,[a-z]+=[^,:]*)*))?::(.*)$")
GITLAB_SEVERITIES = {"info", "minor", "major", "critical", "blocker"}


def parse_command(line: str) -> tuple[str, dict[str, str], str]:
    match = GITHUB_COMMAND.match(line)
    assert match, f"not a workflow command: {line!r}"
    properties = dict(p.split("=", 1) for p in (match.group(2) or "").split(",") if p)
    return match.group(1), properties, match.group(3)


def test_github_commands_escape_what_the_format_reserves() -> None:
    finding = Finding("INIT_EXCEPTION", Severity.ERROR, "100% broken:\nsecond line, with a comma", "app.py", 3)
    level, properties, message = parse_command(github_commands([Annotation(finding, "src/a,b:c.py", "orders")]))
    assert level == "error"
    assert properties == {"file": "src/a%2Cb%3Ac.py", "line": "3", "title": "INIT_EXCEPTION"}
    assert message == "orders: 100%25 broken:%0Asecond line, with a comma"
    assert "\n" not in github_commands([Annotation(finding, None, "orders")])


def test_a_finding_without_a_repository_file_names_its_member_and_has_no_file() -> None:
    finding = Finding("NATIVE_WRONG_ARCH", Severity.WARNING, "built for x86_64", "numpy/core.so")
    level, properties, message = parse_command(github_commands([Annotation(finding, None, "dist/x.zip")]))
    assert (level, properties) == ("warning", {"title": "NATIVE_WRONG_ARCH"})
    assert message == "dist/x.zip: built for x86_64 (zip member numpy/core.so)"


def test_gitlab_report_has_the_documented_fields() -> None:
    findings = [Finding("INIT_EXCEPTION", Severity.ERROR, "raised", "app.py", 3),
                Finding("RUNTIME_DEPRECATED", Severity.WARNING, "old"),
                Finding("BUILD_RUNTIME_SDK", Severity.INFO, "left out")]
    issues = json.loads(gitlab_report([Annotation(f, "app.py" if f.member else None, "orders") for f in findings]))
    assert len(issues) == 3
    for issue in issues:
        assert set(issue) >= {"description", "check_name", "fingerprint", "severity", "location"}
        assert issue["severity"] in GITLAB_SEVERITIES
        assert isinstance(issue["location"]["path"], str) and issue["location"]["lines"]["begin"] >= 1
    assert issues[0]["location"] == {"path": "app.py", "lines": {"begin": 3}}
    assert len({i["fingerprint"] for i in issues}) == 3


def test_build_annotations_point_at_the_repository_file_and_line() -> None:
    """The post-mortem's import mismatch, annotated where the import is written (no container needed)."""
    run = run_lpkg("build", str(QUERY_HANDLER.relative_to(REPO)), "--format", "github", "--no-test", cwd=REPO)
    assert run.returncode == 1, run.stderr
    commands = [parse_command(line) for line in run.stdout.splitlines()]
    level, properties, message = next(c for c in commands if c[1].get("title") == "FIRST_PARTY_MISSING")
    assert level == "error"
    assert properties["file"] == "fixtures/projects/rds-dashboard/lambda/query-handler/handler.py"
    assert properties["line"] == "7"
    assert "get_rds_client" in message


@pytest.mark.parametrize(("variable", "fmt"), [("GITHUB_ACTIONS", "github"), ("GITLAB_CI", "gitlab")])
def test_under_ci_the_human_report_gets_the_annotations(tmp_path: Path, variable: str, fmt: str) -> None:
    run = run_lpkg("build", str(QUERY_HANDLER), "--no-test", "--out", str(tmp_path / "dist"), cwd=tmp_path,
                   env={variable: "true"})
    assert run.returncode == 1, run.stderr
    assert "FIRST_PARTY_MISSING" in run.stdout and "FAILED: nothing written" in run.stdout
    if fmt == "github":
        assert any(line.startswith("::error file=") for line in run.stdout.splitlines())
    else:
        issues = json.loads((tmp_path / "gl-code-quality-report.json").read_text(encoding="utf-8"))
        assert any(i["check_name"] == "FIRST_PARTY_MISSING" and i["location"]["lines"]["begin"] == 7 for i in issues)
