"""The parser's view of a function's first-party code, for the contract check: modules and what their names
resolve to, classes (what each defines, its bases, whether it can be judged at all), top-level functions, the
import chains from the handler, and which parameters Lambda's context is handed to. Reads files only.
"""

from __future__ import annotations

import ast
import builtins
import functools
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from lpkg.probe.sources import defined_names

# Bases whose attributes the checker's standard-library stubs state exactly.
SAFE_BASES = frozenset({"abc.ABC", "typing.Generic", "typing.NamedTuple"} | {
    f"builtins.{name}" for name in ("object", "dict", "list", "set", "frozenset", "tuple", "str", "int", "float",
                                    "bytes")
} | {f"builtins.{name}" for name, value in vars(builtins).items()
     if isinstance(value, type) and issubclass(value, BaseException)})
# Class decorators that add no attribute a caller could read (dataclass adds dunders and fields it declares).
SAFE_DECORATORS = frozenset({"dataclass", "total_ordering", "final"})
DYNAMIC_MEMBERS = frozenset({"__getattr__", "__getattribute__", "__dict__"})
# Calls in a class's body or methods that can add attributes the parser cannot name.
CLASS_DYNAMIC_CALLS = frozenset({"setattr", "vars", "locals", "exec", "eval"})


@dataclass
class ClassFacts:
    qualname: str  # "shared.logger.StructuredLogger"
    node: ast.ClassDef
    bases: tuple[str, ...]  # resolved: "module.Class", "builtins.object", or "?" when unknowable
    names: frozenset[str]  # methods, class attributes and annotations, attributes written on self or cls
    dynamic: str = ""  # why its attributes cannot be known ("" when they can)


@dataclass
class ModuleFacts:
    name: str  # "shared.config"
    member: str  # its zip path, "shared/config.py"
    tree: ast.Module
    bindings: dict[str, list[ast.AST]] = field(default_factory=dict)  # top-level name -> its binding statements
    imported: dict[str, str] = field(default_factory=dict)  # local name -> "module" or "module.name"
    imports: tuple[str, ...] = ()  # first-party modules it imports

    @functools.cached_property
    def dynamic(self) -> bool:
        """globals(), a star import, setattr, exec, a module __getattr__: its names cannot be known."""
        return defined_names(self.tree)[1]


@dataclass
class AttributeFacts:
    """What judging an attribute needs; made only when the checker reported one (most builds: never)."""

    classes: dict[str, ClassFacts]
    written_attributes: frozenset[str]  # names assigned on anything but self/cls, or set with setattr("name")
    dynamic_writes: frozenset[str]  # modules with setattr(x, <not a constant>), vars(x) or x.__dict__
    builtins_patched: bool  # something assigns builtins.X: a name bound nowhere may still exist


@dataclass
class ProjectIndex:
    modules: dict[str, ModuleFacts]
    by_member: dict[str, str] = field(default_factory=dict)  # zip path -> module name

    @functools.cached_property
    def facts(self) -> AttributeFacts:
        return _attribute_facts(self)

    @property
    def classes(self) -> dict[str, ClassFacts]:
        return self.facts.classes

    @property
    def written_attributes(self) -> frozenset[str]:
        return self.facts.written_attributes

    @property
    def dynamic_writes(self) -> frozenset[str]:
        return self.facts.dynamic_writes

    @property
    def builtins_patched(self) -> bool:
        return self.facts.builtins_patched

    def classes_named(self, short: str) -> list[ClassFacts]:
        return [c for c in self.classes.values() if c.node.name == short]

    def resolve(self, module: str, name: str, depth: int = 0) -> str | None:
        """What `name` in `module` refers to, first-party only: "mod" or "mod.name"; None if unknown."""
        facts = self.modules.get(module)
        if facts is None or depth > 8:
            return None
        if name in facts.imported:
            target = facts.imported[name]
            if target in self.modules:
                return target
            owner, _, attr = target.rpartition(".")
            return self.resolve(owner, attr, depth + 1) if owner in self.modules else None
        if len(facts.bindings.get(name, ())) == 1:
            return f"{module}.{name}"
        return None

    def resolve_expr(self, module: str, expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Name):
            return self.resolve(module, expr.id)
        if isinstance(expr, ast.Attribute) and (owner := self.resolve_expr(module, expr.value)) in self.modules:
            return self.resolve(owner, expr.attr) if owner else None
        return None

    def function(self, qualname: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        module, _, name = qualname.rpartition(".")
        facts = self.modules.get(module)
        nodes = facts.bindings.get(name, []) if facts else []
        node = nodes[0] if len(nodes) == 1 else None
        return node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def module_name(member: str) -> str:
    parts = member[: -len(".py")].split("/") if member.endswith(".py") else member.split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def parse(data: bytes, member: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(data, member)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None  # FIRST_PARTY_SYNTAX's business


def build_index(sources: Mapping[str, bytes]) -> ProjectIndex:
    modules: dict[str, ModuleFacts] = {}
    for member, data in sorted(sources.items()):
        tree = parse(data, member) if member.endswith(".py") else None
        if tree is not None:
            name = module_name(member)
            modules[name] = ModuleFacts(name, member, tree)
    for facts in modules.values():
        _read_module(facts, modules)
    return ProjectIndex(modules, by_member={m.member: m.name for m in modules.values()})


def _attribute_facts(index: ProjectIndex) -> AttributeFacts:
    facts = AttributeFacts({}, frozenset(), frozenset(), False)
    index.__dict__["facts"] = facts  # _add_class resolves bases through the index while it is filled
    written: set[str] = set()
    dynamic_writes: set[str] = set()
    for module in index.modules.values():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ClassDef):
                _add_class(index, module, node)
        found_written, found_dynamic, patched = _attribute_writes(module.tree)
        written |= found_written
        facts.builtins_patched = facts.builtins_patched or patched
        if found_dynamic:
            dynamic_writes.add(module.name)
    facts.written_attributes = frozenset(written)
    facts.dynamic_writes = frozenset(dynamic_writes)
    return facts


def _read_module(facts: ModuleFacts, modules: Mapping[str, ModuleFacts]) -> None:
    package = facts.name if facts.member.endswith("__init__.py") else facts.name.rpartition(".")[0]
    imports: list[str] = []
    for node in facts.tree.body:
        for name in _bound_names(node):
            facts.bindings.setdefault(name, []).append(node)
    for sub in _statements(facts.tree.body):
        if isinstance(sub, ast.Import):
            for alias in sub.names:
                if alias.asname:
                    facts.imported[alias.asname] = alias.name
                else:
                    facts.imported.setdefault(alias.name.split(".")[0], alias.name.split(".")[0])
                imports.append(alias.name)
        elif isinstance(sub, ast.ImportFrom):
            base = sub.module or ""
            if sub.level:
                anchor = package.split(".") if package else []
                anchor = anchor[: len(anchor) - (sub.level - 1)] if sub.level > 1 else anchor
                base = ".".join([*anchor, *([base] if base else [])])
            imports.append(base)
            for alias in sub.names:
                if alias.name != "*":
                    full = f"{base}.{alias.name}" if base else alias.name
                    facts.imported[alias.asname or alias.name] = full
                    imports.append(full)
    facts.imports = tuple(dict.fromkeys(m for m in imports if m in modules and m != facts.name))


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement, at any depth: imports are statements, and expressions are most of a tree's nodes."""
    for node in body:
        yield node
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(node, name, None)
            if isinstance(inner, list):
                yield from _statements(inner)
        for handler in getattr(node, "handlers", ()):
            yield from _statements(handler.body)
        for case in getattr(node, "cases", ()):
            yield from _statements(case.body)


def _bound_names(node: ast.stmt) -> Iterator[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name
        return
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        for alias in node.names:
            yield alias.asname or alias.name.split(".")[0]
        return
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            yield sub.id
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield sub.name  # a def under `if`/`try`


def _add_class(index: ProjectIndex, module: ModuleFacts, node: ast.ClassDef) -> None:
    qualname = f"{module.name}.{node.name}"
    if qualname in index.classes or node not in module.tree.body:
        # a nested or conditionally defined class, or a second one of the name: not judged
        if qualname in index.classes:
            index.classes[qualname].dynamic = "defined more than once"
        index.classes.setdefault(f"{qualname}@{node.lineno}", ClassFacts(qualname, node, ("?",), frozenset(),
                                                                          "defined more than once or nested"))
        return
    bases = tuple(_resolve_base(index, module, base) for base in node.bases) or ("builtins.object",)
    index.classes[qualname] = ClassFacts(qualname, node, bases, _class_names(node), _why_dynamic(node))


def _resolve_base(index: ProjectIndex, module: ModuleFacts, base: ast.expr) -> str:
    expr = base.value if isinstance(base, ast.Subscript) else base
    text = dotted(expr)
    if text is None:
        return "?"
    first, _, rest = text.partition(".")
    target = index.resolve(module.name, first)
    if target is not None:
        return f"{target}.{rest}" if rest else target
    if first in module.imported:  # third-party or standard library
        imported = module.imported[first]
        return f"{imported}.{rest}" if rest else imported
    if first not in module.bindings and hasattr(builtins, first) and not rest:
        return f"builtins.{first}"
    return "?"


def dotted(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        owner = dotted(expr.value)
        return f"{owner}.{expr.attr}" if owner else None
    return None


def _class_names(node: ast.ClassDef) -> frozenset[str]:
    names: set[str] = set()
    for item in node.body:
        names.update(_bound_names(item))
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            names.add(item.target.id)
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.args.args:
            receiver = item.args.args[0].arg  # self, or cls of a classmethod
            for sub in ast.walk(item):
                if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, (ast.Store, ast.Del)) and \
                        isinstance(sub.value, ast.Name) and sub.value.id == receiver:
                    names.add(sub.attr)
        if isinstance(item, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__slots__"
                                                for t in item.targets):
            names.update(c.value for c in ast.walk(item.value)
                         if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return frozenset(names)


def _why_dynamic(node: ast.ClassDef) -> str:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if (dotted(target) or "?").rpartition(".")[2] not in SAFE_DECORATORS:
            return "a class decorator"
    for keyword in node.keywords:
        if keyword.arg != "metaclass" or (dotted(keyword.value) or "?").rpartition(".")[2] != "ABCMeta":
            return f"the class keyword {keyword.arg}"
    for sub in ast.walk(node):
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and sub.name in DYNAMIC_MEMBERS:
            return sub.name
        if isinstance(sub, ast.Name) and sub.id in DYNAMIC_MEMBERS:
            return sub.id
        if isinstance(sub, ast.Attribute) and sub.attr in DYNAMIC_MEMBERS:
            return sub.attr
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in CLASS_DYNAMIC_CALLS:
            return f"{sub.func.id}()"
    return ""


def _attribute_writes(tree: ast.Module) -> tuple[set[str], bool, bool]:
    """Attribute names written from outside a class's own methods, whether any write is dynamic, and whether
    builtins are patched."""
    written: set[str] = set()
    dynamic = False
    patched = False
    receivers = _method_receivers(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            if not (isinstance(node.value, ast.Name) and id(node.value) in receivers):
                written.add(node.attr)
            patched = patched or (isinstance(node.value, ast.Name) and node.value.id in ("builtins", "__builtins__"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "__setattr__":
            # object.__setattr__(self, "name", v) (frozen dataclasses), obj.__setattr__("name", v)
            names = [a.value for a in node.args[:2] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            written.update(names)
            dynamic = dynamic or not names
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "vars"):
            name = node.args[1] if node.func.id == "setattr" and len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                written.add(name.value)
            else:
                dynamic = True
            patched = patched or any(isinstance(a, ast.Name) and a.id in ("builtins", "__builtins__")
                                     for a in node.args[:1])
        elif isinstance(node, ast.Attribute) and node.attr == "__dict__":
            dynamic = True
    return written, dynamic, patched


def _method_receivers(tree: ast.Module) -> set[int]:
    """The ids of Name nodes that are a method's own self/cls, where the method's class is judged itself."""
    found: set[int] = set()
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        for item in cls.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.args.args:
                receiver = item.args.args[0].arg
                found.update(id(n) for n in ast.walk(item) if isinstance(n, ast.Name) and n.id == receiver)
    return found


def chains_from(index: ProjectIndex, handler_module: str) -> dict[str, tuple[str, ...]]:
    """The shortest import chain from the handler module to each first-party module it reaches."""
    chains: dict[str, tuple[str, ...]] = {handler_module: (handler_module,)} if handler_module in index.modules else {}
    queue = list(chains)
    while queue:
        current = queue.pop(0)
        for target in index.modules[current].imports:
            if target not in chains:
                chains[target] = (*chains[current], target)
                queue.append(target)
    return chains
