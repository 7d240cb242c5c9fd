"""Properties over generated function folders (hypothesis; issue 17), as tests/test_properties.py has for zips:
any folder — odd names, nesting, packages with and without __init__.py, symlinks (to files, to folders, loops,
dangling), source in any encoding, syntax errors, empty files — goes through discovery and assembly (the
build without Docker: no requirements to install, no import test) raising nothing but lpkg's own errors,
and a zip is published only when the report says the build passed, and then it is whole and holds exactly
the files discovery planned. A failed build leaves nothing in --out.

The entry points are imported inside the tests (`_entry_points`), so a move of the modules is one edit.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("LPKG_FOLDER_EXAMPLES", "80"))


def _entry_points() -> SimpleNamespace:
    """discover, assemble and build as the tests call them (paths of the modules in one place)."""
    from lpkg.commands.build import build_function
    from lpkg.commands.inputs import BuildOptions
    from lpkg.config import Overrides, resolve_settings
    from lpkg.errors import LpkgError
    from lpkg.plan.discover import discover

    return SimpleNamespace(BuildOptions=BuildOptions, build_function=build_function, Overrides=Overrides,
                           resolve_settings=resolve_settings, discover=discover, LpkgError=LpkgError)


# --- what a function folder can hold ----------------------------------------------------------------------

# Names imports are written against, so some imports find their module; and names no import can reach.
_MODULE_NAMES = ["util", "shared", "pkg", "models", "handler", "app", "é_mod", "__init__", "json"]
_ODD_NAMES = ["data-x", "two words", "1st", "a.b", ".hidden", "__pycache__", "tests", "node_modules", "ÄÖ",
              "x" * 60, "requirements.txt", "lpkg.toml", "mod.pyc", "native.cpython-311-x86_64-linux-gnu.so"]
_NAME = st.sampled_from(_MODULE_NAMES + _ODD_NAMES) | st.text(
    alphabet=st.characters(categories=("Ll", "Lu", "Nd"), max_codepoint=0x24F) | st.sampled_from("_-. "),
    min_size=1, max_size=16).filter(lambda n: n not in (".", ".."))

_IMPORTS = st.sampled_from([
    "import util\n", "import shared.util\n", "from pkg import models\n", "from pkg.models import Thing\n",
    "from . import sibling\n", "from .models import x\n", "import json\n", "import é_mod\n",
    "try:\n    import optional_thing\nexcept ImportError:\n    pass\n", "from __future__ import annotations\n",
    "import requests\n", "from shared import *\n",
])
_HANDLER_DEF = "def handler(event, context):\n    return 1\n"
_SOURCE = st.one_of(
    st.just(b""), st.just(b"\xef\xbb\xbf"), st.just(b"\n\n# only a comment\n"),
    st.lists(_IMPORTS, max_size=3).map(lambda lines: ("".join(lines) + _HANDLER_DEF).encode()),
    st.sampled_from(["X = 1\n", "class Thing:\n    pass\n", "def (:\n", "if True:\nreturn\n", "x = 'unclosed\n",
                     "__all__ = ['nothing']\n"]).map(str.encode),
    st.just("# -*- coding: latin-1 -*-\nS = 'é'\n".encode("latin-1")),
    st.just(b"S = '\xe9'\n"),  # latin-1 bytes without a coding line: not UTF-8
    st.just("X = 1\n".encode("utf-16")),
    st.just("\ufeffX = 'bom'\n".encode()),
    st.just(b"X = 1\x00\n"),
    st.just(b"(" * 300 + b")" * 300 + b"\n"),  # nesting deeper than the parser allows
    st.binary(max_size=64),
)
# Symlink targets relative to the link's folder; none leaves the project (".." at most reaches lambda/).
_LINK = st.sampled_from([".", "..", "nowhere", "util.py", "pkg", "handler.py", "self"])


@dataclass(frozen=True)
class Link:
    target: str


def _tree(depth: int) -> Any:
    leaf = st.one_of(_SOURCE, _LINK.map(Link))
    if depth == 0:
        return st.dictionaries(_NAME, leaf, max_size=4)
    return st.dictionaries(_NAME, st.one_of(leaf, _tree(depth - 1)), max_size=5)


@st.composite
def _function_folder(draw: st.DrawFn) -> dict[str, Any]:
    tree = draw(_tree(2))
    if draw(st.booleans()):  # most real functions have one
        tree["handler.py"] = draw(st.lists(_IMPORTS, max_size=4).map(lambda ls: ("".join(ls) + _HANDLER_DEF).encode()))
    if draw(st.booleans()):
        tree["pkg"] = draw(st.fixed_dictionaries({}, optional={
            "__init__.py": _SOURCE, "models.py": _SOURCE, "sub": _tree(0)}))
    if draw(st.integers(0, 3)) == 0:
        tree["requirements.txt"] = draw(st.sampled_from([b"", b"# none yet\n", b"\xef\xbb\xbf\n"]))
    return {"function": tree, "shared": draw(_tree(1)), "handler": draw(st.sampled_from(
        [None, None, "handler.handler", "pkg.models.handler", "app.handler", "", "a b.c", "..."])),
        "out_inside": draw(st.booleans())}


def _materialize(folder: Path, tree: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, node in tree.items():
        path = folder / name
        try:
            if isinstance(node, dict):
                _materialize(path, node)
            elif isinstance(node, Link):
                path.symlink_to(name if node.target == "self" else node.target)
            else:
                path.write_bytes(node)
        except OSError:  # a name the file system refuses (too long in bytes): that entry is not there
            continue


# --- the properties -----------------------------------------------------------------------------------------


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(project=_function_folder())
def test_any_function_folder_builds_or_fails_with_lpkgs_own_error(project: dict[str, Any]) -> None:
    lpkg = _entry_points()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        function = root / "lambda" / "fn"
        _materialize(function, project["function"])
        _materialize(root / "lambda" / "shared", project["shared"])
        out = function / "dist" if project["out_inside"] else root / "dist"
        overrides = lpkg.Overrides(handler=project["handler"], out=out)
        options = lpkg.BuildOptions(test=False, cache=False, backend="local")

        # Discovery alone: a plan whose every file is a real file at a clean zip path, or lpkg's own error.
        try:
            settings_ = lpkg.resolve_settings(function, overrides, cwd=root)
            plan, _ = lpkg.discover(settings_)
        except lpkg.LpkgError as exc:
            assert exc.exit_code in (1, 2, 3)
            plan = None
        if plan is not None:
            for member, source in plan.files:
                assert not member.startswith("/") and ".." not in member.split("/") and member
                assert source.is_file()

        # The whole build without Docker.
        try:
            report = lpkg.build_function(function, overrides, options)
        except lpkg.LpkgError as exc:
            assert exc.exit_code in (1, 2, 3)
            event(f"build: exit {exc.exit_code}")  # --hypothesis-show-statistics: how the examples ended
            report = None
        published = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        if report is None or not report.ok:
            if report is not None:
                event("build: failed with findings")
            assert published == [], "a failed build wrote to --out"
            return
        event("build: published")
        assert plan is not None, "the build passed where discovery failed"
        assert published == ["fn.zip"], "only the zip is left in --out"
        assert report.artifact == str(out / "fn.zip")
        with zipfile.ZipFile(out / "fn.zip") as zf:
            assert zf.testzip() is None
            members = {n for n in zf.namelist() if not n.endswith("/")}
        # assemble leaves bytecode out of the planned files (a file named __pycache__ too), as it documents.
        assert members == {m for m, _ in plan.files if not m.endswith((".pyc", ".pyo")) and
                           "__pycache__" not in m.split("/")}
