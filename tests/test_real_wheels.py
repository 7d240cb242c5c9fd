"""No false alarms on real packages: wheels of the target platform, installed as pip installs them."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import run_lpkg, zip_folders

# Imports every package the way a handler would.
HANDLER = '''
import requests
import numpy as np
from pydantic import BaseModel
from cryptography.fernet import Fernet


class Item(BaseModel):
    name: str


def handler(event, context):
    return {"sum": int(np.arange(4).sum()), "key": len(Fernet.generate_key())}
'''


@pytest.fixture(scope="session")
def real_wheels_site() -> Path:
    """requests, numpy, pydantic and cryptography for CPython 3.11 on manylinux x86_64 (cached across runs)."""
    site = Path(tempfile.gettempdir()) / "lpkg-test-real-wheels-cp311"
    if not (site / "numpy").is_dir():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site), "--upgrade",
             "--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--only-binary=:all:",
             "requests", "numpy", "pydantic", "cryptography"],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            pytest.fail(f"pip could not download the real wheels: {proc.stderr[-2000:]}")
    return site


@pytest.mark.docker
@pytest.mark.network
def test_real_wheels_verify_without_errors(tmp_path: Path, real_wheels_site: Path, standin_image: str) -> None:
    function = tmp_path / "fn"
    function.mkdir()
    (function / "handler.py").write_text(HANDLER)
    z = zip_folders(tmp_path / "real.zip", {real_wheels_site: "", function: ""})
    run = run_lpkg("verify", z, "--image", standin_image, "--probe", "docker", "--json")
    artifact = json.loads(run.stdout)["artifacts"][0]
    errors = [f for f in artifact["findings"] if f["severity"] == "error"]
    assert errors == []
    assert run.returncode == 0
    assert artifact["runtime"] == "python3.11"  # read from the extension modules' ABI tags
    assert artifact["probe"].startswith("docker:")


@pytest.mark.network
def test_real_wheels_for_the_wrong_arch_are_caught(tmp_path: Path, real_wheels_site: Path) -> None:
    """The same zip checked for arm64: the checks are live, not silent."""
    function = tmp_path / "fn"
    function.mkdir()
    (function / "handler.py").write_text(HANDLER)
    z = zip_folders(tmp_path / "real.zip", {real_wheels_site: "", function: ""})
    run = run_lpkg("verify", z, "--arch", "arm64", "--probe", "none", "--json")
    artifact = json.loads(run.stdout)["artifacts"][0]
    wrong = [f for f in artifact["findings"] if f["code"] == "NATIVE_WRONG_ARCH"]
    assert run.returncode == 1
    assert any(f["member"].startswith("numpy/") and f["distribution"].startswith("numpy ") for f in wrong)
