#!/usr/bin/env python3
"""Regenerate the native sample files in fixtures/elf/ (committed, so tests need no compiler).

Needs gcc (x86_64) and aarch64-linux-gnu-gcc (Debian: `apt-get install gcc-aarch64-linux-gnu`).
Built on Debian 12 (gcc 12, glibc 2.36); any glibc >= 2.34 gives the same version needs.
The Mach-O and PE samples are written by hand below: valid headers, no code.

Usage: python scripts/make_elf_fixtures.py
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "elf"

# Small, stripped, no build id: a few KB each and nothing that names this machine.
# max-page-size keeps aarch64 output from being padded to 64 KiB.
FLAGS = [
    "-shared", "-fPIC", "-Os", "-s",
    "-Wl,-z,noseparate-code", "-Wl,-z,norelro", "-Wl,--build-id=none",
    "-Wl,-z,max-page-size=4096", "-Wl,--hash-style=gnu",
]

SOURCES = {
    # Extension-like: only needs libc, with old symbol versions (GLIBC_2.2.5 on x86_64, 2.17 on aarch64).
    "plain.c": """
#include <stdio.h>
int lpkg_plain(char *buf, unsigned long n, int x) { return snprintf(buf, n, "%d", x); }
""",
    # Stands in for libpq: exists only so other samples can have DT_NEEDED libpq.so.5.
    "pq.c": "int PQlibVersion(void) { return 160000; }\n",
    # Stands in for libpython3.11.so.1.0 (what embedding-style extensions link against).
    "python.c": "int Py_IsInitialized(void) { return 1; }\n",
    "needs_pq.c": """
int PQlibVersion(void);
int lpkg_pq(void) { return PQlibVersion(); }
""",
    "needs_python.c": """
int Py_IsInitialized(void);
int lpkg_py(void) { return Py_IsInitialized(); }
""",
    # pthread_create's default version moved into libc as GLIBC_2.34 (glibc 2.34 merged libpthread).
    "glibc234.c": """
#include <pthread.h>
static void *run(void *arg) { return arg; }
int lpkg_thread(void) { pthread_t t; return pthread_create(&t, 0, run, 0) || pthread_join(t, 0); }
""",
}


def run(*args: str, cwd: Path) -> None:
    print("+", " ".join(args), file=sys.stderr)
    subprocess.run(args, cwd=cwd, check=True)


def build_elf(work: Path) -> None:
    cc, cross = "gcc", "aarch64-linux-gnu-gcc"
    for tool in (cc, cross):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (Debian: apt-get install gcc gcc-aarch64-linux-gnu)")
    for name, text in SOURCES.items():
        (work / name).write_text(text.lstrip())

    def so(compiler: str, out: str, *extra: str) -> None:
        run(compiler, *FLAGS, "-o", out, *extra, cwd=work)
        shutil.copyfile(work / out, OUT / out)

    so(cc, "plain_x86_64.so", "plain.c")
    so(cross, "plain_aarch64.so", "plain.c")
    so(cc, "glibc234_x86_64.so", "glibc234.c")
    so(cc, "libpq_stub.so.5", "-Wl,-soname,libpq.so.5", "pq.c")
    # Link stubs under their SONAME-style file names: DT_NEEDED records the SONAME, not this path.
    run(cc, *FLAGS, "-Wl,-soname,libpython3.11.so.1.0", "-o", "libpython3.11.so", "python.c", cwd=work)
    shutil.copyfile(work / "libpq_stub.so.5", work / "libpq.so")
    so(cc, "needs_libpq_x86_64.so", "needs_pq.c", "-L.", "-lpq")
    # RUNPATH (new dtags, the default) relative to the file; RPATH (old dtags) absolute into /opt (a layer).
    so(cc, "needs_libpq_runpath_x86_64.so", "needs_pq.c", "-L.", "-lpq", "-Wl,-rpath,$ORIGIN/_vendor")
    so(
        cc, "needs_libpq_rpath_x86_64.so", "needs_pq.c", "-L.", "-lpq",
        "-Wl,--disable-new-dtags", "-Wl,-rpath,/opt/pq/lib",
    )
    so(cc, "needs_libpython_x86_64.so", "needs_python.c", "-L.", "-lpython3.11")


# Mach-O constants (<mach-o/loader.h>, <mach-o/fat.h>, <mach/machine.h>).
MH_MAGIC_64 = 0xFEEDFACF
FAT_MAGIC = 0xCAFEBABE
CPU_TYPE_X86_64 = 0x01000007
CPU_TYPE_ARM64 = 0x0100000C
CPU_SUBTYPE_X86_64_ALL = 3
CPU_SUBTYPE_ARM64_ALL = 0
MH_BUNDLE = 8  # CPython extension modules on macOS are bundles
MH_NOUNDEFS, MH_DYLDLINK, MH_TWOLEVEL = 0x1, 0x4, 0x80
IMAGE_FILE_MACHINE_AMD64 = 0x8664


def macho_thin(cputype: int, subtype: int) -> bytes:
    """A mach_header_64 (little-endian, as on both Mac architectures) with no load commands."""
    flags = MH_NOUNDEFS | MH_DYLDLINK | MH_TWOLEVEL
    return struct.pack("<IiiIIIII", MH_MAGIC_64, cputype, subtype, MH_BUNDLE, 0, 0, flags, 0)


def macho_universal() -> bytes:
    """A fat header (always big-endian) with x86_64 and arm64 slices, each page-aligned as lipo does."""
    slices = [
        (CPU_TYPE_X86_64, CPU_SUBTYPE_X86_64_ALL, macho_thin(CPU_TYPE_X86_64, CPU_SUBTYPE_X86_64_ALL)),
        (CPU_TYPE_ARM64, CPU_SUBTYPE_ARM64_ALL, macho_thin(CPU_TYPE_ARM64, CPU_SUBTYPE_ARM64_ALL)),
    ]
    align = 12
    out = bytearray(struct.pack(">II", FAT_MAGIC, len(slices)))
    offsets = [(i + 1) << align for i in range(len(slices))]
    for (cputype, subtype, body), offset in zip(slices, offsets, strict=True):
        out += struct.pack(">iiIII", cputype, subtype, offset, len(body), align)
    for (_, _, body), offset in zip(slices, offsets, strict=True):
        out += b"\0" * (offset - len(out)) + body
    return bytes(out)


def pe_dll_amd64() -> bytes:
    """Headers of a PE32+ DLL for x86-64 (what a Windows .pyd is): DOS stub, COFF, optional header.

    No sections: enough for anything that reads the headers, not loadable by Windows.
    """
    e_lfanew = 0x40
    dos = b"MZ" + b"\0" * (0x3C - 2) + struct.pack("<I", e_lfanew)
    characteristics = 0x0002 | 0x0020 | 0x2000  # EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE | DLL
    optional = struct.pack(
        "<HBBIIIIIQIIHHHHHHIIIIHHQQQQII",
        0x20B,  # PE32+
        14, 0,  # linker version
        0, 0, 0,  # sizes of code, initialized and uninitialized data
        0, 0,  # entry point, base of code
        0x180000000,  # image base (the default for 64-bit DLLs)
        0x1000, 0x200,  # section and file alignment
        6, 0, 0, 0, 6, 0,  # OS, image and subsystem versions
        0,  # Win32VersionValue
        0x1000, 0x200,  # size of image, size of headers
        0,  # checksum
        3,  # IMAGE_SUBSYSTEM_WINDOWS_CUI
        0x0160,  # HIGH_ENTROPY_VA | DYNAMIC_BASE | NX_COMPAT
        0x100000, 0x1000, 0x100000, 0x1000,  # stack and heap reserve/commit
        0,  # loader flags
        16,  # number of data directories
    ) + b"\0" * (16 * 8)
    coff = struct.pack("<HHIIIHH", IMAGE_FILE_MACHINE_AMD64, 0, 0, 0, 0, len(optional), characteristics)
    headers = dos + b"PE\0\0" + coff + optional
    return headers + b"\0" * (0x200 - len(headers))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        build_elf(Path(tmp))
    (OUT / "macho_x86_64.so").write_bytes(macho_thin(CPU_TYPE_X86_64, CPU_SUBTYPE_X86_64_ALL))
    (OUT / "macho_universal.so").write_bytes(macho_universal())
    (OUT / "pe_amd64.pyd").write_bytes(pe_dll_amd64())
    for path in sorted(OUT.iterdir()):
        print(f"{path.name}: {path.stat().st_size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
