"""What it means that the handler's module is not in the zip or a layer: Lambda's ImportModuleError, unless an
exec wrapper starts the function from the file the handler names (the Lambda Web Adapter's `Handler: run.sh`)."""

from __future__ import annotations

from lpkg.handler import Handler
from lpkg.report import Finding, Severity
from lpkg.runtimes import EXEC_WRAPPER


def missing_handler(handler: Handler, wrapper: str | None) -> tuple[Finding, str]:
    """The finding for a handler module that is not there, and what the probe line says instead."""
    if wrapper is not None:
        return Finding(
            "HANDLER_RUN_BY_WRAPPER", Severity.WARNING,
            f"the handler {handler.string} is a file that {EXEC_WRAPPER}={wrapper} starts (as the Lambda Web Adapter "
            "does), not a Python module: there is no handler to import, so what it starts was not import-tested",
        ), f"not run: {EXEC_WRAPPER} starts the function"
    return Finding(
        "HANDLER_MISSING", Severity.ERROR,
        f"the handler module {handler.module} is not in the zip or a layer "
        f"(looked for {', '.join(handler.module_files())}); Lambda would fail with "
        "Runtime.ImportModuleError — check the handler setting and the zip's top level",
    ), "not run: the handler module is missing"
