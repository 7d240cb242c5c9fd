"""The candidate type checkers of benchmarks/contracts.py, each run as lpkg would run it: a subprocess over the
copy of the first-party code lpkg lays out (Lambda's context in place of its annotations), the zip's
dependencies as search path, and only the diagnostic kinds that can mean "raises when it runs" kept."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lpkg.checks import contracts
from lpkg.checks.contract_index import build_index
from lpkg.checks.contracts import ContractInputs

MYPY = "mypy==2.4.1"
BASEDPYRIGHT = "basedpyright==1.40.2"
# Each checker's names for: attribute missing on a (non-union) type, name undefined, call arguments wrong.
MYPY_CODES = frozenset({"attr-defined", "name-defined", "call-arg"})
PYRIGHT_RULES = frozenset({"reportAttributeAccessIssue", "reportUndefinedVariable", "reportCallIssue"})


@dataclass(frozen=True)
class Raw:
    hits: frozenset[tuple[str, int]]  # (zip path, line) with a kept diagnostic
    seconds: float
    failed: str = ""


def tools_venv(work: Path) -> Path:
    """mypy and basedpyright in a venv of their own, made once (ty is lpkg's own dependency)."""
    venv = work / "checkers-venv"
    if not (venv / "bin" / "basedpyright").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", MYPY, BASEDPYRIGHT], check=True)
    return venv


def laid_out(inputs: ContractInputs, root: Path) -> Path:
    sources = {m: p.read_bytes() for m, p in inputs.files.items() if m.endswith(".py")}
    contracts.write_layout(root, inputs, build_index(sources), sources)
    return root / "code"


def run_ty(inputs: ContractInputs, _: Path) -> Raw:
    with tempfile.TemporaryDirectory(prefix="bench-ty-") as scratch:
        code = laid_out(inputs, Path(scratch))
        start = time.perf_counter()
        diagnostics, problem = contracts._run_checker(Path(scratch), inputs)
        seconds = time.perf_counter() - start
    kept = {(d.member, d.line) for d in diagnostics if not d.member.startswith("_lpkg")}
    del code
    return Raw(frozenset(kept), seconds, problem)


def run_mypy(inputs: ContractInputs, venv: Path) -> Raw:
    with tempfile.TemporaryDirectory(prefix="bench-mypy-") as scratch:
        code = laid_out(inputs, Path(scratch))
        command = [str(venv / "bin" / "mypy"), "--python-version", inputs.python_version, "--check-untyped-defs",
                   "--no-incremental", "--cache-dir", os.devnull, "--follow-imports", "silent",
                   "--ignore-missing-imports", "--no-error-summary", "--show-error-codes", "--output", "json",
                   "--explicit-package-bases", "--namespace-packages",
                   "--python-executable", str(_target_python(venv.parent, inputs.search_path)), "."]
        env = {"PATH": os.environ["PATH"]}
        start = time.perf_counter()
        done = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
    hits: set[tuple[str, int]] = set()
    for line in done.stdout.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("code") in MYPY_CODES and entry.get("severity") == "error":
            hits.add((Path(entry["file"]).as_posix(), int(entry["line"])))
    failed = "" if done.returncode in (0, 1) else done.stderr[-300:]
    return Raw(frozenset(h for h in hits if not h[0].startswith("_lpkg")), seconds, failed)


def _target_python(work: Path, search_path: tuple[Path, ...]) -> Path:
    """An interpreter whose site-packages is the search path (mypy reads installed packages that way; on
    MYPYPATH a dependency folder shadows the standard library's typing_extensions)."""
    name = hashlib.sha256("\0".join(str(p) for p in search_path).encode()).hexdigest()[:12]
    venv = work / f"mypy-target-{name}"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        pth = venv / "lib" / version / "site-packages" / "search-path.pth"
        pth.write_text("".join(f"{p}\n" for p in search_path))
    return venv / "bin" / "python"


def run_basedpyright(inputs: ContractInputs, venv: Path) -> Raw:
    with tempfile.TemporaryDirectory(prefix="bench-pyright-") as scratch:
        code = laid_out(inputs, Path(scratch))
        config = {"pythonVersion": inputs.python_version, "pythonPlatform": "Linux", "typeCheckingMode": "standard",
                  "extraPaths": [str(p) for p in inputs.search_path], "venvPath": scratch, "venv": "env",
                  "reportMissingImports": "none"}
        (code / "pyrightconfig.json").write_text(json.dumps(config))
        start = time.perf_counter()
        done = subprocess.run([str(venv / "bin" / "basedpyright"), "--outputjson", "-p", "pyrightconfig.json"],
                              cwd=code, capture_output=True, text=True, check=False,
                              env={"PATH": os.environ["PATH"], "HOME": scratch})
        seconds = time.perf_counter() - start
        try:
            report = json.loads(done.stdout)
        except ValueError:
            return Raw(frozenset(), seconds, done.stderr[-300:] or done.stdout[-300:])
        hits = {(Path(d["file"]).relative_to(code.resolve()).as_posix(), int(d["range"]["start"]["line"]) + 1)
                for d in report.get("generalDiagnostics", [])
                if d.get("rule") in PYRIGHT_RULES and d.get("severity") == "error"}
    return Raw(frozenset(h for h in hits if not h[0].startswith("_lpkg")), seconds)


CANDIDATES: dict[str, Callable[[ContractInputs, Path], Raw]] = {
    "ty 1.2.0 (raw)": run_ty, "mypy 2.4.1 (raw)": run_mypy, "basedpyright 1.40.2 (raw)": run_basedpyright,
}
