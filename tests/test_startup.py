"""An up-to-date `lpkg build` imports only what its path uses (issue 8: about 100 ms, start-up included).

The path: settings -> discover -> inputs digest -> the recorded build -> its report. Zip reading, the checks,
the probe, Docker's SDK and the thread pool belong to builds that do work; importing them would spend the
budget before anything is looked at. Time itself is measured by benchmarks/startup.py, not asserted here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FIXTURES

RDS_DASHBOARD = FIXTURES / "projects" / "rds-dashboard"

# Run as the console script does (lpkg.cli:main), then list every module the process imported.
MODULES_AFTER_MAIN = """
import json, sys
from lpkg.cli import main
listing = sys.argv.pop(1)
try:
    main(sys.argv[1:])
finally:
    with open(listing, "w") as f:
        json.dump(sorted(sys.modules), f)
"""

# Modules an up-to-date build must not import (module names, or their packages).
NOT_ON_THE_PATH = (
    # Other worlds, each owned by one lpkg module.
    "docker", "requests", "urllib3", "elftools", "modulegraph2", "piptools", "inflate64",
    # Standard library the path does not use.
    "concurrent.futures", "logging", "zipfile", "csv", "subprocess", "difflib", "http.client", "ssl",
    # lpkg's machinery for builds that do work.
    "lpkg.archive.reader", "lpkg.archive.dists", "lpkg.archive.writer", "lpkg.archive.unpack", "lpkg.commands.verify",
    "lpkg.probing.request", "lpkg.probing.docker", "lpkg.containers.engine", "lpkg.checks", "lpkg.checks.elf",
    "lpkg.install.docker", "lpkg.install.local", "lpkg.commands.layer",
    # Defined only where they are used (issue 16): the built-in events (with --event), the smoke invoke's
    # outcome, the project files' machinery (with a project file).
    "lpkg.events", "lpkg.invocation", "lpkg.commands.project", "lpkg.plan.projects",
    # The lock's reader (a function with no requirements.lock), and tempfile (random, bisect) with it.
    "lpkg.install.lock", "tempfile",
)
# And with no config file, its tables' validation (lpkg.config_file) is not imported either.
NOT_ON_THE_PATH_WITHOUT_CONFIG = ("lpkg.config_file",)
# And what it does import: proof that the listing is of an up-to-date build's process.
ON_THE_PATH = ("lpkg.commands.build", "lpkg.plan.discover", "lpkg.commands.uptodate", "lpkg.report")


@pytest.fixture
def checker(tmp_path: Path) -> Path:
    shutil.copytree(RDS_DASHBOARD, tmp_path / "rds-dashboard", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "rds-dashboard" / "lambda" / "compliance-checker"


def build_listing_modules(args: list[str], listing: Path) -> tuple[str, list[str]]:
    """Run `lpkg ARGS` in a fresh interpreter: its stdout and the modules it imported."""
    env = {**os.environ, "LPKG_DOCKER_NETWORK": "host"}
    proc = subprocess.run([sys.executable, "-c", MODULES_AFTER_MAIN, str(listing), *args],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    modules: list[str] = json.loads(listing.read_text())
    return proc.stdout, modules


def imported(modules: list[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def assert_up_to_date_path_only(args: list[str], tmp_path: Path, off_the_path: tuple[str, ...] = NOT_ON_THE_PATH,
                                ) -> list[str]:
    first, _ = build_listing_modules(args, tmp_path / "first.json")
    assert "up_to_date: yes" not in first, first
    again, modules = build_listing_modules(args, tmp_path / "again.json")
    assert "up_to_date: yes" in again, again
    assert all(imported(modules, m) for m in ON_THE_PATH), modules
    assert [m for m in off_the_path if imported(modules, m)] == []
    return modules


def test_an_up_to_date_build_without_a_config_file_does_not_read_config_tables(tmp_path: Path) -> None:
    project = tmp_path / "no-config"
    shutil.copytree(RDS_DASHBOARD, project, ignore=shutil.ignore_patterns("__pycache__", "lpkg.toml"))
    assert not (project / "lpkg.toml").exists()
    args = ["build", str(project / "lambda" / "compliance-checker"), "--runtime", "python3.11", "--no-test",
            "--source-root", str(project / "lambda"), "--out", str(tmp_path / "out")]
    assert_up_to_date_path_only(args, tmp_path, NOT_ON_THE_PATH + NOT_ON_THE_PATH_WITHOUT_CONFIG)


def test_an_up_to_date_build_without_the_import_test_imports_only_its_path(checker: Path, tmp_path: Path) -> None:
    args = ["build", str(checker), "--runtime", "python3.11", "--no-test", "--out", str(tmp_path / "out")]
    modules = assert_up_to_date_path_only(args, tmp_path)
    assert imported(modules, "lpkg.config_file"), "the fixture's lpkg.toml was not read: the listing is not its build"


@pytest.mark.docker
def test_an_up_to_date_docker_build_imports_only_its_path(checker: Path, tmp_path: Path, standin_image: str) -> None:
    # The first build runs the import test in the stand-in image; the second asks the daemon for image IDs only.
    args = ["build", str(checker), "--runtime", "python3.11", "--build-image", standin_image, "--image",
            standin_image, "--out", str(tmp_path / "out")]
    assert_up_to_date_path_only(args, tmp_path)
