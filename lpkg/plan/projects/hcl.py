"""Terraform files read with python-hcl2, and the few expressions lpkg can resolve without Terraform.

python-hcl2 (8.x) keeps a string literal's quotes: `"app.handler"` arrives as '"app.handler"' and an
expression `var.env` as '${var.env}', which is how a template string is told from a reference here.
Resolved: `path.module`/`path.root` (the folder), `var.x` (its default: a default the deploy may override),
`local.x`; any other reference or function call becomes a placeholder `<${aws_dynamodb_table.t.name}>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lpkg.errors import UsageError
from lpkg.plan.projects.values import Kind, Value

MAX_DEPTH = 20
_INNERMOST = re.compile(r"\$\{([^{}]*)\}")
_ESCAPES = {'\\"': '"', "\\\\": "\\", "\\n": "\n", "\\t": "\t"}
_ORDER = (Kind.LITERAL, Kind.DEFAULT, Kind.PLACEHOLDER)


@dataclass(frozen=True)
class Block:
    """One top-level block: `resource "aws_lambda_function" "fn" { ... }`."""

    kind: str  # resource, data, module, variable, locals
    labels: tuple[str, ...]  # ("aws_lambda_function", "fn")
    body: dict[str, Any]
    file: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.file.name}:{self.line}"


def parse_folder(folder: Path) -> list[Block]:
    """Every top-level block of the folder's *.tf files (not its subfolders: those are other modules)."""
    files = sorted(folder.glob("*.tf"))
    if not files:
        raise UsageError(f"{folder}: no *.tf files here", hint="name the folder of the Terraform root module")
    return [block for path in files for block in _parse_file(path)]


def _parse_file(path: Path) -> list[Block]:
    import hcl2  # python-hcl2 and lark take about 55 ms to import: only when Terraform is read
    from lark.exceptions import LarkError, UnexpectedInput

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({exc})") from None
    try:
        document = hcl2.loads(text)
    except UnexpectedInput as exc:
        token = getattr(exc, "token", None) or getattr(exc, "char", None)
        shown = str(token).strip()[:40] if token is not None else ""
        found = f"unexpected {shown!r}" if shown else "unexpected end"
        raise UsageError(f"{path}:{exc.line}: invalid HCL: {found} at column {exc.column}",
                         hint="fix the file's syntax") from None
    except (LarkError, RuntimeError, ValueError) as exc:
        raise UsageError(f"{path}: invalid HCL: {exc}", hint="fix the file's syntax") from None
    blocks: list[Block] = []
    for kind, entries in document.items():
        if not isinstance(entries, list):
            continue  # a top-level attribute, or comments
        for entry in entries:
            blocks.extend(_blocks(path, text, kind, entry))
    return blocks


def _blocks(path: Path, text: str, kind: str, entry: Any) -> list[Block]:
    """`{"\\"aws_lambda_function\\"": {"\\"fn\\"": {...}}}` -> Block(resource, (aws_lambda_function, fn))."""
    if not isinstance(entry, dict):
        return []
    if entry.get("__is_block__"):  # no labels: locals { ... }
        return [Block(kind, (), entry, path, _line(text, kind, ()))]
    found: list[Block] = []
    for label, inner in entry.items():
        if not isinstance(inner, dict):
            continue
        labels = (unquote(label),)
        if not inner.get("__is_block__"):  # a second label: resource "type" "name"
            for label2, body in inner.items():
                if isinstance(body, dict):
                    found.append(Block(kind, (*labels, unquote(label2)), body, path,
                                       _line(text, kind, (*labels, unquote(label2)))))
            continue
        found.append(Block(kind, labels, inner, path, _line(text, kind, labels)))
    return found


def _line(text: str, kind: str, labels: tuple[str, ...]) -> int:
    # python-hcl2's dict output has no positions: find the block's header in the text.
    header = r"^[ \t]*" + re.escape(kind) + "".join(r'\s+"?' + re.escape(label) + '"?' for label in labels) + r"\s*\{"
    match = re.search(header, text, re.M)
    return text.count("\n", 0, match.start()) + 1 if match else 1


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r'\\["\\nt]', lambda m: _ESCAPES[m.group(0)], text[1:-1])
    return text


@dataclass
class Evaluator:
    """Resolves the expressions lpkg can know from the files alone."""

    folder: Path  # the module's own folder: path.module
    variables: dict[str, Any] = field(default_factory=dict)  # name -> default (raw)
    locals: dict[str, Any] = field(default_factory=dict)
    each: tuple[str, Any] | None = None  # in one instance of a for_each block: each.key and each.value (raw)
    root: Path | None = None  # the root module's folder, where terraform runs (None: `folder` is the root)

    def value(self, raw: Any, depth: int = 0) -> Any:
        """Scalars -> Value; lists and maps keep their shape with Values inside."""
        if isinstance(raw, list):
            return [self.value(item, depth + 1) for item in raw]
        if isinstance(raw, dict):
            return {unquote(k): self.value(v, depth + 1) for k, v in raw.items() if not k.startswith("__")}
        if isinstance(raw, bool):
            return Value("true" if raw else "false")
        if isinstance(raw, (int, float)):
            return Value(str(raw))
        if not isinstance(raw, str):
            return Value(f"<{raw!r}>", Kind.PLACEHOLDER)
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            return self._template(unquote(raw), depth)
        whole = re.fullmatch(r"\$\{(.*)\}", raw, re.S)
        return self.reference(whole.group(1).strip() if whole else raw, depth)

    def text(self, raw: Any) -> Value | None:
        value = self.value(raw) if raw is not None else None
        return value if isinstance(value, Value) else None

    def _template(self, text: str, depth: int) -> Value:
        kinds = [Kind.LITERAL]

        def substitute(match: re.Match[str]) -> str:
            value = self.reference(match.group(1).strip(), depth + 1)
            kinds.append(value.kind)
            return value.text

        if "%{" in text:  # template directives: only Terraform can render those
            return Value(f"<{text}>", Kind.PLACEHOLDER)
        resolved = _INNERMOST.sub(substitute, text)
        return Value(resolved, max(kinds, key=_ORDER.index))

    def reference(self, expression: str, depth: int = 0) -> Value:
        if depth > MAX_DEPTH:
            return Value(f"<${{{expression}}}>", Kind.PLACEHOLDER)
        if expression == "path.module":
            return Value(str(self.folder))
        if expression in ("path.root", "path.cwd"):
            return Value(str(self.root or self.folder))
        if self.each is not None and expression == "each.key":
            return Value(self.each[0])
        if self.each is not None and expression.startswith("each.value"):
            found = self.value(self.each[1], depth + 1)
            for attribute in expression[len("each.value"):].split(".")[1:]:
                found = found.get(attribute) if isinstance(found, dict) else None
            if isinstance(found, Value):
                return found
        match = re.fullmatch(r"(var|local)\.([A-Za-z_][\w-]*)", expression)
        if match and match.group(1) == "var" and match.group(2) in self.variables:
            found = self.value(self.variables[match.group(2)], depth + 1)
            if isinstance(found, Value) and found.kind is not Kind.PLACEHOLDER:
                return Value(found.text, Kind.DEFAULT)
        if match and match.group(1) == "local" and match.group(2) in self.locals:
            found = self.value(self.locals[match.group(2)], depth + 1)
            if isinstance(found, Value):
                return found
        return Value(f"<${{{expression}}}>", Kind.PLACEHOLDER)

    def instances(self, raw: Any, depth: int = 0) -> list[tuple[str, Any]] | None:
        """A for_each's instances, (each.key, each.value), when the files say them: a map, a list or set of
        strings (`toset([...])` too), or a local or variable holding one; None when only Terraform knows."""
        if depth > MAX_DEPTH:
            return None
        if isinstance(raw, dict):
            return [(unquote(k), v) for k, v in raw.items() if not k.startswith("__")]
        if isinstance(raw, list):
            keys = [self.text(item) for item in raw]
            if any(key is None or key.kind is Kind.PLACEHOLDER for key in keys):
                return None
            # A set's each.value is its each.key: the raw item, so that it reads as the same literal.
            return list({key.text: item for key, item in zip(keys, raw, strict=True) if key is not None}.items())
        if not isinstance(raw, str):
            return None
        whole = re.fullmatch(r"\$\{(.*)\}", raw, re.S)
        expression = whole.group(1).strip() if whole else raw
        named = re.fullmatch(r"(var|local)\.([A-Za-z_][\w-]*)", expression)
        if named:
            table = self.variables if named.group(1) == "var" else self.locals
            return self.instances(table[named.group(2)], depth + 1) if named.group(2) in table else None
        listed = re.fullmatch(r"(?:toset\(\s*)?\[(?P<items>[^\[\]]*)\](?:\s*\))?", expression, re.S)
        if listed is None:
            return None
        items = [item.strip() for item in listed["items"].split(",") if item.strip()]
        if not all(re.fullmatch(r'"(?:[^"\\$%]|\\.)*"', item) for item in items):
            return None  # an element that is an expression: only Terraform knows it
        return [(unquote(item), item) for item in dict.fromkeys(items)]

    def path(self, value: Value) -> Path:
        """A path as Terraform takes it: relative ones against the folder it runs in, the root module's, also in
        a child module (which says ${path.module} for its own)."""
        path = Path(value.text)
        return (path if path.is_absolute() else (self.root or self.folder) / path).resolve()
