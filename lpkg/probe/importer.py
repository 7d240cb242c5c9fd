"""The real import: load the handler the way the Lambda runtime does, in a fresh interpreter.

Uses awslambdaric's own `_get_handler` where the image has it; otherwise the same steps
(split on the last dot, '/' to '.', importlib.import_module, getattr), so the error types
match what Lambda reports. Standard library only; Python >= 3.9.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import time
import traceback
import types
from collections.abc import Callable
from types import TracebackType
from typing import Any

MALFORMED = "Runtime.MalformedHandlerName"
IMPORT_ERROR = "Runtime.ImportModuleError"
SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
NOT_FOUND = "Runtime.HandlerNotFound"
BUILTIN_CONFLICT = "Runtime.BuiltInModuleConflict"


class Fault(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def load_handler_like_runtime(handler: str) -> Any:
    """The runtime's steps, for images without awslambdaric."""
    if "." not in handler:
        raise Fault(MALFORMED, f"Bad handler '{handler}': not enough values to unpack (expected 2, got 1)")
    modname, fname = handler.rsplit(".", 1)
    if modname.split(".")[0] in sys.builtin_module_names:
        raise Fault(BUILTIN_CONFLICT, f"Cannot use built-in module {modname} as a handler module")
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as exc:
        raise Fault(IMPORT_ERROR, f"Unable to import module '{modname}': {exc}") from exc
    except SyntaxError as exc:
        raise Fault(SYNTAX_ERROR, f"Syntax error in module '{modname}': {exc}") from exc
    try:
        return getattr(module, fname)
    except AttributeError:
        raise Fault(NOT_FOUND, f"Handler '{fname}' missing on module '{modname}'") from None


def runtime_loader() -> tuple[Callable[[str], Any], str]:
    try:
        from awslambdaric.bootstrap import _get_handler  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - any failure means: use the emulation
        return load_handler_like_runtime, "emulated"
    return _get_handler, "awslambdaric"


# Modules the Lambda runtime provides (lpkg's runtime table, passed in by the entry). A local probe (no
# Docker) usually lacks them, and nearly every function imports boto3 at module level: without a
# stand-in the import test would stop there.
RUNTIME_PROVIDED = tuple(m for m in os.environ.get("LPKG_PROBE_RUNTIME_PROVIDED", "").split(",") if m)


class _StandInValue:
    """Whatever the code does with a stand-in at import time (call it, read attributes) succeeds."""

    def __call__(self, *args: object, **kwargs: object) -> _StandInValue:
        return self

    def __getattr__(self, name: str) -> _StandInValue:
        if name.startswith("__"):
            raise AttributeError(name)
        return self


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        # Capitalised names are classes more often than not (exceptions to catch, bases to subclass).
        value: object = type(name, (Exception,), {"__module__": self.__name__}) if name[:1].isupper() \
            else _StandInValue()
        setattr(self, name, value)
        return value


class _StandInLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StandInModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        STOOD_IN.add(module.__name__.split(".")[0])


class _StandInFinder(importlib.abc.MetaPathFinder):
    """Last on sys.meta_path: used only when the zip and the interpreter do not have the module."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] not in RUNTIME_PROVIDED:
            return None
        return importlib.util.spec_from_loader(fullname, _StandInLoader(), is_package=True)


STOOD_IN: set[str] = set()


def user_frames(tb: TracebackType | None, roots: tuple[str, ...]) -> list[dict[str, Any]]:
    """Frames in packaged code (under the task root or /opt), innermost last."""
    frames = []
    for frame in traceback.extract_tb(tb):
        if frame.filename.startswith(roots):
            frames.append({"file": frame.filename, "line": frame.lineno, "code": frame.line})
    return frames


def describe_failure(exc: BaseException, roots: tuple[str, ...]) -> dict[str, Any]:
    error_type = getattr(exc, "exception_type", None) or getattr(exc, "error_type", None)
    message = getattr(exc, "msg", None) or getattr(exc, "message", None) or str(exc)
    cause = exc.__cause__ or exc.__context__ if error_type else exc
    if cause is None:
        cause = exc
    frames = user_frames(cause.__traceback__, roots)
    result: dict[str, Any] = {
        "status": "failed",
        "error_type": error_type or type(exc).__name__,
        "message": message,
        "exception": type(cause).__name__,
        "frames": frames,
    }
    if isinstance(cause, SyntaxError):
        result["syntax"] = {"file": cause.filename, "line": cause.lineno, "text": (cause.text or "").rstrip()}
    if isinstance(cause, ImportError):
        result["missing_name"] = cause.name
        result["missing_path"] = cause.path
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handler", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--sys-path", required=True)
    parser.add_argument("--task-root", required=True)
    parser.add_argument("--opt", required=True)
    parser.add_argument("--runtime-dir", required=True)
    parser.add_argument("--probe-lib", required=True)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    sys.path[:] = json.loads(args.sys_path)
    roots = (args.task_root.rstrip("/") + "/", args.opt.rstrip("/") + "/")
    get_handler, how = runtime_loader()
    if os.environ.get("LPKG_PROBE_STAND_INS") == "1":
        sys.meta_path.append(_StandInFinder())
    result: dict[str, Any]
    # If the import hangs, the stack shortly before the kill says on which line.
    faulthandler.dump_traceback_later(max(0.5, args.timeout - 0.7), exit=False)
    started = time.monotonic()
    try:
        handler = get_handler(args.handler)
    except BaseException as exc:  # noqa: BLE001 - packaged code may raise anything, SystemExit included
        result = describe_failure(exc, roots)
    else:
        result = {"status": "ok", "callable": callable(handler)}
    faulthandler.cancel_dump_traceback_later()
    result["import_seconds"] = round(time.monotonic() - started, 3)
    if result.get("error_type") == NOT_FOUND:
        # The module loaded but lacks the function: point at the module's file.
        module = sys.modules.get(args.handler.rsplit(".", 1)[0].replace("/", "."))
        module_file = getattr(module, "__file__", None)
        if module_file:
            result["frames"] = [{"file": module_file, "line": None, "code": None}]
    result["loader"] = how
    result["stood_in"] = sorted(STOOD_IN)
    with open(args.result, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
