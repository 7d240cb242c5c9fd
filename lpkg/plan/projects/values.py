"""Values as a project declares them: literal, a default the deploy may override, or a placeholder."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    LITERAL = "literal"  # what Lambda will see
    DEFAULT = "default"  # a parameter's or variable's default: what Lambda sees unless the deploy overrides it
    PLACEHOLDER = "placeholder"  # known only at deploy time: `<!Ref Table>`, `<${ssm:/x}>`


@dataclass(frozen=True)
class Value:
    text: str
    kind: Kind = Kind.LITERAL

    def combined(self, other: Value) -> Kind:
        """The kind of a text made of both: the least known of the two."""
        return least_known(self.kind, other.kind)


def least_known(*kinds: Kind) -> Kind:
    """The kind of a text made of parts of these kinds (LITERAL for none)."""
    order = (Kind.LITERAL, Kind.DEFAULT, Kind.PLACEHOLDER)
    return max(kinds, key=order.index, default=Kind.LITERAL)


@dataclass(frozen=True)
class Environment:
    """Environment variables as the DeclaredFunction fields want them."""

    variables: tuple[tuple[str, str], ...]
    placeholders: tuple[str, ...]
    defaulted: tuple[str, ...]


def environment_of(values: dict[str, Value]) -> Environment:
    return Environment(
        variables=tuple(sorted((k, v.text) for k, v in values.items())),
        placeholders=tuple(sorted(k for k, v in values.items() if v.kind is Kind.PLACEHOLDER)),
        defaulted=tuple(sorted(k for k, v in values.items() if v.kind is Kind.DEFAULT)),
    )
