"""Whether this machine can run another CPU's Linux binaries: QEMU user emulation registered with
binfmt_misc. Pure reading of /proc; nothing is run.

Containers of another architecture need the entry's F flag ("fix binary"): the kernel then opens the
emulator when it is registered, so it need not exist inside the container's file system.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lpkg.containers.engine import DockerSession

import platform
from pathlib import Path

from lpkg.runtimes import ARCH_ALIASES, ARCHITECTURES, Arch

BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")
_NOT_ENTRIES = {"register", "status"}


def host_arch() -> Arch | None:
    """This machine's CPU as Lambda names it; None for one Lambda does not have."""
    return ARCH_ALIASES.get(platform.machine().lower())


def elf_header(arch: Arch) -> bytes:
    """The first 20 bytes of a 64-bit little-endian ELF executable for `arch`: what binfmt magic matches."""
    e_machine = ARCHITECTURES[arch].e_machine
    return b"\x7fELF\x02\x01\x01" + bytes(9) + (2).to_bytes(2, "little") + e_machine.to_bytes(2, "little")


def binfmt_problem(arch: Arch, binfmt: Path = BINFMT_MISC) -> str | None:
    """None when the kernel here hands `arch`'s executables to an emulator that containers can use,
    else why not (in words for the user)."""
    machine = ARCHITECTURES[arch].machine
    status = binfmt / "status"
    if not status.is_file():
        return (f"binfmt_misc is not mounted, so this kernel cannot run {machine} programs "
                "(mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc, then register qemu-user-static)")
    if _read(status).strip() != "enabled":
        return "binfmt_misc is disabled on this machine"
    header = elf_header(arch)
    without_fix = None
    for entry in sorted(binfmt.iterdir()):
        if entry.name in _NOT_ENTRIES:
            continue
        fields = _parse_entry(_read(entry))
        if fields.get("enabled") != "enabled" or not _matches(fields, header):
            continue
        if "F" in fields.get("flags", ""):
            return None
        without_fix = entry.name
    if without_fix is not None:
        return (f"binfmt_misc entry {without_fix} runs {machine} programs but without the F flag, so containers "
                f"cannot find its emulator (register it again with flags F, e.g. from qemu-user-static)")
    return (f"no {machine} emulator is registered with binfmt_misc "
            f"(install qemu-user-static and binfmt-support, or register qemu-{machine} with the F flag)")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""


def _parse_entry(text: str) -> dict[str, str]:
    """binfmt_misc's entry file: a first line 'enabled'/'disabled', then 'key value' lines."""
    lines = text.splitlines()
    fields = {"enabled": lines[0].strip()} if lines else {}
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        fields[key.rstrip(":")] = value.strip()
    return fields


def _matches(fields: dict[str, str], header: bytes) -> bool:
    try:
        magic = bytes.fromhex(fields["magic"])
        offset = int(fields.get("offset", "0"))
        mask = bytes.fromhex(fields["mask"]) if "mask" in fields else b"\xff" * len(magic)
    except (KeyError, ValueError):
        return False  # an extension entry ('E'), or a line this parser does not know
    window = header[offset:offset + len(magic)]
    if len(window) != len(magic):
        return False
    return all((byte & m) == want for byte, m, want in zip(window, mask, magic, strict=False))


def emulation_problem(session: DockerSession, arch: Arch) -> str | None:
    """None when the daemon can run `arch` containers (its own CPU, or QEMU through binfmt_misc), else why not.
    Only a daemon on this kernel can be looked into; another (remote, a desktop VM) is trusted to emulate,
    and a failure to start says so."""
    if session.runs_natively(arch) or not session.shares_kernel:
        return None
    problem = binfmt_problem(arch)
    return None if problem is None else f"the Docker daemon here runs {session.architecture()}, and {problem}"

