"""Handler strings as the runtime parses them, and finding the handler in a zip (fixtures/zips)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lpkg.commands.verify import VerifyOptions, verify_zip
from lpkg.errors import UsageError
from lpkg.handler import Handler, defined_handlers, infer_handler, parse_handler
from lpkg.report import ArtifactReport
from lpkg.runtimes import get_runtime

ZIPS = Path(__file__).resolve().parent.parent / "fixtures" / "zips"
DEF_HANDLER = "def handler(event, context):\n    return 1\n"
DEF_LAMBDA_HANDLER = "def lambda_handler(event, context):\n    return 1\n"


def verify(name: str, handler: str | None = None) -> ArtifactReport:
    options = VerifyOptions(runtime=get_runtime("python3.11"), arch="x86_64", handler=handler)
    return verify_zip(ZIPS / name, options, None)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lpkg", "verify", "--probe", "none", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


# parse_handler


@pytest.mark.parametrize(("text", "module", "function"), [
    ("handler.handler", "handler", "handler"),
    ("lambda_function.lambda_handler", "lambda_function", "lambda_handler"),
    ("app/main.handler", "app.main", "handler"),
    ("pkg.mod.fn", "pkg.mod", "fn"),
    ("src/pkg/mod.fn", "src.pkg.mod", "fn"),
    ("  handler.handler\n", "handler", "handler"),
    ("_private._fn", "_private", "_fn"),
    # Not identifiers, yet the runtime imports them (importlib.import_module finds the file):
    # aws-samples/serverless-patterns' lambda-kinesis-lambda deploys producer-function.lambda_handler.
    ("producer-function.lambda_handler", "producer-function", "lambda_handler"),
    ("src/my-app/1st.handler", "src.my-app.1st", "handler"),
    ("mod.1fn", "mod", "1fn"),  # a function no def can name: the probe's HANDLER_MISSING, not a bad string
])
def test_parse_valid(text: str, module: str, function: str) -> None:
    handler = parse_handler(text)
    assert handler == Handler(module, function)
    assert handler.string == f"{module}.{function}"


def test_module_files() -> None:
    assert parse_handler("app/main.handler").module_files() == ("app/main.py", "app/main/__init__.py", "app/main.pyc")


@pytest.mark.parametrize("text", [
    "handler",  # no function
    "",
    ".handler",  # no module
    "handler.",  # no function
    "a..b",  # empty module part
    "pkg..mod.fn",
    "app/.handler",
    "/app.handler",  # leading slash: empty first part
    "mod:fn",  # no dot
    "my module.handler",  # whitespace: Lambda's API refuses it
    "mod.fn\x00",
])
def test_parse_invalid(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_handler(text)
    assert "Runtime.MalformedHandlerName" in caught.value.message
    assert caught.value.exit_code == 2
    assert caught.value.hint and "MODULE.FUNCTION" in caught.value.hint


# infer_handler


def test_infer_single_candidate() -> None:
    assert infer_handler({"handler.py": DEF_HANDLER}) == Handler("handler", "handler")
    assert infer_handler({"lambda_function.py": DEF_LAMBDA_HANDLER}) == Handler("lambda_function", "lambda_handler")
    assert infer_handler({"index.py": "async def handler(e, c):\n    pass\n"}) == Handler("index", "handler")
    assert infer_handler({"main.py": "def make():\n    pass\nhandler = make()\n"}) == Handler("main", "handler")


def test_infer_ignores_candidates_that_define_no_handler() -> None:
    sources: dict[str, str | None] = {"handler.py": "x = 1\n", "app.py": DEF_LAMBDA_HANDLER, "util.py": DEF_HANDLER}
    assert infer_handler(sources) == Handler("app", "lambda_handler")


def test_infer_ignores_nested_definitions() -> None:
    nested = "class C:\n    def handler(self):\n        pass\n"
    with pytest.raises(UsageError, match="no handler"):
        infer_handler({"handler.py": nested})


@pytest.mark.parametrize("sources", [
    {},
    {"util.py": DEF_HANDLER},  # not a candidate module
    {"handler.py": "x = 1\n"},
    {"handler.py": "x = 1\n", "app.py": "y = 2\n"},
])
def test_infer_no_handler(sources: dict[str, str | None]) -> None:
    with pytest.raises(UsageError) as caught:
        infer_handler(sources)
    assert "(no handler)" in caught.value.message
    assert caught.value.hint and "--handler" in caught.value.hint


@pytest.mark.parametrize("sources", [
    {"handler.py": DEF_HANDLER, "app.py": DEF_HANDLER},
    {"handler.py": DEF_HANDLER + DEF_LAMBDA_HANDLER},  # two handler-like functions in one module
])
def test_infer_ambiguous(sources: dict[str, str | None]) -> None:
    with pytest.raises(UsageError) as caught:
        infer_handler(sources)
    assert "several candidates" in caught.value.message


def test_infer_reports_what_it_saw() -> None:
    with pytest.raises(UsageError) as caught:
        infer_handler({"handler.py": DEF_HANDLER, "app.py": DEF_HANDLER, "main.py": "x = 1\n"})
    message = caught.value.message
    assert "handler.py (defines handler)" in message
    assert "app.py (defines handler)" in message
    assert "main.py (defines neither handler nor lambda_handler)" in message


def test_infer_single_candidate_with_syntax_error_is_checked_anyway() -> None:
    assert infer_handler({"handler.py": "def handler(:\n"}) == Handler("handler", "handler")
    assert infer_handler({"lambda_function.py": "def (\n"}) == Handler("lambda_function", "lambda_handler")
    assert infer_handler({"app.py": None}) == Handler("app", "handler")  # unreadable


def test_infer_syntax_error_beside_a_good_candidate() -> None:
    assert infer_handler({"handler.py": "def (\n", "app.py": DEF_HANDLER}) == Handler("app", "handler")
    with pytest.raises(UsageError, match=r"handler.py \(does not parse, line 1\)"):
        infer_handler({"handler.py": "def (\n", "app.py": "def (\n"})


def test_defined_handlers() -> None:
    assert defined_handlers(DEF_HANDLER + DEF_LAMBDA_HANDLER + DEF_HANDLER) == ("handler", "lambda_handler")
    assert defined_handlers("handler = lambda e, c: 1\n") == ("handler",)
    assert defined_handlers("def other(e, c):\n    pass\n") == ()
    with pytest.raises(SyntaxError):
        defined_handlers("def (\n")


# On the fixtures


def test_lambda_function_fixture_is_inferred() -> None:
    report = verify("handler-lambda-function-good.zip")
    assert report.handler == "lambda_function.lambda_handler"
    assert report.ok


def test_inferred_handler_in_every_good_fixture() -> None:
    for path in sorted(ZIPS.glob("*-good.zip")):
        if path.name in ("empty-good.zip", "handler-lambda-function-good.zip"):
            continue
        assert verify(path.name).handler == "handler.handler", path.name


def test_no_candidate_fixture() -> None:
    with pytest.raises(UsageError, match="no handler"):
        verify("handler-none-bad.zip")
    # util.handler exists: named explicitly it is fine.
    report = verify("handler-none-bad.zip", "util.handler")
    assert report.ok and report.handler == "util.handler"


def test_ambiguous_fixture() -> None:
    with pytest.raises(UsageError, match=r"several candidates.*handler.py \(defines handler\), app.py"):
        verify("handler-ambiguous-bad.zip")
    assert verify("handler-ambiguous-bad.zip", "app.handler").ok
    assert verify("handler-ambiguous-bad.zip", "handler.handler").ok


def test_given_handler_whose_module_is_missing() -> None:
    report = verify("perm-good.zip", "missing.handler")
    [finding] = report.findings
    assert finding.code == "HANDLER_MISSING"
    assert "Runtime.ImportModuleError" in finding.message
    assert "missing.py" in finding.message
    assert report.probe == "not run: the handler module is missing"


def test_given_handler_as_a_package() -> None:
    assert verify("perm-good.zip", "lib.handler").ok  # lib/__init__.py


# On the command line


@pytest.mark.parametrize(("args", "words"), [
    (("handler-none-bad.zip",), "cannot tell the handler (no handler)"),
    (("handler-ambiguous-bad.zip",), "cannot tell the handler (several candidates)"),
    (("--handler", "handler", "perm-good.zip"), "Runtime.MalformedHandlerName"),
    (("--handler", "a..b", "perm-good.zip"), "Runtime.MalformedHandlerName"),
])
def test_cli_usage_errors_exit_2(args: tuple[str, ...], words: str) -> None:
    *options, name = args
    result = run_cli(*options, str(ZIPS / name))
    assert result.returncode == 2
    assert words in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    as_json = run_cli("--json", *options, str(ZIPS / name))
    assert as_json.returncode == 2
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is False and words in doc["error"]["message"]


@pytest.mark.parametrize(("args", "code", "handler"), [
    (("handler-lambda-function-good.zip",), 0, "lambda_function.lambda_handler"),
    (("--handler", "app.handler", "handler-ambiguous-bad.zip"), 0, "app.handler"),
    (("--handler", "util.handler", "handler-none-bad.zip"), 0, "util.handler"),
    (("--handler", "app/main.handler", "perm-good.zip"), 1, "app.main.handler"),
])
def test_cli_handler(args: tuple[str, ...], code: int, handler: str) -> None:
    *options, name = args
    result = run_cli("--json", *options, str(ZIPS / name))
    assert result.returncode == code, result.stderr
    [artifact] = json.loads(result.stdout)["artifacts"]
    assert artifact["handler"] == handler
    if code == 1:
        assert [f["code"] for f in artifact["findings"]] == ["HANDLER_MISSING"]
