"""A config file's tables, read and validated: lpkg.toml (keys at the top) or `[tool.lpkg]` in pyproject.toml.

Apart from lpkg.config, which imports it only when a config file was found: a build of a folder with no
config file does not define these classes nor compile the validation (start-up counts).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lpkg.config import (
    LPKG_TOML,
    NOT_SET,
    Table,
    checked_env,
    checked_ignore,
    is_builtin_event,
    read_toml,
    resolve_against,
)
from lpkg.errors import UsageError
from lpkg.handler import parse_handler
from lpkg.runtimes import MAX_TIMEOUT_SECONDS, get_runtime, parse_arch

T = TypeVar("T")

# The defaults table's keys; "functions" holds the per-function tables.
DEFAULT_KEYS = ("runtime", "arch", "out", "build-image", "image", "layers", "source-roots", "exclude", "timeout",
                "event", "env", "ignore", "requirements-base", "functions")
FUNCTION_KEYS = ("handler", "runtime", "arch", "exclude", "source-roots", "timeout", "event", "env", "ignore",
                 "requirements-base")

@dataclass(frozen=True)
class ProjectConfig:
    """A config file's content. `path` is None when no file was found."""

    path: Path | None = None
    defaults: Table = NOT_SET
    functions: Mapping[str, Table] = field(default_factory=dict)


def load_config(path: Path) -> ProjectConfig:
    """Read and validate a config file: lpkg.toml (keys at the top) or pyproject.toml ([tool.lpkg])."""
    data = read_toml(path)
    if path.name == LPKG_TOML:
        table, prefix = data, ""
    else:
        tool = data.get("tool", {})
        table = tool.get("lpkg", {}) if isinstance(tool, dict) else {}
        prefix = "tool.lpkg."
        if not isinstance(table, dict):
            raise UsageError(f"{path}: tool.lpkg must be a table")
    base = path.parent
    defaults = _parse_table(table, DEFAULT_KEYS, path, prefix, base)
    functions: dict[str, Table] = {}
    raw_functions = table.get("functions", {})
    if not isinstance(raw_functions, dict):
        raise UsageError(f"{path}: {prefix}functions must be a table of tables, one per function folder")
    for name, raw in raw_functions.items():
        key = f"{prefix}functions.{_toml_key(name)}"
        if not isinstance(raw, dict):
            raise UsageError(f"{path}: {key} must be a table")
        functions[name] = _parse_table(raw, FUNCTION_KEYS, path, key + ".", base)
    return ProjectConfig(path=path, defaults=defaults, functions=functions)


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


def _parse_table(raw: Mapping[str, Any], allowed: tuple[str, ...], path: Path, prefix: str, base: Path) -> Table:
    for key in raw:
        if key not in allowed:
            import difflib  # only to suggest a key for a typo

            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys here: {', '.join(allowed)}"
            raise UsageError(f"{path}: unknown key {prefix}{key}", hint=hint)
    values = _TableValues(raw, path, prefix, base)
    out = values.text("out")
    event = values.text("event")
    return Table(
        runtime=values.checked("runtime", get_runtime),
        arch=values.checked("arch", parse_arch),
        out=None if out is None else resolve_against(base, out),
        build_image=values.text("build-image"),
        image=values.text("image"),
        layers=values.paths("layers"),
        source_roots=values.paths("source-roots"),
        exclude=values.strings("exclude"),
        handler=values.checked("handler", parse_handler),
        timeout=values.seconds("timeout"),
        event=event if event is None or is_builtin_event(event) else str(resolve_against(base, event)),
        env=values.env(),
        ignore=values.ignore(),
        requirements_base=None if (rb := values.text("requirements-base")) is None else resolve_against(base, rb),
    )


class _TableValues:
    """One table's values, each checked for its type; an error names the file and the key."""

    def __init__(self, raw: Mapping[str, Any], path: Path, prefix: str, base: Path) -> None:
        self.raw, self.path, self.prefix, self.base = raw, path, prefix, base

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"{self.path}: {self.prefix}{key} must be a non-empty string, not {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise UsageError(f"{self.path}: {self.prefix}{key} must be a list of strings, not {value!r}")
        return tuple(value)

    def paths(self, key: str) -> tuple[Path, ...] | None:
        values = self.strings(key)
        return None if values is None else tuple(resolve_against(self.base, v) for v in values)

    def checked(self, key: str, convert: Callable[[str], T]) -> T | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            return convert(value)
        except UsageError as exc:
            raise UsageError(f"{self.path}: {self.prefix}{key}: {exc.message}", hint=exc.hint) from None

    def seconds(self, key: str) -> float | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= MAX_TIMEOUT_SECONDS:
            raise UsageError(f"{self.path}: {self.prefix}{key} must be a number of seconds from 1 to "
                             f"{MAX_TIMEOUT_SECONDS:g}, not {value!r}")
        return float(value)

    def env(self) -> tuple[tuple[str, str], ...] | None:
        value = self.raw.get("env")
        if value is None:
            return None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise UsageError(f"{self.path}: {self.prefix}env must be a table of strings (NAME = \"value\"), "
                             f"not {value!r}")
        try:
            return tuple(sorted(checked_env(k, v) for k, v in value.items()))
        except UsageError as exc:
            raise UsageError(f"{self.path}: {self.prefix}env: {exc.message}", hint=exc.hint) from None

    def ignore(self) -> tuple[str, ...] | None:
        codes = self.strings("ignore")
        try:
            return None if codes is None else checked_ignore(codes)
        except UsageError as exc:
            raise UsageError(f"{self.path}: {self.prefix}ignore: {exc.message}", hint=exc.hint) from None
