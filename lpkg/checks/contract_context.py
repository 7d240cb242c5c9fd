"""Which parameters hold Lambda's context: the handler's second, and every first-party parameter it is handed
to, through any number of calls. The contract check replaces their annotations by the context model."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from lpkg.checks.contract_index import ProjectIndex, dotted
from lpkg.checks.lambda_context import CONTEXT_PASSING_DECORATORS, REPLACEABLE_ANNOTATIONS

Param = tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, ast.arg]  # (module, function, parameter)


def context_parameters(index: ProjectIndex, handler_module: str, handler_function: str) -> list[Param]:
    """The handler's context parameter and every first-party function parameter it is handed to (by name,
    positionally or by keyword, through any number of calls) whose annotation says nothing more precise."""
    handler = index.function(f"{handler_module}.{handler_function}")
    positional = [*handler.args.posonlyargs, *handler.args.args] if handler else []
    if handler is None or len(positional) < 2 or _rebinds(handler, positional[1].arg) or not _passes(handler):
        return []
    found: list[Param] = [(handler_module, handler, positional[1])]
    queue = list(found)
    seen = {id(handler)}
    while queue:
        module, function, param = queue.pop(0)
        for callee_module, callee, target in _handed_to(index, module, function, param.arg):
            if id(callee) in seen or not _replaceable(target) or _rebinds(callee, target.arg) or not _passes(callee):
                continue
            seen.add(id(callee))
            found.append((callee_module, callee, target))
            queue.append((callee_module, callee, target))
    return found


def _handed_to(index: ProjectIndex, module: str, function: ast.AST, name: str) -> Iterator[Param]:
    for call in ast.walk(function):
        if not isinstance(call, ast.Call):
            continue
        qualname = index.resolve_expr(module, call.func)
        target = _callee(index, qualname) if qualname else None
        if target is None:
            continue
        callee, skip = target
        params = [*callee.args.posonlyargs, *callee.args.args][skip:]
        for position, arg in enumerate(call.args):
            if isinstance(arg, ast.Starred):
                break
            if isinstance(arg, ast.Name) and arg.id == name and position < len(params):
                yield str(qualname).rpartition(".")[0], callee, params[position]
        by_name = {a.arg: a for a in [*callee.args.args[skip:], *callee.args.kwonlyargs]}
        for keyword in call.keywords:
            if isinstance(keyword.value, ast.Name) and keyword.value.id == name and keyword.arg in by_name:
                yield str(qualname).rpartition(".")[0], callee, by_name[keyword.arg]


def _callee(index: ProjectIndex, qualname: str) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, int] | None:
    """The function a call runs with its arguments, and how many leading parameters the call does not fill:
    a function, or a first-party class's own __init__ (self)."""
    function = index.function(qualname)
    if function is not None:
        return function, 0
    module, _, name = qualname.rpartition(".")
    nodes = index.modules[module].bindings.get(name, []) if module in index.modules else []
    cls = nodes[0] if len(nodes) == 1 and isinstance(nodes[0], ast.ClassDef) else None
    inits = [n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"] if cls else []
    return (inits[0], 1) if len(inits) == 1 and not inits[0].decorator_list else None


def _passes(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Its decorators, if any, hand it the context it was called with."""
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if (dotted(target) or "?").rpartition(".")[2] not in CONTEXT_PASSING_DECORATORS:
            return False
    return True


def _replaceable(param: ast.arg) -> bool:
    annotation = param.annotation
    if annotation is None:
        return True
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        text = annotation.value
    else:
        text = dotted(annotation) or ""
    return text.rpartition(".")[2] in REPLACEABLE_ANNOTATIONS


def _rebinds(function: ast.AST, name: str) -> bool:
    return any((isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, (ast.Store, ast.Del)))
               or (isinstance(n, (ast.Global, ast.Nonlocal)) and name in n.names) for n in ast.walk(function))
