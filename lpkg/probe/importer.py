"""The real import, then (with an event) the real call: the handler the way the Lambda runtime
loads and invokes it, in a fresh interpreter.

Uses awslambdaric's own `_get_handler`, `LambdaContext` and response marshaller where the image has
them; otherwise the same steps (split on the last dot, '/' to '.', importlib.import_module, getattr;
a context with the same attributes; json.dumps), so the error types match what Lambda reports.
Standard library only; Python >= 3.9.

One file on purpose: it runs as a script (`python -I -S importer.py`) with sys.path set to exactly Lambda's
(the task root first), and then imports the packaged code for real. A sibling module of this script would
have to be imported by a top-level name (as walk.py imports sources); it would then sit in sys.modules,
where the packaged code's own module of that name would get it instead of the code's own, and the import
test would no longer be the import Lambda does.
"""

from __future__ import annotations

import argparse
import errno
import faulthandler
import importlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import signal
import sys
import time
import traceback
import types
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from importlib.abc import Loader as _LoaderBase
    from importlib.abc import MetaPathFinder as _FinderBase
else:
    # importlib.abc imports importlib.resources, pathlib and tempfile with it: 10 ms of every probe's start in
    # the runtime image, for base classes the import system does not need (it calls the methods by name).
    _LoaderBase = _FinderBase = object

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

    def __init__(self, name: str) -> None:
        self._lpkg_name = name

    def __call__(self, *args: object, **kwargs: object) -> _StandInValue:
        if INVOKING:
            # At invoke time a call into boto3 would reach AWS; locally there is nothing behind it.
            raise StandInCalled(f"{self._lpkg_name}() called, and {self._lpkg_name.split('.')[0]} is stood in for")
        return self

    def __getattr__(self, name: str) -> _StandInValue:
        if name.startswith("__"):
            raise AttributeError(name)
        return _StandInValue(f"{self._lpkg_name}.{name}")


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        # Capitalised names are classes more often than not (exceptions to catch, bases to subclass, classes
        # whose instances the code configures at import: Logger(service=...).inject_lambda_context).
        value: object = _stand_in_class(self.__name__, name) if name[:1].isupper() \
            else _StandInValue(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


def _stand_in_class(module: str, name: str) -> type:
    """An exception class (it may be caught) whose instances take any arguments and stand in for whatever
    is asked of them."""

    def __init__(self: BaseException, *args: object, **kwargs: object) -> None:
        Exception.__init__(self, *args)

    def __getattr__(self: BaseException, attribute: str) -> _StandInValue:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return _StandInValue(f"{module}.{name}().{attribute}")

    return type(name, (Exception,), {"__module__": module, "__init__": __init__, "__getattr__": __getattr__})


class _StandInLoader(_LoaderBase):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StandInModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        STOOD_IN.add(module.__name__.split(".")[0])


class _StandInFinder(_FinderBase):
    """Last on sys.meta_path: used only when the zip and the interpreter do not have the module. For the
    runtime's modules (a local probe), and for the modules named in `names`: those an earlier try of this
    import stopped at while Lambda attaches layers the import test has not got (the entry's retries)."""

    def __init__(self, runtime: bool, names: frozenset[str]) -> None:
        self.names = (frozenset(RUNTIME_PROVIDED) if runtime else frozenset()) | names

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] not in self.names:
            return None
        return importlib.util.spec_from_loader(fullname, _StandInLoader(), is_package=True)


STOOD_IN: set[str] = set()
# Variables whose value is a deploy-time placeholder, and those of them the code read.
PLACEHOLDERS = frozenset(name for name in os.environ.get("LPKG_PROBE_PLACEHOLDERS", "").split(",") if name)
PLACEHOLDERS_READ: set[str] = set()
# Modules an unseen layer may provide that an earlier try of this import stopped at (entry.py retries).
LAYER_STAND_INS = frozenset(name for name in os.environ.get("LPKG_PROBE_LAYER_STAND_INS", "").split(",") if name)
INVOKING = False  # set while the handler is being called
NETWORK_TARGETS: list[str] = []  # the hosts the import reached for, last one last (watch_network)
# What a failed attempt to reach a host looks like in the sandbox, which has no network.
NETWORK_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.ETIMEDOUT,
                            errno.EADDRNOTAVAIL})


class StandInCalled(BaseException):
    """A stood-in module (local probe) was called during the invoke: the smoke test cannot go on.
    A BaseException, so the handler's own `except Exception` does not swallow it."""


class NetworkRefused(BaseException):
    """The handler reached for the network during the smoke invoke, which has none. A BaseException
    for the same reason: a retry loop in an SDK must not turn it into a long hang."""

    def __init__(self, target: str) -> None:
        super().__init__(f"network access to {target}")
        self.target = target


def user_frames(tb: TracebackType | None, roots: tuple[str, ...]) -> list[dict[str, Any]]:
    """Frames in packaged code (under the task root or /opt), innermost last."""
    frames = []
    for frame in traceback.extract_tb(tb):
        if frame.filename.startswith(roots):
            frames.append({"file": frame.filename, "line": frame.lineno, "function": frame.name, "code": frame.line})
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
    network = network_cause(exc)
    if network is not None:
        result["network"] = {"exception": type(network).__name__, "message": str(network),
                             "target": NETWORK_TARGETS[-1] if NETWORK_TARGETS else None}
    if isinstance(cause, SyntaxError):
        result["syntax"] = {"file": cause.filename, "line": cause.lineno, "text": (cause.text or "").rstrip()}
    if isinstance(cause, OSError):
        # The sandbox's limits show here: EROFS (a write outside /tmp), EAGAIN (too many processes), ...
        result["errno"] = cause.errno
        result["filename"] = cause.filename if isinstance(cause.filename, str) else None
    if isinstance(cause, ImportError):
        result["missing_name"] = cause.name
        result["missing_path"] = cause.path
    return result


# Lambda's own log line format, set on the root logger before the handler is imported, as the runtime
# does: `logging.basicConfig()` in a function is then a no-op there too.
LOG_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s"
REQUEST_ID = "8f507cfc-0000-4000-8000-00000000abcd"  # fixed, so reports repeat
DUMP_SIGNAL = "SIGUSR1"  # the entry sends it to a hung import (not on Windows: no stack there)
ARN_PREFIX = "arn:aws:lambda:us-east-1:123456789012:function:"
SHOWN_RESPONSE_CHARS = 1000
SHOWN_OUTPUT_CHARS = 4000


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = REQUEST_ID if INVOKING else ""
        return True


def setup_lambda_logging() -> None:
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(_RequestIdFilter())
    logging.Formatter.converter = time.gmtime
    root.addHandler(handler)


class _EmulatedContext:
    """LambdaContext's attributes, for interpreters without awslambdaric; slots, so that a name Lambda's
    context does not have (context.request_id) fails here as it would there."""

    __slots__ = (
        "_epoch_deadline_time_in_ms",
        "aws_request_id",
        "client_context",
        "function_name",
        "function_version",
        "identity",
        "invoked_function_arn",
        "log_group_name",
        "log_stream_name",
        "memory_limit_in_mb",
        "tenant_id",
    )

    def __init__(self, deadline_ms: int) -> None:
        self.aws_request_id = REQUEST_ID
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = function_arn()
        self.client_context = None
        self.identity = None
        self.tenant_id = None
        self._epoch_deadline_time_in_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._epoch_deadline_time_in_ms - int(time.time() * 1000))

    def log(self, msg: str) -> None:
        sys.stdout.write(str(msg))


def function_arn() -> str:
    return ARN_PREFIX + os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "lpkg-probe")


def make_context(timeout: float) -> tuple[Any, str]:
    deadline_ms = int((time.time() + timeout) * 1000)
    try:
        from awslambdaric.lambda_context import LambdaContext  # type: ignore[import-not-found]

        return LambdaContext(REQUEST_ID, None, None, deadline_ms, function_arn()), "awslambdaric"
    except Exception:  # noqa: BLE001 - no awslambdaric, or another signature: emulate it
        return _EmulatedContext(deadline_ms), "emulated"


def response_marshaller() -> Callable[[Any], str]:
    """The runtime's serialisation of the handler's return value (it raises Runtime.MarshalError)."""
    try:
        from awslambdaric.lambda_runtime_marshaller import LambdaMarshaller  # type: ignore[import-not-found]

        marshaller = LambdaMarshaller()

        def marshal(response: Any) -> str:
            body = marshaller.marshal_response(response)
            body = body[0] if isinstance(body, tuple) else body
            return body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)

        return marshal
    except Exception:  # noqa: BLE001 - emulate it
        def emulated(response: Any) -> str:
            try:
                return json.dumps(response)
            except (TypeError, ValueError) as exc:
                raise Fault("Runtime.MarshalError", f"Unable to marshal response: {exc}") from None

        return emulated


def network_target(event: str, args: tuple[Any, ...]) -> str | None:
    """The host (and port) an audit event reaches for, or None: not a network event, or a Unix socket."""
    if event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"):
        return f"{args[0]}" + (f":{args[1]}" if event == "socket.getaddrinfo" and args[1] else "")
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        address = args[1] if len(args) > 1 else None
        if isinstance(address, tuple) and address:
            return f"{address[0]}:{address[1]}" if len(address) > 1 else str(address[0])
    return None


def watch_network(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook. During the import: note which host the code reached for, so that an import that fails for
    want of the network (the probe has none) is said as such, naming it. While the handler runs: any attempt
    to reach another host fails at once."""
    if not event.startswith("socket."):
        return
    target = network_target(event, args)
    if target is None:
        return
    if INVOKING:
        raise NetworkRefused(target)
    NETWORK_TARGETS[:] = [target]


def network_cause(exc: BaseException) -> BaseException | None:
    """The failed attempt to reach a host behind an exception, however an SDK wrapped it: botocore's
    EndpointConnectionError, requests' ConnectionError and urllib's URLError keep it as their cause, their
    context or their `reason`. A timeout counts only if the import reached for a host."""
    pending, seen = [exc], set[int]()
    while pending and len(seen) < 50:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if type(current).__name__ in ("gaierror", "herror"):
            return current
        if isinstance(current, TimeoutError) and NETWORK_TARGETS:
            return current
        if isinstance(current, OSError) and current.errno in NETWORK_ERRNOS:
            return current
        reason = getattr(current, "reason", None)
        pending += [e for e in (current.__cause__, current.__context__, reason) if isinstance(e, BaseException)]
    return None


class _CapturedOutput:
    """File descriptors 1 and 2 redirected to a file while the handler runs: print(), logging and
    C extensions' writes alike. A named file, so the entry can read it if the call times out."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> _CapturedOutput:
        sys.stdout.flush()
        sys.stderr.flush()
        self.file = open(self.path, "w+b")
        self.saved = (os.dup(1), os.dup(2))
        os.dup2(self.file.fileno(), 1)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - the handler may have closed or replaced it
                pass
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0])
        os.close(self.saved[1])

    def text(self) -> str:
        self.file.seek(0)
        return shorten_output(self.file.read())


def shorten_output(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    return text if len(text) <= SHOWN_OUTPUT_CHARS else "…" + text[-SHOWN_OUTPUT_CHARS:]


def invoke(
    handler: Any, event_path: str, timeout: float, roots: tuple[str, ...], output_path: str, response_limit: int
) -> dict[str, Any]:
    """Call the handler as the runtime would, and describe what happened the way Lambda reports it."""
    global INVOKING
    with open(event_path, encoding="utf-8") as fh:
        event = json.load(fh)
    context, context_kind = make_context(timeout)
    marshal = response_marshaller()
    result: dict[str, Any] = {"context": context_kind}
    started = time.monotonic()
    with _CapturedOutput(output_path) as captured:
        INVOKING = True
        try:
            response = handler(event, context)
            body = marshal(response)
        except NetworkRefused as exc:
            INVOKING = False
            result.update(status="network", target=exc.target, frames=user_frames(exc.__traceback__, roots))
        except StandInCalled as exc:
            INVOKING = False
            result.update(status="stood_in", message=str(exc), frames=user_frames(exc.__traceback__, roots))
        except BaseException as exc:  # noqa: BLE001 - the handler may raise anything, SystemExit included
            INVOKING = False
            result.update(handler_error(exc, roots))
        else:
            INVOKING = False
            size = len(body.encode("utf-8"))
            if size > response_limit:
                result.update(status="failed", error_type="Function.ResponseSizeTooLarge",
                              message=f"Response payload size ({size} bytes) exceeded maximum allowed payload "
                              f"size ({response_limit} bytes).", frames=[], stack=[])
            else:
                shown = body if len(body) <= SHOWN_RESPONSE_CHARS else body[:SHOWN_RESPONSE_CHARS] + "…"
                result.update(status="ok", response=shown, response_bytes=size)
    result["seconds"] = round(time.monotonic() - started, 3)
    result["output"] = captured.text()
    return result


def handler_error(exc: BaseException, roots: tuple[str, ...]) -> dict[str, Any]:
    """errorType, errorMessage and stackTrace as Lambda's runtime builds them (bootstrap frames cut)."""
    fault_type = getattr(exc, "exception_type", None) or getattr(exc, "error_type", None)
    if fault_type:  # the runtime's own faults (Runtime.MarshalError) carry their type and message
        message = getattr(exc, "msg", None) or getattr(exc, "message", None) or str(exc)
        return {"status": "failed", "error_type": fault_type, "message": str(message), "frames": [], "stack": []}
    frames = traceback.extract_tb(exc.__traceback__)[1:]  # the first frame is invoke() here
    return {
        "status": "failed",
        "error_type": type(exc).__name__,
        "message": str(exc),
        "frames": user_frames(exc.__traceback__, roots),
        "stack": [{"file": f.filename, "line": f.lineno, "function": f.name, "code": f.line} for f in frames],
    }


def watch_placeholder_reads() -> None:
    """Note the placeholder variables the code reads (os.environ[...], .get, os.getenv all come here): an import
    that fails after reading one may have failed on the placeholder, not on the code."""
    environ_type = type(os.environ)
    read = environ_type.__getitem__

    def getitem(self: Any, key: Any) -> Any:
        value = read(self, key)  # a KeyError is no placeholder's doing
        if key in PLACEHOLDERS:
            PLACEHOLDERS_READ.add(key)
        return value

    environ_type.__getitem__ = getitem  # type: ignore[method-assign]


def end_now() -> NoReturn:
    """End the job once its result is written, as Lambda freezes a sandbox after init: threads the packaged code
    started do not keep it (and the report) waiting, and tearing down an interpreter holding numpy and pandas
    (tens of milliseconds) is skipped. What the code printed is flushed first: it is the report's output."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - the packaged code may have replaced or closed them
            pass
    os._exit(0)


def write_result(path: str, result: dict[str, Any]) -> None:
    """Whole or not at all: the entry may read it while this process is still running."""
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os.replace(partial, path)


def dump_stack_on_request() -> None:
    """If the import hangs, the entry asks for the stack (DUMP_SIGNAL) at the timeout, then kills this
    process: the report names the line that was running. Written to the real stderr, which the
    handler's captured output does not touch."""
    signum = getattr(signal, DUMP_SIGNAL, None)
    if signum is not None and hasattr(faulthandler, "register"):
        faulthandler.register(signum, file=os.dup(2), all_threads=False)


def limit_memory(megabytes: int) -> None:
    """Heap and anonymous mappings above the function's memory fail as MemoryError at the allocating line,
    which says where; the container's memory limit alone would kill the process without a word."""
    if megabytes <= 0:
        return
    try:
        import resource
    except ImportError:  # not on Windows
        return
    limit = megabytes << 20
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def keep_bytecode_in(prefix: str, task_root: str, kept: str | None = None) -> None:
    """Read and write the bytecode of task-root sources under `prefix`, in sys.pycache_prefix's layout, where
    lpkg made the source folder's mirror there (the dependency folders); read it from `kept` (read-only, the
    same layout: what earlier probes compiled) when that has it. Every other module's bytecode stays where it
    is. Not sys.pycache_prefix itself: that moves every module's bytecode, and the interpreter would compile
    its whole standard library again instead of reading the image's. A pyc that does not match its source is
    compiled again, as it would be anyway (and not written: the kept folder is read-only)."""
    from importlib import _bootstrap_external

    normal = _bootstrap_external.cache_from_source
    root = task_root.rstrip("/") + "/"
    writable, kept_prefix = prefix.rstrip("/"), (kept or "").rstrip("/")

    def cache_from_source(path: str, *args: Any, **kwargs: Any) -> str:
        cached: str = normal(path, *args, **kwargs)
        if not path.startswith(root):
            return cached
        folder, name = os.path.dirname(path), os.path.basename(cached)
        if kept_prefix:
            reused = os.path.join(kept_prefix + folder, name)
            if os.path.exists(reused):
                return reused
        return os.path.join(writable + folder, name) if os.path.isdir(writable + folder) else cached

    # The name the source loader looks up (typeshed types it as its overloads).
    _bootstrap_external.cache_from_source = cache_from_source  # type: ignore[assignment]
    sys.dont_write_bytecode = False  # the job runs with -B


def bytecode_loaded(prefix: str) -> list[str]:
    """The pycs under `prefix` of the modules imported so far (paths relative to it)."""
    start = prefix.rstrip("/") + "/"
    loaded = []
    for module in list(sys.modules.values()):
        try:
            cached = vars(module).get("__cached__")
        except Exception:  # noqa: BLE001 - sys.modules may hold any object
            continue
        if isinstance(cached, str) and cached.startswith(start):
            loaded.append(cached[len(start):])
    return sorted(loaded)


def import_handler(get_handler: Callable[[str], Any], handler_name: str, roots: tuple[str, str],
                   ) -> tuple[Any, dict[str, Any]]:
    """The import, timed: the handler (None when the import failed) and the result's first keys."""
    result: dict[str, Any]
    started = time.monotonic()
    handler = None
    main_pid = os.getpid()
    try:
        handler = get_handler(handler_name)
    except BaseException as exc:  # noqa: BLE001 - packaged code may raise anything, SystemExit included
        result = describe_failure(exc, roots)
    else:
        result = {"status": "ok", "callable": callable(handler)}
    if os.getpid() != main_pid:
        os._exit(0)  # a process the packaged code forked: only the job itself reports
    result["import_seconds"] = round(time.monotonic() - started, 3)
    if result.get("error_type") == NOT_FOUND:
        # The module loaded but lacks the function: point at the module's file.
        module = sys.modules.get(handler_name.rsplit(".", 1)[0].replace("/", "."))
        module_file = getattr(module, "__file__", None)
        if module_file:
            result["frames"] = [{"file": module_file, "line": None, "code": None}]
    return handler, result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handler", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--sys-path", required=True)
    parser.add_argument("--task-root", required=True)
    parser.add_argument("--opt", required=True)
    parser.add_argument("--runtime-dir", required=True)
    parser.add_argument("--lambda-path", required=True)  # in --sys-path already; the walk needs it apart
    parser.add_argument("--probe-lib", required=True)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--event", help="a JSON file: call the handler with it after the import")
    parser.add_argument("--invoke-timeout", type=float, default=30.0)
    parser.add_argument("--response-limit", type=int, default=6 * 1024 * 1024)
    parser.add_argument("--pycache", help="keep the task root's dependency bytecode here (keep_bytecode_in)")
    parser.add_argument("--pycache-kept", help="read-only: bytecode kept from earlier probes (keep_bytecode_in)")
    parser.add_argument("--go-fd", type=int, help="start once this pipe closes (the files are being unpacked)")
    return parser.parse_args()


def main() -> NoReturn:
    dump_stack_on_request()
    args = parse_args()
    if args.go_fd is not None:
        os.read(args.go_fd, 1)  # returns when the entry closes its end: the task root is unpacked
        os.close(args.go_fd)
    sys.path[:] = json.loads(args.sys_path)
    if args.pycache:
        keep_bytecode_in(args.pycache, args.task_root, args.pycache_kept)
    limit_memory(int(os.environ.get("LPKG_PROBE_MEMORY_MB", "0")))
    roots = (args.task_root.rstrip("/") + "/", args.opt.rstrip("/") + "/")
    get_handler, how = runtime_loader()
    runtime_stand_ins = os.environ.get("LPKG_PROBE_STAND_INS") == "1"
    if runtime_stand_ins or LAYER_STAND_INS:
        sys.meta_path.append(_StandInFinder(runtime_stand_ins, LAYER_STAND_INS))
    setup_lambda_logging()
    if PLACEHOLDERS:
        watch_placeholder_reads()
    sys.addaudithook(watch_network)
    handler, result = import_handler(get_handler, args.handler, roots)
    if result["status"] == "failed" and PLACEHOLDERS_READ:
        result["placeholders_read"] = sorted(PLACEHOLDERS_READ)
    result["loader"] = how
    if args.pycache_kept:
        result["bytecode_reused"] = bytecode_loaded(args.pycache_kept)
    result["stood_in"] = sorted(STOOD_IN - LAYER_STAND_INS)
    result["layer_stood_in"] = sorted(STOOD_IN & LAYER_STAND_INS)
    if args.event is None or result["status"] != "ok" or not result["callable"]:
        write_result(args.result, result)
        end_now()
    # The entry reads "running" if this process dies during the call: a timeout (faulthandler's
    # exit below prints the stack it stopped at) or a crash.
    result["invoke"] = {"status": "running", "timeout": args.invoke_timeout}
    write_result(args.result, result)
    # Lambda stops a handler at the function's timeout; the stack goes to the real stderr (the
    # handler's output is being captured), then the process ends.
    faulthandler.dump_traceback_later(args.invoke_timeout, exit=True, file=os.dup(2))
    result["invoke"] = invoke(handler, args.event, args.invoke_timeout, roots, args.result + ".output",
                              args.response_limit)
    faulthandler.cancel_dump_traceback_later()
    write_result(args.result, result)
    end_now()


if __name__ == "__main__":
    main()
