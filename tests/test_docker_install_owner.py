"""With a daemon on this machine, pip in the build image writes straight into a folder of lpkg's (a bind
mount) instead of handing back a tar. The files must then belong to whoever runs lpkg, and an interrupted
install must leave nothing behind, neither in the temporary folder nor in the dependency cache.

That is only worth testing as a user who is not root: root owns, and can delete, whatever a container's root
writes. So when the tests run as root, lpkg runs here as `nobody`, with this checkout and its venv's packages
on PYTHONPATH, a system interpreter of the same version, and the daemon reached through a socket proxy that
anyone may use (the real socket is the docker group's).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, DaemonProxy, assert_no_container, real_daemon_socket, run_lpkg

from lpkg.errors import BuildFailed
from lpkg.install.docker import _make_safe

NOBODY = 65534
PINNED = REPO / "fixtures" / "projects" / "pinned-api" / "orders"  # requests, pydantic, boto3: ~2,000 files


@dataclass(frozen=True)
class Invoker:
    """Who runs lpkg, and with what; `root` holds its home, temporary folder, cache and projects."""

    uid: int
    gid: int
    python: str
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def lpkg(self, args: Sequence[str]) -> subprocess.Popen[str]:
        out, err = (self.root / "stdout").open("w"), (self.root / "stderr").open("w")
        user: dict[str, Any] = {}
        if self.uid != os.getuid():
            user = {"user": self.uid, "group": self.gid, "extra_groups": []}
        with out, err:
            return subprocess.Popen([self.python, "-m", "lpkg", *args], stdout=out, stderr=err, text=True,
                                    env=self.env, cwd=self.root, **user)

    def output(self) -> tuple[str, str]:
        return (self.root / "stdout").read_text(), (self.root / "stderr").read_text()

    def give(self, path: Path) -> None:
        """Make `path` and everything below it the invoker's."""
        for item in [path, *path.rglob("*")]:
            os.lchown(item, self.uid, self.gid)


def system_python_for_nobody(env: dict[str, str]) -> str | None:
    """An interpreter of this one's version that `nobody` can run and that finds lpkg and its packages."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        if not Path(candidate).is_file():
            continue
        check = subprocess.run([candidate, "-c", "import lpkg.cli, docker"], env=env, capture_output=True,
                               user=NOBODY, group=NOBODY, extra_groups=[], cwd="/")
        if check.returncode == 0:
            return candidate
    return None


@pytest.fixture
def invoker(standin_image: str) -> Iterator[Invoker]:
    root = Path(tempfile.mkdtemp(prefix="lpkg-owner-", dir="/tmp"))  # short: the proxy socket lives here
    root.chmod(0o755)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root / "home"),
           "TMPDIR": str(root / "tmp"), "LPKG_CACHE_DIR": str(root / "cache"), "LPKG_DOCKER_NETWORK": "host",
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_") or "proxy" in k.lower()})
    proxy = None
    try:
        if os.getuid() != 0:
            invoker = Invoker(os.getuid(), os.getgid(), sys.executable, root, {**os.environ, **env})
        else:
            paths = sysconfig.get_paths()
            env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(REPO), paths["purelib"], paths["platlib"]]))
            python = system_python_for_nobody(env)
            if python is None:
                pytest.skip(f"no python{sys.version_info[1]} that nobody can run beside {sys.executable}")
            proxy = DaemonProxy(root / "docker.sock", real_daemon_socket(), mode=0o666)
            env["DOCKER_HOST"] = proxy.url
            invoker = Invoker(NOBODY, NOBODY, python, root, env)
        for name in ("home", "tmp", "cache", "project"):
            (root / name).mkdir()
            invoker.give(root / name)
        yield invoker
    finally:
        if proxy is not None:
            proxy.kill()
        shutil.rmtree(root, ignore_errors=True)


def function_with(invoker: Invoker, source: Path | None = None, requirements: str | None = None) -> Path:
    """A function folder of the invoker's: a copy of `source`, or a handler with these requirements."""
    function = invoker.root / "project" / "fn"
    if source is not None:
        shutil.copytree(source, function)
    else:
        function.mkdir()
        (function / "handler.py").write_text("def handler(event, context):\n    return 1\n")
        (function / "requirements.txt").write_text(requirements or "")
    invoker.give(invoker.root / "project")
    return function


def build_args(invoker: Invoker, function: Path, image: str) -> list[str]:
    return ["build", str(function), "--runtime", "python3.11", "--build-image", image, "--no-test",
            "--out", str(invoker.root / "project" / "dist"), "--json"]


def below(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


@pytest.mark.docker
def test_installed_files_belong_to_the_invoking_user(invoker: Invoker, standin_image: str) -> None:
    function = function_with(invoker, requirements="six==1.17.0\n")
    proc = invoker.lpkg(build_args(invoker, function, standin_image))
    assert proc.wait(timeout=600) == 0, invoker.output()[1][-3000:]
    installed = [entry / "site" for entry in (invoker.cache / "deps").iterdir()]
    assert len(installed) == 1, "one complete entry in the dependency cache, no staging folder beside it"
    site = installed[0]
    assert (site / "six.py").is_file()
    owners = {(p.lstat().st_uid, p.lstat().st_gid) for p in [site, *below(site)]}
    assert owners == {(invoker.uid, invoker.gid)}
    assert below(invoker.tmp) == []


@pytest.mark.docker
def test_interrupted_install_leaves_nothing_in_the_temporary_folder_or_the_cache(
    invoker: Invoker, standin_image: str
) -> None:
    function = function_with(invoker, source=PINNED)
    proc = invoker.lpkg(build_args(invoker, function, standin_image))
    try:
        deadline = time.monotonic() + 600
        # pip has begun writing the install into lpkg's bind-mounted output folder (in a scratch folder of the
        # cache, so that storing the install is a rename).
        while not any((invoker.cache / "deps").glob(".install.*/.lpkg-output-*/[!.]*")):  # (not TMPDIR, .lpkg-tmp)
            assert proc.poll() is None, f"lpkg ended before pip wrote anything: {invoker.output()[1][-3000:]}"
            assert time.monotonic() < deadline, "pip wrote nothing within 600 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = invoker.output()[1]
    assert "Traceback" not in stderr and "lpkg: error: interrupted" in stderr, stderr[-3000:]
    assert below(invoker.tmp) == []
    assert [p for p in below(invoker.cache / "deps")] == []
    assert_no_container(proc.pid)


@pytest.mark.docker
def test_lock_as_the_invoking_user(invoker: Invoker, standin_image: str) -> None:
    """pip-compile, and the pip-tools it installs into the pip cache volume, run as the caller too."""
    function = function_with(invoker, requirements="six==1.17.0\n")
    proc = invoker.lpkg(["lock", str(function), "--runtime", "python3.11", "--build-image", standin_image])
    assert proc.wait(timeout=600) == 0, invoker.output()[1][-3000:]
    lock = function / "requirements.lock"
    assert "six==1.17.0" in lock.read_text() and "--hash=sha256:" in lock.read_text()
    assert (lock.stat().st_uid, lock.stat().st_gid) == (invoker.uid, invoker.gid)
    assert below(invoker.tmp) == []


# --- what a container writes into lpkg's folder is checked as tarfile's data filter checks an archive ----------


def test_links_out_of_the_install_are_refused(tmp_path: Path) -> None:
    install = tmp_path / "install"
    (install / "pkg").mkdir(parents=True)
    (install / "pkg" / "__init__.py").write_text("")
    (install / "pkg" / "alias.py").symlink_to("__init__.py")  # inside: fine
    (install / "pkg" / "secrets").symlink_to("/etc/passwd")
    with pytest.raises(BuildFailed, match="pkg/secrets, a link to /etc/passwd outside the install"):
        _make_safe(install, "pip install in an image")
    (install / "pkg" / "secrets").unlink()
    (install / "pkg" / "up").symlink_to("../../outside")
    with pytest.raises(BuildFailed, match=re.escape("pkg/up, a link to ../../outside")):
        _make_safe(install, "pip install in an image")


def test_special_files_are_refused(tmp_path: Path) -> None:
    install = tmp_path / "install"
    install.mkdir()
    os.mkfifo(install / "pipe")
    with pytest.raises(BuildFailed, match="pipe, which is not a file, folder or link"):
        _make_safe(install, "pip install in an image")


def test_set_id_bits_and_group_or_other_write_are_cleared(tmp_path: Path) -> None:
    install = tmp_path / "install"
    (install / "bin").mkdir(parents=True)
    tool = install / "bin" / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o6777)
    (install / "bin").chmod(0o1777)
    data = install / "data.txt"
    data.write_text("x")
    data.chmod(0o644)
    _make_safe(install, "pip install in an image")
    assert stat.S_IMODE(tool.stat().st_mode) == 0o755
    assert stat.S_IMODE((install / "bin").stat().st_mode) == 0o755
    assert stat.S_IMODE(data.stat().st_mode) == 0o644


# --- a daemon elsewhere: the same install, copied out through the API -----------------------------------------


@pytest.mark.docker
def test_copy_through_the_api_gives_the_same_zip_as_bind_mounts(tmp_path: Path, standin_image: str) -> None:
    """LPKG_DOCKER_COPY=1 takes the path of a remote daemon (tar in, tar out); with --compile both the
    install and the first-party sources go through it."""
    function = tmp_path / "fn"
    function.mkdir()
    (function / "handler.py").write_text("import six\n\n\ndef handler(event, context):\n    return six.PY3\n")
    (function / "requirements.txt").write_text("six==1.17.0\n")
    digests = {}
    for mode, env in (("bind", {}), ("copy", {"LPKG_DOCKER_COPY": "1"})):
        out = tmp_path / f"out-{mode}"
        run = run_lpkg("build", function, "--runtime", "python3.11", "--build-image", standin_image, "--no-test",
                       "--no-cache", "--compile", "--out", out, "--json", env={"LPKG_DOCKER_NETWORK": "host", **env})
        assert run.returncode == 0, run.stderr[-3000:]
        with zipfile.ZipFile(out / "fn.zip") as zf:
            names = zf.namelist()
        assert "six.py" in names and any(n.startswith("__pycache__/six.cpython-311") for n in names)
        assert any(n.startswith("__pycache__/handler.cpython-311") for n in names)
        digests[mode] = hashlib.sha256((out / "fn.zip").read_bytes()).hexdigest()
    assert digests["bind"] == digests["copy"]
