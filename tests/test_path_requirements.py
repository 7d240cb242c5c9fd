"""Requirement lines that are local paths (issue 15, part 2): resolved against the requirements file's folder
or --requirements-base, built as a wheel in the build image, and part of what decides the cache entry."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from helpers import run_lpkg

from lpkg.errors import UsageError
from lpkg.install.cache import requirements_fingerprint
from lpkg.install.path_requirements import path_requirements

PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "ecom"
version = "1.0.0"
dependencies = []

[tool.setuptools.packages.find]
where = ["src"]
"""


def make_repo(root: Path, requirement: str = "../../shared") -> Path:
    (root / "shared" / "src" / "ecom").mkdir(parents=True)
    (root / "shared" / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (root / "shared" / "src" / "ecom" / "__init__.py").write_text("GREETING = 'hello'\n", encoding="utf-8")
    function = root / "functions" / "orders"
    function.mkdir(parents=True)
    (function / "handler.py").write_text(
        "from ecom import GREETING\n\n\ndef handler(event, context):\n    return GREETING\n", encoding="utf-8")
    (function / "requirements.txt").write_text(f"# shared code\n{requirement}\n", encoding="utf-8")
    (root / ".git").mkdir()
    return function


@pytest.mark.parametrize(("line", "editable", "extras"), [
    ("../../shared", False, ""), ("-e ../../shared", True, ""), ("--editable=../../shared[aws]", True, "[aws]"),
    ("file:../../shared", False, ""), ("./../../shared  # with a comment", False, ""),
])
def test_path_lines_resolve_against_the_requirements_files_folder(tmp_path: Path, line: str, editable: bool,
                                                                 extras: str) -> None:
    function = make_repo(tmp_path, line)
    [found] = path_requirements(function / "requirements.txt")
    assert (found.folder, found.line, found.editable, found.extras) == ((tmp_path / "shared"), 2, editable, extras)
    assert found.base == function


def test_names_and_pins_are_not_path_requirements(tmp_path: Path) -> None:
    function = make_repo(tmp_path, "requests==2.32.3\n-r base.txt\n--index-url https://example.invalid/simple")
    assert path_requirements(function / "requirements.txt") == []


def test_a_missing_path_names_the_line_and_the_base(tmp_path: Path) -> None:
    function = make_repo(tmp_path, "../shared")  # one level short: relative to the repo root, as pip run there
    with pytest.raises(UsageError) as raised:
        path_requirements(function / "requirements.txt")
    assert f"{function / 'requirements.txt'}:2: ../shared is not a folder (resolved against {function})" == \
        raised.value.message
    [found] = path_requirements(function / "requirements.txt", base=tmp_path / "functions")
    assert found.folder == tmp_path / "shared"


def test_the_local_projects_content_is_part_of_the_fingerprint(tmp_path: Path) -> None:
    function = make_repo(tmp_path)
    before = requirements_fingerprint(function / "requirements.txt")
    (tmp_path / "shared" / "src" / "ecom" / "__pycache__").mkdir()
    (tmp_path / "shared" / "src" / "ecom" / "__pycache__" / "x.pyc").write_bytes(b"noise")
    assert requirements_fingerprint(function / "requirements.txt") == before  # caches do not count
    (tmp_path / "shared" / "src" / "ecom" / "__init__.py").write_text("GREETING = 'bye'\n", encoding="utf-8")
    assert requirements_fingerprint(function / "requirements.txt") != before
    assert requirements_fingerprint(function / "requirements.txt", projects=False) == \
        requirements_fingerprint(function / "requirements.txt", projects=False)


@pytest.mark.docker
@pytest.mark.network
@pytest.mark.parametrize("line", ["../../shared", "-e ../../shared"])
def test_a_path_requirement_is_built_into_the_zip(tmp_path: Path, standin_image: str, line: str) -> None:
    function = make_repo(tmp_path, line)
    out = tmp_path / "dist"
    args = ["build", str(function), "--runtime", "python3.11", "--build-image", standin_image, "--image",
            standin_image, "--out", str(out), "--json", "--event", "empty"]
    run = run_lpkg(*args, env={"LPKG_DOCKER_NETWORK": "host"})
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)["functions"][0]
    said = next(f for f in report["findings"] if f["code"] == "REQUIREMENT_PATH")
    assert said["line"] == 2 and str(tmp_path / "shared") in said["message"]
    assert json.loads(report["invocation"]["response"]) == "hello"
    with zipfile.ZipFile(out / "orders.zip") as zf:
        names = zf.namelist()
    assert "ecom/__init__.py" in names and any(n.startswith("ecom-1.0.0.dist-info/") for n in names)
    assert not any("pyproject.toml" in n or n.startswith("shared/") for n in names)

    # The shared code changed: the next build installs it again (the cache entry is keyed by its content).
    (tmp_path / "shared" / "src" / "ecom" / "__init__.py").write_text("GREETING = 'bye'\n", encoding="utf-8")
    again = run_lpkg(*args, env={"LPKG_DOCKER_NETWORK": "host"})
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(json.loads(again.stdout)["functions"][0]["invocation"]["response"]) == "bye"


def local_backend_build(function: Path, out: Path) -> dict[str, object]:
    run = run_lpkg("build", str(function), "--runtime", "python3.11", "--backend", "local", "--probe", "local",
                   "--out", str(out), "--json", "--no-cache", "--event", "empty")
    assert run.returncode == 0, run.stdout + run.stderr
    report: dict[str, object] = json.loads(run.stdout)["functions"][0]
    return report


@pytest.mark.network
def test_a_path_requirement_with_the_local_backend(tmp_path: Path) -> None:
    """No Docker for the install: the local project is built on this machine, its own dependencies resolved
    for the target, and the zip is the same from one build to the next (pip's record of where it was
    installed from names no scratch folder of this machine)."""
    function = make_repo(tmp_path)
    report = local_backend_build(function, tmp_path / "one")
    assert "no Docker" in str(report["facts"])
    assert json.loads(report["invocation"]["response"]) == "hello"
    with zipfile.ZipFile(tmp_path / "one" / "orders.zip") as zf:
        assert "ecom/__init__.py" in zf.namelist()
        direct_url = json.loads(zf.read("ecom-1.0.0.dist-info/direct_url.json"))
        record = zf.read("ecom-1.0.0.dist-info/RECORD").decode()
    assert direct_url["url"] == "file:///tmp/lpkg-local/0" and str(tmp_path) not in record
    local_backend_build(function, tmp_path / "two")
    assert (tmp_path / "one" / "orders.zip").read_bytes() == (tmp_path / "two" / "orders.zip").read_bytes()


@pytest.mark.docker
@pytest.mark.network
def test_the_local_and_the_container_backend_write_the_same_zip(tmp_path: Path, standin_image: str) -> None:
    function = make_repo(tmp_path)
    local_backend_build(function, tmp_path / "local")
    run = run_lpkg("build", str(function), "--runtime", "python3.11", "--build-image", standin_image, "--image",
                   standin_image, "--out", str(tmp_path / "docker"), "--json", "--no-cache",
                   env={"LPKG_DOCKER_NETWORK": "host"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "local" / "orders.zip").read_bytes() == (tmp_path / "docker" / "orders.zip").read_bytes()
