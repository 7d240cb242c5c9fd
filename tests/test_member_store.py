"""verify's member store (lpkg.archive.members) and the bytecode kept by content beside it: the same results
with and without them, every member still checked, bounded, and used only where the probe cannot write."""

from __future__ import annotations

import io
import os
import shutil
import struct
import zipfile
from pathlib import Path

import click
import pytest
from helpers import FIXTURES, run_lpkg, write_zip

from lpkg.archive import members
from lpkg.commands.stores import member_store_for, scratch_parent
from lpkg.commands.verify import VerifyOptions, verify_zip
from lpkg.errors import LpkgError
from lpkg.probing.choose import choose_prober
from lpkg.probing.local import LocalProber, local_interpreter
from lpkg.report import ArtifactReport
from lpkg.runtimes import get_runtime

RUNTIME = get_runtime("python3.11")
REAL_ZIPS = [path for folder in ("zips", "examples", "hostile") for path in sorted((FIXTURES / folder).glob("*.zip"))]
HANDLER = "import click\n\ndef handler(event, context):\n    return click.__name__\n"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty store beside this test's own scratch folder (one file system, so links work)."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    folder = tmp_path / "members"
    monkeypatch.setenv("LPKG_SCRATCH_DIR", str(scratch))
    monkeypatch.setenv("LPKG_MEMBER_STORE", str(folder))
    return folder


def click_zip(path: Path, handler: str = HANDLER) -> Path:
    """A real package (click, as installed here) and a handler importing it."""
    package = Path(click.__file__).parent
    files: dict[str, str | bytes] = {f"click/{f.relative_to(package).as_posix()}": f.read_bytes()
                                     for f in sorted(package.rglob("*.py"))}
    files["handler.py"] = handler
    return write_zip(path, files)


def verify(path: Path, prober: object = None) -> ArtifactReport:
    return verify_zip(path, VerifyOptions(runtime=RUNTIME, arch="x86_64"), prober)  # type: ignore[arg-type]


def outcome(path: Path) -> tuple[object, ...]:
    """Everything verify says but its timings (or the error it stops with)."""
    try:
        report = verify(path)
    except LpkgError as exc:
        return (type(exc).__name__, str(exc))
    return (report.findings, report.probe, report.facts, report.handler, report.invocation)


def stored_files(folder: Path) -> int:
    return members.usage_of(folder, 0).files


@pytest.mark.parametrize("path", REAL_ZIPS, ids=lambda p: p.name)
def test_results_are_the_same_without_the_store_with_an_empty_one_and_a_full_one(
        path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LPKG_MEMBER_STORE", "off")
    without = outcome(path)
    monkeypatch.setenv("LPKG_MEMBER_STORE", str(store))
    assert outcome(path) == without  # fills the store
    assert outcome(path) == without  # links from it


def test_a_second_verify_unpacks_only_what_changed(store: Path, tmp_path: Path) -> None:
    first = verify(click_zip(tmp_path / "a.zip"))
    kept = stored_files(store)
    assert kept == len(zipfile.ZipFile(tmp_path / "a.zip").namelist())
    second = verify(click_zip(tmp_path / "b.zip", HANDLER + "# edited\n"))
    assert stored_files(store) == kept + 1  # the edited handler; click's files were linked
    assert second.findings == first.findings == ()


NATIVE_FILES = {
    "pkg/_new.cpython-311-x86_64-linux-gnu.so": "glibc234_x86_64.so",  # glibc 2.34: too new for python3.11
    "pkg/_pq.cpython-311-x86_64-linux-gnu.so": "needs_libpq_x86_64.so",  # libpq.so.5: not in the image
    "pkg/_mac.cpython-311-darwin.so": "macho_x86_64.so",  # not Linux
}


def native_zip(path: Path, swap: dict[str, str] | None = None) -> Path:
    files: dict[str, str | bytes] = {member: (FIXTURES / "elf" / sample).read_bytes()
                                     for member, sample in {**NATIVE_FILES, **(swap or {})}.items()}
    files["lib/libfoo.so"] = b"/* GNU ld script */\nINPUT(libfoo.so.1)\n"  # read by the link editor only
    files["handler.py"] = "def handler(event, context):\n    return 1\n"
    return write_zip(path, files)


def test_a_second_verify_takes_the_native_files_facts_from_the_store(
        store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lpkg.checks import native_facts

    first = verify(native_zip(tmp_path / "a.zip"))
    codes = {(f.code, f.member) for f in first.findings}
    assert {("NATIVE_GLIBC_TOO_NEW", "pkg/_new.cpython-311-x86_64-linux-gnu.so"),
            ("NATIVE_MISSING_LIBRARY", "pkg/_pq.cpython-311-x86_64-linux-gnu.so"),
            ("NATIVE_NOT_LINUX", "pkg/_mac.cpython-311-darwin.so")} <= codes
    assert not any(f.member == "lib/libfoo.so" for f in first.findings)

    def read_again(data: bytes) -> object:
        raise AssertionError("a native file was read again")

    monkeypatch.setattr(native_facts, "read_native_facts", read_again)
    again = verify(native_zip(tmp_path / "b.zip"))  # the same members in another zip
    assert again.findings == first.findings
    monkeypatch.undo()
    # Other bytes under the same name are other facts: the library built for an older glibc has no finding.
    monkeypatch.setenv("LPKG_SCRATCH_DIR", str(tmp_path / "scratch"))
    monkeypatch.setenv("LPKG_MEMBER_STORE", str(store))
    swapped = verify(native_zip(tmp_path / "c.zip", {"pkg/_new.cpython-311-x86_64-linux-gnu.so": "plain_x86_64.so"}))
    assert not any(f.code == "NATIVE_GLIBC_TOO_NEW" for f in swapped.findings)
    assert {f.code for f in swapped.findings} >= {"NATIVE_MISSING_LIBRARY", "NATIVE_NOT_LINUX"}


def test_a_zip_big_enough_for_workers_gives_the_same_results_filled_and_linked(
        store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over unpack's parallel threshold: the first verify fills the store through the workers, the second links
    in this process (the store holds nearly all of it), a third with one member changed does the same."""
    from lpkg.archive import unpack

    payload = {f"blobs/b{i:02}.bin": os.urandom(300_000) for i in range(40)}  # 12 MB that deflate cannot shrink
    files: dict[str, str | bytes] = {**payload, "handler.py": "def handler(event, context):\n    return 1\n"}
    assert sum(map(len, payload.values())) > unpack.PARALLEL_FROM_BYTES
    monkeypatch.setenv("LPKG_MEMBER_STORE", "off")
    without = outcome(write_zip(tmp_path / "a.zip", files))
    monkeypatch.setenv("LPKG_MEMBER_STORE", str(store))
    assert outcome(tmp_path / "a.zip") == without
    assert stored_files(store) == len(files)
    assert outcome(tmp_path / "a.zip") == without
    changed = write_zip(tmp_path / "b.zip", {**files, "blobs/b07.bin": os.urandom(300_000)})
    assert outcome(changed)[0] == without[0]
    assert stored_files(store) == len(files) + 1


def _member_offsets(data: bytes, name: str) -> tuple[int, int]:
    """(where the member's compressed data starts, where its central-directory entry starts)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(name)
        name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
        central = data.index(b"PK\x01\x02", zf.start_dir)
        while data[central + 46:central + 46 + len(name)] != name.encode():
            central = data.index(b"PK\x01\x02", central + 4)
    return info.header_offset + 30 + name_length + extra_length, central


@pytest.mark.parametrize("damage", ["compressed byte", "directory CRC", "local name"])
def test_a_damaged_member_is_found_though_the_store_holds_its_good_twin(
        damage: str, store: Path, tmp_path: Path) -> None:
    good = click_zip(tmp_path / "good.zip")
    assert verify(good).findings == ()
    data = bytearray(good.read_bytes())
    start, central = _member_offsets(bytes(data), "click/core.py")
    if damage == "compressed byte":
        data[start + 100] ^= 0xFF  # the directory's CRC and sizes stay those of the good member
    elif damage == "directory CRC":
        data[central + 16] ^= 0x01
    else:
        local_name = start - len("click/core.py")
        data[local_name:local_name + len("click/core.py")] = b"click/kore.py"
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    report = verify(bad)
    assert [(f.code, f.member) for f in report.findings] == [("ZIP_CORRUPT", "click/core.py")]


def test_the_store_stays_within_its_bound(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LPKG_MEMBER_STORE_MB", "0")
    assert verify(click_zip(tmp_path / "a.zip")).findings == ()
    assert stored_files(store) == 0


def test_pruning_keeps_the_most_recently_linked(store: Path, tmp_path: Path) -> None:
    verify(click_zip(tmp_path / "a.zip"))
    entries = members.usage_of(store, 0)
    kept = members.prune(store, entries.size // 2)
    assert 0 < kept.files < entries.files and kept.size <= entries.size // 2
    assert members.usage_of(store, 0).files == kept.files


def test_a_store_folder_others_could_write_to_is_not_used(store: Path, tmp_path: Path) -> None:
    store.mkdir(mode=0o700)
    os.chmod(store, 0o777)
    assert members.open_store(store) is None
    assert verify(click_zip(tmp_path / "a.zip")).findings == ()
    assert stored_files(store) == 0


def test_the_local_probe_gets_files_of_its_own() -> None:
    # It runs the user's code as this user: through a hard link it could change the store.
    if local_interpreter(RUNTIME) is None:
        pytest.skip("no local python3.11")
    assert member_store_for(LocalProber(RUNTIME), scratch_parent()) is None


@pytest.mark.docker
def test_the_docker_probe_reuses_kept_bytecode_with_the_same_findings(
        store: Path, tmp_path: Path, standin_image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    zip_path = click_zip(tmp_path / "a.zip", HANDLER + "import click.nope\n")
    prober = choose_prober("docker", RUNTIME, standin_image)
    first = verify(zip_path, prober)
    second = verify(zip_path, prober)
    assert "compiled and kept" in first.probe and "reused" in second.probe
    # Only for the zip at that path: what one zip's sandbox left could never run in another zip's verify.
    elsewhere = verify(Path(shutil.copy(zip_path, tmp_path / "elsewhere.zip")), prober)
    assert "reused" not in elsewhere.probe and "compiled and kept" in elsewhere.probe
    monkeypatch.setenv("LPKG_MEMBER_STORE", "off")
    without = verify(zip_path, prober)
    assert "bytecode" not in without.probe
    assert first.findings  # click.nope is not there
    assert second.findings == first.findings == without.findings


TAMPERING = """
import os

# Kept bytecode is offered as hard links to lpkg's store, in a read-only mount: try to change it through them.
for folder, _, names in os.walk("/lpkg-pyc-kept"):
    for name in names:
        path = os.path.join(folder, name)
        attempts = (lambda: open(path, "ab").write(b"planted"), lambda: os.chmod(path, 0o666),
                    lambda: os.replace(__file__, path), lambda: os.unlink(path),
                    lambda: open(path + ".new", "wb").write(b"planted"))
        for attempt in attempts:
            try:
                attempt()
            except OSError:
                pass
"""


@pytest.mark.docker
def test_the_sandbox_cannot_change_kept_bytecode_through_its_links(
        store: Path, tmp_path: Path, standin_image: str) -> None:
    zip_path = click_zip(tmp_path / "a.zip", HANDLER + TAMPERING)
    prober = choose_prober("docker", RUNTIME, standin_image)
    first = verify(zip_path, prober)
    assert "compiled and kept" in first.probe, first.probe
    kept = {path: path.read_bytes() for path in store.rglob("*") if path.is_file()}
    second = verify(zip_path, prober)
    assert "reused" in second.probe, second.probe  # the links were offered, and the handler went at them
    assert {path: path.read_bytes() for path in store.rglob("*") if path.is_file()} == kept
    assert all(path.stat().st_mode & 0o777 == 0o644 for path in kept if path.name.endswith(".pyc"))
    assert verify(zip_path, prober).findings == first.findings


def test_lpkg_cache_shows_prunes_and_clears_the_store(store: Path, tmp_path: Path) -> None:
    verify(click_zip(tmp_path / "a.zip"))
    env = {"LPKG_MEMBER_STORE": str(store), "LPKG_SCRATCH_DIR": os.environ["LPKG_SCRATCH_DIR"]}
    info = run_lpkg("cache", "info", env=env)
    assert info.returncode == 0 and f"member store: {store}" in info.stdout
    assert f"{stored_files(store)} files" in info.stdout
    pruned = run_lpkg("cache", "prune", "--to", "0", env=env)
    assert pruned.returncode == 0 and "-> 0.0 MB in 0 files" in pruned.stdout
    assert stored_files(store) == 0
    run_lpkg("cache", "clear", env=env)
    assert not store.exists()
