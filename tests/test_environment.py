"""The function's environment (issue 15, part 3): variables from the config and --env reach the import test
and the smoke invoke; a variable read at import that nothing sets is an INIT_EXCEPTION naming --env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_lpkg

from lpkg.config import Overrides, parse_env_flag, resolve_settings
from lpkg.config_file import load_config
from lpkg.errors import UsageError

READS_AT_IMPORT = '''import os

TABLE_NAME = os.environ["TABLE_NAME"]
STAGE = os.environ.get("STAGE", "dev")


def handler(event, context):
    return {"table": TABLE_NAME, "stage": STAGE, "region": os.environ["AWS_REGION"]}
'''


def function_folder(tmp_path: Path, config: str = "") -> Path:
    folder = tmp_path / "orders"
    folder.mkdir()
    (folder / "handler.py").write_text(READS_AT_IMPORT, encoding="utf-8")
    (tmp_path / "lpkg.toml").write_text(config, encoding="utf-8")
    (tmp_path / ".git").mkdir()  # the config search stops here
    return folder


def test_config_env_merges_key_by_key_and_flags_win(tmp_path: Path) -> None:
    folder = function_folder(tmp_path, '[env]\nTABLE_NAME = "from-defaults"\nSTAGE = "prod"\n\n'
                                       '[functions.orders.env]\nTABLE_NAME = "from-function"\n')
    settings = resolve_settings(folder, Overrides(env=("STAGE=test",)), cwd=tmp_path)
    assert settings.environment == (("STAGE", "test"), ("TABLE_NAME", "from-function"))
    declared = Overrides(env_declared=(("TABLE_NAME", "<!Ref Table>"), ("OTHER", "x")))
    assert dict(resolve_settings(folder, declared, cwd=tmp_path).environment) == {
        "OTHER": "x", "STAGE": "prod", "TABLE_NAME": "from-function"}


@pytest.mark.parametrize(("config", "wanted"), [
    ('[env]\nTABLE_NAME = 3\n', "env must be a table of strings"),
    ('env = "TABLE_NAME=x"\n', "env must be a table of strings"),
    ('[env]\n"1BAD" = "x"\n', "not a valid environment variable name"),
    ('[env]\nAWS_REGION = "eu-west-1"\n', "AWS_REGION is reserved by Lambda"),
    ('ignore = ["HANDLER_NOT_FOUND"]\n', "cannot ignore HANDLER_NOT_FOUND"),
])
def test_bad_env_and_ignore_settings_are_usage_errors_naming_the_file(tmp_path: Path, config: str,
                                                                      wanted: str) -> None:
    function_folder(tmp_path, config)
    with pytest.raises(UsageError) as raised:
        load_config(tmp_path / "lpkg.toml")
    assert wanted in raised.value.message
    assert str(tmp_path / "lpkg.toml") in raised.value.message


@pytest.mark.parametrize("spec", ["NOEQUALS", "=x", "AWS_LAMBDA_FUNCTION_NAME=x"])
def test_bad_env_flags_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_env_flag(spec)


def test_env_flag_value_may_hold_equals_signs() -> None:
    assert parse_env_flag("QUERY=a=b") == ("QUERY", "a=b")


@pytest.mark.docker
def test_a_variable_read_at_import_is_set_for_the_import_test_and_the_invoke(tmp_path: Path,
                                                                           standin_image: str) -> None:
    folder = function_folder(tmp_path)
    out = tmp_path / "dist"
    common = ["build", str(folder), "--runtime", "python3.11", "--build-image", standin_image, "--image",
              standin_image, "--out", str(out), "--json", "--no-cache"]

    missing = run_lpkg(*common)
    assert missing.returncode == 1, missing.stderr
    finding = next(f for f in json.loads(missing.stdout)["functions"][0]["findings"] if f["code"] == "INIT_EXCEPTION")
    assert "KeyError" in finding["message"] and "--env TABLE_NAME=VALUE" in finding["message"], finding
    assert (finding["member"], finding["line"]) == ("handler.py", 3)
    assert not (out / "orders.zip").exists()

    built = run_lpkg(*common, "--env", "TABLE_NAME=orders-table", "--env", "STAGE=prod", "--event", "apigw")
    assert built.returncode == 0, built.stdout + built.stderr
    invocation = json.loads(built.stdout)["functions"][0]["invocation"]
    assert json.loads(invocation["response"]) == {"table": "orders-table", "stage": "prod", "region": "us-east-1"}
    assert (out / "orders.zip").is_file()

    verified = run_lpkg("verify", str(out / "orders.zip"), "--runtime", "python3.11", "--image", standin_image,
                        "--env", "TABLE_NAME=t", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    unset = run_lpkg("verify", str(out / "orders.zip"), "--runtime", "python3.11", "--image", standin_image,
                     "--json")
    assert unset.returncode == 1 and "--env TABLE_NAME=VALUE" in unset.stdout
