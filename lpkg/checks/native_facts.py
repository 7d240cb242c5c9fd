"""The facts of native files, kept in verify's member store (lpkg.archive.members) by the member's key, so a
second verify of the same library neither reads its bytes nor imports the ELF reader again.

The member key covers the member's compressed bytes, so the file's bytes are the ones whose facts were read.
What is kept is only what the file says (lpkg.checks.elf.NativeFacts, and whether it is a linker script),
never a finding: the findings are worked out again from the facts for each runtime, architecture and zip.
A change of how facts are read changes FACTS_VERSION (and any lpkg release changes the key too), so kept
facts of an older reader are never used. Best effort: a store that cannot be read or written costs a read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from lpkg import __version__
from lpkg.archive.members import record_added, store_limit, stored_path
from lpkg.checks import NativeFile
from lpkg.checks.elf import NativeFacts, read_native_facts
from lpkg.files import write_atomically

FACTS_VERSION = "1"
# GNU ld scripts named libfoo.so: only the link editor reads them, never the loader or Python.
LD_SCRIPT_STARTS = (b"/*", b"INPUT", b"GROUP", b"OUTPUT_FORMAT")


@dataclasses.dataclass(frozen=True)
class FileFacts:
    native: NativeFacts
    ld_script: bool  # no ELF header, but a linker script: nothing the loader reads


def facts_of_all(files: Sequence[NativeFile], store: Path | None) -> list[FileFacts]:
    """Each file's facts, in order; what this adds to the store is counted against its bound."""
    found = [facts_of(native, store) for native in files]
    if store is not None:
        record_added(store, sum(added for _, added in found), store_limit())
    return [facts for facts, _ in found]


def facts_of(native: NativeFile, store: Path | None) -> tuple[FileFacts, int]:
    """The file's facts, from the store when it keeps them; also the bytes this added to the store."""
    path = stored_path(store, facts_key(native.key)) if store is not None and native.key is not None else None
    if path is not None:
        kept = _read(path)
        if kept is not None:
            return kept, 0
    read = read_native_facts(native.data)
    facts = FileFacts(read, read.kind == "unknown" and native.data.lstrip()[:16].startswith(LD_SCRIPT_STARTS))
    return facts, _write(path, facts) if path is not None else 0


def facts_key(member_key: str) -> str:
    return hashlib.sha256(f"native-facts\0{FACTS_VERSION}\0{__version__}\0{member_key}".encode()).hexdigest()


def _read(path: str) -> FileFacts | None:
    try:
        with open(path, encoding="utf-8") as fh:
            document = json.load(fh)
        fields = document["native"]
        native = NativeFacts(
            kind=fields["kind"], machine=fields["machine"], elf_class=fields["elf_class"],
            needed=tuple(fields["needed"]), rpath=tuple(fields["rpath"]), runpath=tuple(fields["runpath"]),
            soname=fields["soname"], glibc_versions=tuple((int(a), int(b)) for a, b in fields["glibc_versions"]),
            error=fields["error"],
        )
        return FileFacts(native, bool(document["ld_script"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not kept, or not in this form: read the file


def _write(path: str, facts: FileFacts) -> int:
    data = json.dumps(dataclasses.asdict(facts)).encode()
    try:
        write_atomically(Path(path), data)
    except OSError:
        return 0
    return len(data)
