"""A content-addressed store of unpacked members, so a verify unpacks only what changed since the last one.

Each file verify unpacks is kept (as a hard link: no copy) under the digest of what decides its bytes and
attributes: the sha256 of the member's compressed data as stored in the zip, its compression method, the CRC
and size the central directory claims, its flag bits, permission bits and modification time. The next verify
of a member with the same key links the kept file into its task root instead of inflating it again.

Why a hit still means "every member was checked": the key's first entry was made by inflating exactly these
compressed bytes with this method and finding this CRC and size, and inflating the same bytes gives the same
bytes again. CRC and size alone would not do: CRC-32 is no digest, and a zip made to collide with a kept
member would get that member's bytes into the probe without its own ever being inflated. The local header
is read and its name compared with the directory's on every hit, as zipfile does when it inflates.

The store is on the scratch folder's file system (hard links cannot cross file systems; tmpfs by default,
where removing the task root's links is cheap), one per user, mode 0700, and bounded: past
LPKG_MEMBER_STORE_MB (default 1024) it drops the files linked least recently (a link sets the file's ctime).
Only probes that cannot write to the task root may use it (the Docker probe mounts it read-only); the
local probe runs the user's code as this user, so it gets files of its own. LPKG_MEMBER_STORE=off turns it off;
another value names the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lpkg.files import write_atomically

DEFAULT_LIMIT_MB = 1024
PRUNE_TO = 0.75  # of the limit, so a full store is not pruned again on every verify
USAGE_FILE = "usage"  # an estimate of the store's bytes, kept up to date without walking it
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_UTF8_FLAG = 0x800
_STORED, _DEFLATED = 0, 8
_UNREADABLE_FLAGS = 0x1 | 0x20 | 0x40  # encrypted, patched data, strong encryption: zipfile reads none of them


@dataclass(frozen=True)
class MemberFacts:
    """What the central directory says of a member, all that its key covers besides the compressed bytes."""

    member: str  # the name in the zip
    header_offset: int
    compressed_size: int
    size: int
    crc: int
    compress_type: int
    flag_bits: int
    mode: int
    mtime: float


@dataclass(frozen=True)
class StoreUsage:
    folder: Path
    size: int  # bytes
    files: int
    limit: int


def store_folder(scratch_parent: str | None) -> Path | None:
    """This user's store, beside the scratch folders (None when turned off)."""
    chosen = os.environ.get("LPKG_MEMBER_STORE", "")
    if chosen.lower() in ("off", "0", "no"):
        return None
    if chosen:
        return Path(chosen)
    return Path(scratch_parent or tempfile.gettempdir()) / f"lpkg-members-{os.getuid()}"


def store_limit() -> int:
    raw = os.environ.get("LPKG_MEMBER_STORE_MB", "")
    return (int(raw) if raw.isdigit() else DEFAULT_LIMIT_MB) << 20


def open_store(folder: Path) -> Path | None:
    """The folder, made if missing; None unless it is this user's own and no one else's to write (in a shared
    /dev/shm another user could have made it first, to plant files)."""
    with contextlib.suppress(FileExistsError, OSError):
        os.mkdir(folder, 0o700)
    try:
        info = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    if not os.path.isdir(os.path.join(folder, "ff")):
        for shard in range(256):  # once, so adding a file is one link
            with contextlib.suppress(OSError):
                os.mkdir(os.path.join(folder, f"{shard:02x}"), 0o700)
    return folder


def member_key(raw: bytes, facts: MemberFacts) -> str:
    """The store's name for a member: its compressed bytes and everything else that decides the file."""
    decided = f"{facts.compress_type}:{facts.crc}:{facts.size}:{facts.flag_bits}:{facts.mode}:{facts.mtime!r}"
    return hashlib.sha256(hashlib.sha256(raw).digest() + decided.encode()).hexdigest()


def stored_path(folder: Path, key: str) -> str:
    return os.path.join(folder, key[:2], key)


def compressed_data(handle: BinaryIO, facts: MemberFacts) -> bytes | None:
    """The member's compressed bytes, read past its local header; None when the local header is not one
    zipfile reads as this member, or cannot be read (the full read then says what is wrong)."""
    try:
        return _compressed_data(handle, facts)
    except (OSError, ValueError, OverflowError):
        return None  # an offset before the file's start or past any size a seek takes: a hostile directory


def _compressed_data(handle: BinaryIO, facts: MemberFacts) -> bytes | None:
    if facts.header_offset < 0 or facts.compressed_size < 0:
        return None
    handle.seek(facts.header_offset)
    header = handle.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size:
        return None
    fields = _LOCAL_HEADER.unpack(header)
    signature, flags, name_length, extra_length = fields[0], fields[3], fields[10], fields[11]
    if signature != _LOCAL_SIGNATURE or flags & _UNREADABLE_FLAGS or facts.flag_bits & _UNREADABLE_FLAGS:
        return None
    raw_name = handle.read(name_length)
    name = raw_name.decode("utf-8" if flags & _UTF8_FLAG else "cp437", "replace")
    if name != facts.member:
        return None
    handle.seek(extra_length, os.SEEK_CUR)
    data = handle.read(facts.compressed_size)
    return data if len(data) == facts.compressed_size else None


def inflate(raw: bytes, facts: MemberFacts) -> bytes | None:
    """The member's bytes from its compressed bytes in one call, for the two methods nearly every zip uses;
    None unless they are exactly what zipfile would give (the stream ends, the size and the CRC are the
    directory's). Anything else, damage included, is left to the full read, which says what is wrong."""
    if facts.compress_type == _STORED:
        data = raw
    elif facts.compress_type == _DEFLATED:
        inflater = zlib.decompressobj(-15)
        try:
            data = inflater.decompress(raw, facts.size + 1)
        except zlib.error:
            return None
        if not inflater.eof:
            return None
    else:
        return None
    if len(data) != facts.size or zlib.crc32(data) != facts.crc:
        return None
    return data


def link_from_store(folder: Path, key: str, target: str) -> bool:
    """Link the kept file for `key` to `target` (whose folder exists); False when the store has none."""
    try:
        os.link(stored_path(folder, key), target)
    except FileNotFoundError:
        return False
    return True


def keep(folder: Path, key: str, unpacked: str, size: int) -> int:
    """Add the file just unpacked (`size` bytes) to the store; the bytes added (0 if it was there already or
    cannot be)."""
    try:
        os.link(unpacked, stored_path(folder, key))
    except OSError:
        return 0  # there already (another verify's), a shard pruned away, or a full disk: this verify is unaffected
    return size


def record_added(folder: Path, added: int, limit: int) -> None:
    """Count what a verify added; past the limit, prune. The count is an estimate (verifies at once may lose
    each other's), put right by every prune."""
    if added <= 0:
        return
    usage = folder / USAGE_FILE
    try:
        total = int(usage.read_text() or 0) + added
    except (OSError, ValueError):
        total = added
    if total > limit:
        total = prune(folder, int(limit * PRUNE_TO)).size
    with contextlib.suppress(OSError):
        write_atomically(usage, str(total).encode())


def usage_of(folder: Path, limit: int) -> StoreUsage:
    entries = _entries(folder)
    return StoreUsage(folder, sum(size for _, size, _ in entries), len(entries), limit)


def prune(folder: Path, keep_bytes: int) -> StoreUsage:
    """Drop the files linked least recently until at most `keep_bytes` remain. A task root using one keeps
    its own link, so pruning never changes a verify under way."""
    entries = sorted(_entries(folder), key=lambda entry: -entry[2])  # most recently linked first
    kept = count = 0
    for path, size, _ in entries:
        if kept + size <= keep_bytes:
            kept += size
            count += 1
            continue
        with contextlib.suppress(OSError):
            os.unlink(path)
    with contextlib.suppress(OSError):
        write_atomically(folder / USAGE_FILE, str(kept).encode())
    return StoreUsage(folder, kept, count, store_limit())


def _entries(folder: Path) -> list[tuple[str, int, int]]:
    """(path, bytes, ctime) of every kept file."""
    found = []
    try:
        shards = [entry.path for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    for shard in shards:
        with contextlib.suppress(OSError):
            for entry in os.scandir(shard):
                info = entry.stat(follow_symlinks=False)
                found.append((entry.path, info.st_size, info.st_ctime_ns))
    return found
