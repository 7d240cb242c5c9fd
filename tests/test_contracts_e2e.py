"""Issue 13 end to end: the default `lpkg build` and `lpkg verify` refuse the post-mortem's three API mismatches
(#3 config.get on a dataclass, #4 logger.warning on a logger with only warn, #5 context.request_id) with code,
file, line and import chain, write nothing, and still build the function that does it right."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from helpers import FIXTURES, run_lpkg

LAMBDA = FIXTURES / "projects" / "rds-dashboard" / "lambda"
MISMATCHES = [
    ("inventory-report", "ATTRIBUTE_MISSING", 14, "'get'"),
    ("drift-alerts", "ATTRIBUTE_MISSING", 14, "did you mean 'warn'"),
    ("audit-log", "CONTEXT_ATTRIBUTE_MISSING", 13, "did you mean 'aws_request_id'"),
]


def contract_errors(document: dict[str, object], key: str) -> list[dict[str, object]]:
    [report] = document[key]  # type: ignore[misc]
    return [f for f in report["findings"] if f["severity"] == "error"]


@pytest.mark.docker
@pytest.mark.parametrize(("function", "code", "line", "said"), MISMATCHES)
def test_build_refuses_the_post_mortems_api_mismatches(tmp_path: Path, standin_image: str, function: str,
                                                      code: str, line: int, said: str) -> None:
    out = tmp_path / "dist"
    run = run_lpkg("build", LAMBDA / function, "--runtime", "python3.11", "--build-image", standin_image,
                   "--image", standin_image, "--out", out, "--json")
    assert run.returncode == 1, run.stdout + run.stderr
    [error] = contract_errors(json.loads(run.stdout), "functions")
    assert (error["code"], error["member"], error["line"]) == (code, "handler.py", line)
    assert said in str(error["message"]) and error["chain"] == ["handler"]
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.docker
def test_the_function_that_uses_the_apis_right_still_builds(tmp_path: Path, standin_image: str) -> None:
    run = run_lpkg("build", LAMBDA / "health-check", "--runtime", "python3.11", "--build-image", standin_image,
                   "--image", standin_image, "--out", tmp_path, "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)["functions"][0]
    assert not [f for f in report["findings"] if f["code"].endswith(("_MISSING", "_UNDEFINED", "_MISMATCH"))]
    assert (tmp_path / "health-check.zip").is_file()


def zip_of(function: str, path: Path) -> Path:
    """The function's zip as another tool would make it: its folder at the top, shared/ beside it."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder, prefix in ((LAMBDA / function, ""), (LAMBDA / "shared", "shared/")):
            for file in sorted(folder.rglob("*.py")):
                archive.write(file, prefix + file.relative_to(folder).as_posix())
    return path


@pytest.mark.parametrize(("function", "code", "line", "said"), MISMATCHES)
def test_verify_of_a_zip_finds_the_same(tmp_path: Path, function: str, code: str, line: int, said: str) -> None:
    """Host checks only (--probe none): the contract check needs no container."""
    archive = zip_of(function, tmp_path / f"{function}.zip")
    run = run_lpkg("verify", archive, "--runtime", "python3.11", "--probe", "none", "--json")
    assert run.returncode == 1, run.stdout + run.stderr
    [error] = contract_errors(json.loads(run.stdout), "artifacts")
    assert (error["code"], error["member"], error["line"]) == (code, "handler.py", line)
    assert said in str(error["message"])


def test_verify_of_the_right_function_finds_no_contract_error(tmp_path: Path) -> None:
    archive = zip_of("health-check", tmp_path / "health-check.zip")
    run = run_lpkg("verify", archive, "--runtime", "python3.11", "--probe", "none", "--json")
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_config_setting_turns_a_code_off(tmp_path: Path) -> None:
    project = tmp_path / "project"
    for name in ("drift-alerts", "shared"):
        for file in (LAMBDA / name).rglob("*.py"):
            target = project / "lambda" / name / file.relative_to(LAMBDA / name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.read_bytes())
    (project / ".git").mkdir()
    args = ("build", project / "lambda" / "drift-alerts", "--runtime", "python3.11", "--no-test", "--backend",
            "local", "--out", tmp_path / "dist", "--json")
    refused = run_lpkg(*args)
    assert refused.returncode == 1 and "ATTRIBUTE_MISSING" in refused.stdout
    (project / "lpkg.toml").write_text('ignore = ["ATTRIBUTE_MISSING"]\n', encoding="utf-8")
    run = run_lpkg(*args)
    assert run.returncode == 0, run.stdout + run.stderr
