"""The layout's import rules, read from the source (every import: module level, inside functions and under
TYPE_CHECKING). The rules are data, here in one place: which part of lpkg may import which, and which one module
owns each outside world. A new module joins the part named by its folder (or the core, at the top)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lpkg"

# The top of lpkg/: the face (what users call) and the shared core (what every stage may use).
FACE = frozenset({"lpkg.cli", "lpkg.options", "lpkg.cdk", "lpkg.annotations", "lpkg.__main__"})
CORE = frozenset({"lpkg", "lpkg.errors", "lpkg.report", "lpkg.runtimes", "lpkg.config", "lpkg.config_file",
                  "lpkg.handler", "lpkg.names", "lpkg.events", "lpkg.files", "lpkg.invocation"})

# Part -> the parts it may import (besides itself). The flow: plan -> install -> archive -> checks -> probing,
# with the commands orchestrating them; containers serve install and probing; the probe imports nothing.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "probe": frozenset(),
    "probe.sources": frozenset(),
    "plan": frozenset({"core", "probe.sources"}),
    "archive": frozenset({"core"}),
    "containers": frozenset({"core"}),
    "install": frozenset({"core", "containers"}),
    "checks": frozenset({"core", "archive", "probe.sources"}),
    "probing": frozenset({"core", "archive", "containers", "probe"}),
    "commands": frozenset({"core", "plan", "install", "archive", "checks", "containers", "probing", "probe",
                           "probe.sources"}),
    "face": frozenset({"core", "commands", "install", "probing", "plan", "archive", "checks", "containers",
                       "probe", "probe.sources"}),
}

# Outside world -> the one lpkg module that may import it.
OWNERS: dict[str, str] = {
    "docker": "lpkg.containers.engine",
    "modulegraph2": "lpkg.probe.walk",
    "piptools": "lpkg.install.lock",
    "aws_cdk": "lpkg.cdk",
    "yaml": "lpkg.plan.projects.cfn_yaml",
    "hcl2": "lpkg.plan.projects.hcl",
    "lark": "lpkg.plan.projects.hcl",
    "packaging": "lpkg.install.project_locks",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    if module in FACE:
        return "face"
    if module in CORE:
        return "core"
    if module == "lpkg.probe.sources":
        return "probe.sources"  # the source parser the host's discovery shares with the probe
    return module.split(".")[1]


def imports_of(path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import statement in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, node.lineno
            for alias in node.names:  # `from lpkg.commands import uptodate` imports a module too
                yield f"{base}.{alias.name}", node.lineno


def lpkg_modules() -> set[str]:
    return {module_name(p) for p in PACKAGE.rglob("*.py")}


def violations() -> list[str]:
    known = lpkg_modules()
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        importer_part = part_of(importer)
        for imported, line in imports_of(path):
            top = imported.split(".")[0]
            owner = OWNERS.get(top)
            if owner is not None and importer != owner:
                found.append(f"{importer}:{line} imports {imported}: only {owner} may")
            if top != "lpkg" or imported not in known:
                continue
            imported_part = part_of(imported)
            if imported_part == importer_part or (importer_part == "probe.sources" and imported_part == "probe"):
                continue
            if imported_part == "probe.sources" and importer_part == "probe":
                continue
            if imported_part not in MAY_IMPORT[importer_part]:
                found.append(f"{importer}:{line} ({importer_part}) imports {imported} ({imported_part})")
    return found


def test_no_module_imports_across_a_line_the_layout_forbids() -> None:
    assert violations() == []


def test_the_rules_cover_every_folder() -> None:
    parts = {part_of(m) for m in lpkg_modules()}
    assert parts <= set(MAY_IMPORT), f"a folder with no rules: {sorted(parts - set(MAY_IMPORT))}"


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")))
def test_each_folder_says_what_it_is(folder: str) -> None:
    docstring = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text(encoding="utf-8")))
    assert docstring, f"lpkg/{folder}/__init__.py has no docstring saying what the folder is"


def test_the_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The rules are not vacuous: a probe module importing lpkg's report, or a stage importing docker, is caught."""
    probe = PACKAGE / "probe" / "_layout_canary.py"
    stage = PACKAGE / "archive" / "_layout_canary.py"
    try:
        probe.write_text("from lpkg.report import Finding\n", encoding="utf-8")
        stage.write_text("def f() -> None:\n    import docker\n", encoding="utf-8")
        found = violations()
    finally:
        probe.unlink(missing_ok=True)
        stage.unlink(missing_ok=True)
    assert any(v.startswith("lpkg.probe._layout_canary:1 (probe) imports lpkg.report") for v in found), found
    assert any(v.startswith("lpkg.archive._layout_canary:2 imports docker: only lpkg.containers.engine") for v in found)


def test_no_import_circle_between_folders() -> None:
    """Folder-level graph of module-level imports (what runs at import time) has no cycle."""
    edges: dict[str, set[str]] = {}
    known = lpkg_modules()
    for path in PACKAGE.rglob("*.py"):
        importer = part_of(module_name(path))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only
            if isinstance(node, ast.ImportFrom) and node.module and node.module in known:
                target = part_of(node.module)
                if target != importer:
                    edges.setdefault(importer, set()).add(target)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges.get(start, ()))

    circles = sorted(p for p in edges if reaches(p, p, set()))
    assert circles == [], f"folders on an import circle: {circles} ({edges})"


# No module over about 400 lines: a longer one holds more than one job. Each exception is named with its reason.
MAX_MODULE_LINES = 420
LONGER_MODULES: dict[str, str] = {
    "lpkg.probe.importer": "a script run in the user's interpreter beside the user's code: a sibling module it "
    "imported would sit in sys.modules under a top-level name the packaged code may use for its own module",
    "lpkg.probe.walk": "a probe script as well: each sibling (as sources.py) takes a top-level module name in "
    "the walk's interpreter",
}


def module_lengths() -> dict[str, int]:
    return {module_name(p): len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.rglob("*.py")}


def test_no_module_is_longer_than_the_layout_allows() -> None:
    lengths = module_lengths()
    too_long = {m: n for m, n in lengths.items() if n > MAX_MODULE_LINES and m not in LONGER_MODULES}
    assert too_long == {}, f"split these (or name them in LONGER_MODULES, with the reason): {too_long}"


def test_each_longer_module_is_still_longer() -> None:
    """An exception that no longer applies is dropped, so the list says what is true."""
    lengths = module_lengths()
    assert {m for m in LONGER_MODULES if lengths.get(m, 0) <= MAX_MODULE_LINES} == set()
