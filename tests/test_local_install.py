"""The local backend's installers (issue 5): uv where it can name the runtime's platform, pip otherwise,
and the same files either way."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from helpers import run_lpkg

from lpkg.install import InstallRequest
from lpkg.install.local import LocalInstaller, find_uv, missing_wheel, uv_platform
from lpkg.runtimes import RUNTIMES

BOOKKEEPING = {"INSTALLER", "RECORD", "REQUESTED", "direct_url.json"}


def test_uv_platform_is_exact_only_where_uv_names_the_runtimes_glibc() -> None:
    assert uv_platform(RUNTIMES["python3.12"], "x86_64") == ("x86_64-manylinux_2_34", True)
    assert uv_platform(RUNTIMES["python3.13"], "arm64") == ("aarch64-manylinux_2_34", True)
    # Amazon Linux 2's glibc 2.26 has no uv name: the newest below it, and pip to follow when that is short.
    assert uv_platform(RUNTIMES["python3.11"], "x86_64") == ("x86_64-manylinux_2_17", False)


def test_missing_wheel_is_read_from_either_installer() -> None:
    assert missing_wheel("ERROR: No matching distribution found for psycopg2==2.9.9\n") == "psycopg2==2.9.9"
    uv_output = ("error: No solution found when resolving dependencies\n  cause: Because psycopg2==2.9.9 has no "
                 "usable wheels and you require psycopg2==2.9.9, we can conclude that your requirements are "
                 "unsatisfiable.\n")
    assert missing_wheel(uv_output) == "psycopg2==2.9.9"
    assert missing_wheel("error: Failed to fetch: `https://…`\n  Caused by: dns error\n") is None


def _files(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in folder.rglob("*")
        if path.is_file() and "bin" not in path.relative_to(folder).parts[:1]
        and not (path.parent.name.endswith(".dist-info") and path.name in BOOKKEEPING)
    }


@pytest.mark.network
@pytest.mark.parametrize("runtime", ["python3.12", "python3.11"])
def test_uv_and_pip_install_the_same_files(tmp_path: Path, runtime: str) -> None:
    if find_uv() is None:
        pytest.skip("uv is not installed")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pydantic==2.12.5\n")
    request = InstallRequest((requirements,), (), RUNTIMES[runtime], "x86_64")
    LocalInstaller(use_uv=True).install(request, tmp_path / "uv")
    LocalInstaller(use_uv=False).install(request, tmp_path / "pip")
    uv_files = _files(tmp_path / "uv")
    assert any(name.startswith("pydantic_core/_pydantic_core.cpython-3") for name in uv_files)
    assert not (tmp_path / "uv" / ".lock").exists()
    assert uv_files == _files(tmp_path / "pip")


@pytest.mark.network
def test_no_wheel_on_al2023_is_named_by_uv(tmp_path: Path) -> None:
    function = tmp_path / "lambda" / "db"
    function.mkdir(parents=True)
    (function / "handler.py").write_text("def handler(event, context):\n    return 1\n")
    (function / "requirements.txt").write_text("psycopg2==2.9.9\n")
    run = run_lpkg("build", function, "--runtime", "python3.12", "--backend", "local", "--no-test",
                   "--out", tmp_path / "out")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "psycopg2==2.9.9 has no wheel for python3.12 on x86_64" in run.stderr
    assert "asking pip" not in run.stderr  # uv names manylinux_2_34 exactly: its answer is final
