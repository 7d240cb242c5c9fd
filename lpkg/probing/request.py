"""What the probe is asked and what it answered, the Protocol of the two ways to run it, and the probe's files."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lpkg.archive.reader import unpack_member
from lpkg.errors import EnvironmentProblem
from lpkg.probe import payload_files
from lpkg.probing.bytecode import BytecodeStore, KeyedBytecode
from lpkg.report import Finding, Severity
from lpkg.runtimes import (
    LAYER_ROOT,
    RESPONSE_LIMIT_BYTES,
    TASK_ROOT,
    Runtime,
)

PROBE_ROOT = "/lpkg-probe"
PYC_ROOT = "/lpkg-pyc"  # the one writable mount: where the import writes what it compiles (lpkg/probing/bytecode.py)
PYC_KEPT_ROOT = "/lpkg-pyc-kept"  # read-only: the bytecode kept from earlier probes
# Folders under the scratch root that verify unpacks into; each is mounted at "/" + its name.
TASK_DIR = TASK_ROOT.lstrip("/")
LAYER_DIR = LAYER_ROOT.lstrip("/")
PROBE_DIR = PROBE_ROOT.lstrip("/")
PYC_DIR = PYC_ROOT.lstrip("/")
PYC_KEPT_DIR = PYC_KEPT_ROOT.lstrip("/")
GO_FILE = "go"  # written into the probe folder once the zip is unpacked
HOSTS_FILE = "hosts"  # in the probe folder: mounted at HOSTS_PATH (probing/docker.py)
HOSTS_PATH = "/etc/hosts"
EVENT_FILE = "event.json"  # the smoke invoke's event, in the probe folder
ENVIRONMENT_FILE = "environment.json"  # the function's declared variables, in the probe folder
GRACE_SECONDS = 20.0  # container start and the probe's own start, beyond the import timeout
# QEMU user emulation runs another CPU's code several times slower (numpy's import: under a second natively,
# 6.6 s emulated on a 2-core x86_64 machine at load 5, over 30 s at load 9), so an emulated probe gets this many
# times the function's timeout: a timeout there would be emulation's, not Lambda's.
EMULATION_SLOWDOWN = 10



@dataclass(frozen=True)
class ProbeRequest:
    """What the probe is asked to do: import the handler and, given an event, call it once."""

    handler: str
    timeout: float  # the function's timeout: the limit for the import, and for the call
    event: str | None = None  # JSON text
    function_name: str | None = None  # AWS_LAMBDA_FUNCTION_NAME in the probe
    bytecode: BytecodeStore | None = None  # lpkg build: compiled dependency modules to reuse and add to
    environment: tuple[tuple[str, str], ...] = ()  # the function's own variables, set before the import
    keyed_bytecode: KeyedBytecode | None = None  # otherwise: compiled modules kept by their source's content
    unseen_layers: tuple[str, ...] = ()  # attached in Lambda, not here: modules missing may come from them
    placeholders: tuple[str, ...] = ()  # environment keys whose value is a deploy-time placeholder

    @property
    def wall_seconds(self) -> float:
        """How long the whole probe may take before lpkg stops it from outside."""
        return self.timeout * (2 if self.event is not None else 1) + GRACE_SECONDS

    def entry_args(self, probe_root: str, runtime_provided: tuple[str, ...]) -> list[str]:
        """`runtime_provided`: the top-level modules the runtime ships (Runtime.provided_modules)."""
        args = ["--handler", self.handler, "--timeout", str(self.timeout), "--runtime-provided",
                ",".join(runtime_provided)]
        if self.event is not None:
            args += ["--event", f"{probe_root}/{EVENT_FILE}", "--invoke-timeout", str(self.timeout),
                     "--response-limit", str(RESPONSE_LIMIT_BYTES)]
        if self.function_name:
            args += ["--function-name", self.function_name]
        if self.environment:
            args += ["--environment", f"{probe_root}/{ENVIRONMENT_FILE}"]
        if self.unseen_layers:
            args += ["--unseen-layers", ",".join(self.unseen_layers)]
        if self.placeholders:
            args += ["--placeholders", ",".join(self.placeholders)]
        return args


@dataclass(frozen=True)
class ProbeOutcome:
    document: dict[str, Any]
    task_root: str  # where the task root was when the probe ran, to turn paths into members
    opt: str
    local: bool
    description: str


# Runs the probe; calls its argument once the probe is under way (its files offered, the container told to go),
# so the caller's own work beside the probe starts then and does not hold the GIL while the probe is set up.
ProbeRun = Callable[[Callable[[], None]], ProbeOutcome]


class Prober(Protocol):
    description: str

    def prepare(self, root: Path, request: ProbeRequest) -> AbstractContextManager[ProbeRun]:
        """Get ready to import the handler from `root`/var/task (layers in `root`/opt) while the caller
        fills those folders; the context gives the function that runs the probe once they are full."""
        ...


def write_probe(root: Path, request: ProbeRequest) -> Path:
    """The probe's files (and the event) under root/lpkg-probe, world-readable whatever the umask."""
    target = root / PROBE_DIR
    for rel, content, mtime in payload_files():
        unpack_member(target, rel, content, 0o644, mtime)
    if request.event is not None:
        unpack_member(target, EVENT_FILE, request.event.encode("utf-8"), 0o644)
    if request.environment:
        unpack_member(target, ENVIRONMENT_FILE, json.dumps(dict(request.environment)).encode("utf-8"), 0o644)
    target.chmod(0o755)
    return target



@dataclass(frozen=True)
class NoProbe:
    """The import test could not run anywhere (no Docker, no local interpreter of the version): the report
    says so as a warning naming what went unchecked, instead of failing the whole run."""

    reason: str
    remedy: str | None = None  # what would let it run; default: Docker or a local interpreter

    def finding(self, runtime: Runtime) -> Finding:
        remedy = self.remedy or f"Start Docker or install python{runtime.minor} for the rest"
        return Finding(
            "PROBE_NOT_RUN", Severity.WARNING,
            f"the handler was not imported ({self.reason}). Not checked: the real import as {runtime.name} does it "
            "(Runtime.ImportModuleError, Runtime.HandlerNotFound, exceptions at import time) and the import-graph "
            "walk (modules and names imported but not in the zip). Checked: structure, permissions, sizes, native "
            f"code; and for lpkg build, first-party imports. {remedy}",
        )


def parse_document(stdout: bytes, stderr: bytes, where: str) -> dict[str, Any]:
    try:
        document = json.loads(stdout.decode("utf-8", "replace"))
    except ValueError:
        text = stderr.decode("utf-8", "replace").strip()
        tail = text.splitlines()[-5:]
        hint = "is it a Lambda Python image (a python at /var/lang/bin/python3)?"
        if "exec format error" in text:
            hint = "the image is for another CPU: running arm64 images on x86_64 needs qemu-user-static and binfmt"
        raise EnvironmentProblem(f"the probe did not run in {where}: " + (" | ".join(tail) or "no output"),
                                 hint=hint) from None
    if not isinstance(document, dict):
        raise EnvironmentProblem(f"the probe in {where} printed something other than its report")
    return document

