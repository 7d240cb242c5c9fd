"""Is the published artifact already what this build would produce? Then nothing else runs.

Each build that publishes a zip records, in the cache folder, a digest of every input that decides the
zip's bytes and its verdict, and the zip's file identity (size, modification time, inode). The next
build computes the digest again after discovery (which only reads files): when it matches, and the zip
on disk is the one that was recorded, the build reports the recorded result and starts no container.

The digest covers: lpkg itself (version, and its source files' sizes and times, so an edited lpkg
invalidates), the host interpreter and zlib (they write the zip), the resolved settings (runtime, arch,
handler, images by name and by ID, layers, source roots, excludes, output path) and build options,
SOURCE_DATE_EPOCH, the zip path and content of every file discovery put in the plan, and the requirement
inputs (files, the .txt files beside them, pyproject dependencies, the lock).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lpkg
from lpkg.install.cache import cache_home, requirements_fingerprint
from lpkg.report import ArtifactReport, BuildReport, Finding, Severity

RECORD_VERSION = "1"


@dataclass(frozen=True)
class BuildRecord:
    """What a successful build left behind: the inputs digest and the report of that build."""

    inputs: str
    artifact: str
    size: int
    mtime_ns: int
    inode: int
    report: Mapping[str, Any]


def records_folder() -> Path:
    return cache_home() / "builds"


def _record_path(artifact: Path) -> Path:
    name = hashlib.sha256(str(artifact.absolute()).encode()).hexdigest()[:32]
    return records_folder() / f"{name}.json"


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lpkg_fingerprint() -> list[Any]:
    root = Path(lpkg.__file__).parent
    entries: list[Any] = [lpkg.__version__]
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(current, name))
                entries.append([os.path.relpath(os.path.join(current, name), root), st.st_size, st.st_mtime_ns])
    return entries


def inputs_digest(
    *,
    settings: Mapping[str, Any],
    options: Mapping[str, Any],
    files: Sequence[tuple[str, Path]],
    requirement_files: Sequence[Path],
    dependencies: Sequence[str],
    images: Mapping[str, str | None],
    requirements_base: Path | None = None,
) -> str:
    """One digest of everything that decides the artifact. Layers count by content."""
    facts = {
        "record": RECORD_VERSION,
        "lpkg": _lpkg_fingerprint(),
        "python": [sys.version, zlib.ZLIB_RUNTIME_VERSION],
        "source_date_epoch": os.environ.get("SOURCE_DATE_EPOCH"),
        "settings": dict(settings),
        "options": dict(options),
        "files": [[member, _file_digest(path)] for member, path in files],
        "requirements": [requirements_fingerprint(p, requirements_base) for p in requirement_files],
        "dependencies": list(dependencies),
        "images": dict(images),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def lookup(artifact: Path, inputs: str) -> BuildRecord | None:
    """The record of `artifact` if it was built from exactly `inputs` and has not been touched since."""
    try:
        data = json.loads(_record_path(artifact).read_text(encoding="utf-8"))
        st = artifact.stat()
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    record = BuildRecord(
        inputs=str(data.get("inputs")), artifact=str(data.get("artifact")), size=int(data.get("size", -1)),
        mtime_ns=int(data.get("mtime_ns", -1)), inode=int(data.get("inode", -1)), report=data.get("report") or {},
    )
    same_file = (st.st_size, st.st_mtime_ns, st.st_ino) == (record.size, record.mtime_ns, record.inode)
    if record.inputs != inputs or record.artifact != str(artifact.absolute()) or not same_file:
        return None
    return record


def store(artifact: Path, inputs: str, report: BuildReport) -> None:
    """Record a published artifact. Best effort: a cache that cannot be written only costs speed."""
    try:
        st = artifact.stat()
        document = {
            "inputs": inputs, "artifact": str(artifact.absolute()), "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "inode": st.st_ino, "report": _report_json(report),
        }
        folder = records_folder()
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".record.", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f)
        os.replace(temp, _record_path(artifact))
    except OSError:
        return


def forget(artifact: Path) -> None:
    try:
        _record_path(artifact).unlink()
    except OSError:
        return


def _report_json(report: BuildReport) -> dict[str, Any]:
    verify = report.verify
    return {
        "findings": [f.to_json() for f in report.findings],
        "facts": [list(item) for item in report.facts],
        "verify": None if verify is None else {
            "artifact": verify.artifact, "handler": verify.handler, "probe": verify.probe,
            "findings": [f.to_json() for f in verify.findings], "facts": [list(item) for item in verify.facts],
        },
    }


def _finding(data: Mapping[str, Any]) -> Finding:
    return Finding(
        code=str(data["code"]), severity=Severity[str(data["severity"]).upper()], message=str(data["message"]),
        member=data.get("member"), line=data.get("line"), chain=tuple(data.get("chain") or ()),
        distribution=data.get("distribution"),
    )


def recorded_report(
    record: BuildRecord, *, function: str, function_dir: str, handler: str, runtime: str, arch: str,
    timings: tuple[tuple[str, float], ...], sources: tuple[tuple[str, str], ...] = (),
) -> BuildReport:
    """The report of the build that produced the artifact, saying it is up to date."""
    data = record.report
    verify_data = data.get("verify")
    verify = None
    if isinstance(verify_data, Mapping):
        verify = ArtifactReport(
            artifact=str(verify_data.get("artifact")), handler=verify_data.get("handler"), runtime=runtime,
            arch=arch, findings=tuple(_finding(f) for f in verify_data.get("findings", ())),
            probe=f"{verify_data.get('probe')} (recorded: the zip and its inputs are unchanged)",
            facts=tuple((str(k), str(v)) for k, v in verify_data.get("facts", ())),
        )
    facts = tuple((str(k), str(v)) for k, v in data.get("facts", ()))
    return BuildReport(
        function=function, function_dir=function_dir, artifact=record.artifact, intended=record.artifact,
        handler=handler, runtime=runtime, arch=arch,
        findings=tuple(_finding(f) for f in data.get("findings", ())), verify=verify, timings=timings, sources=sources,
        facts=(("up_to_date", "yes: nothing that decides the zip changed, so nothing was rebuilt"), *facts),
    )
