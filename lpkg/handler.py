"""Handler strings: parsing them as the runtime does, and finding the handler in a zip."""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lpkg.errors import UsageError
from lpkg.runtimes import EXEC_WRAPPER

# Module files Lambda users conventionally name their handler module, in order of preference.
CANDIDATE_MODULES = ("handler", "lambda_function", "app", "index", "main")
CANDIDATE_FUNCTIONS = ("handler", "lambda_handler")


@dataclass(frozen=True)
class Handler:
    module: str  # dotted: "pkg.module"
    function: str

    @property
    def string(self) -> str:
        return f"{self.module}.{self.function}"

    def module_files(self) -> tuple[str, ...]:
        """Zip members that would provide the module (source, package, extension stem)."""
        path = self.module.replace(".", "/")
        return (f"{path}.py", f"{path}/__init__.py", f"{path}.pyc")


def parse_handler(text: str) -> Handler:
    """`path/to/module.function` or `pkg.module.function`: split on the last dot, '/' becomes '.'.

    As the runtime takes it: it splits on the last dot and hands the rest to importlib.import_module, which
    finds `producer-function.py` for `producer-function` as it finds any file; names need not be identifiers
    (a missing function is the probe's HANDLER_MISSING). Refused: no dot, an empty part, whitespace or a
    control character anywhere (Lambda's API refuses whitespace in a handler)."""
    stripped = text.strip()
    module, dot, function = stripped.rpartition(".")
    module = module.replace("/", ".")
    parts = module.split(".") if module else []
    if (not dot or not parts or not all(parts) or not function
            or any(c.isspace() or not c.isprintable() for c in stripped)):
        raise UsageError(
            f"bad handler {text!r}: Lambda would fail with Runtime.MalformedHandlerName",
            hint="write MODULE.FUNCTION, e.g. handler.lambda_handler or app/main.handler",
        )
    return Handler(module, function)


@dataclass(frozen=True)
class Candidate:
    member: str
    functions: tuple[str, ...]  # handler-like functions it defines
    syntax_error: int | None = None  # line, when the file does not parse
    empty: bool = False  # no statement at all: zero bytes, a BOM, blank lines, comments


def defined_handlers(source: str) -> tuple[str, ...]:
    """Top-level functions (or assigned names) called handler or lambda_handler. Raises SyntaxError."""
    tree = _parse(source)
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in CANDIDATE_FUNCTIONS:
            found.append(node.name)
        elif isinstance(node, ast.Assign):
            found.extend(t.id for t in node.targets if isinstance(t, ast.Name) and t.id in CANDIDATE_FUNCTIONS)
    return tuple(dict.fromkeys(found))


def _parse(source: str) -> ast.Module:
    # Python skips a UTF-8 byte order mark at the start of a source file; ast.parse of the text does not.
    return ast.parse(source.removeprefix("\ufeff"))


def infer_handler(sources: dict[str, str | None]) -> Handler:
    """Pick the handler from top-level candidate modules; `sources` maps member -> text (None: unreadable)."""
    candidates: list[Candidate] = []
    for module in CANDIDATE_MODULES:
        member = f"{module}.py"
        if member not in sources:
            continue
        text = sources[member]
        if text is None:
            candidates.append(Candidate(member, (), 0))
            continue
        try:
            functions = defined_handlers(text)
        except SyntaxError as exc:
            candidates.append(Candidate(member, (), exc.lineno or 1))
            continue
        except (ValueError, MemoryError, RecursionError):
            # NUL bytes (before 3.12), or nesting deeper than the parser's own limits.
            candidates.append(Candidate(member, (), 1))
            continue
        candidates.append(Candidate(member, functions, empty=not functions and not _parse(text).body))
    defining = [c for c in candidates if c.functions]
    if len(defining) == 1 and len(defining[0].functions) == 1:
        only = defining[0]
        return Handler(only.member[:-3], only.functions[0])
    if not defining and len(candidates) == 1 and candidates[0].syntax_error is not None:
        # The one candidate does not parse: check it anyway, so the syntax error is what gets reported.
        member = candidates[0].member
        return Handler(member[:-3], "lambda_handler" if member == "lambda_function.py" else "handler")
    seen = ", ".join(_describe(c) for c in candidates) or "none of " + ", ".join(
        f"{m}.py" for m in CANDIDATE_MODULES
    )
    reason = "several candidates" if len(defining) > 1 or any(len(c.functions) > 1 for c in defining) else "no handler"
    raise UsageError(
        f"cannot tell the handler ({reason}); at the top level: {seen}",
        hint="name it with --handler MODULE.FUNCTION",
    )


def _describe(candidate: Candidate) -> str:
    if candidate.syntax_error is not None:
        return f"{candidate.member} (does not parse, line {candidate.syntax_error})"
    if candidate.empty:
        return f"{candidate.member} (empty)"
    if not candidate.functions:
        return f"{candidate.member} (defines neither handler nor lambda_handler)"
    return f"{candidate.member} (defines {', '.join(candidate.functions)})"


def started_by_wrapper(environment: Sequence[tuple[str, str]], handler: Handler,
                       has_file: Callable[[str], bool]) -> str | None:
    """The exec wrapper (AWS_LAMBDA_EXEC_WRAPPER) that starts the function from the file the handler names, or
    None: the runtime imports the handler's module."""
    wrapper = dict(environment).get(EXEC_WRAPPER)
    return wrapper if wrapper and has_file(handler.string) else None
