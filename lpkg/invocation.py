"""The smoke invoke's outcome (--event): the handler called once, reported the way Lambda would.

Apart from lpkg.report because only a build or verify that calls the handler needs it: an up-to-date build
never does (its result is not recorded), and does not define these classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StackFrame:
    member: str  # zip member (or /opt/... for a layer)
    line: int | None
    function: str
    code: str | None

    def describe(self) -> str:
        where = self.member if self.line is None else f"{self.member}:{self.line}"
        return f"{where} in {self.function}" + (f": {self.code}" if self.code else "")


@dataclass(frozen=True)
class Invocation:
    """The smoke invoke: the handler called once with an event, reported the way Lambda would."""

    event: str  # where the event came from: a built-in's name or a file
    status: str  # ok, failed, timeout, network, crashed, not-checked
    seconds: float | None
    context: str  # which LambdaContext was passed: "awslambdaric" (the image's own) or "emulated"
    response: str | None = None  # the serialized return value, shortened
    response_bytes: int | None = None
    output: str = ""  # what the handler printed (and logged)
    error_type: str | None = None
    error_message: str | None = None
    stack: tuple[StackFrame, ...] = ()  # the function's own frames, innermost last

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "event": self.event,
            "status": self.status,
            "seconds": self.seconds,
            "context": self.context,
            "output": self.output,
        }
        if self.status == "ok":
            doc.update(response=self.response, responseBytes=self.response_bytes)
        else:  # the shape of Lambda's error response
            doc.update(errorType=self.error_type, errorMessage=self.error_message,
                       stackTrace=[frame.describe() for frame in self.stack])
        return doc

    def lines(self) -> list[str]:
        if self.status == "ok":
            head = f"  invoke ({self.event}): returned in {self.seconds or 0:.2f}s, {self.response_bytes} bytes: " \
                f"{self.response}"
        else:
            head = f"  invoke ({self.event}): {self.error_type}: {self.error_message}"
        out = [head]
        out += [f"      {frame.describe()}" for frame in self.stack]
        out += [f"    | {line}" for line in self.output.rstrip("\n").splitlines()]
        return out
