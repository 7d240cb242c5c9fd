"""lpkg.checks.elf on the real sample files in fixtures/elf (made by scripts/make_elf_fixtures.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lpkg.checks.elf import NativeFacts, detect_kind, parse_glibc_version, read_native_facts

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "elf"


def facts_of(name: str) -> NativeFacts:
    return read_native_facts((FIXTURES / name).read_bytes())


def test_plain_extension_needs_only_libc_with_old_versions() -> None:
    facts = facts_of("plain_x86_64.so")
    assert facts.kind == "elf"
    assert facts.machine == "EM_X86_64"
    assert facts.elf_class == 64
    assert facts.needed == ("libc.so.6",)
    assert facts.rpath == () and facts.runpath == ()
    assert facts.soname is None
    assert facts.glibc_versions == ((2, 2),)
    assert facts.max_glibc == (2, 2)
    assert facts.error is None


def test_cross_compiled_aarch64() -> None:
    facts = facts_of("plain_aarch64.so")
    assert facts.kind == "elf"
    assert facts.machine == "EM_AARCH64"
    assert facts.elf_class == 64
    assert facts.needed == ("libc.so.6",)
    assert facts.max_glibc == (2, 17)  # the oldest glibc with an aarch64 port


def test_glibc_2_34_symbol_version() -> None:
    facts = facts_of("glibc234_x86_64.so")
    assert (2, 34) in facts.glibc_versions
    assert facts.max_glibc == (2, 34)
    assert list(facts.glibc_versions) == sorted(set(facts.glibc_versions))


def test_needed_library_rpath_runpath_and_soname() -> None:
    assert facts_of("needs_libpq_x86_64.so").needed == ("libpq.so.5",)
    runpath = facts_of("needs_libpq_runpath_x86_64.so")
    assert runpath.runpath == ("$ORIGIN/_vendor",)
    assert runpath.rpath == ()
    rpath = facts_of("needs_libpq_rpath_x86_64.so")
    assert rpath.rpath == ("/opt/pq/lib",)
    assert rpath.runpath == ()
    stub = facts_of("libpq_stub.so.5")
    assert stub.soname == "libpq.so.5"
    assert stub.needed == ()
    assert stub.max_glibc is None
    assert facts_of("needs_libpython_x86_64.so").needed == ("libpython3.11.so.1.0",)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("macho_x86_64.so", "macho"), ("macho_universal.so", "macho"), ("pe_amd64.pyd", "pe")],
)
def test_foreign_formats(name: str, kind: str) -> None:
    facts = facts_of(name)
    assert facts.kind == kind
    assert facts.machine is None
    assert facts.needed == ()
    assert facts.error is None


@pytest.mark.parametrize(
    "magic",
    [0xFEEDFACE, 0xCEFAEDFE, 0xFEEDFACF, 0xCFFAEDFE, 0xCAFEBABE, 0xBEBAFECA, 0xCAFEBABF, 0xBFBAFECA],
)
def test_every_macho_magic(magic: int) -> None:
    assert detect_kind(struct.pack(">I", magic) + bytes(28)) == "macho"


@pytest.mark.parametrize(
    "data", [b"", b"\x7fEL", b"hello world", b"/* GNU ld script */\nGROUP(x)", bytes(64)]
)
def test_unknown(data: bytes) -> None:
    facts = read_native_facts(data)
    assert facts.kind == "unknown"
    assert facts.error is None


@pytest.mark.parametrize("length", [4, 16, 63, 64, 200, 1000, 3000, -1])
def test_truncated_elf_does_not_raise(length: int) -> None:
    data = (FIXTURES / "plain_x86_64.so").read_bytes()[:length]
    facts = read_native_facts(data)
    assert facts.kind == "elf"
    assert facts.error  # says why


def test_damaged_elf_never_raises() -> None:
    # Overwrite bytes all over the headers and tables: whatever pyelftools makes of it, no exception escapes.
    original = (FIXTURES / "glibc234_x86_64.so").read_bytes()
    for offset in range(4, len(original), 13):
        for value in (0x00, 0xFF):
            damaged = bytearray(original)
            damaged[offset] = value
            facts = read_native_facts(bytes(damaged))
            assert facts.kind == "elf"


def test_partial_facts_survive_a_late_error() -> None:
    # The ELF header is intact; the section table is cut off: machine and class are still known.
    data = (FIXTURES / "plain_x86_64.so").read_bytes()[:1000]
    facts = read_native_facts(data)
    assert facts.machine == "EM_X86_64"
    assert facts.elf_class == 64


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("GLIBC_2.34", (2, 34)),
        ("GLIBC_2.2.5", (2, 2)),
        ("GLIBC_2.17", (2, 17)),
        ("GLIBC_PRIVATE", None),
        ("GLIBCXX_3.4.29", None),
        ("CXXABI_1.3", None),
    ],
)
def test_parse_glibc_version(name: str, version: tuple[int, int] | None) -> None:
    assert parse_glibc_version(name) == version
