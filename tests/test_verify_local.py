"""The probe without Docker: a local interpreter of the runtime's version, in a subprocess, said plainly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import PROJECT, run_lpkg, write_zip, zip_folders

needs_python311 = pytest.mark.skipif(shutil.which("python3.11") is None, reason="no python3.11 on PATH")


@needs_python311
def test_local_probe_finds_the_postmortem_import(tmp_path: Path) -> None:
    qh = zip_folders(tmp_path / "qh.zip", {PROJECT / "query-handler": "", PROJECT / "shared": "shared/"})
    run = run_lpkg("verify", qh, "--runtime", "python3.11", "--probe", "local", "--json")
    artifact = json.loads(run.stdout)["artifacts"][0]
    assert run.returncode == 1
    assert "NOT sandboxed" in artifact["probe"]
    name_missing = next(f for f in artifact["findings"] if f["code"] == "IMPORT_NAME_MISSING")
    assert (name_missing["member"], name_missing["line"]) == ("handler.py", 7)
    # boto3 is the runtime's; a local interpreter without it must not turn that into an error.
    assert not any("boto3" in f["message"] and f["severity"] == "error" for f in artifact["findings"])


@needs_python311
def test_local_probe_says_what_it_does_not_prove(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "ok.zip", {"handler.py": "def handler(e, c):\n    return 1\n"})
    run = run_lpkg("verify", z, "--runtime", "python3.11", "--probe", "local")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "NOT sandboxed" in run.stdout
    assert "not Lambda's" in run.stdout


def test_host_checks_only(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "h.zip", {"handler.py": "import nothing_like_this\ndef handler(e, c):\n    return 1\n"})
    run = run_lpkg("verify", z, "--probe", "none")
    assert run.returncode == 0
    assert "probe: not run: not asked for" in run.stdout


@needs_python311
def test_local_probe_imports_past_the_runtime_sdk(tmp_path: Path) -> None:
    """boto3 is the runtime's and absent locally: stand-ins let the import go on to the code after it."""
    code = (
        "import boto3\nfrom botocore.exceptions import ClientError\n\n"
        "class NotFound(ClientError):\n    pass\n\n"
        "S3 = boto3.client('s3')\nimport missing_after_boto3\n\n"
        "def handler(event, context):\n    return 1\n"
    )
    z = write_zip(tmp_path / "sdk.zip", {"handler.py": code})
    run = run_lpkg("verify", z, "--runtime", "python3.11", "--probe", "local", "--json")
    artifact = json.loads(run.stdout)["artifacts"][0]
    by_code = {f["code"]: f for f in artifact["findings"]}
    assert run.returncode == 1
    failure = by_code["Runtime.ImportModuleError"]
    assert "missing_after_boto3" in failure["message"]
    assert (failure["member"], failure["line"]) == ("handler.py", 8)
    assert "boto3" in by_code["RUNTIME_PROVIDED_STOOD_IN"]["message"]


@needs_python311
def test_local_smoke_invoke_uses_a_context_with_lambdas_attributes(tmp_path: Path) -> None:
    """Without Docker (and without awslambdaric here) the context still has exactly Lambda's attributes."""
    bad = zip_folders(tmp_path / "al.zip", {PROJECT / "audit-log": "", PROJECT / "shared": "shared/"})
    run = run_lpkg("verify", bad, "--runtime", "python3.11", "--probe", "local", "--event", "schedule", "--json")
    artifact = json.loads(run.stdout)["artifacts"][0]
    assert run.returncode == 1
    error = next(f for f in artifact["findings"] if f["code"] == "INVOKE_ERROR")
    assert (error["member"], error["line"]) == ("handler.py", 13)
    assert "has no attribute 'request_id'" in error["message"]
    good = zip_folders(tmp_path / "hc.zip", {PROJECT / "health-check": "", PROJECT / "shared": "shared/"})
    run = run_lpkg("verify", good, "--runtime", "python3.11", "--probe", "local", "--event", "http:GET:/health",
                   "--json")
    assert run.returncode == 0, run.stdout
    assert json.loads(json.loads(run.stdout)["artifacts"][0]["invocation"]["response"])["statusCode"] == 200


@needs_python311
def test_local_smoke_invoke_stops_at_a_stood_in_runtime_module(tmp_path: Path) -> None:
    cc = zip_folders(tmp_path / "cc.zip", {PROJECT / "compliance-checker": "", PROJECT / "shared": "shared/"})
    run = run_lpkg("verify", cc, "--runtime", "python3.11", "--probe", "local", "--event", "schedule", "--json")
    artifact = json.loads(run.stdout)["artifacts"][0]
    assert run.returncode == 0  # a warning: nothing wrong was found, but not everything was checked
    warning = next(f for f in artifact["findings"] if f["code"] == "INVOKE_NOT_CHECKED")
    assert warning["severity"] == "warning"
    assert (warning["member"], warning["line"]) == ("shared/aws_clients.py", 13)
    assert "boto3.client() called" in artifact["invocation"]["errorMessage"]
