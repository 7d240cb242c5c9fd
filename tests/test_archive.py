"""ZipArchive on the zips in fixtures/zips: what the directory says, and reading that trusts only the data."""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
from pathlib import Path

import pytest
from helpers import load_script

from lpkg.archive.reader import BudgetExceeded, MemberCorrupt, SizeBudget, ZipArchive, file_mode, normalized_name
from lpkg.errors import UnreadableInput

ROOT = Path(__file__).resolve().parent.parent
ZIPS = ROOT / "fixtures" / "zips"
HANDLER = b"def handler(event, context):\n    return 1\n"
MB = 1 << 20


SCRIPT = load_script("make_zip_fixtures")  # its writers make variants the fixtures do not hold


def open_zip(name: str) -> ZipArchive:
    return ZipArchive(ZIPS / name)


# Unreadable input


@pytest.mark.parametrize(("name", "words"), [
    ("not-a-zip.zip", "not a readable zip"),
    ("truncated.zip", "not a readable zip"),
])
def test_unreadable_zip(name: str, words: str) -> None:
    with pytest.raises(UnreadableInput) as caught:
        open_zip(name)
    assert words in caught.value.message
    assert caught.value.exit_code == 2
    assert caught.value.hint and "truncated" in caught.value.hint


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(UnreadableInput, match="no such file"):
        ZipArchive(tmp_path / "missing.zip")
    with pytest.raises(UnreadableInput, match="folder"):
        ZipArchive(tmp_path)


def test_truncated_is_the_first_half_of_a_real_zip() -> None:
    data = (ZIPS / "truncated.zip").read_bytes()
    assert data.startswith(b"PK\x03\x04")
    assert b"PK\x05\x06" not in data  # the end record is what is missing


# What the central directory says


def test_modes_dirs_and_symlinks() -> None:
    with open_zip("symlink-bad.zip") as zf:
        link = next(m for m in zf.members if m.name == "link.py")
        assert link.is_symlink and link.unsafe_reason == "symbolic link"
        assert zf.read("link.py") == b"handler.py"  # a symlink member holds its target
    with open_zip("perm-dir-0700-bad.zip") as zf:
        modes = {m.name: (m.mode, m.is_dir) for m in zf.members}
        assert modes == {"lib/": (0o700, True), "lib/__init__.py": (0o644, False), "handler.py": (0o644, False)}
    with open_zip("perm-0600-bad.zip") as zf:
        handler = next(m for m in zf.members if m.name == "handler.py")
        assert handler.mode == 0o600 and file_mode(handler) == 0o600


def test_zip_without_unix_modes_gets_0644(tmp_path: Path) -> None:
    path = tmp_path / "dos.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("handler.py")
        info.create_system = 0  # MS-DOS: no Unix mode recorded
        zf.writestr(info, HANDLER)
    with ZipArchive(path) as archive:
        [member] = archive.members
        assert member.mode is None and file_mode(member) == 0o644


@pytest.mark.parametrize(("name", "reason"), [
    ("../evil.py", "'..' in path"),
    ("a/../../evil.py", "'..' in path"),
    ("/evil.py", "absolute path"),
    ("C:/evil.py", "absolute path"),
    ("..\\evil.py", "'..' in path"),
    ("evil.py", None),
    ("a/..b/c.py", None),
])
def test_unsafe_reason(tmp_path: Path, name: str, reason: str | None) -> None:
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo(name), b"x = 1\n")
    with ZipArchive(path) as archive:
        assert [m.unsafe_reason for m in archive.members] == [reason]
        assert [m.name for m in archive.safe_files()] == ([] if reason else [name])


def test_encrypted_member_is_real_zipcrypto() -> None:
    with open_zip("encrypted-bad.zip") as archive:
        assert {m.name: m.encrypted for m in archive.members} == {"handler.py": False, "secret.py": True}
        assert [m.name for m in archive.safe_files()] == ["handler.py"]
        assert archive.read_text("secret.py") is None
        with pytest.raises(MemberCorrupt, match="password"):
            archive.read("secret.py")
    # The fixture is really encrypted: the password decrypts it and the CRC matches.
    with zipfile.ZipFile(ZIPS / "encrypted-bad.zip") as zf:
        assert zf.read("secret.py", pwd=b"pw") == SCRIPT.SECRET
        with pytest.raises(RuntimeError):
            zf.read("secret.py", pwd=b"wrong")


def test_duplicate_names_keep_the_first_in_safe_files() -> None:
    with open_zip("duplicate-bad.zip") as archive:
        assert [m.name for m in archive.members] == ["handler.py", "util.py", "util.py"]
        assert [m.name for m in archive.safe_files()] == ["handler.py", "util.py"]


def test_claimed_sizes() -> None:
    with open_zip("zip-bomb-bad.zip") as archive:
        assert archive.claimed_unzipped_size == 4 * 100 * MB + len(HANDLER)
        assert archive.zipped_size < 500_000
    with open_zip("zip-bomb-lying-bad.zip") as archive:
        assert archive.claimed_unzipped_size == 3 * MB + len(HANDLER)


def test_normalized_name() -> None:
    assert normalized_name("./a//b/../c.py") == "a/c.py"
    assert normalized_name("/abs/x.py") == "abs/x.py"
    assert normalized_name("a\\b.py") == "a/b.py"
    assert normalized_name("") == ""


# Reading


def test_read_deflate64() -> None:
    with open_zip("deflate64-good.zip") as archive:
        assert {m.name: m.compress_type for m in archive.members} == {"blob.txt": 9, "handler.py": 9}
        blob = archive.read("blob.txt")
        assert blob == SCRIPT.deflate64_blob()
        assert len(blob) == 120_000
        assert hashlib.sha256(blob).hexdigest()[:16] == "86e0891ad24f4a6b"
        assert archive.read("handler.py") == SCRIPT.DEFLATE64_HANDLER
        assert archive.read_text("handler.py") == SCRIPT.DEFLATE64_HANDLER.decode()


def test_read_corrupt_member() -> None:
    with open_zip("corrupt-member-bad.zip") as archive:
        assert archive.read("handler.py") == HANDLER
        with pytest.raises(MemberCorrupt) as caught:
            archive.read("data.py")
        assert caught.value.member == "data.py"
        assert archive.read_text("data.py") is None
    with open_zip("corrupt-member-good.zip") as archive:
        assert archive.read("data.py") == SCRIPT.DATA_PY


def test_read_member_longer_than_claimed() -> None:
    # zipfile alone would return the 100 bytes the headers claim, and their CRC matches: silent truncation.
    with zipfile.ZipFile(ZIPS / "size-lie-bad.zip") as zf:
        assert zf.read("data.py") == SCRIPT.DATA_PY[:100]
    with open_zip("size-lie-bad.zip") as archive:
        with pytest.raises(MemberCorrupt):
            archive.read("data.py")
        with pytest.raises(MemberCorrupt):
            archive.read("data.py", SizeBudget(1 << 30))


def test_read_member_shorter_than_claimed(tmp_path: Path) -> None:
    raw = SCRIPT.raw_file("data.py", SCRIPT.DATA_PY)
    overstated = SCRIPT.RawMember(raw.name, raw.payload, raw.method, raw.crc, raw.size + 1000)
    path = tmp_path / "overstated.zip"
    path.write_bytes(SCRIPT.raw_zip([overstated]))
    with ZipArchive(path) as archive:
        with pytest.raises(MemberCorrupt, match="the directory claims"):
            archive.read("data.py")


def test_read_lying_bomb_stops_at_the_budget() -> None:
    with open_zip("zip-bomb-lying-bad.zip") as archive:
        budget = SizeBudget(10 * MB)
        with pytest.raises(BudgetExceeded) as caught:
            archive.read("data/zeros0.bin", budget)
        assert caught.value.member == "data/zeros0.bin"
        assert caught.value.limit == 10 * MB
        assert 10 * MB < budget.used <= 11 * MB  # stopped within one chunk of the limit


def test_read_lying_bomb_without_budget_stops_at_the_claim() -> None:
    with open_zip("zip-bomb-lying-bad.zip") as archive:
        with pytest.raises(MemberCorrupt, match="longer than the 3,145,728 bytes the directory claims"):
            archive.read("data/zeros0.bin")
        assert archive.read_text("data/zeros0.bin") is None
        assert archive.read_text("handler.py") == HANDLER.decode()


def test_budget_is_shared_across_reads() -> None:
    with open_zip("zip-bomb-good.zip") as archive:
        budget = SizeBudget(25 * MB)
        assert archive.read("data/zeros0.bin", budget) == bytes(10 * MB)
        assert archive.read("data/zeros1.bin", budget) == bytes(10 * MB)
        with pytest.raises(BudgetExceeded):
            archive.read("data/zeros2.bin", budget)


def test_read_text_limits() -> None:
    with open_zip("zip-bomb-good.zip") as archive:
        assert archive.read_text("data/zeros0.bin") is None  # over the 4 MiB default
        assert archive.read_text("handler.py", limit=len(HANDLER)) == HANDLER.decode()
        assert archive.read_text("nope.py") is None


# The fixtures are the script's output


def directory(data: bytes) -> list[tuple[str, int, int, int, int, int]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i.filename, i.CRC, i.file_size, i.flag_bits, i.compress_type, i.external_attr)
                for i in zf.infolist()]


SLOW = {"zip-bomb-bad.zip", "zip-bomb-good.zip", "zip-bomb-lying-bad.zip"}


def test_committed_fixtures_match_the_script() -> None:
    """Same directories as the script writes now (compressed bytes may differ with another zlib)."""
    made = {name: make() for name, make in SCRIPT.fixture_bytes().items() if name not in SLOW}
    committed = {p.name for p in ZIPS.glob("*.zip")}
    assert set(made) | SLOW | {"deflate64-good.zip"} == committed
    for name, data in made.items():
        on_disk = (ZIPS / name).read_bytes()
        if name in ("truncated.zip", "not-a-zip.zip"):
            assert on_disk[:30] == data[:30], name
            continue
        assert directory(on_disk) == directory(data), name
    assert sum((ZIPS / n).stat().st_size for n in committed) < 2_000_000


def test_fixture_timestamps_and_modes_are_fixed() -> None:
    for path in sorted(ZIPS.glob("*.zip")):
        if path.name in ("truncated.zip", "not-a-zip.zip"):
            continue
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                assert info.date_time == (1980, 1, 1, 0, 0, 0), (path.name, info.filename)
                assert stat.S_IFMT(info.external_attr >> 16) in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK)


def test_extended_timestamp_is_restored_to_the_second(tmp_path: Path) -> None:
    """zip -r records Unix mtimes (extra field 0x5455); the DOS time alone has 2-second steps, which would
    make a .pyc compiled against an odd-second source stale."""
    import struct
    import time as time_module

    from lpkg.archive.reader import unpack_member

    odd_second = 1_700_000_001
    path = tmp_path / "ut.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("mod.py", date_time=time_module.localtime(odd_second)[:6])
        info.extra = struct.pack("<HHBi", 0x5455, 5, 1, odd_second)
        zf.writestr(info, b"X = 1\n")
        zf.writestr(zipfile.ZipInfo("plain.py", date_time=(2024, 1, 1, 0, 0, 2)), b"Y = 1\n")
    with ZipArchive(path) as archive:
        by_name = {m.name: m for m in archive.members}
        assert by_name["mod.py"].mtime == odd_second
        assert by_name["plain.py"].unix_mtime is None
        for member in archive.members:
            unpack_member(tmp_path / "out", member.name, archive.read(member.name), 0o644, member.mtime)
    assert int((tmp_path / "out" / "mod.py").stat().st_mtime) == odd_second
    assert (tmp_path / "out" / "plain.py").stat().st_mtime == time_module.mktime((2024, 1, 1, 0, 0, 2, 0, 0, -1))
