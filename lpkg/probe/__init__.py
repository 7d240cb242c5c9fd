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
def payload_files() -> tuple[tuple[str, bytes], ...]:
    """(relative path, content) of every file of the probe, scripts at the top, libraries in lib/."""
    files = [(script, (PROBE_DIR / script).read_bytes()) for script in SCRIPTS]
    for library in LIBRARIES:
        files.extend((f"lib/{rel}", path.read_bytes()) for rel, path in _library_files(library))
    return tuple(files)
