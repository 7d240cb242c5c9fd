"""The contract check (lpkg.checks.contracts) on real files: the post-mortem's functions, the cases under
fixtures/contracts (found, bail-out, ignored), the cache."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lpkg.checks import contracts
from lpkg.checks.contracts import ContractInputs, check_contracts
from lpkg.checks.lambda_context import context_stub_source, names_of
from lpkg.report import Severity

FIXTURES = Path(__file__).parent.parent / "fixtures"
CASES = FIXTURES / "contracts"
DASHBOARD = FIXTURES / "projects" / "rds-dashboard" / "lambda"
EXPECT = re.compile(r"#\s*expect:\s*([A-Z_, ]+)")


def case_files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*.py"))}


def dashboard_files(function: str) -> dict[str, Path]:
    files = {f"shared/{p.name}": p for p in sorted((DASHBOARD / "shared").glob("*.py"))}
    files["handler.py"] = DASHBOARD / function / "handler.py"
    return files


def check(files: dict[str, Path], search_path: tuple[Path, ...] = (), cache_dir: Path | None = None,
          ignored: frozenset[str] = frozenset()) -> list[tuple[str, str | None, int | None]]:
    inputs = ContractInputs(files, search_path, "handler", "handler", "3.11", ignored)
    return [(f.code, f.member, f.line) for f in check_contracts(inputs, cache_dir)]


def expected(folder: Path) -> list[tuple[str, str | None, int | None]]:
    found = []
    for member, path in case_files(folder).items():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            found += [(code.strip(), member, number) for m in EXPECT.finditer(line) for code in m.group(1).split(",")]
    return sorted(found, key=lambda f: (f[1] or "", f[2] or 0, f[0]))


@pytest.mark.parametrize(("function", "finding"), [
    ("inventory-report", ("ATTRIBUTE_MISSING", "handler.py", 14)),  # config.get on the Config dataclass
    ("drift-alerts", ("ATTRIBUTE_MISSING", "handler.py", 14)),  # logger.warning, the logger has warn()
    ("audit-log", ("CONTEXT_ATTRIBUTE_MISSING", "handler.py", 13)),  # context.request_id
])
def test_the_post_mortems_mismatches_are_errors(function: str, finding: tuple[str, str, int]) -> None:
    inputs = ContractInputs(dashboard_files(function), (), "handler", "handler", "3.11")
    findings = check_contracts(inputs, None)
    assert [(f.code, f.member, f.line) for f in findings] == [finding]
    assert findings[0].severity is Severity.ERROR
    assert findings[0].chain == ("handler",)


def test_the_messages_say_what_is_meant() -> None:
    [drift] = check_contracts(ContractInputs(dashboard_files("drift-alerts"), (), "handler", "handler", "3.11"), None)
    assert "did you mean 'warn'" in drift.message and "StructuredLogger" in drift.message
    [audit] = check_contracts(ContractInputs(dashboard_files("audit-log"), (), "handler", "handler", "3.11"), None)
    assert "did you mean 'aws_request_id'" in audit.message
    [config] = check_contracts(ContractInputs(dashboard_files("inventory-report"), (), "handler", "handler", "3.11"),
                               None)
    assert "Config" in config.message and "shared/config.py" in config.message


@pytest.mark.parametrize("function", ["health-check", "compliance-checker", "query-handler"])
def test_correct_functions_give_nothing(function: str) -> None:
    # query-handler's wrong import is FIRST_PARTY_MISSING's finding, not this check's
    assert check(dashboard_files(function)) == []


@pytest.mark.parametrize("case", sorted(p.name for p in (CASES / "found").iterdir()))
def test_each_found_case_gives_exactly_its_marked_findings(case: str) -> None:
    folder = CASES / "found" / case
    want = expected(folder)
    assert want, "a found case marks at least one line"
    assert check(case_files(folder)) == want


def test_a_mismatch_only_in_the_untaken_branch_is_found() -> None:
    folder = CASES / "found" / "untaken_branch"
    assert "404" in (folder / "handler.py").read_text()
    assert check(case_files(folder)) == [("ATTRIBUTE_MISSING", "handler.py", 14)]


def test_a_finding_in_a_helper_carries_the_import_chain() -> None:
    inputs = ContractInputs(case_files(CASES / "found" / "context_helper_plain"), (), "handler", "handler", "3.11")
    [finding] = check_contracts(inputs, None)
    assert finding.member == "shared/tracing.py"
    assert finding.chain == ("handler", "shared.tracing")


@pytest.mark.parametrize("case", sorted(p.name for p in (CASES / "bailout").iterdir()))
def test_each_bail_out_case_gives_nothing(case: str) -> None:
    assert check(case_files(CASES / "bailout" / case)) == []


def test_ignore_comments_and_the_setting_silence_findings() -> None:
    assert check(case_files(CASES / "ignored")) == []
    ignored = case_files(CASES / "ignored")
    assert "lpkg: ignore[ATTRIBUTE_MISSING]" in ignored["handler.py"].read_text()
    assert check(dashboard_files("drift-alerts"), ignored=frozenset({"ATTRIBUTE_MISSING"})) == []


def test_a_module_the_handler_never_imports_is_not_reported(tmp_path: Path) -> None:
    files = case_files(CASES / "found" / "name_error")
    (tmp_path / "unused.py").write_text("def f():\n    return missing_name\n")
    files["unused.py"] = tmp_path / "unused.py"
    assert check(files) == [("NAME_UNDEFINED", "handler.py", 9)]


def test_the_cache_returns_the_same_findings_without_running_the_checker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = dashboard_files("drift-alerts")
    first = check(files, cache_dir=tmp_path)
    assert len(list((tmp_path / "contracts").glob("*.json"))) == 1

    def no_checker(*_: object) -> object:
        raise AssertionError("the checker ran on a cache hit")

    monkeypatch.setattr(contracts, "_run_checker", no_checker)
    assert check(files, cache_dir=tmp_path) == first
    # a change of content is a miss
    changed = tmp_path / "handler.py"
    changed.write_text(files["handler.py"].read_text().replace("logger.warning", "logger.warn"))
    with pytest.raises(AssertionError, match="the checker ran"):
        check({**files, "handler.py": changed}, cache_dir=tmp_path)


def test_the_context_model_offers_what_each_context_type_offers() -> None:
    names = set(names_of("_LpkgLambdaContext"))
    assert {"aws_request_id", "function_name", "function_version", "invoked_function_arn", "memory_limit_in_mb",
            "log_group_name", "log_stream_name", "identity", "client_context", "tenant_id",
            "get_remaining_time_in_millis"} <= names
    assert "request_id" not in names
    compile(context_stub_source(), "stub.pyi", "exec")


@pytest.mark.network
@pytest.mark.parametrize("case", ["context_helper_powertools", "context_typing_handler"])
def test_the_typing_packages_context_types_are_checked_as_lambdas(tmp_path: Path, case: str) -> None:
    """With the real packages installed as the search path, their context types give way to the model, and
    every name awslambdaric's class defines is accepted."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                    "aws-lambda-powertools==3.37.0", "aws-lambda-typing==2.20.0", "awslambdaric==4.2.2"],
                   check=True, capture_output=True)
    folder = CASES / "found" / case
    assert check(case_files(folder), search_path=(site,)) == expected(folder)
    real = (site / "awslambdaric" / "lambda_context.py").read_text()
    assigned = set(re.findall(r"self\.(\w+) = ", real)) | set(re.findall(r"    def (\w+)\(", real))
    assert {n for n in assigned if not n.startswith("__")} <= set(names_of("_LpkgLambdaContext"))


def test_without_the_checker_a_warning_says_nothing_was_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(shutil, "which", lambda *_: None)
    monkeypatch.setattr(contracts, "_checker_binary", lambda: None)
    inputs = ContractInputs(dashboard_files("drift-alerts"), (), "handler", "handler", "3.11")
    [finding] = check_contracts(inputs, None)
    assert finding.code == "CONTRACTS_NOT_CHECKED" and finding.severity is Severity.WARNING


def unpacked_like_a_zip(function: str, folder: Path) -> dict[str, Path]:
    """The function as `lpkg verify` unpacks its zip: first-party code and dependencies in one task root."""
    for member, source in dashboard_files(function).items():
        (folder / member).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / member)
    dist = folder / "tinydep-1.0.dist-info"
    dist.mkdir()
    (folder / "tinydep.py").write_text("def helper():\n    return missing_here\n")  # not first-party: not reported
    (dist / "RECORD").write_text("tinydep.py,,\ntinydep-1.0.dist-info/RECORD,,\n")
    return {member: folder / member for member in dashboard_files(function)}


@pytest.mark.parametrize("function", ["inventory-report", "drift-alerts", "audit-log", "health-check"])
def test_a_task_root_as_search_path_gives_what_the_build_gives(tmp_path: Path, function: str) -> None:
    files = unpacked_like_a_zip(function, tmp_path)
    assert check(files, search_path=(tmp_path,)) == check(dashboard_files(function))


def test_the_same_zip_unpacked_elsewhere_hits_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = tmp_path / "one"
    first.mkdir()
    found = check(unpacked_like_a_zip("audit-log", first), search_path=(first,), cache_dir=cache)
    monkeypatch.setattr(contracts, "_run_checker", lambda *_: (_ for _ in ()).throw(AssertionError("ran")))
    second = tmp_path / "two"
    second.mkdir()
    assert check(unpacked_like_a_zip("audit-log", second), search_path=(second,), cache_dir=cache) == found


def test_every_code_is_one_the_config_may_ignore() -> None:
    from lpkg.report import CONTRACT_CODES

    codes = {code for folder in (CASES / "found").iterdir() for code, _, _ in expected(folder)}
    assert codes == CONTRACT_CODES


@pytest.mark.parametrize("rule", contracts.RULES)
def test_the_checker_knows_every_rule_the_check_keeps(rule: str) -> None:
    """A rule ty renamed would silently drop a kind of finding: its name is checked against ty itself."""
    binary = contracts._checker_binary()
    assert binary is not None
    done = subprocess.run([binary, "explain", "rule", rule], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and f"# {rule}" in done.stdout


def test_a_module_that_does_not_parse_or_is_not_utf8_leaves_the_rest_checked(tmp_path: Path) -> None:
    (tmp_path / "handler.py").write_text("import broken\nimport latin\n\n\ndef handler(event, context):\n"
                                         "    return context.request_id\n")
    (tmp_path / "broken.py").write_text("def f(:\n    pass\n")  # FIRST_PARTY_SYNTAX's finding, not this check's
    (tmp_path / "latin.py").write_bytes(b'# -*- coding: latin-1 -*-\nNAME = "caf\xe9"\n\n\ndef g():\n    return nope\n')
    assert check(case_files(tmp_path)) == [("CONTEXT_ATTRIBUTE_MISSING", "handler.py", 6)]
