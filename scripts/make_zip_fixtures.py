#!/usr/bin/env python3
"""Regenerate the zips in fixtures/zips/ (committed: the tests read them and need no tool).

One `<finding>-bad.zip` per class of host finding and, beside it, a `<finding>-good.zip` of the same
shape without it; plus unreadable inputs (`truncated.zip`, `not-a-zip.zip`) and handler-inference cases.
Every zip holds a valid `handler.py` (`def handler(event, context): return 1`) unless its class makes
that impossible, so the handler is inferred.

Deterministic and idempotent: fixed timestamps (1980-01-01 00:00:00) and modes, fixed data, files are
only rewritten when their bytes change. What the zipfile module cannot write (a ZipCrypto-encrypted member,
headers that lie about sizes) and the zeros of the bombs, deflated once and reused, go through `raw_zip`
below, which packs the headers with struct.

`deflate64-good.zip` needs 7-Zip (Debian: `apt-get install p7zip-full`): the zipfile module cannot
compress with Deflate64. Without 7z on PATH the committed file is kept as it is.

Usage: python scripts/make_zip_fixtures.py
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "zips"

DATE_TIME = (1980, 1, 1, 0, 0, 0)
DOS_TIME, DOS_DATE = 0, (0 << 9) | (1 << 5) | 1  # 1980-01-01 00:00:00
EPOCH_1980 = 315532800  # the same instant as a Unix time (UTC), for 7-Zip's input files
FILE = 0o100000
DIR = 0o040000
SYMLINK = 0o120000

HANDLER = b"def handler(event, context):\n    return 1\n"
LAMBDA_FUNCTION = b"def lambda_handler(event, context):\n    return 1\n"
# Long enough that 7-Zip compresses it rather than storing it.
DEFLATE64_HANDLER = b"".join(b"# deflate64 sample line %d\n" % i for i in range(20)) + HANDLER
UTIL = b"def helper():\n    return 2\n"
SECRET = b"API_KEY = 'not-a-real-key'\n"
ZIP_PASSWORD = b"pw"

# Bombs: zeros compress about 1030:1 at deflate level 9.
MB = 1 << 20
BOMB_MEMBERS = 4  # zip-bomb-bad.zip: 4 x 100 MiB = 419 MB claimed, honestly
BOMB_MEMBER_SIZE = 100 * MB
BOMB_GOOD_MEMBER_SIZE = 10 * MB  # zip-bomb-good.zip: the same shape, 42 MB in all (under the limit)
LYING_BOMB_SIZE = 300 * MB  # zip-bomb-lying-bad.zip: one member, 315 MB real ...
LYING_BOMB_CLAIM = 3 * MB  # ... and 3 MiB claimed



def deflate64_blob() -> bytes:
    """40 KB of pseudo-random text, three times: its matches reach back further than deflate's 32 KiB
    window, so only Deflate64 finds them. The tests check its SHA-256."""
    block = bytes(random.Random(64).choices(b"abcdefgh \n", k=40_000))
    return block * 3


# --- writing with the zipfile module -----------------------------------------------------------------

Entry = tuple[str, bytes, int]  # name, data, st_mode (file type and permission bits)


def info(name: str, mode: int, compress_type: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    zinfo = zipfile.ZipInfo(name, DATE_TIME)
    zinfo.create_system = 3  # Unix, so the mode in external_attr counts
    zinfo.external_attr = mode << 16
    if stat.S_ISDIR(mode):
        zinfo.external_attr |= 0x10  # MS-DOS directory bit, as zip(1) sets it
        zinfo.compress_type = zipfile.ZIP_STORED
    else:
        zinfo.compress_type = compress_type
    return zinfo


def build(entries: Iterable[Entry], compress_type: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": wanted in duplicate-bad.zip
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data, mode in entries:
                zf.writestr(info(name, mode, compress_type), data, compresslevel=9)
    return buf.getvalue()


def f(name: str, data: bytes, perm: int = 0o644) -> Entry:
    return (name, data, FILE | perm)


def d(name: str, perm: int = 0o755) -> Entry:
    return (name, b"", DIR | perm)


def handler_py(perm: int = 0o644) -> Entry:
    return f("handler.py", HANDLER, perm)


# --- writing headers by hand ------------------------------------------------------------------------


@dataclass(frozen=True)
class RawMember:
    name: str
    payload: bytes  # the bytes after the local header: compressed, maybe encrypted
    method: int
    crc: int
    size: int  # the uncompressed size both headers state (true or not)
    flags: int = 0
    mode: int = FILE | 0o644


def raw_zip(members: Iterable[RawMember]) -> bytes:
    """A zip whose headers say exactly what the members say, nothing checked."""
    out = bytearray()
    central = bytearray()
    count = 0
    for m in members:
        name = m.name.encode()
        offset = len(out)
        out += struct.pack(
            "<4sHHHHHLLLHH", b"PK\x03\x04", 20, m.flags, m.method, DOS_TIME, DOS_DATE,
            m.crc, len(m.payload), m.size, len(name), 0,
        ) + name + m.payload
        central += struct.pack(
            "<4sHHHHHHLLLHHHHHLL", b"PK\x01\x02", (3 << 8) | 20, 20, m.flags, m.method, DOS_TIME, DOS_DATE,
            m.crc, len(m.payload), m.size, len(name), 0, 0, 0, 0, m.mode << 16, offset,
        ) + name
        count += 1
    eocd = struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, count, count, len(central), len(out), 0)
    return bytes(out + central + eocd)


def deflate(data: bytes) -> bytes:
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    return co.compress(data) + co.flush()


def raw_file(name: str, data: bytes) -> RawMember:
    return RawMember(name, deflate(data), zipfile.ZIP_DEFLATED, zlib.crc32(data), len(data))


# Traditional PKWARE encryption ("ZipCrypto", APPNOTE 6.1), which `zip -e` and `unzip -P` use. Written
# here because the zipfile module only decrypts, and `zip -e` draws its 12-byte header at random.
_CRC_TABLE = [0] * 256
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0xEDB88320 if _c & 1 else _c >> 1
    _CRC_TABLE[_i] = _c


def zipcrypto_encrypt(plain: bytes, password: bytes, check_byte: int) -> bytes:
    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(byte: int) -> None:
        keys[0] = (keys[0] >> 8) ^ _CRC_TABLE[(keys[0] ^ byte) & 0xFF]
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = (keys[2] >> 8) ^ _CRC_TABLE[(keys[2] ^ (keys[1] >> 24)) & 0xFF]

    for byte in password:
        update(byte)
    header = bytes(range(1, 12)) + bytes([check_byte])  # fixed "random" bytes, then the check byte
    out = bytearray()
    for byte in header + plain:
        temp = (keys[2] | 2) & 0xFFFF
        out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
        update(byte)
    return bytes(out)


def encrypted_file(name: str, data: bytes, password: bytes) -> RawMember:
    crc = zlib.crc32(data)
    payload = zipcrypto_encrypt(deflate(data), password, crc >> 24)
    return RawMember(name, payload, zipfile.ZIP_DEFLATED, crc, len(data), flags=0x1)


def zeros_deflated(size: int) -> tuple[bytes, int]:
    """Raw deflate of `size` zero bytes and their CRC, without holding them in memory."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts: list[bytes] = []
    crc = 0
    chunk = bytes(MB)
    for _ in range(size // MB):
        parts.append(co.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    rest = bytes(size % MB)
    parts += [co.compress(rest), co.flush()]
    crc = zlib.crc32(rest, crc)
    return b"".join(parts), crc


# --- damaging a written zip --------------------------------------------------------------------------


def damage_member(data: bytes, name: str) -> bytes:
    """Invert 16 bytes in the middle of a member's compressed data; the directory stays valid."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zinfo = zf.getinfo(name)
    name_len, extra_len = struct.unpack_from("<HH", data, zinfo.header_offset + 26)
    start = zinfo.header_offset + 30 + name_len + extra_len
    middle = start + zinfo.compress_size // 2
    out = bytearray(data)
    for i in range(middle - 8, middle + 8):
        out[i] ^= 0xFF
    return bytes(out)


# --- the fixtures ------------------------------------------------------------------------------------


def numbered_module(n: int) -> bytes:
    """A few KB of Python source that deflates to enough bytes to damage in the middle."""
    rng = random.Random(n)
    lines = [f"VALUE_{i} = {rng.randrange(10**12)!r}  # {rng.random()!r}\n" for i in range(200)]
    return "".join(lines).encode()


DATA_PY = numbered_module(1)


def fixture_bytes() -> dict[str, Callable[[], bytes]]:
    lambda_function = f("lambda_function.py", LAMBDA_FUNCTION)
    return {
        # ZIP_UNSAFE_PATH: a name that climbs out of the task root, an absolute name, a symlink;
        # unsafe-path-good.zip is the good twin of the first two.
        "unsafe-path-bad.zip": lambda: build([handler_py(), f("../evil.py", UTIL)]),
        "unsafe-path-good.zip": lambda: build([handler_py(), f("evil.py", UTIL)]),
        "absolute-path-bad.zip": lambda: build([handler_py(), f("/evil.py", UTIL)]),
        # A symlink member holds its target as data; `unzip` would create the link.
        "symlink-bad.zip": lambda: build([handler_py(), ("link.py", b"handler.py", SYMLINK | 0o777)]),
        "symlink-good.zip": lambda: build([handler_py(), f("link.py", HANDLER)]),
        # ZIP_DUPLICATE: util.py twice, with different contents.
        "duplicate-bad.zip": lambda: build([handler_py(), f("util.py", UTIL), f("util.py", SECRET)]),
        "duplicate-good.zip": lambda: build([handler_py(), f("util.py", UTIL), f("util2.py", SECRET)]),
        # ZIP_ENCRYPTED: secret.py encrypted with ZipCrypto, password "pw" (zipfile can decrypt it).
        "encrypted-bad.zip": lambda: raw_zip([
            raw_file("handler.py", HANDLER), encrypted_file("secret.py", SECRET, ZIP_PASSWORD)]),
        "encrypted-good.zip": lambda: raw_zip([raw_file("handler.py", HANDLER), raw_file("secret.py", SECRET)]),
        # ZIP_EMPTY: only a folder, no file (so no handler either: verify it with --handler).
        "empty-bad.zip": lambda: build([d("package/")]),
        "empty-good.zip": lambda: build([d("package/"), handler_py()]),
        # PERM_NOT_READABLE: a 0600 file; a 0700 folder; perm-good.zip is their good twin (0644, 0755).
        "perm-0600-bad.zip": lambda: build([d("lib/"), f("lib/__init__.py", b""), handler_py(0o600)]),
        "perm-dir-0700-bad.zip": lambda: build([d("lib/", 0o700), f("lib/__init__.py", b""), handler_py()]),
        "perm-good.zip": lambda: build([d("lib/"), f("lib/__init__.py", b""), handler_py()]),
        # ZIP_CORRUPT: data.py's deflate stream is damaged (the directory is fine).
        "corrupt-member-bad.zip": lambda: damage_member(build([handler_py(), f("data.py", DATA_PY)]), "data.py"),
        "corrupt-member-good.zip": lambda: build([handler_py(), f("data.py", DATA_PY)]),
        # ZIP_CORRUPT: data.py is longer than both headers say; the CRC is that of the stated prefix, so a
        # reader that stops at the stated size sees a valid, silently truncated file. Good twin:
        # corrupt-member-good.zip (the same bytes as this one with true headers).
        "size-lie-bad.zip": lambda: raw_zip([
            raw_file("handler.py", HANDLER),
            RawMember("data.py", deflate(DATA_PY), zipfile.ZIP_DEFLATED, zlib.crc32(DATA_PY[:100]), 100),
        ]),
        # Unreadable input (exit 2): the first half of a good zip (no central directory), and text.
        "truncated.zip": lambda: first_half(build([handler_py(), f("data.py", DATA_PY)])),
        "not-a-zip.zip": lambda: b"this is not a zip file\n",
        # SIZE_UNZIPPED from the directory: 4 x 100 MiB of zeros, honestly declared.
        "zip-bomb-bad.zip": lambda: zeros_zip(BOMB_MEMBERS, BOMB_MEMBER_SIZE),
        "zip-bomb-good.zip": lambda: zeros_zip(BOMB_MEMBERS, BOMB_GOOD_MEMBER_SIZE),
        # SIZE_UNZIPPED while unpacking: 300 MiB of zeros whose headers claim 3 MiB (the CRC is the real one).
        "zip-bomb-lying-bad.zip": lambda: zeros_zip(1, LYING_BOMB_SIZE, LYING_BOMB_CLAIM),
        # Handler inference: util.py defines handler but is no candidate module; two candidates; the
        # console's default (lambda_function.lambda_handler).
        "handler-none-bad.zip": lambda: build([f("util.py", HANDLER)]),
        "handler-ambiguous-bad.zip": lambda: build([handler_py(), f("app.py", HANDLER)]),
        "handler-lambda-function-good.zip": lambda: build([lambda_function, f("util.py", UTIL)]),
    }


def first_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def zeros_zip(members: int, size: int, claim: int | None = None) -> bytes:
    """handler.py and `members` members of `size` zero bytes each (deflate level 9), whose headers state
    `claim` bytes (the CRC stays that of the real data, so only the size lies)."""
    payload, crc = zeros_deflated(size)
    zeros = [RawMember(f"data/zeros{i}.bin", payload, zipfile.ZIP_DEFLATED, crc, size if claim is None else claim)
             for i in range(members)]
    return raw_zip([raw_file("handler.py", HANDLER), *zeros])


def deflate64_zip(sevenzip: str) -> bytes:
    """handler.py and blob.txt compressed with Deflate64 by 7-Zip, from files with fixed times and modes."""
    with tempfile.TemporaryDirectory(prefix="lpkg-deflate64-") as tmp:
        root = Path(tmp)
        (root / "handler.py").write_bytes(DEFLATE64_HANDLER)
        (root / "blob.txt").write_bytes(deflate64_blob())
        for p in root.iterdir():
            p.chmod(0o644)
            os.utime(p, (EPOCH_1980, EPOCH_1980))
        subprocess.run(
            [sevenzip, "a", "-tzip", "-mm=Deflate64", "-mx=9", "-mtc=off", "-mmt=1", "out.zip",
             "handler.py", "blob.txt"],
            cwd=root, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "TZ": "UTC"},
        )
        data = (root / "out.zip").read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        methods = {i.filename: i.compress_type for i in zf.infolist()}
    if methods != {"handler.py": 9, "blob.txt": 9}:
        raise SystemExit(f"7z did not use Deflate64: {methods}")
    return data


def write_if_changed(path: Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    path.write_bytes(data)
    return True


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    outputs = {name: make() for name, make in fixture_bytes().items()}
    sevenzip = shutil.which("7z") or shutil.which("7za")
    deflate64_path = OUT / "deflate64-good.zip"
    if sevenzip:
        outputs["deflate64-good.zip"] = deflate64_zip(sevenzip)
    elif deflate64_path.exists():
        print("7z not found: keeping the committed deflate64-good.zip", file=sys.stderr)
    else:
        raise SystemExit("deflate64-good.zip is missing and 7z is not on PATH (apt-get install p7zip-full)")
    for name, data in sorted(outputs.items()):
        changed = write_if_changed(OUT / name, data)
        print(f"{'wrote' if changed else 'same '} {name:36} {len(data):>9,} bytes  "
              f"sha256 {hashlib.sha256(data).hexdigest()[:16]}")
    total = sum(p.stat().st_size for p in OUT.glob("*.zip"))
    print(f"total {total:,} bytes in {OUT.name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
