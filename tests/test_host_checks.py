"""The host side of `lpkg verify` on the zips in fixtures/zips (scripts/make_zip_fixtures.py), through
verify_zip and through the real command line: each bad zip has its finding, its good twin does not."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lpkg.commands.verify import VerifyOptions, verify_zip
from lpkg.report import ArtifactReport, Finding, Severity
from lpkg.runtimes import UNZIPPED_LIMIT_BYTES, get_runtime

ZIPS = Path(__file__).resolve().parent.parent / "fixtures" / "zips"


def verify(name: str, handler: str | None = None, layers: tuple[str, ...] = ()) -> ArtifactReport:
    options = VerifyOptions(
        runtime=get_runtime("python3.11"),
        arch="x86_64",
        handler=handler,
        layers=tuple(ZIPS / layer for layer in layers),
    )
    return verify_zip(ZIPS / name, options, None)


def codes(report: ArtifactReport) -> list[str]:
    return [f.code for f in report.findings]


def only(report: ArtifactReport, code: str) -> Finding:
    found = [f for f in report.findings if f.code == code]
    assert len(found) == 1, report.findings
    return found[0]


def laps(report: ArtifactReport) -> list[str]:
    return [name for name, _ in report.timings]


@dataclass(frozen=True)
class Cli:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> Cli:
    proc = subprocess.run(
        [sys.executable, "-m", "lpkg", "verify", "--probe", "none", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )
    return Cli(proc.returncode, proc.stdout, proc.stderr)


def json_doc(result: Cli) -> dict[str, Any]:
    """stdout is exactly one JSON document (json.loads rejects anything before or after it)."""
    doc = json.loads(result.stdout)
    assert isinstance(doc, dict)
    return doc


@dataclass(frozen=True)
class Pair:
    code: str
    bad: str
    good: str
    member: str  # where the finding points
    handler: str | None = None


PAIRS = [
    Pair("ZIP_UNSAFE_PATH", "unsafe-path-bad.zip", "unsafe-path-good.zip", "../evil.py"),
    Pair("ZIP_UNSAFE_PATH", "absolute-path-bad.zip", "unsafe-path-good.zip", "/evil.py"),
    Pair("ZIP_UNSAFE_PATH", "symlink-bad.zip", "symlink-good.zip", "link.py"),
    Pair("ZIP_DUPLICATE", "duplicate-bad.zip", "duplicate-good.zip", "util.py"),
    Pair("ZIP_ENCRYPTED", "encrypted-bad.zip", "encrypted-good.zip", "secret.py"),
    Pair("ZIP_EMPTY", "empty-bad.zip", "empty-good.zip", "", handler="handler.handler"),
    Pair("PERM_NOT_READABLE", "perm-0600-bad.zip", "perm-good.zip", "handler.py"),
    Pair("PERM_NOT_READABLE", "perm-dir-0700-bad.zip", "perm-good.zip", "lib/"),
    Pair("ZIP_CORRUPT", "corrupt-member-bad.zip", "corrupt-member-good.zip", "data.py"),
    Pair("ZIP_CORRUPT", "size-lie-bad.zip", "corrupt-member-good.zip", "data.py"),
    Pair("SIZE_UNZIPPED", "zip-bomb-bad.zip", "zip-bomb-good.zip", ""),
    Pair("SIZE_UNZIPPED", "zip-bomb-lying-bad.zip", "zip-bomb-good.zip", "data/zeros0.bin"),
]


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.bad)
def test_bad_zip_has_the_finding(pair: Pair) -> None:
    report = verify(pair.bad, pair.handler)
    finding = only(report, pair.code)
    assert finding.severity is Severity.ERROR
    assert (finding.member or "") == pair.member
    assert not report.ok
    assert report.handler == "handler.handler"


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.good)
def test_good_twin_has_no_finding(pair: Pair) -> None:
    report = verify(pair.good, pair.handler)
    assert pair.code not in codes(report)
    assert report.errors == ()
    assert report.ok
    assert report.handler == "handler.handler"
    assert "unpack" in laps(report)


def test_unsafe_members_are_reported_but_not_unpacked() -> None:
    # The rest of the zip is still checked: handler.py is there and was unpacked.
    for name in ("unsafe-path-bad.zip", "absolute-path-bad.zip", "symlink-bad.zip"):
        report = verify(name)
        assert codes(report) == ["ZIP_UNSAFE_PATH"]
        assert "unpack" in laps(report)
        assert "not extracted" in report.findings[0].message


def test_messages_say_what_to_do() -> None:
    assert "chmod to 0644" in only(verify("perm-0600-bad.zip"), "PERM_NOT_READABLE").message
    assert "0600" in only(verify("perm-0600-bad.zip"), "PERM_NOT_READABLE").message
    assert "chmod to 0755" in only(verify("perm-dir-0700-bad.zip"), "PERM_NOT_READABLE").message
    assert "without a password" in only(verify("encrypted-bad.zip"), "ZIP_ENCRYPTED").message
    assert "2 members" in only(verify("duplicate-bad.zip"), "ZIP_DUPLICATE").message
    assert "rebuild the zip" in only(verify("corrupt-member-bad.zip"), "ZIP_CORRUPT").message


def test_empty_zip_is_not_unpacked() -> None:
    report = verify("empty-bad.zip", "handler.handler")
    assert codes(report) == ["ZIP_EMPTY"]
    assert "unpack" not in laps(report)
    assert report.probe == "not run: ZIP_EMPTY"


def test_corrupt_member_does_not_hide_the_rest() -> None:
    report = verify("corrupt-member-bad.zip")
    assert codes(report) == ["ZIP_CORRUPT"]
    assert "decompressing" in report.findings[0].message or "CRC" in report.findings[0].message
    assert report.probe.startswith("not run")


def test_deflate64_zip_is_read() -> None:
    report = verify("deflate64-good.zip")
    assert report.ok
    assert report.handler == "handler.handler"  # inferred from a Deflate64 member
    warnings = [f for f in report.findings if f.code == "ZIP_COMPRESSION"]
    assert sorted(f.member or "" for f in warnings) == ["blob.txt", "handler.py"]
    assert all(f.severity is Severity.WARNING and "method 9" in f.message for f in warnings)


# Zip bombs


def test_zip_bomb_is_rejected_from_its_directory_without_unpacking() -> None:
    report = verify("zip-bomb-bad.zip")
    assert codes(report) == ["SIZE_UNZIPPED"]
    finding = report.findings[0]
    assert f"{UNZIPPED_LIMIT_BYTES:,}" in finding.message
    assert "data" in finding.message  # names the largest folder
    assert "unpack" not in laps(report)  # nothing was unpacked, nothing was probed
    assert not any(lap.startswith("probe") for lap in laps(report))
    assert report.probe == "not run: SIZE_UNZIPPED"


def test_lying_zip_bomb_is_stopped_while_unpacking() -> None:
    report = verify("zip-bomb-lying-bad.zip")
    assert codes(report) == ["SIZE_UNZIPPED"]  # not ZIP_CORRUPT: the budget stopped it first
    finding = report.findings[0]
    assert finding.member == "data/zeros0.bin"
    assert "unpacking was stopped" in finding.message
    assert "lies" in finding.message
    assert dict(report.facts)["unzipped"].startswith("3.1 ")  # what the directory claims
    assert "unpack" in laps(report)
    assert not any(lap.startswith("probe") for lap in laps(report))


def test_compressible_zip_under_the_limit_is_fine() -> None:
    report = verify("zip-bomb-good.zip")
    assert report.findings == ()
    assert "unpack" in laps(report)


# Layers


@pytest.mark.parametrize("pair", [p for p in PAIRS if p.code in ("ZIP_UNSAFE_PATH", "ZIP_ENCRYPTED",
                                                                  "PERM_NOT_READABLE", "ZIP_CORRUPT")],
                         ids=lambda p: p.bad)
def test_layer_findings_are_labelled_with_the_layer(pair: Pair) -> None:
    report = verify("handler-lambda-function-good.zip", layers=(pair.bad,))
    assert [(f.code, f.member) for f in report.findings] == [(pair.code, f"{pair.bad}!{pair.member}")]
    assert verify("handler-lambda-function-good.zip", layers=(pair.good,)).findings == ()


def test_layers_may_hold_the_same_file() -> None:
    report = verify("handler-lambda-function-good.zip", layers=("perm-good.zip", "unsafe-path-good.zip"))
    assert report.ok


def test_size_limit_counts_layers_and_layer_count() -> None:
    # 7 x 41.9 MB: each alone is fine, together over the limit; and 6 layers is one too many.
    report = verify("zip-bomb-good.zip", layers=("zip-bomb-good.zip",) * 6)
    assert sorted(codes(report)) == ["LAYER_COUNT", "SIZE_UNZIPPED"]
    assert "6 layer(s)" in only(report, "SIZE_UNZIPPED").message
    assert "unpack" not in laps(report)


# The command line: exit codes and one JSON document for every fixture

EXIT_CODES = {
    "absolute-path-bad.zip": 1,
    "corrupt-member-bad.zip": 1,
    "corrupt-member-good.zip": 0,
    "deflate64-good.zip": 0,
    "duplicate-bad.zip": 1,
    "duplicate-good.zip": 0,
    "empty-bad.zip": 1,  # ZIP_EMPTY, although there is no handler to infer
    "empty-good.zip": 0,
    "encrypted-bad.zip": 1,
    "encrypted-good.zip": 0,
    "handler-ambiguous-bad.zip": 2,
    "handler-lambda-function-good.zip": 0,
    "handler-none-bad.zip": 2,
    "not-a-zip.zip": 2,
    "perm-0600-bad.zip": 1,
    "perm-dir-0700-bad.zip": 1,
    "perm-good.zip": 0,
    "size-lie-bad.zip": 1,
    "symlink-bad.zip": 1,
    "symlink-good.zip": 0,
    "truncated.zip": 2,
    "unsafe-path-bad.zip": 1,
    "unsafe-path-good.zip": 0,
    "zip-bomb-bad.zip": 1,
    "zip-bomb-good.zip": 0,
    "zip-bomb-lying-bad.zip": 1,
}


def test_every_fixture_has_an_expected_exit_code() -> None:
    assert sorted(p.name for p in ZIPS.glob("*.zip")) == sorted(EXIT_CODES)


@pytest.mark.parametrize("name", sorted(EXIT_CODES))
def test_cli_json_exit_code(name: str) -> None:
    result = run_cli("--json", str(ZIPS / name))
    assert result.code == EXIT_CODES[name], result.stderr
    assert "Traceback" not in result.stderr
    doc = json_doc(result)
    if result.code == 2:
        assert doc["ok"] is False
        assert doc["error"]["exit_code"] == 2
        assert doc["error"]["message"]
        assert result.stderr.startswith("lpkg: error: ")
    else:
        assert doc["ok"] is (result.code == 0)
        [artifact] = doc["artifacts"]
        assert artifact["artifact"] == str(ZIPS / name)
        assert artifact["ok"] is (result.code == 0)
        assert artifact["probe"].startswith("not run")
        errors = [f for f in artifact["findings"] if f["severity"] == "error"]
        assert bool(errors) is (result.code == 1)


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.bad)
def test_cli_json_names_the_finding(pair: Pair) -> None:
    handler = ("--handler", pair.handler) if pair.handler else ()
    bad = json_doc(run_cli("--json", *handler, str(ZIPS / pair.bad)))
    good = json_doc(run_cli("--json", *handler, str(ZIPS / pair.good)))
    assert pair.code in {f["code"] for f in bad["artifacts"][0]["findings"]}
    assert pair.code not in {f["code"] for f in good["artifacts"][0]["findings"]}


@pytest.mark.parametrize(("name", "code"), [("perm-good.zip", 0), ("perm-0600-bad.zip", 1), ("truncated.zip", 2)])
def test_cli_human_output(name: str, code: int) -> None:
    result = run_cli(str(ZIPS / name))
    assert result.code == code
    assert "Traceback" not in result.stderr
    if code == 2:
        assert result.stdout == ""
        assert "not a readable zip" in result.stderr
        assert "truncated" in result.stderr  # the hint
    else:
        assert result.stdout.splitlines()[-1] == f"1 artifact(s) checked, {code} failed"
    if code == 1:
        assert "handler.py: PERM_NOT_READABLE error: mode 0600" in result.stdout


def test_cli_missing_file(tmp_path: Path) -> None:
    result = run_cli("--json", str(tmp_path / "nope.zip"))
    assert result.code == 2
    assert "no such file" in json_doc(result)["error"]["message"]
    assert "Traceback" not in result.stderr


def test_cli_folder_is_not_a_zip(tmp_path: Path) -> None:
    result = run_cli(str(tmp_path))
    assert result.code == 2
    assert "Traceback" not in result.stderr


def test_cli_several_zips_one_document() -> None:
    result = run_cli("--json", str(ZIPS / "perm-good.zip"), str(ZIPS / "perm-0600-bad.zip"))
    assert result.code == 1
    doc = json_doc(result)
    assert doc["ok"] is False
    assert [a["ok"] for a in doc["artifacts"]] == [True, False]


def test_empty_zip_without_handler_reports_zip_empty() -> None:
    result = run_cli("--json", str(ZIPS / "empty-bad.zip"))
    assert result.code == 1
    assert "ZIP_EMPTY" in {f["code"] for f in json_doc(result)["artifacts"][0]["findings"]}
