"""The hostile corpus (fixtures/hostile, scripts/make_hostile_fixtures.py): every malformed or hostile zip
ends in its finding or in exit 2, through the real command line, without a traceback, under a memory
limit and a time-out (bounds on the run, not measurements: benchmarks/hostile.py measures)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import FIXTURES, load_script, run_lpkg

HOSTILE = FIXTURES / "hostile"
MEMORY_LIMIT = 2 << 30  # address space of the lpkg process; a reader that inflated a bomb would hit it
TIME_LIMIT = 600.0


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    errors: frozenset[str] = frozenset()
    warnings: frozenset[str] = frozenset()
    member: str | None = None  # where the first error (else warning) points, when that matters
    message: str = ""  # part of the exit-2 message


def bad(*errors: str, warnings: tuple[str, ...] = (), member: str | None = None) -> Outcome:
    return Outcome(1, frozenset(errors), frozenset(warnings), member)


def warn(*warnings: str, member: str | None = None) -> Outcome:
    return Outcome(0, frozenset(), frozenset(warnings), member)


def unreadable(message: str) -> Outcome:
    return Outcome(2, message=message)


EXPECTED = {
    "truncated-half.zip": unreadable("not a readable zip"),
    "truncated-end-record.zip": unreadable("not a readable zip"),
    "truncated-central-directory.zip": unreadable("Bad magic number for central directory"),
    "truncated-member-data.zip": bad("ZIP_OVERLAP", member="data.py"),
    "empty-file.zip": unreadable("an empty file (0 bytes), not a zip"),
    "no-members.zip": bad("ZIP_EMPTY"),
    "folders-only.zip": bad("ZIP_EMPTY"),
    "handler-empty.zip": unreadable("handler.py (empty)"),
    "handler-bom-only.zip": unreadable("handler.py (empty)"),
    "bad-crc.zip": bad("ZIP_CORRUPT", member="util.py"),
    "overlap-quoted-bomb.zip": bad("ZIP_OVERLAP", member="f000.py"),
    "overlap-same-offset.zip": bad("ZIP_OVERLAP", member="alias0.py"),
    "size-claims-larger.zip": bad("ZIP_CORRUPT", member="util.py"),
    "compressed-size-lie.zip": bad("ZIP_OVERLAP", member="handler.py"),
    "local-name-differs.zip": bad("ZIP_CORRUPT", member="util.py"),
    "central-offset-beyond-end.zip": bad("ZIP_CORRUPT", member="handler.py"),
    "version-too-new.zip": unreadable("zip file version 6.4"),
    "zip64-extra-short.zip": unreadable("Corrupt zip64 extra field"),
    "zip64-huge-claim.zip": bad("SIZE_UNZIPPED"),
    "zip64-locator-bad.zip": unreadable("not a readable zip"),
    "extra-field-overrun.zip": unreadable("Corrupt extra field"),
    "deep-path.zip": Outcome(0),
    "path-too-long.zip": bad("ZIP_NAME_TOO_LONG"),
    "name-too-long.zip": bad("ZIP_NAME_TOO_LONG", member="x" * 300 + ".py"),
    "dot-name.zip": bad("ZIP_UNSAFE_PATH", member="."),
    "file-and-folder.zip": bad("ZIP_PATH_CONFLICT", member="pkg"),
    "name-not-utf8.zip": warn("ZIP_NAME_ENCODING", member="caf\u00e9.py"),
    "name-bad-utf8-flagged.zip": unreadable("can't decode"),
    "name-nul.zip": bad("ZIP_UNSAFE_PATH", member="util.py"),
    "name-case-twins.zip": warn("ZIP_CASE_CONFLICT", member="Util.py"),
    "symlink-loop.zip": bad("ZIP_UNSAFE_PATH", member="a.py"),
    "encrypted-aes.zip": bad("ZIP_ENCRYPTED", member="secret.py"),
    "encrypted-handler.zip": bad("ZIP_ENCRYPTED", member="handler.py"),
    "method-unknown.zip": bad("ZIP_COMPRESSION", member="util.py"),
    "bzip2-corrupt.zip": bad("ZIP_CORRUPT", warnings=("ZIP_COMPRESSION",), member="util.py"),
    "lzma-corrupt.zip": bad("ZIP_CORRUPT", warnings=("ZIP_COMPRESSION",), member="util.py"),
    "deflate64-corrupt.zip": bad("ZIP_CORRUPT", warnings=("ZIP_COMPRESSION",), member="blob.txt"),
    "elf-truncated.zip": warn("NATIVE_UNREADABLE", member="native/_speedups.cpython-311-x86_64-linux-gnu.so"),
    "elf-bogus-tables.zip": warn("NATIVE_UNREADABLE", member="native/_speedups.cpython-311-x86_64-linux-gnu.so"),
    "handler-not-utf8.zip": bad("SYNTAX_ERROR", member="handler.py"),
    "handler-nul-byte.zip": bad("SYNTAX_ERROR", member="handler.py"),
    "handler-deep-nesting.zip": bad("SYNTAX_ERROR", member="handler.py"),
    "handler-long-expression.zip": bad("SYNTAX_ERROR", member="handler.py"),
}


@dataclass(frozen=True)
class Run:
    exit_code: int
    document: dict[str, object]
    stderr: str


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def verify_json(path: Path) -> Run:
    """`lpkg verify --json` on the host checks alone, in its own bounded process."""
    proc = subprocess.run(
        [sys.executable, "-m", "lpkg", "verify", "--probe", "none", "--runtime", "python3.11", "--json", str(path)],
        capture_output=True, text=True, timeout=TIME_LIMIT, preexec_fn=_limit_memory,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    document = json.loads(proc.stdout)  # exactly one JSON document, on errors too
    assert isinstance(document, dict)
    return Run(proc.returncode, document, proc.stderr)


def assert_outcome(run: Run, expected: Outcome) -> None:
    assert run.exit_code == expected.exit_code, (run.stderr, run.document)
    if expected.exit_code == 2:
        error = run.document["error"]
        assert isinstance(error, dict)
        assert expected.message in str(error["message"])
        assert expected.message in run.stderr
        return
    artifacts = run.document["artifacts"]
    assert isinstance(artifacts, list) and len(artifacts) == 1
    findings = artifacts[0]["findings"]
    assert frozenset(f["code"] for f in findings if f["severity"] == "error") == expected.errors, findings
    assert frozenset(f["code"] for f in findings if f["severity"] == "warning") == expected.warnings, findings
    if expected.member is not None:
        first = next(f for f in findings if f["severity"] in ("error", "warning"))
        assert first["member"] == expected.member


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_zip_ends_in_its_finding_or_exit_2(name: str) -> None:
    assert_outcome(verify_json(HOSTILE / name), EXPECTED[name])


def test_every_corpus_zip_has_an_expected_outcome() -> None:
    assert sorted(p.name for p in HOSTILE.glob("*.zip")) == sorted(EXPECTED)
    assert len(EXPECTED) + 1 >= 25  # with the 100,000-member zip, made below


def test_committed_corpus_is_what_the_script_writes() -> None:
    script = load_script("make_hostile_fixtures")
    for name, make in script.fixture_bytes().items():
        assert (HOSTILE / name).read_bytes() == make(), f"{name}: run scripts/make_hostile_fixtures.py"


def test_hundred_thousand_members_are_checked_and_unpacked(tmp_path: Path) -> None:
    script = load_script("make_hostile_fixtures")
    path = script.many_members_zip(tmp_path / "many-members.zip")
    run = verify_json(path)
    assert_outcome(run, Outcome(0))
    assert "unpack" in run.document["artifacts"][0]["timings"]  # type: ignore[index]


def test_overlapping_members_are_not_unpacked() -> None:
    # The bomb's 40 files would unpack to about 40 MB from 5 KB: the directory alone refuses it. Every file
    # but the last (the shared kernel, which the others reach into) overlaps the next.
    run = verify_json(HOSTILE / "overlap-quoted-bomb.zip")
    artifact = run.document["artifacts"][0]  # type: ignore[index]
    assert "unpack" not in artifact["timings"]
    assert artifact["probe"] == "not run: ZIP_OVERLAP"
    overlapping = [f["member"] for f in artifact["findings"] if f["code"] == "ZIP_OVERLAP"]
    assert sorted(overlapping) == [f"f{i:03d}.py" for i in range(39)]


def test_a_member_with_an_empty_name_is_an_unsafe_path_not_a_traceback(tmp_path: Path) -> None:
    # zipfile's own ZipInfo.is_dir() indexes the name's last character: an empty name raised IndexError.
    path = tmp_path / "empty-name.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo(""), "x = 1\n")
        archive.writestr("app.py", "def handler(event, context):\n    return 1\n")
    run = run_lpkg("verify", path, "--handler", "app.handler", "--probe", "none", "--json")
    assert run.returncode == 1, run.stderr
    codes = [f["code"] for f in json.loads(run.stdout)["artifacts"][0]["findings"]]
    assert "ZIP_UNSAFE_PATH" in codes and "Traceback" not in run.stderr, codes
