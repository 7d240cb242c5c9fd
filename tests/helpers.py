"""Helpers for tests: run lpkg as users do, and write real zips."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
PROJECT = FIXTURES / "projects" / "rds-dashboard" / "lambda"


@dataclass(frozen=True)
class LpkgRun:
    returncode: int
    stdout: str
    stderr: str


def run_lpkg(
    *args: str | Path, env: Mapping[str, str] | None = None, timeout: float = 600, cwd: Path | None = None
) -> LpkgRun:
    """lpkg as users run it: a separate process, real exit codes."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "lpkg", *map(str, args)],
        capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd,
    )
    return LpkgRun(proc.returncode, proc.stdout, proc.stderr)


def write_zip(path: Path, files: Mapping[str, str | bytes], modes: Mapping[str, int] | None = None) -> Path:
    """A zip of the given members (Unix modes 0644 unless named in `modes`)."""
    modes = modes or {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (0o100000 | modes.get(name, 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content.encode() if isinstance(content, str) else content)
    return path


def zip_folders(path: Path, folders: Mapping[Path, str]) -> Path:
    """Zip whole folders: {source folder: prefix in the zip} (prefix "" = zip root)."""
    files: dict[str, bytes] = {}
    for folder, prefix in folders.items():
        for file in sorted(folder.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                files[prefix + file.relative_to(folder).as_posix()] = file.read_bytes()
    return write_zip(path, files)


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module, so tests can call the fixture writers directly."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


class StalledIndex:
    """A package index on 127.0.0.1 that accepts connections and never answers: pip sits in its download
    step (for its timeout times its retries, over a minute) until the build is interrupted. No real index
    is involved, so the test is neither slow nor dependent on download speed."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(connection)
            self.connected.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for connection in self._held:
            connection.close()
        self._server.close()
