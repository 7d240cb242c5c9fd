"""The Serverless Framework's `${...}` variables, resolved inside serverless.yml where the file says it.

`${self:a.b}` is looked up in the file; `${sls:stage}` is provider.stage (else "dev", its default);
`${aws:region}` is provider.region when literal. `${opt:..}` and `${env:..}` are the deploy's command line
and environment, unknown here: their fallback (`${opt:stage, 'dev'}`) is used and reported as a default.
Everything else (`${ssm:..}`, `${cf:..}`, `${s3:..}`, `${file(..)}`, ...) becomes a placeholder `<${ssm:/x}>`.
The host's environment is never read: a build must not depend on who runs it.
"""

from __future__ import annotations

import re
from typing import Any

from lpkg.plan.projects.cfn_yaml import Intrinsic, scalar_text
from lpkg.plan.projects.values import Kind

MAX_DEPTH = 20  # a variable chain deeper than this is a cycle
DEFAULT_STAGE = "dev"
_QUOTED = re.compile(r"""^(['"])(.*)\1$""", re.S)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_ORDER = (Kind.LITERAL, Kind.DEFAULT, Kind.PLACEHOLDER)


def _worst(*kinds: Kind) -> Kind:
    return max(kinds, key=_ORDER.index)


class Unresolved(Exception):
    """A source of a variable that is not known here; the next fallback is tried."""


class VariableResolver:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def resolve(self, value: Any, depth: int = 0) -> tuple[Any, Kind]:
        """The value with every variable in it resolved (strings, lists and mappings, recursively)."""
        if depth > MAX_DEPTH:
            return "<variable cycle>", Kind.PLACEHOLDER
        if isinstance(value, str):
            return self._text(value, depth)
        if isinstance(value, Intrinsic):
            return value.placeholder(), Kind.PLACEHOLDER
        if isinstance(value, list):
            items = [self.resolve(item, depth + 1) for item in value]
            return [item for item, _ in items], _worst(Kind.LITERAL, *(kind for _, kind in items))
        if isinstance(value, dict):
            pairs = {key: self.resolve(item, depth + 1) for key, item in value.items()}
            return {k: v for k, (v, _) in pairs.items()}, _worst(Kind.LITERAL, *(kind for _, kind in pairs.values()))
        return value, Kind.LITERAL

    def resolve_text(self, value: Any) -> tuple[str | None, Kind]:
        """A scalar setting resolved to text; None when it is not set or not a scalar."""
        if value is None:
            return None, Kind.LITERAL
        resolved, kind = self.resolve(value)
        return scalar_text(resolved), kind

    def _text(self, text: str, depth: int) -> tuple[Any, Kind]:
        parts = _split(text)
        if len(parts) == 1 and isinstance(parts[0], _Expression):
            return self._expression(parts[0].inner, depth)  # the whole string: the referenced value itself
        pieces: list[str] = []
        kind = Kind.LITERAL
        for part in parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            value, part_kind = self._expression(part.inner, depth)
            pieces.append(scalar_text(value) or str(value))
            kind = _worst(kind, part_kind)
        return "".join(pieces), kind

    def _expression(self, inner: str, depth: int) -> tuple[Any, Kind]:
        """One `${...}`: its sources in order, the first known one wins."""
        resolved_inner, inner_kind = self._text(inner, depth + 1) if "${" in inner else (inner, Kind.LITERAL)
        if inner_kind is Kind.PLACEHOLDER or not isinstance(resolved_inner, str):
            return f"<${{{inner}}}>", Kind.PLACEHOLDER
        for index, source in enumerate(_split_sources(resolved_inner)):
            try:
                value, kind = self._source(source, depth)
            except Unresolved:
                continue
            return value, _worst(kind, inner_kind, Kind.DEFAULT if index else Kind.LITERAL)
        return f"<${{{inner}}}>", Kind.PLACEHOLDER

    def _source(self, source: str, depth: int) -> tuple[Any, Kind]:
        quoted = _QUOTED.match(source)
        if quoted:
            return quoted.group(2), Kind.LITERAL
        if _NUMBER.match(source):
            return source, Kind.LITERAL
        if source.startswith("self:"):
            return self._self(source.removeprefix("self:"), depth)
        if source == "sls:stage":
            stage = self._lookup("provider.stage")
            if stage is None:
                return DEFAULT_STAGE, Kind.DEFAULT
            return self.resolve(stage, depth + 1)
        if source == "aws:region" and self._lookup("provider.region") is not None:
            return self.resolve(self._lookup("provider.region"), depth + 1)
        raise Unresolved(source)  # opt:, env:, ssm:, cf:, s3:, file(...), aws:accountId, ...

    def _self(self, dotted: str, depth: int) -> tuple[Any, Kind]:
        found = self._lookup(dotted)
        if found is None:
            raise Unresolved(dotted)
        return self.resolve(found, depth + 1)

    def _lookup(self, dotted: str) -> Any:
        node: Any = self.document
        for key in filter(None, dotted.split(".")):
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                return None
        return node


class _Expression:
    def __init__(self, inner: str) -> None:
        self.inner = inner


def _split(text: str) -> list[str | _Expression]:
    """Literal text and `${...}` expressions (nesting allowed); an unclosed `${` stays text."""
    parts: list[str | _Expression] = []
    position = 0
    while (start := text.find("${", position)) != -1:
        end = _closing(text, start + 2)
        if end is None:
            break
        if start > position:
            parts.append(text[position:start])
        parts.append(_Expression(text[start + 2:end].strip()))
        position = end + 1
    if position < len(text):
        parts.append(text[position:])
    return parts


def _closing(text: str, position: int) -> int | None:
    depth = 1
    for index in range(position, len(text)):
        if text.startswith("${", index):
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def _split_sources(inner: str) -> list[str]:
    """`opt:stage, self:provider.stage, 'dev'` -> its sources; commas inside quotes or parentheses stay."""
    sources: list[str] = []
    current: list[str] = []
    quote: str | None = None
    parens = 0
    for char in inner:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            parens += 1
        elif char == ")":
            parens -= 1
        elif char == "," and parens == 0:
            sources.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    sources.append("".join(current).strip())
    return [s for s in sources if s]
