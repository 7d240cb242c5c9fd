"""`lpkg build` with no folder (issue 5): every configured function, or every folder with a handler under the
source roots, built in parallel with one progress line each."""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path

import pytest
from helpers import FIXTURES, run_lpkg

from lpkg.config import find_function_dirs
from lpkg.errors import UsageError

RDS_DASHBOARD = FIXTURES / "projects" / "rds-dashboard"
CDK_LAMBDA = FIXTURES / "projects" / "cdk-app" / "lambda"


def test_every_folder_with_a_handler_under_the_source_roots() -> None:
    # rds-dashboard's lpkg.toml: source-roots = ["lambda"], no function tables; shared/ has no handler.
    found = find_function_dirs(RDS_DASHBOARD)
    names = [f.name for f in found]
    assert {"compliance-checker", "query-handler"} <= set(names) and "shared" not in names
    assert names == sorted(names)
    assert find_function_dirs(RDS_DASHBOARD / "lambda" / "shared") == found  # the config is found upwards
    # No config: --source-root names where to look (relative to the current folder).
    assert [f.name for f in find_function_dirs(CDK_LAMBDA.parent, (Path("lambda"),))] == ["orders", "reports"]


def test_configured_functions_win(tmp_path: Path) -> None:
    shutil.copytree(CDK_LAMBDA, tmp_path / "lambda")
    (tmp_path / "lpkg.toml").write_text('source-roots = ["lambda"]\n[functions.reports]\nhandler = "handler.handler"\n')
    assert [f.name for f in find_function_dirs(tmp_path)] == ["reports"]
    (tmp_path / "lpkg.toml").write_text('source-roots = ["lambda"]\n[functions.billing]\n')
    with pytest.raises(UsageError, match="'billing' has no folder"):
        find_function_dirs(tmp_path)


def test_no_functions_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # stop the config search here
    (tmp_path / "notes").mkdir()
    with pytest.raises(UsageError, match="no function folders"):
        find_function_dirs(tmp_path)
    run = run_lpkg("build", cwd=tmp_path)
    assert run.returncode == 2 and "no function folders" in run.stderr


@pytest.mark.skipif(shutil.which("python3.11") is None, reason="no python3.11 on PATH")
def test_build_without_a_folder_builds_all_in_parallel(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(CDK_LAMBDA, project / "lambda")
    (project / "lpkg.toml").write_text('runtime = "python3.11"\nsource-roots = ["lambda"]\n')
    (project / "lambda" / "broken").mkdir()
    (project / "lambda" / "broken" / "handler.py").write_text(
        "from shared.responses import created\n\ndef handler(event, context):\n    return created({})\n")
    dead = tmp_path / "dead.sock"  # no Docker daemon for this process: local install and local probe
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(dead))
    sock.close()
    run = run_lpkg("build", "--jobs", "2", "--json", env={"DOCKER_HOST": f"unix://{dead}"}, cwd=project)
    assert run.returncode == 1, run.stdout + run.stderr  # query-handler is the post-mortem's broken function
    progress = sorted(line for line in run.stderr.splitlines() if re.match(r"lpkg: \[\d/3\] ", line))
    assert len(progress) == 3, run.stderr
    assert {re.sub(r"lpkg: \[\d/3\] ", "", line).split(":")[0] for line in progress} == {"broken", "orders", "reports"}
    assert any("broken: FAILED" in line for line in progress)
    document = json.loads(run.stdout)
    assert [(f["function"], f["ok"]) for f in document["functions"]] == [
        ("broken", False), ("orders", True), ("reports", True)]
    assert sorted(p.name for p in (project / "dist").iterdir()) == ["orders.zip", "reports.zip"]
