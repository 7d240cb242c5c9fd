"""What the parser says about one Python source file: its import statements (with line and guard) and
the top-level names it defines. Standard library only.

Shared by both sides: the host's discovery of first-party code (lpkg.plan.discover) reads it to decide what
goes in the zip, and the probe's graph walk (walk.py, in the runtime container, where this file sits
beside it) to judge each import. Parsing never runs the code.
"""

from __future__ import annotations

import ast
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

# An `except` naming one of these handles a failed import.
IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})
# Calls that can define module globals the parser cannot see: a name check must not trust the parser.
DYNAMIC_CALLS = frozenset({"globals", "vars", "locals", "exec", "setattr"})
# Lines whose syntax error may only mean "newer than this Python" (PEP 695 type, PEP 701 f-strings,
# PEP 750 t-strings, PEP 758 unparenthesised except).
# A pattern, compiled by re (and cached there) at the first syntax error: parsing good code never needs it.
NEWER_SYNTAX = r"^\s*type\s+\w+|^\s*(def|class)\s+\w+\s*\[|\b[rR]?[fFtT][rR]?['\"]|^\s*except\s+[^:(]+,"


@dataclass(frozen=True)
class ImportStatement:
    line: int
    module: str  # "a.b" for `import a.b` and `from a.b import x`; "" for `from . import x`
    level: int  # dots of a relative import
    names: tuple[str, ...]  # names of `from ... import` ("*" included); () for `import`
    in_function: bool = False  # runs when the function is called, not at import
    guarded: bool = False  # in a try that handles ImportError, an `except` block, or an `if`
    type_checking: bool = False  # under `if TYPE_CHECKING:`: never runs

    @property
    def optional(self) -> bool:
        """Its failure does not stop the module from loading."""
        return self.in_function or self.guarded or self.type_checking

    @property
    def how(self) -> str:
        """Why it is optional, for messages."""
        if self.type_checking:
            return "under `if TYPE_CHECKING`"
        if self.in_function:
            return "inside a function"
        return "guarded by try/except or if" if self.guarded else ""

    @property
    def text(self) -> str:
        if not self.names and not self.level:
            return f"import {self.module}"
        return f"from {'.' * self.level}{self.module} import {', '.join(self.names)}"


@dataclass(frozen=True)
class SourceFacts:
    imports: tuple[ImportStatement, ...] = ()
    names: frozenset[str] = frozenset()  # top-level names the module defines
    dynamic: bool = False  # __getattr__, a star import, globals(), sys.modules: its names cannot be known
    methods: tuple[tuple[str, str], ...] = ()  # (class, method) defined at the top level
    syntax_error: tuple[int, str] | None = None  # (line, message)
    maybe_newer_syntax: bool = False  # the error may be syntax this Python predates

    def classes_with_method(self, name: str) -> tuple[str, ...]:
        return tuple(sorted({cls for cls, method in self.methods if method == name}))


def analyse_source(data: bytes, filename: str, target: tuple[int, int] | None = None) -> SourceFacts:
    """Parse with the grammar of `target` (a Python version) where this interpreter can approximate it."""
    host = sys.version_info[:2]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for invalid escapes is not ours to print
            if target is not None and target < host:
                # Approximate the target's grammar, so 3.10+ syntax in a python3.9 function is caught here.
                tree = ast.parse(data, filename, feature_version=target)
            else:
                tree = ast.parse(data, filename)
    except SyntaxError as exc:
        newer = target is not None and host < target and bool(re.search(NEWER_SYNTAX, exc.text or ""))
        return SourceFacts(syntax_error=(exc.lineno or 1, exc.msg), maybe_newer_syntax=newer)
    except ValueError as exc:  # null bytes, before 3.12
        return SourceFacts(syntax_error=(1, str(exc)))
    except (MemoryError, RecursionError):  # nesting deeper than the parser can hold (the runtime's too)
        return SourceFacts(syntax_error=(1, "too deeply nested to parse"))
    names, dynamic, methods = defined_names(tree)
    return SourceFacts(imports=tuple(import_statements(tree)), names=names, dynamic=dynamic, methods=methods)


def import_statements(tree: ast.Module) -> Iterator[ImportStatement]:
    def visit(body: Sequence[ast.stmt], in_function: bool, guarded: bool, type_checking: bool) -> Iterator[
            ImportStatement]:
        for node in body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield ImportStatement(node.lineno, alias.name, 0, (), in_function, guarded, type_checking)
            elif isinstance(node, ast.ImportFrom):
                if node.module != "__future__":
                    names = tuple(a.name for a in node.names)
                    yield ImportStatement(node.lineno, node.module or "", node.level or 0, names,
                                          in_function, guarded, type_checking)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from visit(node.body, True, guarded, type_checking)
            elif isinstance(node, ast.If):
                if is_type_checking(node.test):
                    yield from visit(node.body, in_function, guarded, True)
                    yield from visit(node.orelse, in_function, guarded, type_checking)
                else:  # `if sys.version_info < (3, 11): import tomli` is optional by design
                    yield from visit(node.body, in_function, True, type_checking)
                    yield from visit(node.orelse, in_function, True, type_checking)
            elif type(node).__name__ in ("Try", "TryStar"):
                tried = cast(ast.Try, node)
                handles = any(catches_import_error(h) for h in tried.handlers)
                yield from visit(tried.body, in_function, guarded or handles, type_checking)
                for handler in tried.handlers:
                    yield from visit(handler.body, in_function, True, type_checking)  # runs only after a failure
                yield from visit(tried.orelse, in_function, guarded, type_checking)
                yield from visit(tried.finalbody, in_function, guarded, type_checking)
            else:
                for inner in child_bodies(node):
                    yield from visit(inner, in_function, guarded, type_checking)

    yield from visit(tree.body, False, False, False)


def child_bodies(node: ast.AST) -> Iterator[list[ast.stmt]]:
    """Statement lists directly inside a compound statement (class, with, for, while, match)."""
    for _, value in ast.iter_fields(node):
        if isinstance(value, list) and value:
            if isinstance(value[0], ast.stmt):
                yield value
            elif isinstance(value[0], ast.match_case):
                for case in value:
                    yield case.body


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    for t in types:
        name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else None
        if name in IMPORT_ERRORS:
            return True
    return False


def defined_names(tree: ast.Module) -> tuple[frozenset[str], bool, tuple[tuple[str, str], ...]]:
    """Top-level names, whether they are knowable, and the classes' methods. Errs towards "defined": a
    name missed here would be a false error, a name wrongly counted only a missed one (the import judges)."""
    names: set[str] = set()
    methods: list[tuple[str, str]] = []
    dynamic = False

    def targets(node: ast.AST) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                names.add(sub.id)

    def visit(body: Sequence[ast.stmt]) -> None:
        nonlocal dynamic
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(node.name)
                dynamic = dynamic or node.name == "__getattr__"
            elif isinstance(node, ast.ClassDef):
                names.add(node.name)
                methods.extend(
                    (node.name, item.name) for item in node.body
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                )
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    targets(target)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                if not isinstance(node, ast.AnnAssign) or node.value is not None:  # `x: int` binds nothing
                    targets(node.target)
            elif isinstance(node, ast.Import):
                names.update(a.asname or a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name == "*":
                        dynamic = True
                    names.add(alias.asname or alias.name)
            elif isinstance(node, (ast.For, ast.AsyncFor)):
                targets(node.target)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        targets(item.optional_vars)
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for inner in child_bodies(node):
                    visit(inner)
                if type(node).__name__ in ("Try", "TryStar"):
                    for handler in cast(ast.Try, node).handlers:
                        visit(handler.body)

    visit(tree.body)
    dynamic = _names_bound_anywhere(tree, names) or dynamic
    return frozenset(names), dynamic, tuple(methods)


def _names_bound_anywhere(tree: ast.Module, names: set[str]) -> bool:
    """Adds the module-level names bound from any depth (global, :=, match captures) to `names`; True when
    the module's names cannot be known (a call of globals, vars, locals, exec or setattr; sys.modules replaced)."""
    dynamic = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            names.update(node.names)  # a function that assigns a global defines it once called
        elif isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DYNAMIC_CALLS:
            dynamic = True
        elif isinstance(node, ast.Attribute) and node.attr == "modules" and isinstance(node.value, ast.Name) \
                and node.value.id == "sys":
            dynamic = True  # sys.modules[__name__] = ... replaces the module
    return dynamic
