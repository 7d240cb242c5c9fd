"""The host's confirmation of the checker's call diagnostics: a call to a first-party function, method or class
that no binding of its arguments to the signature accepts, so it raises TypeError when it runs."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from lpkg.checks.contract_index import SAFE_BASES, ClassFacts, ProjectIndex
from lpkg.checks.contract_rules import Confirmed, Diagnostic, ancestors, handled, never_runs, subclass_may_define

RULES = frozenset({"missing-argument", "too-many-positional-arguments", "unknown-argument",
                   "parameter-already-assigned"})
DATACLASS = frozenset({"dataclass", "dataclasses.dataclass"})
HARMLESS_OPTIONS = frozenset({"frozen", "order", "eq", "unsafe_hash", "repr", "slots", "match_args", "weakref_slot"})
_CALLEE = re.compile(r"(?:of|to) (?:(function|bound method) )?`([\w.]+)`")


# (def, bound: its self is not passed, where it is "member:line", how the message shows it)
Signature = tuple[ast.FunctionDef | ast.AsyncFunctionDef, bool, str, str]


def confirm_call(index: ProjectIndex, diagnostic: Diagnostic) -> Confirmed | None:
    """A call the checker reported, if binding its arguments to the first-party signature certainly fails."""
    module = index.modules.get(index.by_member.get(diagnostic.member, ""))
    if module is None or never_runs(module.tree, diagnostic.line) or handled(module.tree, diagnostic.line,
                                                                               "TypeError"):
        return None
    match = _CALLEE.search(diagnostic.message)
    found = _named(index, module.name, module.tree, diagnostic.line, *match.groups()) if match else \
        _dataclass(index, module.name, module.tree, diagnostic.line)
    if found is None:
        return None
    call, signatures = found
    if not signatures or not all(_call_fails(call, f, bound) for f, bound, _, _ in signatures):
        return None
    _, _, where, shown = signatures[0]
    return Confirmed("CALL_SIGNATURE_MISMATCH",
                     f"{diagnostic.message.rstrip('.')}: this call raises TypeError when it runs (the signature, "
                     f"{where}: {shown}); pass what the signature takes")


def _signature(index: ProjectIndex, function: ast.FunctionDef | ast.AsyncFunctionDef, bound: bool,
               module: str) -> Signature:
    where = f"{index.modules[module].member}:{function.lineno}"
    return function, bound, where, f"def {function.name}({ast.unparse(function.args)})"


def _named(index: ProjectIndex, module: str, tree: ast.Module, line: int, kind: str | None,
           callee: str) -> tuple[ast.Call, list[Signature]] | None:
    owner, _, name = callee.rpartition(".")
    shown = owner if name == "__init__" else name  # a constructor is called by its class's name
    calls = [c for c in _calls_on_line(tree, line) if _callee_name(c) == shown]
    if len(calls) != 1:
        return None
    call = calls[0]
    target = index.resolve_expr(module, call.func)
    signatures: list[Signature] = []
    if kind == "function" and target and (function := index.function(target)) and _plain(index, function, name):
        signatures.append(_signature(index, function, False, target.rpartition(".")[0]))
    elif kind == "bound method":
        signatures += [_signature(index, f, bound, c.qualname.rpartition(".")[0]) for c in index.classes_named(owner)
                       for f, bound in _method(index, c, name)]
    elif kind is None and name == "__init__" and target in index.classes and _plain_construction(index, target):
        cls = index.classes[target]
        signatures += [_signature(index, f, bound, target.rpartition(".")[0]) for f, bound in _method(index, cls, name)]
    return call, signatures


def _dataclass(index: ProjectIndex, module: str, tree: ast.Module,
               line: int) -> tuple[ast.Call, list[Signature]] | None:
    """A dataclass's __init__ has no name in the checker's message: the one call on the line that constructs a
    first-party dataclass, against the __init__ its fields make."""
    found = [(c, t) for c in _calls_on_line(tree, line)
             if (t := index.resolve_expr(module, c.func)) in index.classes]
    if len(found) != 1:
        return None
    call, target = found[0]
    cls = index.classes[str(target)]
    init = _dataclass_init(index, cls)
    if init is None:
        return None
    where = f"{index.modules[cls.qualname.rpartition('.')[0]].member}:{cls.node.lineno}"
    params = ast.unparse(init.args).removeprefix("self, ").removeprefix("self")
    return call, [(init, True, where, f"the dataclass {cls.node.name}({params})")]


def _dataclass_init(index: ProjectIndex, cls: ClassFacts) -> ast.FunctionDef | None:
    """The __init__ @dataclass writes, for the plain case only: no base with fields, no __init__ of its own, no
    field(init=False), kw_only or KW_ONLY."""
    decorators = cls.node.decorator_list
    if cls.dynamic or len(decorators) != 1 or cls.bases != ("builtins.object",) or "__init__" in cls.names \
            or subclass_may_define(index, cls, "__init__"):
        return None
    decorator = decorators[0]
    options = decorator.keywords if isinstance(decorator, ast.Call) else []
    if ast.unparse(decorator.func if isinstance(decorator, ast.Call) else decorator) not in DATACLASS or any(
            k.arg not in HARMLESS_OPTIONS for k in options):
        return None
    params: list[str] = []
    for item in cls.node.body:
        if not isinstance(item, ast.AnnAssign):
            continue
        annotation = ast.unparse(item.annotation)
        if "KW_ONLY" in annotation or not isinstance(item.target, ast.Name):
            return None
        if "ClassVar" in annotation:
            continue
        default = _field_default(item.value)
        if default is None:
            return None
        params.append(item.target.id + ("=..." if default else ""))
    try:
        init = ast.parse(f"def __init__(self, {', '.join(params)}): pass").body[0]
    except SyntaxError:  # a field without a default after one with: the class itself fails to define
        return None
    assert isinstance(init, ast.FunctionDef)
    return init


def _field_default(value: ast.expr | None) -> bool | None:
    """Whether the field has a default; None when the field's options make the __init__ unknowable."""
    if value is None:
        return False
    if isinstance(value, ast.Call) and ast.unparse(value.func) in ("field", "dataclasses.field"):
        names = {k.arg for k in value.keywords}
        if value.args or names - {"default", "default_factory", "repr", "compare", "hash", "metadata"}:
            return None
        return bool(names & {"default", "default_factory"})
    return True


def _plain_construction(index: ProjectIndex, qualname: str) -> bool:
    """Calling the class runs its own __init__ with the arguments: no __new__, metaclass or unknown base."""
    cls = index.classes[qualname]
    lineage = [cls] + [index.classes[a] for a in ancestors(index, cls, set())]
    return all(not c.dynamic and "__new__" not in c.names and all(b in SAFE_BASES or b in index.classes
                                                                  for b in c.bases) for c in lineage)


def _plain(index: ProjectIndex, function: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> bool:
    return not function.decorator_list and name not in index.written_attributes


def _method(index: ProjectIndex, cls: ClassFacts, name: str) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef,
                                                                                bool]]:
    if cls.dynamic or name in index.written_attributes or subclass_may_define(index, cls, name):
        return []  # a subclass may override it
    defs = [n for n in cls.node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
    if len(defs) != 1 or [n for n in cls.node.body if name in set(_names_of_stmt(n))] != defs:
        return []
    decorators = [ast.unparse(d) for d in defs[0].decorator_list]
    if decorators not in ([], ["staticmethod"], ["classmethod"]):
        return []
    return [(defs[0], decorators != ["staticmethod"])]


def _names_of_stmt(node: ast.stmt) -> Iterator[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name
    for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else ():
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            yield sub.id


def _calls_on_line(tree: ast.Module, line: int) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno <= line <= (n.end_lineno or n.lineno)]


def _callee_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _call_fails(call: ast.Call, function: ast.FunctionDef | ast.AsyncFunctionDef, drop_first: bool) -> bool:
    """Binding the call's arguments to the signature certainly fails (as Python would bind them)."""
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return False
    args = function.args
    positional = [a.arg for a in [*args.posonlyargs, *args.args]][1 if drop_first else 0:]
    if drop_first and not [*args.posonlyargs, *args.args]:
        return False
    posonly = {a.arg for a in args.posonlyargs}
    with_default = set(positional[len(positional) - len(args.defaults):]) if args.defaults else set()
    if len(call.args) > len(positional):
        return args.vararg is None
    assigned = set(positional[:len(call.args)])
    keyword_names = set(positional) - posonly | {a.arg for a in args.kwonlyargs}
    for keyword in call.keywords:
        if keyword.arg in assigned and keyword.arg not in posonly:
            return True
        if keyword.arg not in keyword_names:
            if args.kwarg is None:
                return True
            continue
        assigned.add(str(keyword.arg))
    required_kwonly = {a.arg for a, default in zip(args.kwonlyargs, args.kw_defaults, strict=True) if default is None}
    return bool((set(positional) - with_default - assigned) | (required_kwonly - assigned))
