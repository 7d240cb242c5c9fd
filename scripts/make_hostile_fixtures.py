#!/usr/bin/env python3
"""Regenerate the malformed and hostile zips in fixtures/hostile/ (committed; each a few KB at most).

Each archive is damaged in one way a zip from anywhere can be: truncated, a bad CRC, members that
overlap (the non-recursive zip bomb), a central directory that lies about sizes, broken zip64 and other
extra fields, very deep or long paths, names that are not UTF-8 or hold NUL bytes or differ only in case,
symbolic-link loops, encrypted members, unknown or damaged compression, a truncated ELF `.so`, a handler
module that is not UTF-8 or cannot be parsed. tests/test_hostile.py states what lpkg must say about each.

The 100,000-member zip is about 10 MB, so it is not committed: `many_members_zip()` writes it, and the test
and benchmarks/hostile.py make it in a temporary folder (`--many DIR` writes it here too).

Deterministic and idempotent, as scripts/make_zip_fixtures.py (whose header packing this reuses).

Usage: python scripts/make_hostile_fixtures.py [--many DIR]
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import io
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_zip_fixtures as base  # the sibling script, found through the line above

ROOT = Path(__file__).resolve().parent.parent / "fixtures"
OUT = ROOT / "hostile"
HANDLER = base.HANDLER
UTIL = base.UTIL
MANY_MEMBERS = 100_000

UTF8_FLAG = 0x800
ENCRYPTED_FLAG = 0x1
ZIP64_EXTRA = 0x0001
AES_EXTRA = 0x9901
AES_METHOD = 99


# --- a zip writer that states whatever it is told ----------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One member as both headers state it. Everything defaults to the honest value."""

    name: bytes
    payload: bytes  # what follows the local header
    method: int = zipfile.ZIP_DEFLATED
    crc: int = 0
    size: int = 0
    flags: int = 0
    mode: int = base.FILE | 0o644
    local_name: bytes | None = None  # the local header's name, when it differs from the directory's
    central_extra: bytes = b""
    local_extra: bytes = b""
    central_size: int | None = None  # the directory's uncompressed size, when it lies
    central_compressed: int | None = None  # the directory's compressed size, when it lies
    offset: int | None = None  # the directory's header offset, when it points elsewhere
    write_local: bool = True  # False: the entry only exists in the directory
    version_needed: int = 20  # the zip version needed to extract (2.0)


def entry(name: str | bytes, data: bytes, **kw: object) -> Entry:
    """An honest deflated member."""
    raw = name.encode() if isinstance(name, str) else name
    return Entry(raw, base.deflate(data), crc=zlib.crc32(data), size=len(data), **kw)  # type: ignore[arg-type]


def stored(name: str | bytes, data: bytes, **kw: object) -> Entry:
    raw = name.encode() if isinstance(name, str) else name
    return Entry(raw, data, method=zipfile.ZIP_STORED, crc=zlib.crc32(data), size=len(data), **kw)  # type: ignore[arg-type]


@dataclass
class Layout:
    """The bytes of a written zip and where its parts are, for damaging them afterwards."""

    data: bytes
    offsets: list[int] = field(default_factory=list)  # local header offset per entry
    central_start: int = 0


def write(entries: Sequence[Entry], *, eocd_count: int | None = None, eocd_offset: int | None = None,
          trailer: bytes = b"") -> Layout:
    out = bytearray()
    central = bytearray()
    offsets: list[int] = []
    for e in entries:
        offset = len(out)
        offsets.append(offset)
        if e.write_local:
            local_name = e.name if e.local_name is None else e.local_name
            out += struct.pack("<4sHHHHHLLLHH", b"PK\x03\x04", 20, e.flags, e.method, base.DOS_TIME,
                               base.DOS_DATE, e.crc, len(e.payload), e.size, len(local_name), len(e.local_extra))
            out += local_name + e.local_extra + e.payload
        central += struct.pack(
            "<4sHHHHHHLLLHHHHHLL", b"PK\x01\x02", (3 << 8) | 20, e.version_needed, e.flags, e.method,
            base.DOS_TIME, base.DOS_DATE, e.crc,
            len(e.payload) if e.central_compressed is None else e.central_compressed,
            e.size if e.central_size is None else e.central_size,
            len(e.name), len(e.central_extra), 0, 0, 0, e.mode << 16,
            offset if e.offset is None else e.offset,
        ) + e.name + e.central_extra
    count = len(entries) if eocd_count is None else eocd_count
    start = len(out) if eocd_offset is None else eocd_offset
    eocd = struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, count, count, len(central), start, 0)
    return Layout(bytes(out + central + trailer + eocd), offsets, len(out))


def handler() -> Entry:
    return entry("handler.py", HANDLER)


def zip_of(*entries: Entry) -> bytes:
    return write(entries).data


# --- the corpus --------------------------------------------------------------------------------------------


def truncated_central_directory() -> bytes:
    """The end record is intact, but 20 bytes are missing from the middle of the central directory."""
    layout = write([handler(), entry("util.py", UTIL)])
    cut = layout.central_start + 20
    return layout.data[:cut] + layout.data[cut + 20:]


def member_data_cut_short() -> bytes:
    """The directory is consistent, but the last member's data stops 2,000 bytes early: what the
    directory says it holds runs into the directory itself."""
    data = base.DATA_PY
    payload = base.deflate(data)
    short = Entry(b"data.py", payload[:-2000], crc=zlib.crc32(data), size=len(data),
                  central_compressed=len(payload))
    return zip_of(handler(), short)


def bad_crc() -> bytes:
    good = entry("util.py", UTIL)
    return zip_of(handler(), Entry(good.name, good.payload, crc=good.crc ^ 0xDEADBEEF, size=good.size))


def overlapping_bomb(files: int = 40, kernel_size: int = 1 << 20) -> bytes:
    """David Fifield's non-recursive zip bomb, small: every file's deflate data starts with stored blocks
    that quote the next files' local headers and ends in one shared kernel, so each file unpacks to all
    the headers after it plus the kernel. Honest sizes and CRCs; the files overlap."""
    kernel = base.deflate(bytes(kernel_size))  # one final block of zeros
    names = [f"f{i:03d}.py".encode() for i in range(files)]

    def local_header(name: bytes, crc: int, compressed: int, size: int) -> bytes:
        return struct.pack("<4sHHHHHLLLHH", b"PK\x03\x04", 20, 0, zipfile.ZIP_DEFLATED, base.DOS_TIME,
                           base.DOS_DATE, crc, compressed, size, len(name), 0) + name

    def quote(block: bytes) -> bytes:  # a non-final stored block holding `block`
        return struct.pack("<BHH", 0, len(block), len(block) ^ 0xFFFF) + block

    # From the last file back: file i's data is quote(header i+1) + file i+1's data; the last's is the kernel.
    headers: list[bytes] = [b""] * files
    datas: list[bytes] = [b""] * files
    following = b""  # the uncompressed output of the files after i: their headers and the kernel's zeros
    crc_kernel = zlib.crc32(bytes(kernel_size))
    for i in reversed(range(files)):
        if i == files - 1:
            datas[i] = kernel
            crc, size = crc_kernel, kernel_size
        else:
            datas[i] = quote(headers[i + 1]) + datas[i + 1]
            following = headers[i + 1] + following
            crc, size = zlib.crc32(bytes(kernel_size), zlib.crc32(following)), len(following) + kernel_size
        headers[i] = local_header(names[i], crc, len(datas[i]), size)
    # handler.py first, honest, so the handler is found and the bomb is what is judged.
    first = write([handler()])
    prefix = first.data[:first.central_start]
    central = bytearray(first.data[first.central_start:first.central_start + 46 + len(b"handler.py")])
    body = prefix + headers[0] + datas[0]
    offset = len(prefix)
    for i in range(files):
        _, _, _, _, _, _, crc, compressed, size, _, _ = struct.unpack_from("<4sHHHHHLLLHH", headers[i])
        central += struct.pack(
            "<4sHHHHHHLLLHHHHHLL", b"PK\x01\x02", (3 << 8) | 20, 20, 0, zipfile.ZIP_DEFLATED, base.DOS_TIME,
            base.DOS_DATE, crc, compressed, size, len(names[i]), 0, 0, 0, 0, (base.FILE | 0o644) << 16, offset,
        ) + names[i]
        offset += len(headers[i]) + (5 if i < files - 1 else 0)
    eocd = struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, files + 1, files + 1, len(central), len(body), 0)
    return body + bytes(central) + eocd


def same_offset() -> bytes:
    """Three directory entries, one local file: each name in the directory points at the same data."""
    shared = entry("util.py", UTIL)
    alias = [Entry(f"alias{i}.py".encode(), shared.payload, crc=shared.crc, size=shared.size, offset=0,
                   write_local=False) for i in range(2)]
    # The handler goes first in the directory so it is found; its offset is where it really is.
    layout = write([shared, handler(), *alias])
    return layout.data


def size_claims_larger() -> bytes:
    """The directory says util.py is ten times larger than its data (the CRC is the real one)."""
    good = entry("util.py", UTIL)
    return zip_of(handler(), Entry(good.name, good.payload, crc=good.crc, size=good.size * 10))


def compressed_size_lie() -> bytes:
    """The directory says handler.py's compressed data is 300 bytes longer: it reaches into util.py."""
    h = handler()
    return zip_of(Entry(h.name, h.payload, crc=h.crc, size=h.size, central_compressed=len(h.payload) + 300),
                  entry("util.py", UTIL))


def zip64_extra(*values: int) -> bytes:
    body = b"".join(struct.pack("<Q", v) for v in values)
    return struct.pack("<HH", ZIP64_EXTRA, len(body)) + body


def zip64_extra_short() -> bytes:
    """The sizes say 'see the zip64 field' (0xFFFFFFFF), and the zip64 field holds 4 bytes, not 8."""
    good = entry("util.py", UTIL)
    broken = struct.pack("<HHL", ZIP64_EXTRA, 4, good.size)
    return zip_of(handler(), Entry(good.name, good.payload, crc=good.crc, size=good.size,
                                   central_size=0xFFFFFFFF, central_extra=broken))


def extra_field_overrun() -> bytes:
    """An extra field whose stated length runs 200 bytes past the end of the extra data."""
    good = entry("util.py", UTIL)
    overrun = struct.pack("<HH", 0x5455, 205) + b"\x01\0\0\0\0"
    return zip_of(handler(), Entry(good.name, good.payload, crc=good.crc, size=good.size, central_extra=overrun))


def zip64_huge_claim() -> bytes:
    """A well-formed zip64 field claiming a 4 EiB member (the data is 36 bytes)."""
    good = entry("util.py", UTIL)
    return zip_of(handler(), Entry(good.name, good.payload, crc=good.crc, size=good.size,
                                   central_size=0xFFFFFFFF, central_extra=zip64_extra(1 << 62)))


def zip64_locator_bad() -> bytes:
    """A zip64 end-of-directory locator pointing at bytes that are no zip64 end record."""
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, 3, 1)
    return write([handler()], trailer=locator).data


def central_offset_beyond_end() -> bytes:
    return write([handler()], eocd_offset=1 << 30).data


def many_members_zip(path: Path, count: int = MANY_MEMBERS) -> Path:
    """handler.py and `count` - 1 tiny modules in 100 folders, stored (quick to write). Over 65,535
    members, so zipfile writes the zip64 end records."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(base.info("handler.py", base.FILE | 0o644, zipfile.ZIP_STORED), HANDLER)
        for n in range(1, count):
            zf.writestr(base.info(f"p{n % 100:02d}/m{n:06d}.py", base.FILE | 0o644, zipfile.ZIP_STORED), b"X = 1\n")
    return path


def deep_path(levels: int, part: str = "d") -> str:
    return "/".join([part] * levels) + "/leaf.py"


def name_bytes_flagged(name: bytes, data: bytes) -> Entry:
    return entry(name, data, flags=UTF8_FLAG)


def symlink(name: str, target: str) -> Entry:
    return stored(name, target.encode(), mode=base.SYMLINK | 0o777)


def aes_encrypted() -> bytes:
    """WinZip AES (method 99 with its 0x9901 field): the data is random-looking bytes, as real AES data is."""
    aes = struct.pack("<HHH2sBH", AES_EXTRA, 7, 2, b"AE", 3, zipfile.ZIP_DEFLATED)
    payload = hashlib.sha256(b"not really aes").digest() * 3
    return zip_of(handler(), Entry(b"secret.py", payload, method=AES_METHOD, size=40, flags=ENCRYPTED_FLAG,
                                   central_extra=aes, local_extra=aes))


def encrypted_handler() -> bytes:
    member = base.encrypted_file("handler.py", HANDLER, base.ZIP_PASSWORD)
    return zip_of(Entry(member.name.encode(), member.payload, crc=member.crc, size=member.size,
                        flags=member.flags), entry("util.py", UTIL))


def method(number: int, payload: bytes, data: bytes = UTIL) -> bytes:
    return zip_of(handler(), Entry(b"util.py", payload, method=number, crc=zlib.crc32(data), size=len(data)))


def damaged(payload: bytes) -> bytes:
    """Invert 16 bytes in the middle."""
    out = bytearray(payload)
    middle = len(out) // 2
    for i in range(max(0, middle - 8), min(len(out), middle + 8)):
        out[i] ^= 0xFF
    return bytes(out)


def deflate64_corrupt() -> bytes:
    """fixtures/zips/deflate64-good.zip (written by 7-Zip) with blob.txt's Deflate64 stream damaged."""
    data = (ROOT / "zips" / "deflate64-good.zip").read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zinfo = zf.getinfo("blob.txt")
    name_len, extra_len = struct.unpack_from("<HH", data, zinfo.header_offset + 26)
    start = zinfo.header_offset + 30 + name_len + extra_len
    return data[:start] + damaged(data[start:start + zinfo.compress_size]) + data[start + zinfo.compress_size:]


def lzma_payload(data: bytes) -> bytes:
    """The zip form of LZMA (method 14): a 4-byte version/size header, the properties, the raw stream."""
    import lzma

    filters = [{"id": lzma.FILTER_LZMA1}]
    compressor = lzma.LZMACompressor(lzma.FORMAT_RAW, filters=filters)
    raw = compressor.compress(data) + compressor.flush()
    props = lzma._encode_filter_properties(filters[0])  # type: ignore[attr-defined]
    return struct.pack("<BBH", 9, 4, len(props)) + props + raw


BIG_SOURCE = b"".join(b"VALUE_%d = %d\n" % (i, i * 7919) for i in range(400))


def elf_truncated() -> bytes:
    """A real x86_64 extension module cut after 40 bytes: the ELF magic, then nothing to read."""
    so = (ROOT / "elf" / "plain_x86_64.so").read_bytes()[:40]
    return zip_of(handler(), entry("native/_speedups.cpython-311-x86_64-linux-gnu.so", so))


def elf_bogus_sections() -> bytes:
    """A whole ELF header whose section table claims 65,535 entries at an offset past the end."""
    so = bytearray((ROOT / "elf" / "plain_x86_64.so").read_bytes()[:64])
    struct.pack_into("<Q", so, 0x28, 1 << 40)  # e_shoff
    struct.pack_into("<H", so, 0x3C, 0xFFFF)  # e_shnum
    struct.pack_into("<Q", so, 0x20, 1 << 40)  # e_phoff
    struct.pack_into("<H", so, 0x38, 0xFFFF)  # e_phnum
    return zip_of(handler(), entry("native/_speedups.cpython-311-x86_64-linux-gnu.so", bytes(so)))


HANDLER_LATIN1 = b"GREETING = '\xe9t\xe9'  # latin-1, no coding line\n" + HANDLER
HANDLER_NUL = b"X = 1\n\0\n" + HANDLER
HANDLER_DEEP = b"X = " + b"-" * 200_000 + b"1\n" + HANDLER
HANDLER_LONG_SUM = b"X = " + b"1+" * 100_000 + b"1\n" + HANDLER


def fixture_bytes() -> dict[str, Callable[[], bytes]]:
    two = base.build([base.handler_py(), base.f("data.py", base.DATA_PY)])
    return {
        # Truncated: no end record; the end record cut; the directory cut; a member's data cut.
        "truncated-half.zip": lambda: two[: len(two) // 2],
        "truncated-end-record.zip": lambda: two[:-10],
        "truncated-central-directory.zip": truncated_central_directory,
        "truncated-member-data.zip": member_data_cut_short,
        "empty-file.zip": lambda: b"",
        # The emptiest zips: no members at all (only the end record); folders only; the handler module empty,
        # or only a UTF-8 byte order mark.
        "no-members.zip": lambda: zip_of(),
        "folders-only.zip": lambda: zip_of(stored("pkg/", b"", mode=base.DIR | 0o755),
                                           stored("pkg/sub/", b"", mode=base.DIR | 0o755)),
        "handler-empty.zip": lambda: zip_of(entry("handler.py", b"")),
        "handler-bom-only.zip": lambda: zip_of(entry("handler.py", b"\xef\xbb\xbf")),
        "bad-crc.zip": bad_crc,
        # Overlapping members: the non-recursive zip bomb; three directory entries for one local file.
        "overlap-quoted-bomb.zip": overlapping_bomb,
        "overlap-same-offset.zip": same_offset,
        # The directory lies: uncompressed size too large; compressed size reaching into the next member;
        # a local name other than the directory's; the directory's offset past the end of the file.
        "size-claims-larger.zip": size_claims_larger,
        "compressed-size-lie.zip": compressed_size_lie,
        "local-name-differs.zip": lambda: zip_of(handler(), entry("util.py", UTIL, local_name=b"../x.py")),
        "central-offset-beyond-end.zip": central_offset_beyond_end,
        # A member that needs zip version 6.4 to extract (found by the fuzz run in tests/test_properties.py).
        "version-too-new.zip": lambda: zip_of(handler(), entry("util.py", UTIL, version_needed=64)),
        # zip64 and other extra fields.
        "zip64-extra-short.zip": zip64_extra_short,
        "zip64-huge-claim.zip": zip64_huge_claim,
        "zip64-locator-bad.zip": zip64_locator_bad,
        "extra-field-overrun.zip": extra_field_overrun,
        # Paths: 1,000 levels (fine on Linux); over PATH_MAX; one name over NAME_MAX; '.'; a file and a
        # folder of the same name.
        "deep-path.zip": lambda: zip_of(handler(), entry(deep_path(1000), UTIL)),
        "path-too-long.zip": lambda: zip_of(handler(), entry(deep_path(1400, "abc"), UTIL)),
        "name-too-long.zip": lambda: zip_of(handler(), entry("x" * 300 + ".py", UTIL)),
        "dot-name.zip": lambda: zip_of(handler(), entry(".", UTIL)),
        "file-and-folder.zip": lambda: zip_of(handler(), entry("pkg", UTIL), entry("pkg/mod.py", UTIL)),
        # Names: CP437 bytes without the UTF-8 flag; invalid UTF-8 with it; a NUL byte; case-only twins.
        "name-not-utf8.zip": lambda: zip_of(handler(), entry(b"caf\x82.py", UTIL)),
        "name-bad-utf8-flagged.zip": lambda: zip_of(handler(), name_bytes_flagged(b"\xff\xfe.py", UTIL)),
        "name-nul.zip": lambda: zip_of(handler(), entry(b"util.py\0/../../../etc/cron.d/x", UTIL)),
        "name-case-twins.zip": lambda: zip_of(handler(), entry("util.py", UTIL), entry("Util.py", UTIL)),
        # Symbolic links that point at each other, and a folder link to its own parent.
        "symlink-loop.zip": lambda: zip_of(handler(), symlink("a.py", "b.py"), symlink("b.py", "a.py"),
                                           symlink("pkg/loop", "..")),
        # Encryption: WinZip AES; the handler module itself under ZipCrypto.
        "encrypted-aes.zip": aes_encrypted,
        "encrypted-handler.zip": encrypted_handler,
        # Compression: an unknown method; damaged bzip2, LZMA and Deflate64 data.
        "method-unknown.zip": lambda: method(77, base.deflate(UTIL)),
        "bzip2-corrupt.zip": lambda: method(zipfile.ZIP_BZIP2, damaged(bz2.compress(BIG_SOURCE)), BIG_SOURCE),
        "lzma-corrupt.zip": lambda: method(zipfile.ZIP_LZMA, damaged(lzma_payload(BIG_SOURCE)), BIG_SOURCE),
        "deflate64-corrupt.zip": deflate64_corrupt,
        # Native code: an ELF cut short; an ELF header with absurd tables.
        "elf-truncated.zip": elf_truncated,
        "elf-bogus-tables.zip": elf_bogus_sections,
        # The handler module: latin-1 bytes without a coding line; a NUL byte; nesting too deep to parse;
        # a sum too long to parse.
        "handler-not-utf8.zip": lambda: zip_of(entry("handler.py", HANDLER_LATIN1)),
        "handler-nul-byte.zip": lambda: zip_of(entry("handler.py", HANDLER_NUL)),
        "handler-deep-nesting.zip": lambda: zip_of(entry("handler.py", HANDLER_DEEP)),
        "handler-long-expression.zip": lambda: zip_of(entry("handler.py", HANDLER_LONG_SUM)),
    }


def write_all(out: Path, makers: Iterable[tuple[str, Callable[[], bytes]]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, make in sorted(makers):
        data = make()
        changed = base.write_if_changed(out / name, data)
        print(f"{'wrote' if changed else 'same '} {name:36} {len(data):>9,} bytes  "
              f"sha256 {hashlib.sha256(data).hexdigest()[:16]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--many", type=Path, help="also write the 100,000-member zip into this folder")
    args = parser.parse_args()
    write_all(OUT, fixture_bytes().items())
    if args.many:
        args.many.mkdir(parents=True, exist_ok=True)
        path = many_members_zip(args.many / "many-members.zip")
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    total = sum(p.stat().st_size for p in OUT.glob("*.zip"))
    print(f"total {total:,} bytes in {OUT.name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
