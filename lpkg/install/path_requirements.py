"""Requirement lines that are local paths (`../shared`, `-e ../common`, `./libs/ecom[aws]`, `file:../x`): each
names an installable first-party package, which pip builds into a wheel in the build image and installs with its
own dependencies, like any other requirement.

Where a relative path points is the project's choice: pip resolves it against the folder pip runs in, not the
requirements file's. lpkg resolves it against the requirements file's folder (what `sam build` does, which runs
pip there), or against `--requirements-base DIR` / `requirements-base` when given, and says which it used.
The project folder is copied into the staged inputs (without VCS, caches and build output), and the staged line
points at the copy: an editable install (`-e`) means nothing in a zip, so the package is installed normally.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lpkg.errors import UsageError
from lpkg.report import Finding, Severity

# Never part of a project's package build: VCS, caches, virtualenvs, build output.
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "node_modules", ".tox", ".nox",
                          ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist", "cdk.out"})
_EDITABLE = re.compile(r"^(?:-e|--editable)(?:\s+|=)(?P<rest>.+)$")
_EXTRAS = re.compile(r"^(?P<path>.*?)(?P<extras>\[[A-Za-z0-9_.,\s-]*\])?$")


@dataclass(frozen=True)
class PathRequirement:
    requirements: Path  # the file the line is in
    line: int  # 1-based
    written: str  # the path as written
    folder: Path  # the project folder it resolved to (absolute)
    extras: str  # "[aws]" or ""
    editable: bool
    base: Path  # the folder the relative path was resolved against

    def describe(self) -> str:
        editable = " (-e: installed as a wheel; an editable install means nothing in a zip)" if self.editable else ""
        return (f"{self.requirements.name}:{self.line}: {self.written} -> {self.folder} (relative to {self.base})"
                f"{editable}")


def _path_spec(line: str) -> tuple[str, bool] | None:
    """The path of a requirement line that names a local folder, and whether it was `-e`; else None."""
    text = line.split(" #", 1)[0].strip()
    editable = False
    match = _EDITABLE.match(text)
    if match:
        text, editable = match.group("rest").strip(), True
    if text.startswith("file:"):
        text = text[len("file:"):]
        if text.startswith("//"):
            text = text[2:]
    elif not text.startswith((".", "/", "~")) and not (editable and "/" in text):
        return None
    return text, editable


def path_requirements(requirements: Path, base: Path | None = None) -> list[PathRequirement]:
    """The local-path lines of one requirements file. A path that is not a folder is a UsageError naming the
    file, the line and the base it was resolved against."""
    try:
        text = requirements.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"{requirements}: cannot read ({exc.strerror})") from None
    if "/" not in text:
        return []  # no line can name a folder: the common case, on every build's up-to-date check
    lines = text.splitlines()
    found: list[PathRequirement] = []
    root = (base or requirements.parent).absolute()
    for number, line in enumerate(lines, start=1):
        spec = _path_spec(line)
        if spec is None:
            continue
        written, editable = spec
        match = _EXTRAS.match(written)
        path_text, extras = (match.group("path"), match.group("extras") or "") if match else (written, "")
        folder = Path(os.path.expanduser(path_text))
        folder = (folder if folder.is_absolute() else root / folder).resolve()
        if not folder.is_dir():
            raise UsageError(
                f"{requirements}:{number}: {written} is not a folder (resolved against {root})",
                hint="pip resolves relative paths against the folder it runs in; lpkg against the requirements "
                "file's folder unless --requirements-base DIR says otherwise")
        if not any((folder / marker).is_file() for marker in ("pyproject.toml", "setup.py", "setup.cfg")):
            raise UsageError(f"{requirements}:{number}: {folder} has no pyproject.toml, setup.py or setup.cfg",
                             hint="a path requirement must name an installable package")
        found.append(PathRequirement(requirements, number, written, folder, extras, editable, root))
    return found


def project_files(folder: Path) -> list[Path]:
    """The files of a path requirement's project that its build can see, sorted."""
    files: list[Path] = []
    for current, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info"))
        files += [Path(current) / n for n in sorted(names) if not n.endswith((".pyc", ".pyo"))]
    return files


def project_digest(folder: Path) -> str:
    """What decides the package built from the folder: its files' paths and bytes."""
    digest = hashlib.sha256()
    for path in project_files(folder):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()


# Where a build sees path requirements' projects: the build container's copy of them. The local backend's
# installs are rewritten to name it too (see portable_direct_urls), so both backends write the same zip.
LOCAL_PROJECTS = "/tmp/lpkg-local"


def portable_direct_urls(target: Path, staged: Path) -> None:
    """pip records where a path requirement was installed from (`*.dist-info/direct_url.json`, PEP 610): for a
    build on this machine that is a random scratch folder, which would make every zip differ and name a folder
    of the machine. Point it at LOCAL_PROJECTS instead, as a container build leaves it, and mend RECORD."""
    import base64

    prefix = staged.as_uri()
    for direct_url in target.glob("*.dist-info/direct_url.json"):
        text = direct_url.read_text(encoding="utf-8")
        if prefix not in text:
            continue
        data = text.replace(prefix, "file://" + LOCAL_PROJECTS).encode("utf-8")
        direct_url.write_bytes(data)
        record = direct_url.parent / "RECORD"
        if record.is_file():
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
            member = f"{direct_url.parent.name}/direct_url.json,"
            # pip writes RECORD with csv's \r\n line ends: keep them, so the bytes match a container build's.
            lines = [f"{member}sha256={digest},{len(data)}" + line[len(line.rstrip("\r\n")):]
                     if line.startswith(member) else line
                     for line in record.read_bytes().decode("utf-8").splitlines(keepends=True)]
            record.write_bytes("".join(lines).encode("utf-8"))


def stage_path_requirements(staged_file: Path, requirements: Path, folder: Path, mount: str,
                            base: Path | None = None) -> list[PathRequirement]:
    """Copy each path requirement's project into folder/local/<n> and point the staged copy of the
    requirements file (`staged_file`) at `mount`/<n>, where pip will see folder/local/<n>."""
    import shutil

    found = path_requirements(requirements, base)
    if not found:
        return found
    lines = staged_file.read_text(encoding="utf-8", errors="replace").splitlines()
    for requirement in found:
        index = len(list((folder / "local").glob("*"))) if (folder / "local").is_dir() else 0
        target = folder / "local" / str(index)
        for path in project_files(requirement.folder):
            dest = target / path.relative_to(requirement.folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        lines[requirement.line - 1] = f"{mount}/{index}{requirement.extras}"
    staged_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return found


def path_requirement_findings(requirement_files: tuple[Path, ...], base: Path | None) -> list[Finding]:
    """What the report says of each path requirement: where it pointed, against which base."""
    findings = []
    for requirements in requirement_files:
        if not requirements.is_file():
            continue
        for found in path_requirements(requirements, base):
            findings.append(Finding(
                "REQUIREMENT_PATH", Severity.INFO,
                f"{found.describe()}: built as a wheel and installed with its own dependencies",
                str(requirements), found.line))
    return findings
