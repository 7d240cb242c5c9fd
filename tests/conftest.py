"""Shared test setup: the Docker stand-in image, and CI's rule that a Docker test may not skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Generator

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
STANDIN_IMAGE = os.environ.get("LPKG_TEST_IMAGE", "lpkg-standin/lambda-python:3.11-x86_64")
STANDIN_IMAGE_313 = os.environ.get("LPKG_TEST_IMAGE_313", "lpkg-standin/lambda-python:3.13-x86_64")
STANDIN_IMAGE_ARM64 = os.environ.get("LPKG_TEST_IMAGE_ARM64", "lpkg-standin/lambda-python:3.11-arm64")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # CI must prove the container path: there a skipped Docker test is a failed one.
    if IN_CI and report.skipped and item.get_closest_marker("docker") is not None:
        report.outcome = "failed"
        report.longrepr = f"Docker test skipped in CI (CI=true): {report.longrepr}"
    return report


def _docker_ready(image: str) -> str | None:
    """None when the daemon answers and has the image, else why not."""
    if shutil.which("docker") is None:
        return "no docker command"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if info.returncode != 0:
        return "no Docker daemon answers (run scripts/test-env.sh)"
    inspect = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True)
    if inspect.returncode != 0:
        return f"stand-in image {image} is not built (run scripts/test-env.sh)"
    return None


@pytest.fixture(scope="session", autouse=True)
def isolated_dependency_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """lpkg's dependency cache for this test session only: tests neither read nor fill the user's."""
    os.environ["LPKG_CACHE_DIR"] = str(tmp_path_factory.mktemp("lpkg-cache"))


@pytest.fixture(scope="session", autouse=True)
def isolated_member_store() -> Generator[None, None, None]:
    """verify's member store for this test session only, beside the scratch folders as lpkg keeps it (hard
    links cannot cross file systems)."""
    from lpkg.commands.stores import scratch_parent

    folder = tempfile.mkdtemp(prefix="lpkg-test-members-", dir=scratch_parent())
    os.environ["LPKG_MEMBER_STORE"] = folder
    yield
    shutil.rmtree(folder, ignore_errors=True)


def _image_or_skip(image: str) -> str:
    problem = _docker_ready(image)
    if problem:
        pytest.skip(problem)
    return image


@pytest.fixture(scope="session")
def standin_image() -> str:
    return _image_or_skip(STANDIN_IMAGE)


@pytest.fixture(scope="session")
def standin_image_313() -> str:
    """A Python 3.13 stand-in (Debian trixie): the probe on a newer interpreter and bytecode."""
    return _image_or_skip(STANDIN_IMAGE_313)


@pytest.fixture(scope="session")
def standin_image_arm64() -> str:
    """A Python 3.11 stand-in for arm64 (Debian bookworm, arm64), run under QEMU user emulation on x86_64."""
    from lpkg.containers.emulation import binfmt_problem, host_arch

    image = _image_or_skip(STANDIN_IMAGE_ARM64)
    problem = None if host_arch() == "arm64" else binfmt_problem("arm64")
    if problem:
        pytest.skip(f"arm64 containers cannot run here: {problem} (run scripts/test-env.sh as root)")
    return image
