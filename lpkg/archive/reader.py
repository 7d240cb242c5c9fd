"""Reading zips safely: the central directory's facts, members streamed through a size budget that is
enforced on the bytes actually produced (the directory may lie), and unpacking of names already checked
to stay inside the target folder. Also the fixed timestamp of the zips lpkg writes (see assemble.py).

Deflate64 (method 9, written by Windows Explorer) is read through deflate64.py, registered on import.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import lzma
import os
import posixpath
import stat
import struct
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from lpkg.archive.deflate64 import ZIP_DEFLATED64, register_deflate64
from lpkg.errors import UnreadableInput

register_deflate64()

_CHUNK = 1 << 20
# The fixed timestamp of reproducible zips when SOURCE_DATE_EPOCH is unset (the zip epoch).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


# Methods some unzip tool can read (stored, deflate, Deflate64, bzip2, LZMA); any other cannot be unpacked.
KNOWN_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, ZIP_DEFLATED64, zipfile.ZIP_BZIP2,
                           zipfile.ZIP_LZMA})
# Linux's limits on a name under /var/task: NAME_MAX per component, PATH_MAX (with its NUL) for the whole.
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4095 - len("/var/task/")
_UTF8_FLAG = 0x800
_LOCAL_HEADER_BYTES = 30  # the fixed part of a local file header, before its name and extra field


class BudgetExceeded(Exception):
    """More bytes came out of the archives than the unzipped limit allows."""

    def __init__(self, member: str, produced: int, limit: int) -> None:
        super().__init__(member)
        self.member = member
        self.produced = produced
        self.limit = limit


class MemberCorrupt(Exception):
    """A member's data does not decompress or fails its CRC."""

    def __init__(self, member: str, reason: str) -> None:
        super().__init__(f"{member}: {reason}")
        self.member = member
        self.reason = reason


@dataclass
class SizeBudget:
    """Bytes that may still be produced by extraction, shared by a zip and its layers."""

    limit: int
    used: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def spend(self, member: str, count: int) -> None:
        with self._lock:  # members are unpacked by several threads
            self.used += count
            if self.used > self.limit:
                raise BudgetExceeded(member, self.used, self.limit)


@dataclass(frozen=True)
class ZipMember:
    """One central-directory entry, as the directory states it."""

    name: str
    size: int  # uncompressed, as claimed
    compressed_size: int
    mode: int | None  # Unix permission bits, None when the creating tool recorded none
    is_dir: bool
    is_symlink: bool
    encrypted: bool
    compress_type: int
    date_time: tuple[int, int, int, int, int, int] = ZIP_EPOCH
    unix_mtime: int | None = None  # from the extended-timestamp extra field (Info-ZIP's `zip` writes it)
    header_offset: int = 0
    name_bytes: int = 0  # the length of the name as stored (before a NUL byte cut it short)
    nul_in_name: bool = False  # zipfile cuts a name at a NUL byte; other tools may not
    name_not_utf8: bool = False  # non-ASCII bytes without the UTF-8 flag: read as CP437, by guess
    crc: int = 0  # the CRC-32 the directory claims
    flag_bits: int = 0  # the directory's general-purpose flags

    @property
    def mtime(self) -> float:
        """When the file was last changed, as unzip restores it: the extra field's Unix time when there is
        one, else the DOS time (2-second steps, local time). Shipped .pyc files stay valid only if this
        matches what they were compiled against."""
        return self.unix_mtime if self.unix_mtime is not None else _local_timestamp(tuple(self.date_time))

    # The name's derived facts are asked for by several checks of every member: each is worked out once
    # (cached_property writes the instance's __dict__, which a frozen dataclass still has).
    @functools.cached_property
    def path(self) -> str:
        """The name as unpacked: normalized_name(name)."""
        return normalized_name(self.name)

    @functools.cached_property
    def unsafe_reason(self) -> str | None:
        """Why extracting this name could write outside the target folder, if it could."""
        name = self.name.replace("\\", "/")
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            return "absolute path"
        if ".." in name.split("/"):
            return "'..' in path"
        if self.is_symlink:
            return "symbolic link"
        if self.nul_in_name:
            return "NUL byte in the name; tools disagree where it ends"
        if self.path in ("", "."):
            return "empty name"
        return None

    @functools.cached_property
    def too_long_reason(self) -> str | None:
        """Why Linux cannot create this name under /var/task, if it cannot."""
        encoded = self.path.encode("utf-8", "surrogateescape")
        if len(encoded) > PATH_MAX_BYTES:
            return f"the path is {len(encoded):,} bytes; Linux allows {PATH_MAX_BYTES:,} under /var/task"
        longest = max(encoded.split(b"/"), key=len)
        if len(longest) > NAME_MAX_BYTES:
            return f"one name in the path is {len(longest):,} bytes; Linux allows {NAME_MAX_BYTES}"
        return None

    @property
    def data_end(self) -> int:
        """Where the member's data ends at the earliest: its local header cannot be shorter than the fixed
        part and the name, and its data is as long as the directory says."""
        return self.header_offset + _LOCAL_HEADER_BYTES + self.name_bytes + self.compressed_size

    @property
    def is_file(self) -> bool:
        return not self.is_dir


def _member_from_info(info: zipfile.ZipInfo) -> ZipMember:
    unix_mode = (info.external_attr >> 16) & 0xFFFF
    has_unix = info.create_system == 3 and unix_mode != 0
    is_symlink = has_unix and stat.S_ISLNK(unix_mode)
    return ZipMember(
        name=info.filename,
        size=info.file_size,
        compressed_size=info.compress_size,
        mode=stat.S_IMODE(unix_mode) if has_unix else None,
        is_dir=info.filename.endswith("/") or (has_unix and stat.S_ISDIR(unix_mode)),
        is_symlink=is_symlink,
        encrypted=bool(info.flag_bits & 0x1),
        compress_type=info.compress_type,
        date_time=info.date_time,
        unix_mtime=_extended_mtime(info.extra),
        header_offset=info.header_offset,
        name_bytes=len(info.orig_filename.encode("utf-8" if info.flag_bits & _UTF8_FLAG else "cp437")),
        nul_in_name="\0" in info.orig_filename,
        name_not_utf8=not info.flag_bits & _UTF8_FLAG and not info.orig_filename.isascii(),
        crc=info.CRC,
        flag_bits=info.flag_bits,
    )


def _extended_mtime(extra: bytes) -> int | None:
    """The modification time in an extended-timestamp field (id 0x5455, flag bit 0), if present."""
    offset = 0
    while offset + 4 <= len(extra):
        field_id, size = struct.unpack_from("<HH", extra, offset)
        body = extra[offset + 4:offset + 4 + size]
        if field_id == 0x5455 and len(body) >= 5 and body[0] & 1:
            return int(struct.unpack_from("<i", body, 1)[0])
        offset += 4 + size
    return None


@dataclass(frozen=True)
class _Derived:
    paths: frozenset[str]
    folders: frozenset[str]
    safe_files: tuple[ZipMember, ...]


class ZipArchive:
    """An open zip whose central directory has been read. Use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.zipped_size = path.stat().st_size
            self._zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise UnreadableInput(f"{path}: no such file") from None
        except IsADirectoryError:
            raise UnreadableInput(f"{path}: is a folder, not a zip", hint="give the zip file") from None
        except zipfile.BadZipFile as exc:
            if self.zipped_size == 0:
                raise UnreadableInput(f"{path}: an empty file (0 bytes), not a zip",
                                      hint="the zip was never written, or its upload or download was cut off") from None
            raise UnreadableInput(
                f"{path}: not a readable zip ({exc})",
                hint="the file is not a zip, or it was truncated (an interrupted upload or download?)",
            ) from None
        except (OSError, EOFError, ValueError, NotImplementedError, struct.error) as exc:
            # NotImplementedError: a member needs a newer zip version than zipfile reads.
            raise UnreadableInput(f"{path}: cannot read the zip ({exc})") from None
        self._infos = {info.filename: info for info in self._zip.infolist()}
        self.members: tuple[ZipMember, ...] = tuple(_member_from_info(i) for i in self._zip.infolist())
        self.central_directory_offset: int = self._zip.start_dir

    def __enter__(self) -> ZipArchive:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    @property
    def claimed_unzipped_size(self) -> int:
        return sum(m.size for m in self.members)

    @functools.cached_property
    def names(self) -> frozenset[str]:
        return frozenset(m.name for m in self.members)

    def read(self, name: str, budget: SizeBudget | None = None) -> bytes:
        """The member's bytes, decompressed in chunks so a lying directory cannot blow memory.

        zipfile stops producing at the size the directory claims, so data longer than its claim would be
        cut silently (or fail as a bad CRC) and never meet the budget. Here the data itself says where it
        ends, bounded by the budget (without one: by the claimed size), and any other size is corruption.
        """
        info = self._infos[name]
        unbounded = copy.copy(info)
        unbounded.file_size = 1 << 62  # ZipExtFile's stop (_left); the budget is the real bound
        limit = budget if budget is not None else SizeBudget(info.file_size)
        out = io.BytesIO()
        try:
            with self._zip.open(unbounded) as stream:
                while chunk := stream.read(_CHUNK):
                    limit.spend(name, len(chunk))
                    out.write(chunk)
        except BudgetExceeded:
            if budget is not None:
                raise
            raise MemberCorrupt(name, f"its data is longer than the {info.file_size:,} bytes the directory claims") \
                from None
        except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, NotImplementedError, RuntimeError,
                ValueError, OSError) as exc:
            # What each decompressor raises on damaged data (bzip2: OSError; inflate64: ValueError).
            raise MemberCorrupt(name, str(exc) or type(exc).__name__) from None
        if out.tell() != info.file_size:
            raise MemberCorrupt(name, f"its data is {out.tell():,} bytes, the directory claims {info.file_size:,}")
        return out.getvalue()

    def read_text(self, name: str, limit: int = 4 << 20) -> str | None:
        """A small text member (metadata, source), or None if it is unreadable or too large."""
        member = next((m for m in self.members if m.name == name), None)
        if member is None or member.size > limit or member.encrypted:
            return None
        try:
            return self.read(name, SizeBudget(limit)).decode("utf-8", errors="replace")
        except (MemberCorrupt, BudgetExceeded):
            return None

    @property
    def paths(self) -> frozenset[str]:
        """Every member's name as unpacked (normalized_name)."""
        return self._derived.paths

    def safe_files(self) -> Iterator[ZipMember]:
        """Regular, unencrypted members, in a known compression, whose names stay inside the target folder
        and can be created there, first of each name; not a file whose name is also a folder's."""
        return iter(self._derived.safe_files)

    def folder_names(self) -> frozenset[str]:
        """Every folder the members' names imply (normalized, without the trailing slash)."""
        return self._derived.folders

    @functools.cached_property
    def _derived(self) -> _Derived:
        # Worked out once per archive: verify's checks, its unpacking and its contract check each ask.
        folders: set[str] = set()
        for member in self.members:
            name = member.path
            if member.is_dir:
                folders.add(name)
            parent = posixpath.dirname(name)
            while parent and parent not in folders:
                folders.add(parent)
                parent = posixpath.dirname(parent)
        seen: set[str] = set()
        safe: list[ZipMember] = []
        for member in self.members:
            if member.is_dir or member.unsafe_reason or member.encrypted or member.too_long_reason:
                continue
            if member.compress_type not in KNOWN_METHODS:
                continue
            name = member.path
            if name in seen or not name or name in folders:
                continue
            seen.add(name)
            safe.append(member)
        return _Derived(frozenset(m.path for m in self.members), frozenset(folders), tuple(safe))

    def overlaps(self) -> list[tuple[ZipMember, str]]:
        """Members whose data, as the directory states it, reaches into another member's or into the
        central directory: the non-recursive zip bomb, or a directory that lies about sizes."""
        found: list[tuple[ZipMember, str]] = []
        ordered = sorted(self.members, key=lambda m: (m.header_offset, m.name))
        followers: list[ZipMember | None] = [*ordered[1:], None] if ordered else []  # no members: no overlap
        for member, following in zip(ordered, followers, strict=True):
            if following is not None and member.data_end > following.header_offset:
                found.append((member, f"its data overlaps {following.name}'s"))
            elif following is None and member.data_end > self.central_directory_offset:
                found.append((member, "its data runs into the central directory"))
        return found


def normalized_name(name: str) -> str:
    return posixpath.normpath(name.replace("\\", "/")).lstrip("/") if name else ""


def unpack_member(root: Path, name: str, data: bytes, mode: int, mtime: float | None = None) -> None:
    """Write one member under `root` with its own permission bits whatever the umask, folders 0755.

    Only names that `ZipMember.unsafe_reason` passed may come here (no '..', not absolute, no links);
    normalized_name() is applied again so nothing can climb out of `root`. Plain os calls: this runs
    once per member, thousands of times per zip.
    """
    relative = normalized_name(name)
    if not relative or relative == ".." or relative.startswith("../"):
        raise ValueError(f"refusing to unpack {name!r} outside {root}")
    target = os.path.join(root, relative)
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        missing = []
        while not os.path.isdir(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another thread may have just made it
                os.mkdir(folder)
            os.chmod(folder, 0o755)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        else:  # Windows before 3.13
            os.chmod(target, mode)
        if mtime is not None:
            os.utime(fd if os.utime in os.supports_fd else target, (mtime, mtime))
    finally:
        os.close(fd)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # absent on Windows, where the names are checked all the same
_BINARY = getattr(os, "O_BINARY", 0)


@functools.lru_cache(maxsize=4096)
def _local_timestamp(date_time: tuple[int, ...]) -> float:
    """A DOS date and time as unzip reads it: in local time."""
    year, month, day, hour, minute, second = date_time
    return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))


def file_mode(member: ZipMember) -> int:
    """The mode a member gets when unpacked: its own bits, or 0644 when the zip has none (as Lambda does)."""
    return member.mode if member.mode is not None else 0o644


def source_date_epoch() -> tuple[int, int, int, int, int, int]:
    """The timestamp of every member of a zip lpkg writes."""
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if raw is None or not raw.strip().isdigit():
        return ZIP_EPOCH
    stamp = time.gmtime(max(int(raw), 315532800))  # zip cannot store dates before 1980
    return (stamp.tm_year, stamp.tm_mon, stamp.tm_mday, stamp.tm_hour, stamp.tm_min, stamp.tm_sec - stamp.tm_sec % 2)
