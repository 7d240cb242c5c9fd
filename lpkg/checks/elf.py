"""What a native file says about where it can load: format, machine, needed libraries, glibc versions.

Pure: everything is read from the bytes given, nothing is loaded or executed.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from elftools.elf.dynamic import DynamicSection, DynamicSegment, DynamicTag
    from elftools.elf.elffile import ELFFile

Kind = Literal["elf", "macho", "pe", "unknown"]

_ELF_MAGIC = b"\x7fELF"
# Mach-O thin (32/64-bit, either byte order) and fat/universal (32/64-bit offsets) magics.
# 0xCAFEBABE is also the Java class magic; in a file named like a shared library it is Mach-O.
_MACHO_MAGICS = frozenset(
    bytes.fromhex(h)
    for h in (
        "feedface", "cefaedfe", "feedfacf", "cffaedfe",  # thin
        "cafebabe", "bebafeca", "cafebabf", "bfbafeca",  # fat
    )
)
_PE_MAGIC = b"MZ"
# "GLIBC_2.34", "GLIBC_2.2.5"; not "GLIBC_PRIVATE", not "GLIBCXX_3.4".
_GLIBC_VERSION = re.compile(r"^GLIBC_(\d+)\.(\d+)(?:\.\d+)*$")


@dataclass(frozen=True)
class NativeFacts:
    kind: Kind
    machine: str | None = None  # pyelftools e_machine name, "EM_X86_64"
    elf_class: int | None = None  # 32 or 64
    needed: tuple[str, ...] = ()  # DT_NEEDED
    rpath: tuple[str, ...] = ()  # DT_RPATH entries, split on ":"
    runpath: tuple[str, ...] = ()  # DT_RUNPATH entries
    soname: str | None = None
    glibc_versions: tuple[tuple[int, int], ...] = ()  # GLIBC_x.y version needs, sorted, unique
    error: str | None = None  # why an ELF could not be read completely; the other fields are what was read

    @property
    def max_glibc(self) -> tuple[int, int] | None:
        return self.glibc_versions[-1] if self.glibc_versions else None


def detect_kind(data: bytes) -> Kind:
    head = data[:4]
    if head == _ELF_MAGIC:
        return "elf"
    if head in _MACHO_MAGICS:
        return "macho"
    if head[:2] == _PE_MAGIC:
        return "pe"
    return "unknown"


def parse_glibc_version(name: str) -> tuple[int, int] | None:
    match = _GLIBC_VERSION.match(name)
    return (int(match[1]), int(match[2])) if match else None


def read_native_facts(data: bytes) -> NativeFacts:
    """The facts of one file. Never raises: a damaged ELF gives the facts read so far and `error`."""
    kind = detect_kind(data)
    if kind != "elf":
        return NativeFacts(kind=kind)
    reader = _ElfReader()
    try:
        reader.read(data)
    # pyelftools reports damage with ELFError, but truncated or forged tables also surface as
    # struct/construct errors, IndexError, ValueError, UnicodeDecodeError...: any of them means "unreadable".
    except Exception as exc:  # noqa: BLE001
        reader.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return reader.facts()


class _ElfReader:
    """Collects facts step by step, so a failure late in the file keeps what came before."""

    def __init__(self) -> None:
        self.machine: str | None = None
        self.elf_class: int | None = None
        self.needed: list[str] = []
        self.rpath: list[str] = []
        self.runpath: list[str] = []
        self.soname: str | None = None
        self.glibc: set[tuple[int, int]] = set()
        self.error: str | None = None

    def read(self, data: bytes) -> None:
        # Imported at the first ELF read: pyelftools is slow to import, and facts kept by content need none.
        from elftools.elf.elffile import ELFFile
        from elftools.elf.gnuversions import GNUVerNeedSection

        elf = ELFFile(io.BytesIO(data))
        # Unknown e_machine values come back as plain ints.
        self.machine = str(elf["e_machine"])
        self.elf_class = int(elf.elfclass)
        # Section headers are parsed once (each parse is costly in pyelftools; a wheel has dozens of .so).
        sections = list(elf.iter_sections())
        self._read_dynamic(elf, sections)
        for section in sections:
            if isinstance(section, GNUVerNeedSection):
                for _verneed, auxiliaries in section.iter_versions():
                    for aux in auxiliaries:
                        version = parse_glibc_version(aux.name)
                        if version is not None:
                            self.glibc.add(version)

    def _read_dynamic(self, elf: ELFFile, sections: Sequence[object]) -> None:
        # The dynamic section and PT_DYNAMIC hold the same table; when section headers are stripped,
        # the loader's view (the segment) is the one left.
        from elftools.elf.dynamic import DynamicSection, DynamicSegment

        tables: list[DynamicSegment | DynamicSection] = [s for s in sections if isinstance(s, DynamicSection)]
        if not tables:
            tables = [s for s in elf.iter_segments() if isinstance(s, DynamicSegment)]
        for table in tables[:1]:
            for tag in table.iter_tags():
                self._take(tag)

    def _take(self, tag: DynamicTag) -> None:
        kind = tag.entry.d_tag
        if kind not in ("DT_NEEDED", "DT_RPATH", "DT_RUNPATH", "DT_SONAME"):
            return
        # pyelftools stores the string of these tags as an attribute named after the tag.
        value = str(getattr(tag, kind[3:].lower()))
        if kind == "DT_NEEDED":
            self.needed.append(value)
        elif kind == "DT_SONAME":
            self.soname = value
        else:
            target = self.rpath if kind == "DT_RPATH" else self.runpath
            target.extend(entry for entry in value.split(":") if entry)

    def facts(self) -> NativeFacts:
        return NativeFacts(
            kind="elf",
            machine=self.machine,
            elf_class=self.elf_class,
            needed=tuple(self.needed),
            rpath=tuple(self.rpath),
            runpath=tuple(self.runpath),
            soname=self.soname,
            glibc_versions=tuple(sorted(self.glibc)),
            error=self.error,
        )
