"""The README lists every finding code lpkg can emit, and the two commands it promises exist."""

from __future__ import annotations

import re

from helpers import REPO

PREFIXES = ("ZIP|SIZE|LAYER|PERM|NATIVE|HANDLER|IMPORT|SYNTAX|INIT|INVOKE|WALK|RUNTIME|FIRST_PARTY|BUILD|PROBE|CDK"
            "|CONTEXT|ATTRIBUTE|NAME|CALL|CONTRACTS|REQUIREMENT|ENV|PROJECT")
CODE_LITERAL = re.compile(rf'"((?:{PREFIXES})_[A-Z0-9_]+|Runtime\.[A-Za-z]+)"')


def emitted_codes() -> set[str]:
    codes: set[str] = set()
    for source in (REPO / "lpkg").rglob("*.py"):
        codes.update(CODE_LITERAL.findall(source.read_text()))
    return codes


def test_every_finding_code_is_documented() -> None:
    readme = (REPO / "README.md").read_text()
    codes = emitted_codes()
    assert "IMPORT_NAME_MISSING" in codes and "Runtime.ImportModuleError" in codes  # the scan sees the sources
    undocumented = sorted(code for code in codes if f"`{code}`" not in readme)
    assert undocumented == []


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    assert "scripts/test.sh" in readme
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text()
