"""The probe: code that runs with the target interpreter (see entry.py), never in lpkg's process.

This module is the host's view of it: which files make up the probe payload. The payload is
lpkg's probe scripts plus the pure-Python libraries the graph walk needs (modulegraph2,
objectgraph, typing_extensions), located without importing them.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

PROBE_DIR = Path(__file__).resolve().parent
SCRIPTS = ("entry.py", "importer.py", "walk.py", "sources.py")
LIBRARIES = ("modulegraph2", "objectgraph", "typing_extensions")


def _library_files(name: str) -> list[tuple[str, Path]]:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"lpkg's probe needs {name}, which is not installed")  # broken install
    origin = Path(spec.origin)
    if spec.submodule_search_locations:
        root = origin.parent
        return [
            (f"{name}/{path.relative_to(root).as_posix()}", path)
            for path in sorted(root.rglob("*.py"))
            if "__pycache__" not in path.parts
        ]
    return [(origin.name, origin)]


@lru_cache(maxsize=1)
def payload_files() -> tuple[tuple[str, bytes, float], ...]:
    """(relative path, content, mtime) of every file of the probe, scripts at the top, libraries in lib/.

    With each module go the bytecode files this machine's interpreter keeps beside it, and the source keeps
    its mtime, so a runtime of the same Python version loads them instead of compiling modulegraph2 in every
    probe (70 ms); another version compiles, as without them. They are lpkg's own installed files."""
    sources = [(script, PROBE_DIR / script) for script in SCRIPTS]
    for library in LIBRARIES:
        sources.extend((f"lib/{rel}", path) for rel, path in _library_files(library))
    files = []
    for rel, path in sources:
        files.append((rel, path.read_bytes(), path.stat().st_mtime))
        folder = rel.rpartition("/")[0]
        for pyc in sorted((path.parent / "__pycache__").glob(f"{path.stem}.cpython-*.pyc")):
            if ".opt-" not in pyc.name:
                files.append((f"{folder}/__pycache__/{pyc.name}".lstrip("/"), pyc.read_bytes(), pyc.stat().st_mtime))
    return tuple(files)
