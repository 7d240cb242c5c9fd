"""The dependency cache when two builds of the same inputs run at once: one installs, the other waits and
takes its entry (two functions of one project sharing a requirements.txt, built in parallel).

The installer is a fake (the cache's logic is what is tested): it writes a file and, while installing,
waits long enough for the other build to arrive.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from lpkg.install import InstallRequest
from lpkg.install.cache import LOCKS, DependencyCache, cache_usage, clear_cache, install_dependencies
from lpkg.report import Stopwatch
from lpkg.runtimes import RUNTIMES, Runtime


class CountingInstaller:
    description = "fake installer"

    def __init__(self, hold_seconds: float = 0.5) -> None:
        self.hold_seconds = hold_seconds
        self.installs = 0
        self.running = 0
        self.most_at_once = 0
        self.guard = threading.Lock()

    def identity(self) -> str:
        return "fake"

    def install(self, request: InstallRequest, target: Path) -> None:
        with self.guard:
            self.installs += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        target.mkdir(parents=True)
        (target / "dep.py").write_text("VALUE = 1\n")
        time.sleep(self.hold_seconds)
        with self.guard:
            self.running -= 1

    def compile_sources(self, runtime: Runtime, sources: Path, target: Path) -> None:
        raise AssertionError("not used")


@pytest.fixture
def request_(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> InstallRequest:
    monkeypatch.setenv("LPKG_CACHE_DIR", str(tmp_path / "cache"))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("dep==1.0\n")
    return InstallRequest((requirements,), (), RUNTIMES["python3.11"], "x86_64")


def _build_at_once(installer: CountingInstaller, requests: list[InstallRequest], tmp_path: Path) -> list[Path]:
    sites: list[Path | None] = [None] * len(requests)
    errors: list[BaseException] = []

    def build(index: int) -> None:
        try:
            sites[index] = install_dependencies(installer, requests[index], True, Stopwatch(),
                                                tmp_path / f"target{index}").site
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert all(site is not None for site in sites)
    return [site for site in sites if site is not None]


def test_two_builds_of_the_same_inputs_install_once(request_: InstallRequest, tmp_path: Path) -> None:
    installer = CountingInstaller()
    sites = _build_at_once(installer, [request_, request_, request_], tmp_path)
    assert installer.installs == 1
    assert len(set(sites)) == 1
    assert (sites[0] / "dep.py").read_text() == "VALUE = 1\n"
    assert DependencyCache().lookup(sites[0].parent.name) == sites[0]


def test_builds_of_different_inputs_do_not_wait_for_each_other(request_: InstallRequest, tmp_path: Path) -> None:
    other = tmp_path / "other" / "requirements.txt"
    other.parent.mkdir()
    other.write_text("dep==2.0\n")
    installer = CountingInstaller()
    sites = _build_at_once(installer, [request_, InstallRequest((other,), (), request_.runtime, "x86_64")], tmp_path)
    assert installer.installs == 2
    assert installer.most_at_once == 2  # side by side, not one after the other
    assert sites[0] != sites[1]


def test_a_failed_install_lets_the_waiting_build_install(request_: InstallRequest, tmp_path: Path) -> None:
    class FailingFirst(CountingInstaller):
        def install(self, request: InstallRequest, target: Path) -> None:
            super().install(request, target)
            if self.installs == 1:
                raise RuntimeError("pip failed")

    installer = FailingFirst(hold_seconds=0.5)
    failed: list[BaseException] = []

    def first() -> None:
        try:
            install_dependencies(installer, request_, True, Stopwatch(), tmp_path / "t1")
        except RuntimeError as exc:
            failed.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.1)  # the first build holds the lock, installing
    site = install_dependencies(installer, request_, True, Stopwatch(), tmp_path / "t2").site
    thread.join(timeout=30)
    assert len(failed) == 1
    assert installer.installs == 2
    assert (site / "dep.py").is_file()


def test_the_lock_files_are_not_cache_entries(request_: InstallRequest, tmp_path: Path) -> None:
    install_dependencies(CountingInstaller(hold_seconds=0), request_, True, Stopwatch(), tmp_path / "t")
    home = tmp_path / "cache"
    assert len(list((home / LOCKS).iterdir())) == 1
    deps_line = next(line for line in cache_usage() if line.strip().startswith("deps/"))
    assert "    1 entries" in deps_line
    clear_cache()
    assert not (home / LOCKS).exists()
