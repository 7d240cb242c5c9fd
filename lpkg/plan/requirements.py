"""A folder's declared requirements: its requirements.txt, else its pyproject.toml's [project].dependencies."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from lpkg.config import read_toml
from lpkg.errors import UsageError
from lpkg.names import canonical_name

REQUIREMENTS_TXT = "requirements.txt"


def folder_requirements(folder: Path) -> tuple[list[Path], list[str]]:
    """A folder's requirements.txt, else the [project].dependencies of its pyproject.toml."""
    txt = folder / REQUIREMENTS_TXT
    if txt.is_file():
        return [txt], []
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        return [], []
    project = read_toml(pyproject).get("project", {})
    deps = project.get("dependencies", []) if isinstance(project, dict) else []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise UsageError(f"{pyproject}: [project].dependencies must be a list of requirement strings")
    return [], list(deps)


_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def declared_names(files: Iterable[Path], dependencies: Iterable[str]) -> set[str]:
    names = {canonical_name(m.group(1)) for d in dependencies if (m := _NAME.match(d))}
    seen: set[Path] = set()
    pending = list(files)
    while pending:
        path = pending.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for raw in text.replace("\\\n", " ").splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            include = re.match(r"^(?:-r|--requirement)[\s=]+(\S+)", line)
            if include:
                pending.append(path.parent / include.group(1))
            elif not line.startswith("-") and (m := _NAME.match(line)):
                names.add(canonical_name(m.group(1)))
    return names
