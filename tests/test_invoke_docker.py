"""The smoke invoke (--event) end to end: real zips and builds, the handler called in the stand-in
runtime image with the image's own awslambdaric LambdaContext, no network."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import PROJECT, run_lpkg, write_zip, zip_folders

pytestmark = pytest.mark.docker


def verify_invoke(zip_path: Path, image: str, *extra: str) -> tuple[int, dict[str, Any]]:
    run = run_lpkg("verify", zip_path, "--runtime", "python3.11", "--image", image, "--probe", "docker",
                   "--json", *extra)
    assert "Traceback" not in run.stderr
    return run.returncode, json.loads(run.stdout)["artifacts"][0]


def project_zip(tmp_path: Path, function: str) -> Path:
    return zip_folders(tmp_path / f"{function}.zip", {PROJECT / function: "", PROJECT / "shared": "shared/"})


def only_error(artifact: dict[str, Any]) -> dict[str, Any]:
    errors = [f for f in artifact["findings"] if f["severity"] == "error"]
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.parametrize(("function", "line", "message"), [
    ("inventory-report", 14, "AttributeError: 'Config' object has no attribute 'get'"),  # post-mortem 3
    ("drift-alerts", 14, "AttributeError: 'StructuredLogger' object has no attribute 'warning'"),  # 4
    ("audit-log", 13, "AttributeError: 'LambdaContext' object has no attribute 'request_id'"),  # 5
])
def test_postmortem_call_time_failures_are_caught_with_file_and_line(
    tmp_path: Path, standin_image: str, function: str, line: int, message: str
) -> None:
    zip_path = project_zip(tmp_path, function)
    # Without --event each of them imports; the contract check (issue 13) already refuses the line.
    status, artifact = verify_invoke(zip_path, standin_image)
    assert status == 1
    assert only_error(artifact)["code"] in ("ATTRIBUTE_MISSING", "CONTEXT_ATTRIBUTE_MISSING")
    assert only_error(artifact)["line"] == line
    # The smoke invoke finds the same line failing for real.
    status, artifact = verify_invoke(zip_path, standin_image, "--event", "apigw:GET:/health")
    assert status == 1
    error = next(f for f in artifact["findings"] if f["code"] == "INVOKE_ERROR")
    assert (error["member"], error["line"]) == ("handler.py", line)
    assert message in error["message"]
    invocation = artifact["invocation"]
    # Lambda's error response: errorType, errorMessage, the stack cut to the function's own frames.
    assert invocation["errorType"] == "AttributeError"
    assert message.split(": ", 1)[1] == invocation["errorMessage"]
    assert invocation["stackTrace"][-1].startswith(f"handler.py:{line} in handler: ")
    assert invocation["context"] == "awslambdaric"


def test_correct_function_returns_its_response(tmp_path: Path, standin_image: str) -> None:
    status, artifact = verify_invoke(project_zip(tmp_path, "health-check"), standin_image,
                                     "--event", "apigw:GET:/health")
    assert status == 0, artifact["findings"]
    invocation = artifact["invocation"]
    assert invocation["status"] == "ok"
    response = json.loads(invocation["response"])
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["inventory_table"] == "rds-inventory"
    # A real LambdaContext: the remaining time counts down from the function's timeout.
    assert 0 < body["time_left_ms"] <= 30_000
    assert body["function"] == "health-check"  # AWS_LAMBDA_FUNCTION_NAME: the zip's name
    assert '"message": "healthy"' in invocation["output"]  # what the handler printed


def test_build_with_event_writes_nothing_for_a_failing_handler(tmp_path: Path, standin_image: str) -> None:
    out = tmp_path / "dist"
    common = ["--out", out, "--build-image", standin_image, "--image", standin_image, "--event", "apigw:GET:/health"]
    failed = run_lpkg("build", PROJECT / "audit-log", *common)
    assert failed.returncode == 1
    assert "handler.py:13: INVOKE_ERROR" in failed.stdout
    assert "'LambdaContext' object has no attribute 'request_id'" in failed.stdout
    assert not out.exists() or not list(out.iterdir())
    built = run_lpkg("build", PROJECT / "health-check", *common)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (out / "health-check.zip").is_file()
    assert "invoke (apigw:GET:/health): returned in" in built.stdout


def test_network_call_at_invoke_time_is_named_not_a_hang(tmp_path: Path, standin_image: str) -> None:
    started = time.monotonic()
    status, artifact = verify_invoke(project_zip(tmp_path, "compliance-checker"), standin_image, "--event", "schedule")
    assert status == 1
    error = only_error(artifact)
    assert error["code"] == "INVOKE_NETWORK"
    assert "rds.us-east-1.amazonaws.com:443" in error["message"] and "no network" in error["message"]
    assert (error["member"], error["line"]) == ("handler.py", 18)
    # botocore's retries never start: the first attempt stops the call (no timing assertion beyond
    # "well inside the function's timeout", which a hang would reach).
    assert artifact["invocation"]["seconds"] < 30
    assert time.monotonic() - started < 120


def test_handler_sleeping_past_its_timeout_is_stopped_and_reported(tmp_path: Path, standin_image: str) -> None:
    code = "import time\n\n\ndef handler(event, context):\n    time.sleep(60)\n    return 1\n"
    zip_path = write_zip(tmp_path / "slow.zip", {"handler.py": code})
    status, artifact = verify_invoke(zip_path, standin_image, "--event", "empty", "--timeout", "2")
    assert status == 1
    error = only_error(artifact)
    assert error["code"] == "INVOKE_TIMEOUT"
    assert (error["member"], error["line"]) == ("handler.py", 5)
    assert artifact["invocation"]["errorMessage"] == "Task timed out after 2.00 seconds"


def test_event_file_marshal_error_and_system_exit(tmp_path: Path, standin_image: str) -> None:
    event_file = tmp_path / "order.json"
    event_file.write_text(json.dumps({"order": {"id": 42, "items": ["a", "b"]}}))
    code = (
        "import sys\n\n\n"
        "def handler(event, context):\n"
        "    print('order', event['order']['id'])\n"
        "    return {'items': len(event['order']['items'])}\n\n\n"
        "def not_json(event, context):\n"
        "    return {'when': object()}\n\n\n"
        "def exits(event, context):\n"
        "    sys.exit(3)\n"
    )
    zip_path = write_zip(tmp_path / "app.zip", {"app.py": code})
    status, artifact = verify_invoke(zip_path, standin_image, "--handler", "app.handler", "--event", event_file)
    assert status == 0, artifact["findings"]
    assert json.loads(artifact["invocation"]["response"]) == {"items": 2}
    assert artifact["invocation"]["output"].strip() == "order 42"
    assert artifact["invocation"]["event"] == str(event_file)

    status, artifact = verify_invoke(zip_path, standin_image, "--handler", "app.not_json", "--event", event_file)
    assert status == 1
    assert artifact["invocation"]["errorType"] == "Runtime.MarshalError"
    assert only_error(artifact)["code"] == "INVOKE_ERROR"

    status, artifact = verify_invoke(zip_path, standin_image, "--handler", "app.exits", "--event", event_file)
    assert status == 1
    assert artifact["invocation"]["errorType"] == "SystemExit"
    assert only_error(artifact)["line"] == 14


def test_invoke_is_not_run_when_the_import_fails(tmp_path: Path, standin_image: str) -> None:
    zip_path = zip_folders(tmp_path / "qh.zip", {PROJECT / "query-handler": "", PROJECT / "shared": "shared/"})
    status, artifact = verify_invoke(zip_path, standin_image, "--event", "empty")
    assert status == 1
    assert artifact["invocation"] is None
    assert "INVOKE_ERROR" not in {f["code"] for f in artifact["findings"]}
    assert "Runtime.ImportModuleError" in {f["code"] for f in artifact["findings"]}


def test_process_dying_during_the_call_is_reported(tmp_path: Path, standin_image: str) -> None:
    code = "import os\n\n\ndef handler(event, context):\n    print('about to go', flush=True)\n    os._exit(7)\n"
    status, artifact = verify_invoke(write_zip(tmp_path / "dies.zip", {"handler.py": code}), standin_image,
                                     "--event", "empty")
    assert status == 1
    error = only_error(artifact)
    assert error["code"] == "INVOKE_CRASHED"
    assert "exited with status 7" in error["message"]
    assert artifact["invocation"]["errorType"] == "Runtime.ExitError"
    assert "about to go" in artifact["invocation"]["output"]
