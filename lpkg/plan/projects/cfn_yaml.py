"""YAML as CloudFormation, SAM and the Serverless Framework write it: PyYAML's safe loader, plus the
short-form intrinsic tags (`!Ref X`, `!Sub ...`, `!GetAtt A.B`, any `!Name`) and the line of every key.

Why PyYAML and not cfn-lint's decoder: `import cfnlint.decode` takes about 0.36 s and cfn-lint installs
about 85 MB (sympy, networkx); PyYAML imports in about 15 ms and is 3 MB (docs-projects.md has the
figures). Only the tags and the lines are needed here, and they take a few constructors.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lpkg.errors import UsageError

# libyaml's loader when PyYAML was built with it (about 10x faster); the pure-Python one otherwise.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Tags whose CloudFormation function is not "Fn::<tag>".
_TAG_FUNCTIONS = {"Ref": "Ref", "Condition": "Condition"}


@dataclass(frozen=True)
class Intrinsic:
    """A CloudFormation intrinsic function, short (`!Sub x`) or long (`{"Fn::Sub": x}`) form."""

    function: str  # "Ref", "Fn::Sub", "Fn::GetAtt", ...
    argument: Any
    line: int

    @property
    def short_name(self) -> str:
        return self.function.removeprefix("Fn::")

    def placeholder(self) -> str:
        """What the import test sees instead of the deploy-time value: `<!Ref Environment>`."""
        return f"<!{self.short_name} {_argument_text(self.argument)}>"


class LineDict(dict[Any, Any]):
    """A YAML mapping that remembers the line (1-based) of itself and of each of its keys."""

    def __init__(self) -> None:
        super().__init__()
        self.line = 0
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


def _argument_text(argument: Any) -> str:
    if isinstance(argument, Intrinsic):
        return argument.placeholder()
    if isinstance(argument, list):
        if len(argument) == 2 and all(isinstance(a, str) for a in argument):
            return ".".join(argument)  # Fn::GetAtt [Table, Arn], the long form of !GetAtt Table.Arn
        return "[" + ", ".join(_argument_text(a) for a in argument) + "]"
    if isinstance(argument, dict):
        return "{" + ", ".join(f"{k}: {_argument_text(v)}" for k, v in argument.items()) + "}"
    return str(argument)


class _CfnLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader with CloudFormation's tags; constructors are registered below."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a scalar",
                                                    key_node.start_mark) from None
        if key in result.key_lines:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {result.key_lines[key]})", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    if len(result) == 1:
        (key,) = result
        if isinstance(key, str) and (key == "Ref" or key.startswith("Fn::")):
            return Intrinsic(key, result[key], result.line)
    return result


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Intrinsic:
    argument: Any
    if isinstance(node, yaml.ScalarNode):
        argument = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        argument = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        argument = _construct_mapping(loader, node)
    return Intrinsic(_TAG_FUNCTIONS.get(suffix, f"Fn::{suffix}"), argument, node.start_mark.line + 1)


def _construct_timestamp(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    # `Version: 2012-10-17` stays text: CloudFormation reads it as a string, not a date.
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


_CfnLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_CfnLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(path: Path) -> Any:
    """The YAML (or JSON) file's content: LineDicts, lists, scalars and Intrinsics. A syntax error is a
    UsageError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({exc})") from None
    try:
        return yaml.load(text, Loader=_CfnLoader)  # _CfnLoader is SafeLoader plus constructors
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UsageError(f"{where}: invalid YAML: {exc.problem or exc.context}",
                         hint="fix the file's syntax") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: invalid YAML: {exc}", hint="fix the file's syntax") from None


def scalar_text(value: Any) -> str | None:
    """A YAML scalar as the text CloudFormation would pass on (true -> "true"); None for anything else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float, datetime.date)):
        return str(value)
    return None
