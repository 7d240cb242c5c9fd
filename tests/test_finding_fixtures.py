"""The zips in fixtures/findings (scripts/make_finding_fixtures.py) through the real `lpkg verify --json`:
each `<class>-bad.zip` has its finding, with its severity and location, and its `<class>-good.zip` twin
does not. Native classes are host checks (`--probe none`); probe classes run in the stand-in image."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import FIXTURES, load_script, run_lpkg

FINDINGS = FIXTURES / "findings"
RUNTIME = "python3.11"
MARKER = "lpkg-fixture-marker"  # what init-writes-file-bad.zip writes at import (in /tmp, the cwd, its folder)
HOST_TMP_MARKER = Path("/tmp") / MARKER


@dataclass(frozen=True)
class Case:
    name: str  # the class: fixtures/findings/<name>-bad.zip and -good.zip
    code: str | None  # the finding bad has (None: no finding at all, init-writes-file)
    severity: str = "error"
    where: tuple[str, int | None] | None = None  # (member, line) of that finding; None: not located
    words: tuple[str, ...] = ()  # in its message
    also: tuple[str, ...] = ()  # further codes bad has, e.g. the runtime's error for the same import
    options: tuple[str, ...] = ()  # beyond --probe/--image/--runtime
    bad_exit: int = 1
    good_exit: int = 0
    good_has: tuple[tuple[str, str], ...] = ()  # (code, severity) good has instead: the same code, milder
    docker: bool = True


EXT = "fastlib/_speedups.cpython-3{}-{}-linux-gnu.so"  # an extension module inside a package folder
IMPORT_ERROR = ("Runtime.ImportModuleError",)

CASES = [
    # Native code: host checks only.
    Case("native-not-linux", "NATIVE_NOT_LINUX", where=("fastlib/_speedups.cpython-311-darwin.so", None),
         words=("macOS", "Mach-O"), docker=False),
    Case("native-wrong-arch", "NATIVE_WRONG_ARCH", where=(EXT.format(11, "aarch64"), None),
         words=("EM_AARCH64", "x86_64"), docker=False),
    Case("native-glibc-too-new", "NATIVE_GLIBC_TOO_NEW", where=("fastlib/_speedups.abi3.so", None),
         words=("GLIBC_2.34", "2.26", RUNTIME), docker=False),
    Case("native-wrong-python", "NATIVE_WRONG_PYTHON", where=(EXT.format(12, "x86_64"), None),
         words=("cpython-312", "cpython-311"), docker=False),
    Case("native-missing-library", "NATIVE_MISSING_LIBRARY",
         where=("fastlib/_pq.cpython-311-x86_64-linux-gnu.so", None), words=("libpq.so.5",), docker=False),
    # The probe, in the runtime image.
    Case("import-missing", "IMPORT_MISSING", where=("handler.py", 1), words=("'yaml_not_here'",), also=IMPORT_ERROR,
         good_has=(("IMPORT_MISSING", "warning"),)),
    Case("import-missing-shared", "IMPORT_MISSING", where=("handler.py", 1), words=("'shared'",), also=IMPORT_ERROR),
    Case("import-name-missing", "IMPORT_NAME_MISSING", where=("handler.py", 3), words=("get_rds_client", "AWSClients"),
         also=IMPORT_ERROR),
    Case("import-optional", "IMPORT_MISSING", severity="warning", where=("handler.py", 2),
         words=("'yaml_not_here'",), bad_exit=0),
    Case("import-runtime-boto3", "IMPORT_RUNTIME_BOTO3", severity="warning", where=("handler.py", 1),
         words=("boto3",), bad_exit=0),
    Case("syntax-error", "Runtime.UserCodeSyntaxError", where=("handler.py", 1), words=("Syntax error",)),
    Case("handler-not-found", "Runtime.HandlerNotFound", words=("Handler 'handler' missing",),
         options=("--handler", "handler.handler")),
    Case("init-exception", "INIT_EXCEPTION", where=("handler.py", 3), words=("KeyError", "TABLE_NAME")),
    Case("init-timeout", "INIT_TIMEOUT", words=("3 s",), options=("--timeout", "3")),
    Case("init-writes-file", None, bad_exit=0),
]


def params() -> list[Any]:
    return [pytest.param(c, id=c.name, marks=[pytest.mark.docker] if c.docker else []) for c in CASES]


def verify(case: Case, twin: str, request: pytest.FixtureRequest) -> tuple[int, list[dict[str, Any]]]:
    """`lpkg verify --json` on fixtures/findings/<class>-<twin>.zip: exit code and findings."""
    zip_path = FINDINGS / f"{case.name}-{twin}.zip"
    if case.docker:
        image: str = request.getfixturevalue("standin_image")
        probe: tuple[str, ...] = ("--probe", "docker", "--image", image)
    else:
        probe = ("--probe", "none")
    run = run_lpkg("verify", zip_path, *probe, "--runtime", RUNTIME, *case.options, "--json", timeout=120)
    assert "Traceback" not in run.stderr
    document = json.loads(run.stdout)  # exactly one JSON document on stdout
    assert "artifacts" in document, document
    [artifact] = document["artifacts"]
    assert artifact["runtime"] == RUNTIME
    assert artifact["probe"].startswith("docker:" if case.docker else "not run")
    findings: list[dict[str, Any]] = artifact["findings"]
    return run.returncode, findings


def with_code(findings: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [f for f in findings if f["code"] == code]


def errors(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in findings if f["severity"] == "error"]


@pytest.mark.parametrize("case", params())
def test_bad_zip_has_the_finding(
    case: Case, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # packaged code that writes to "its" current directory would write here
    assert not HOST_TMP_MARKER.exists(), f"{HOST_TMP_MARKER} exists before the run: remove it"
    status, findings = verify(case, "bad", request)
    assert status == case.bad_exit, findings
    if case.code is None:
        # init-writes-file: its package writes at import inside the sandbox; nothing reaches the host.
        assert errors(findings) == []
        assert not HOST_TMP_MARKER.exists()
        assert list(tmp_path.iterdir()) == []  # the current directory lpkg ran in
        return
    found = with_code(findings, case.code)
    assert len(found) == 1, findings
    finding = found[0]
    assert finding["severity"] == case.severity
    if case.where is not None:
        assert (finding["member"], finding["line"]) == case.where
    for word in case.words:
        assert word in finding["message"]
    for code in case.also:
        also = with_code(findings, code)
        assert also and all(f["severity"] == "error" for f in also), findings
        if case.where is not None:
            assert {(f["member"], f["line"]) for f in also} == {case.where}
    # Nothing else is wrong with the zip: every error is the class's own.
    assert {f["code"] for f in errors(findings)} <= {case.code, *case.also, "SYNTAX_ERROR"}


@pytest.mark.parametrize("case", params())
def test_good_twin_has_no_finding(case: Case, request: pytest.FixtureRequest) -> None:
    status, findings = verify(case, "good", request)
    assert status == case.good_exit, findings
    assert errors(findings) == []
    if case.code is None:
        return
    assert {(f["code"], f["severity"]) for f in with_code(findings, case.code)} == {
        (code, severity) for code, severity in case.good_has if code == case.code
    }
    for code in case.also:
        assert with_code(findings, code) == []


def test_the_glibc_sample_is_fine_for_python3_12() -> None:
    """The same file that is too new for python3.11 (glibc 2.26) runs on python3.12 (glibc 2.34)."""
    run = run_lpkg("verify", FINDINGS / "native-glibc-too-new-bad.zip", "--probe", "none", "--runtime", "python3.12",
                   "--json", timeout=120)
    assert run.returncode == 0, run.stdout
    [artifact] = json.loads(run.stdout)["artifacts"]
    assert artifact["findings"] == []


# The fixtures themselves


SCRIPT = load_script("make_finding_fixtures")


def members(path: Path) -> list[tuple[str, tuple[int, ...], int, int, int, bytes]]:
    """What a zip holds, as the tests and lpkg see it (compressed bytes may differ with the zlib build)."""
    with zipfile.ZipFile(path) as zf:
        return [
            (i.filename, i.date_time, i.create_system, i.external_attr, i.compress_type, zf.read(i))
            for i in zf.infolist()
        ]


def test_every_class_is_tested_and_documented() -> None:
    classes = list(SCRIPT.pairs())
    assert classes == [c.name for c in CASES]
    readme = (FINDINGS / "README.md").read_text()
    for case in CASES:
        assert f"`{case.name}`" in readme
        if case.code is not None:
            assert f"`{case.code}`" in readme


def test_committed_zips_are_what_the_script_makes(tmp_path: Path) -> None:
    written = SCRIPT.write_fixtures(tmp_path)
    assert all(written.values())
    assert sorted(p.name for p in FINDINGS.glob("*.zip")) == sorted(written)
    for name in written:
        assert members(FINDINGS / name) == members(tmp_path / name), name
    # Idempotent: a second run rewrites nothing.
    assert not any(SCRIPT.write_fixtures(tmp_path).values())


@pytest.mark.parametrize("name", sorted(p.name for p in FINDINGS.glob("*.zip")))
def test_fixture_is_deterministic_and_small(name: str) -> None:
    path = FINDINGS / name
    entries = members(path)
    names = [entry[0] for entry in entries]
    assert names == sorted(names)
    assert "handler.py" in names
    for _, date_time, create_system, external_attr, _, _ in entries:
        assert date_time == (1980, 1, 1, 0, 0, 0)
        assert (create_system, external_attr >> 16) == (3, 0o100644)
    assert path.stat().st_size < 4096
