"""The host's confirmation of the type checker's diagnostics: a diagnostic becomes a finding only when the
parser, too, can show that the line certainly raises when it runs. Every rule errs towards silence.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from lpkg.checks.contract_index import SAFE_BASES, ClassFacts, ModuleFacts, ProjectIndex
from lpkg.checks.lambda_context import BY_STUB_NAME, names_of

# What an `except` must name to handle each failure (a name it cannot read counts as handling it).
HANDLED_BY = {
    "AttributeError": frozenset({"AttributeError", "Exception", "BaseException"}),
    "NameError": frozenset({"NameError", "Exception", "BaseException"}),
    "TypeError": frozenset({"TypeError", "Exception", "BaseException"}),
}
MAPPING_METHODS = frozenset({"get", "items", "keys", "values", "setdefault", "pop", "update"})
EXCEPTION_SUFFIXES = ("Error", "Exception", "Warning", "Exit", "Interrupt", "Iteration")

# `Config & ~AlwaysFalsy` (after `if config:`) is still a Config: negative parts only take values out.
_OBJECT_TYPE = re.compile(r"^Object of type `(?:type\[)?([\w@]+)\]?(?: & ~\w+)*` has no attribute `(\w+)`$")
_CLASS_TYPE = re.compile(r"^Class `(\w+)` has no attribute `(\w+)`$")
_NAME = re.compile(r"^Name `(\w+)` used when not defined$")


@dataclass(frozen=True)
class Diagnostic:
    rule: str  # the checker's rule, e.g. "missing-attribute"
    message: str
    member: str  # zip path
    line: int
    column: int  # 1-based, as the checker counts


@dataclass(frozen=True)
class Confirmed:
    code: str
    message: str


def confirm(index: ProjectIndex, diagnostic: Diagnostic) -> Confirmed | None:
    """An attribute or a name the checker reported, if the parser confirms it raises."""
    module = index.modules.get(index.by_member.get(diagnostic.member, ""))
    if module is None or never_runs(module.tree, diagnostic.line):
        return None
    if diagnostic.rule == "missing-attribute":
        return _attribute(index, module, diagnostic)
    if diagnostic.rule == "unresolved-reference":
        return _name(index, module, diagnostic)
    return None  # the call rules are contract_calls.py's


def did_you_mean(name: str, choices: Iterator[str] | frozenset[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, sorted(set(choices)), n=1, cutoff=0.6)
    if not close:
        # `request_id` -> `aws_request_id`: the name is the end of a longer one
        ends = sorted(c for c in choices if c.endswith("_" + name))
        close = ends[:1]
    return f" — did you mean '{close[0]}'?" if close else ""


def _attribute(index: ProjectIndex, module: ModuleFacts, diagnostic: Diagnostic) -> Confirmed | None:
    match = _OBJECT_TYPE.match(diagnostic.message) or _CLASS_TYPE.match(diagnostic.message)
    if match is None or handled(module.tree, diagnostic.line, "AttributeError"):
        return None
    type_name, attribute = match.groups()
    if attribute.startswith("__"):
        return None
    if type_name in BY_STUB_NAME:
        model = BY_STUB_NAME[type_name]
        names = names_of(type_name)
        if attribute in names:
            return None
        public = tuple(n for n in names if not n.startswith("_"))
        return Confirmed("CONTEXT_ATTRIBUTE_MISSING",
                         f"{model.shown_as} has no attribute '{attribute}': this line raises AttributeError when it "
                         f"runs{did_you_mean(attribute, public)} (it has {', '.join(public)})")
    if "@" in type_name:  # Self@method: the class whose method this is
        enclosing = _enclosing_class(index, module, diagnostic.line)
        candidates = [enclosing] if enclosing else []
    else:
        candidates = index.classes_named(type_name)
    if not candidates or not all(_certainly_lacks(index, c, attribute) for c in candidates):
        return None
    cls = candidates[0]
    defined = _all_names(index, cls)
    where = index.modules[cls.qualname.rpartition(".")[0]].member
    return Confirmed("ATTRIBUTE_MISSING",
                     f"'{attribute}' is not an attribute of {cls.node.name} ({where}:{cls.node.lineno}) nor of its "
                     f"bases: this line raises AttributeError when it runs{did_you_mean(attribute, defined)}"
                     + (f"; {cls.node.name} is a class, not a dict: read its fields as attributes"
                        if attribute in MAPPING_METHODS else "; use a name the class defines, or add it to it"))


def _certainly_lacks(index: ProjectIndex, cls: ClassFacts, attribute: str) -> bool:
    if attribute in index.written_attributes:
        return False  # assigned from outside the class somewhere (x.name = …, setattr(x, "name", …))
    if _lineage_lacks(index, cls, attribute, set()) is False:
        return False
    users = [m for m in index.modules.values() if cls.node.name in m.bindings or cls.node.name in m.imported]
    if any(m.name in index.dynamic_writes for m in users):
        return False
    # a first-party subclass may be what is really there, and it or another of its bases (a mixin's partner)
    # may define the name
    return not subclass_may_define(index, cls, attribute)


def subclass_may_define(index: ProjectIndex, cls: ClassFacts, name: str) -> bool:
    """A first-party subclass, or another base of one (a mixin's partner), may define the name: the object
    really there may be one of those."""
    known = {cls.qualname} | ancestors(index, cls, set())
    for other in index.classes.values():
        if cls.qualname not in ancestors(index, other, set()):
            continue
        pending, seen = [other], set(known)
        while pending:
            current = pending.pop()
            if current.qualname in seen:
                continue
            seen.add(current.qualname)
            if current.dynamic or name in current.names:
                return True
            for base in current.bases:
                if base in index.classes:
                    pending.append(index.classes[base])
                elif base not in SAFE_BASES:
                    return True
    return False


def _lineage_lacks(index: ProjectIndex, cls: ClassFacts, attribute: str, seen: set[str]) -> bool:
    if cls.dynamic or attribute in cls.names or cls.qualname in seen:
        return False
    seen.add(cls.qualname)
    for base in cls.bases:
        if base in SAFE_BASES:
            continue
        parent = index.classes.get(base)
        if parent is None or not _lineage_lacks(index, parent, attribute, seen):
            return False
    return True


def ancestors(index: ProjectIndex, cls: ClassFacts, seen: set[str]) -> set[str]:
    found: set[str] = set()
    for base in cls.bases:
        if base in index.classes and base not in seen:
            seen.add(base)
            found |= {base} | ancestors(index, index.classes[base], seen)
    return found


def _all_names(index: ProjectIndex, cls: ClassFacts) -> frozenset[str]:
    names = set(cls.names)
    for base in ancestors(index, cls, set()):
        names |= index.classes[base].names
    return frozenset(n for n in names if not n.startswith("__"))


def _enclosing_class(index: ProjectIndex, module: ModuleFacts, line: int) -> ClassFacts | None:
    for node in module.tree.body:
        if isinstance(node, ast.ClassDef) and node.lineno <= line <= (node.end_lineno or node.lineno):
            return index.classes.get(f"{module.name}.{node.name}")
    return None


def _name(index: ProjectIndex, module: ModuleFacts, diagnostic: Diagnostic) -> Confirmed | None:
    match = _NAME.match(diagnostic.message)
    if match is None or module.dynamic or index.builtins_patched:
        return None
    name = match.group(1)
    if name.startswith("__") or not _in_function(module.tree, diagnostic.line):
        return None  # module attributes (__file__, __class__ …) are the checker's to know; module level: the import's
    if handled(module.tree, diagnostic.line, "NameError"):
        return None
    if any(_binds(node, name) for node in ast.walk(module.tree)):
        return None
    bound = set(module.bindings) | set(module.imported) | _local_names(module.tree)
    return Confirmed("NAME_UNDEFINED",
                     f"the name '{name}' is bound nowhere in {module.member} nor a builtin: this line raises "
                     f"NameError when it runs{did_you_mean(name, frozenset(bound))}; "
                     "define or import it")


def _binds(node: ast.AST, name: str) -> bool:
    if isinstance(node, ast.Name):
        return node.id == name and not isinstance(node.ctx, ast.Load)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, ast.arg):
        return node.arg == name
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any((a.asname or a.name.split(".")[0]) == name or a.name == "*" for a in node.names)
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return name in node.names
    if isinstance(node, ast.ExceptHandler):
        return node.name == name
    if isinstance(node, (ast.MatchAs, ast.MatchStar)):
        return node.name == name
    return isinstance(node, ast.MatchMapping) and node.rest == name


def _local_names(tree: ast.Module) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)} | {
        n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}


def never_runs(tree: ast.Module, line: int) -> bool:
    return any(isinstance(n, ast.If) and _spans(n.body, line) and (ast.unparse(n.test).endswith("TYPE_CHECKING"))
               for n in ast.walk(tree))


def _in_function(tree: ast.Module, line: int) -> bool:
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and
               n.body and _spans(n.body if isinstance(n.body, list) else [n.body], line) for n in ast.walk(tree))


def handled(tree: ast.Module, line: int, error: str) -> bool:
    """The line is inside a `try` that handles the error, or a `with suppress(…)`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            tried = cast(ast.Try, node)
            if _spans(tried.body, line) and any(_catches(h, error) for h in tried.handlers):
                return True
        if isinstance(node, (ast.With, ast.AsyncWith)) and _spans(node.body, line) and any(
                "suppress" in ast.unparse(item.context_expr) for item in node.items):
            return True
    return False


def _catches(handler: ast.ExceptHandler, error: str) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    for t in types:
        name = ast.unparse(t).rpartition(".")[2]
        # a class named like an exception other than these cannot catch it (only its bases can);
        # anything else (a tuple in a variable, an alias) might
        if name in HANDLED_BY[error] or not name.endswith(EXCEPTION_SUFFIXES):
            return True
    return False


def _spans(body: list[ast.stmt] | list[ast.expr], line: int) -> bool:
    return bool(body) and body[0].lineno <= line <= max((s.end_lineno or s.lineno) for s in body)
