"""Running the probe with the target interpreter, and reading what it found.

Two ways to run it, one Protocol: in the Lambda runtime image through Docker (sandboxed:
no network, non-root, root-owned task root, memory and time limits), or — only where there is
no Docker and the user is told so — in a local interpreter of the same minor version.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lpkg.archive.reader import unpack_member
from lpkg.errors import EnvironmentProblem
from lpkg.probe import payload_files
from lpkg.probing.bytecode import BytecodeStore, Offered, harvest, offer
from lpkg.report import Finding, Invocation, Severity, StackFrame, notice
from lpkg.runtimes import (
    LAYER_ROOT,
    PROBE_MAX_PROCESSES,
    PROBE_MEMORY_MB,
    RESPONSE_LIMIT_BYTES,
    RUNTIME_DIR,
    RUNTIME_PROVIDED_MODULES,
    SANDBOX_USER,
    TASK_ROOT,
    TMP_ROOT,
    TMP_SIZE_MB,
    Arch,
    Runtime,
)

if TYPE_CHECKING:
    from lpkg.containers.engine import DockerSession

PROBE_ROOT = "/lpkg-probe"
PYC_ROOT = "/lpkg-pyc"  # the one writable mount: a copy of the dependency bytecode (lpkg/bytecode.py)
# Folders under the scratch root that verify unpacks into; each is mounted at "/" + its name.
TASK_DIR = TASK_ROOT.lstrip("/")
LAYER_DIR = LAYER_ROOT.lstrip("/")
PROBE_DIR = PROBE_ROOT.lstrip("/")
PYC_DIR = PYC_ROOT.lstrip("/")
# The runtime table's list, for the probe (which cannot import lpkg).
RUNTIME_PROVIDED_ARG = ",".join(RUNTIME_PROVIDED_MODULES)
GO_FILE = "go"  # written into the probe folder once the zip is unpacked
EVENT_FILE = "event.json"  # the smoke invoke's event, in the probe folder
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

    @property
    def wall_seconds(self) -> float:
        """How long the whole probe may take before lpkg stops it from outside."""
        return self.timeout * (2 if self.event is not None else 1) + GRACE_SECONDS

    def entry_args(self, probe_root: str) -> list[str]:
        args = ["--handler", self.handler, "--timeout", str(self.timeout), "--runtime-provided", RUNTIME_PROVIDED_ARG]
        if self.event is not None:
            args += ["--event", f"{probe_root}/{EVENT_FILE}", "--invoke-timeout", str(self.timeout),
                     "--response-limit", str(RESPONSE_LIMIT_BYTES)]
        if self.function_name:
            args += ["--function-name", self.function_name]
        return args


@dataclass(frozen=True)
class ProbeOutcome:
    document: dict[str, Any]
    task_root: str  # where the task root was when the probe ran, to turn paths into members
    opt: str
    local: bool
    description: str


ProbeRun = Callable[[], ProbeOutcome]


class Prober(Protocol):
    description: str

    def prepare(self, root: Path, request: ProbeRequest) -> AbstractContextManager[ProbeRun]:
        """Get ready to import the handler from `root`/var/task (layers in `root`/opt) while the caller
        fills those folders; the context gives the function that runs the probe once they are full."""
        ...


def write_probe(root: Path, request: ProbeRequest) -> Path:
    """The probe's files (and the event) under root/lpkg-probe, world-readable whatever the umask."""
    target = root / PROBE_DIR
    for rel, content in payload_files():
        unpack_member(target, rel, content, 0o644)
    if request.event is not None:
        unpack_member(target, EVENT_FILE, request.event.encode("utf-8"), 0o644)
    target.chmod(0o755)
    return target


def sandbox_options(memory_mb: int, read_only_root: bool = True) -> dict[str, Any]:
    """Every limit the probe container runs under, in one place: no network; a non-root user without
    capabilities; a read-only root file system with only /tmp writable (a tmpfs of Lambda's size); memory
    without swap; a bound on processes, so a fork bomb fails at its fork instead of filling the host.

    `read_only_root=False` where the files must be copied in (a remote daemon): Docker refuses to copy into
    a read-only root. The copies are root-owned, so the sandbox user still cannot change them."""
    options: dict[str, Any] = {
        "entrypoint": [],
        "user": SANDBOX_USER,
        "network_mode": "none",
        "mem_limit": f"{memory_mb}m",
        "memswap_limit": f"{memory_mb}m",
        "pids_limit": PROBE_MAX_PROCESSES,
        "working_dir": TASK_ROOT,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
    }
    if read_only_root:
        options["read_only"] = True
        options["tmpfs"] = {TMP_ROOT: f"rw,nosuid,nodev,mode=1777,size={TMP_SIZE_MB}m"}
    return options


def emulation_problem(session: DockerSession, arch: Arch) -> str | None:
    """None when the daemon can run `arch` containers (its own CPU, or QEMU through binfmt_misc), else why not.
    Only a daemon on this kernel can be looked into; another (remote, a desktop VM) is trusted to emulate,
    and a failure to start says so."""
    from lpkg.containers.emulation import binfmt_problem

    if session.runs_natively(arch) or not session.shares_kernel:
        return None
    problem = binfmt_problem(arch)
    return None if problem is None else f"the Docker daemon here runs {session.architecture()}, and {problem}"


class DockerProber:
    def __init__(self, image: str, runtime: Runtime, arch: Arch, memory_mb: int = PROBE_MEMORY_MB,
                 session: DockerSession | None = None) -> None:
        from lpkg.containers.engine import docker_session

        self.session = session or docker_session()
        self.image = image
        self.runtime = runtime
        self.platform = self.session.platform_for(arch)
        self.memory_mb = memory_mb
        self.session.ensure_image(image, self.platform)
        writable = f"read-only except {TMP_ROOT}" if self.session.is_local else "read-only task root"
        emulated = "" if self.platform is None else f", {arch} under emulation, time limits x{EMULATION_SLOWDOWN}"
        self.description = (f"docker:{image} (sandboxed: network none, user {SANDBOX_USER}, {writable}, "
                            f"{memory_mb} MB, at most {PROBE_MAX_PROCESSES} processes{emulated})")

    @contextlib.contextmanager
    def prepare(self, root: Path, request: ProbeRequest) -> Iterator[ProbeRun]:
        if self.platform is not None:
            request = dataclasses.replace(request, timeout=request.timeout * EMULATION_SLOWDOWN)
        write_probe(root, request)
        command = [self.runtime.interpreter, "-I", "-S", f"{PROBE_ROOT}/entry.py", *request.entry_args(PROBE_ROOT),
                   "--memory-mb", str(self.memory_mb), "--lambda-path", json.dumps(self.runtime.sys_path())]
        options = sandbox_options(self.memory_mb, read_only_root=self.session.is_local)
        if self.platform is not None:
            options["platform"] = self.platform
        mounts = {TASK_DIR: TASK_ROOT, LAYER_DIR: LAYER_ROOT, PROBE_DIR: PROBE_ROOT}
        for rel in mounts:
            (root / rel).mkdir(parents=True, exist_ok=True)
            (root / rel).chmod(0o755)
        # A remote daemon does without the bytecode store: copying it in and out would cost what it saves.
        store = request.bytecode if self.session.is_local else None
        pyc = _bytecode_folder(root) if store is not None else None
        if self.session.is_local:
            # Read-only bind mounts of lpkg's own scratch copy: no copying, and nothing can write back.
            options["volumes"] = {str(root / rel): {"bind": dest, "mode": "ro"} for rel, dest in mounts.items()}
        if pyc is not None:
            # Writable, and a copy: what the sandbox writes there reaches the store only through harvest().
            options["volumes"][str(pyc)] = {"bind": PYC_ROOT, "mode": "rw"}
            command += ["--pycache", PYC_ROOT]
        go = root / PROBE_DIR / GO_FILE
        if self.session.is_local:
            # Started now and waiting for the go file, so the container and its interpreter start while
            # the caller unpacks: the bind mounts show the files the moment they are written.
            command += ["--wait-for", f"{PROBE_ROOT}/{GO_FILE}"]
        # Leaving the block: the start and the copy (if still going) are waited for before the container is
        # removed and the scratch folder with it.
        with self.session.container(self.image, command, **options) as container, \
                ThreadPoolExecutor(max_workers=2, thread_name_prefix="lpkg-probe") as helpers:
            # Starting takes the daemon a few hundred milliseconds: on a thread, beside the caller's unpacking;
            # so does copying the dependency bytecode in.
            started = helpers.submit(container.start) if self.session.is_local else None
            pending = helpers.submit(_offer_bytecode, store, pyc) if store and pyc else None

            def run() -> ProbeOutcome:
                offered = pending.result() if pending is not None else None
                if started is not None:
                    started.result()  # the start's own error, if it failed
                    go.touch()
                else:
                    # A remote daemon cannot see this machine's folders: copy them in (root-owned, so the
                    # sandbox user cannot write to them either).
                    container.put_folders({dest: root / rel for rel, dest in mounts.items()})
                result = container.run(request.wall_seconds)
                if result.timed_out:
                    document: dict[str, Any] = {"import": {"status": "timeout", "seconds": request.wall_seconds}}
                elif result.oom_killed or result.exit_code == 137:
                    document = {"import": {"status": "crashed", "returncode": 137, "output": "killed: out of memory"}}
                else:
                    document = _parse_document(result.stdout, result.stderr, self.image)
                description = self.description
                if store is not None and offered is not None:
                    description += _harvest_bytecode(store, offered, root / TASK_DIR, document)
                return ProbeOutcome(document, TASK_ROOT, LAYER_ROOT, False, description)

            yield run


def _bytecode_folder(root: Path) -> Path | None:
    """The probe's writable bytecode folder, for any user (the sandbox's is not lpkg's)."""
    folder = root / PYC_DIR
    try:
        folder.mkdir()
        folder.chmod(0o777)
    except OSError:
        return None  # no store this time: the import compiles everything, as without one
    return folder


def _offer_bytecode(store: BytecodeStore, folder: Path) -> Offered | None:
    try:
        return offer(store, folder)
    except OSError:
        return None  # the import compiles what is missing, and nothing is kept


def _harvest_bytecode(store: BytecodeStore, offered: Offered, task_root: Path, document: dict[str, Any]) -> str:
    """Keep what the probe compiled; a few words for the probe's description."""
    facts = document.get("bytecode") or {}
    loaded = (document.get("import") or {}).get("bytecode_loaded") or []
    try:
        magic = bytes.fromhex(str(facts.get("magic")))
        cache_tag = str(facts["cache_tag"])
        result = harvest(store, offered, task_root, magic, cache_tag, frozenset(map(str, loaded)))
    except (KeyError, ValueError, OSError):
        return ""  # the probe did not say what its bytecode looks like: keep nothing
    said = [f"{result.reused} reused"] if result.reused else []
    said += [f"{result.kept} compiled and kept"] if result.kept else []
    return f"; dependency bytecode: {', '.join(said)} (in a writable copy at {PYC_ROOT})" if said else ""


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


def local_interpreter(runtime: Runtime) -> str | None:
    """A python3.X of the runtime's minor version that answers: on PATH, or the Lambda images' own."""
    for candidate in (shutil.which(f"python{runtime.minor}"), runtime.interpreter):
        if candidate and Path(candidate).is_file() and _answers_as(candidate, runtime):
            return candidate  # (a pyenv shim of a version not installed does not answer)
    return None


def in_lambda_image(interpreter: str, runtime: Runtime) -> bool:
    """True inside a Lambda (build) image: its /var/lang/bin/python3.X is Lambda's interpreter on Lambda's OS."""
    return Path(interpreter).absolute().parent == Path(runtime.interpreter).parent


class LocalProber:
    """The probe in a subprocess of a local python3.X: isolated (-I, a scrubbed environment, a temporary
    working folder) but not sandboxed; other OS and glibc unless it is the Lambda image's own interpreter."""

    def __init__(self, runtime: Runtime) -> None:
        found = local_interpreter(runtime)
        if found is None:
            raise EnvironmentProblem(
                f"no Docker daemon and no local python{runtime.minor} to import the handler with",
                hint=f"start Docker, install python{runtime.minor}, or use --probe none for host checks only",
            )
        self.interpreter = found
        self.runtime = runtime
        if in_lambda_image(found, runtime):
            self.description = (
                f"local:{found} (the Lambda image's interpreter and OS; NOT sandboxed: the network is not cut off)"
            )
        else:
            self.description = (
                f"local:{found} (NOT sandboxed; this machine's OS and libraries, not Lambda's: "
                "native libraries and glibc are checked on the host only)"
            )

    @contextlib.contextmanager
    def prepare(self, root: Path, request: ProbeRequest) -> Iterator[ProbeRun]:
        # request.bytecode is not used: without a sandbox the probe could write anything into the store, and a
        # local probe is the fallback, not the path worth speeding up.
        yield lambda: self.run(root, request)

    def run(self, root: Path, request: ProbeRequest) -> ProbeOutcome:
        probe = write_probe(root, request)
        task_root, opt = str(root / TASK_DIR), str(root / LAYER_DIR)
        runtime_dir = str(root / RUNTIME_DIR.lstrip("/"))
        command = [
            self.interpreter, "-I", "-S", str(probe / "entry.py"), *request.entry_args(str(probe)),
            "--task-root", task_root, "--opt", opt, "--runtime-dir", runtime_dir, "--stand-ins",
            "--memory-mb", str(PROBE_MEMORY_MB),
            "--lambda-path", json.dumps(self.runtime.sys_path(task_root, opt, runtime_dir)),
        ]
        with tempfile.TemporaryDirectory(prefix="lpkg-local-home-") as home:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "TMPDIR": home}
            try:
                proc = subprocess.run(
                    command, cwd=task_root, env=env, stdin=subprocess.DEVNULL,
                    capture_output=True, timeout=request.wall_seconds,
                )
            except subprocess.TimeoutExpired:
                document: dict[str, Any] = {"import": {"status": "timeout", "seconds": request.timeout}}
            else:
                document = _parse_document(proc.stdout, proc.stderr, self.interpreter)
        return ProbeOutcome(document, task_root, opt, True, self.description)


def _answers_as(interpreter: str, runtime: Runtime) -> bool:
    try:
        proc = subprocess.run(
            [interpreter, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and proc.stdout.strip() == runtime.minor


def _parse_document(stdout: bytes, stderr: bytes, where: str) -> dict[str, Any]:
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


def not_emulated(arch: Arch, reason: str) -> NoProbe:
    return NoProbe(f"cannot run {arch} code here: {reason}",
                   f"Run lpkg where {arch} containers run (QEMU registered with binfmt_misc, with the F flag) "
                   "for the rest")


def _docker_prober(image: str, runtime: Runtime, arch: Arch) -> Prober | NoProbe:
    from lpkg.containers.engine import docker_session

    session = docker_session()
    problem = emulation_problem(session, arch)
    if problem is not None:
        return not_emulated(arch, problem)
    return DockerProber(image, runtime, arch, session=session)


def _local_prober(runtime: Runtime, arch: Arch) -> LocalProber | NoProbe:
    from lpkg.containers.emulation import host_arch

    here = host_arch()
    if here != arch:
        # A local interpreter runs this machine's CPU: it cannot load the zip's native code.
        return not_emulated(arch, f"a local python{runtime.minor} runs {here or 'another CPU'} code")
    return LocalProber(runtime)


def choose_prober(mode: str, runtime: Runtime, image: str, arch: Arch = "x86_64") -> Prober | NoProbe | None:
    """`auto`: Docker when a daemon answers, else a local interpreter (said on stderr), else no import test
    (a warning in each report). `none`: not asked for. Another CPU runs under emulation where this machine
    can; elsewhere there is no import test either."""
    if mode == "none":
        return None
    if mode == "docker":
        return _docker_prober(image, runtime, arch)
    if mode == "local":
        return _local_prober(runtime, arch)
    try:
        return _docker_prober(image, runtime, arch)
    except EnvironmentProblem as docker_problem:
        try:
            prober = _local_prober(runtime, arch)
        except EnvironmentProblem:
            reason = f"{docker_problem.message}, and there is no local python{runtime.minor}"
            notice(f"{reason}: the handler is not imported; static checks only")
            return NoProbe(reason)
        if isinstance(prober, NoProbe):
            notice(f"{docker_problem.message}, and {prober.reason}: the handler is not imported; static checks only")
            return NoProbe(f"{docker_problem.message}, and {prober.reason}", prober.remedy)
        if in_lambda_image(prober.interpreter, runtime):
            notice(f"{docker_problem.message}: importing the handler with this Lambda image's {prober.interpreter}"
                   " (NOT sandboxed)")
        else:
            notice(f"{docker_problem.message}: importing the handler with {prober.interpreter} instead, NOT sandboxed"
                   " and not on Lambda's OS")
        return prober


def _member(path: str | None, outcome: ProbeOutcome) -> str | None:
    if not path:
        return None
    for root, prefix in ((outcome.task_root, ""), (outcome.opt, "/opt")):
        if path.startswith(root + "/"):
            return prefix + path[len(root):] if prefix else path[len(root) + 1:]
    return path


def findings_from_probe(outcome: ProbeOutcome, timeout: float) -> list[Finding]:
    doc = outcome.document
    findings: list[Finding] = []
    imp = doc.get("import") or {}
    status = imp.get("status")
    if status == "failed":
        findings.append(_import_failure(imp, outcome))
    elif status == "timeout":
        member, line = _hung_at(imp.get("output") or "", outcome)
        findings.append(Finding(
            "INIT_TIMEOUT", Severity.ERROR,
            f"importing the handler did not finish within {timeout:g} s and was stopped"
            + (" while running this line" if member else "")
            + "; Lambda's init phase would time out too: move slow work (network calls, big downloads) out of"
            " module level",
            member, line,
        ))
    elif status == "crashed" and imp.get("returncode") in (137, -9):
        findings.append(Finding(
            "INIT_OUT_OF_MEMORY", Severity.ERROR,
            f"the interpreter importing the handler was killed, probably for using more than the probe's "
            f"{PROBE_MEMORY_MB} MB: {(imp.get('output') or '').strip()[-300:]} — reduce import-time work or memory",
        ))
    elif status == "crashed":
        findings.append(Finding(
            "INIT_CRASHED", Severity.ERROR,
            f"the interpreter importing the handler exited with status {imp.get('returncode')}: "
            f"{(imp.get('output') or '').strip()[-300:]}",
        ))
    elif status == "ok" and not imp.get("callable", True):
        findings.append(Finding("HANDLER_NOT_CALLABLE", Severity.ERROR,
                                "the handler name resolves to something that is not a function"))
    if imp.get("stood_in"):
        findings.append(Finding(
            "RUNTIME_PROVIDED_STOOD_IN", Severity.INFO,
            f"{', '.join(imp['stood_in'])}: provided by the Lambda runtime, not on this machine — the local "
            "import used stand-ins for them, so calls into them at import time were not really made",
        ))
    walk = doc.get("walk") or {}
    if walk.get("status") == "ok":
        for raw in walk.get("findings", []):
            member = raw.get("member") or None
            findings.append(Finding(
                code=raw["code"],
                severity=Severity[raw["severity"].upper()],
                message=raw["message"],
                member=_member(member, outcome) if member and member.startswith("/") else member,
                line=raw.get("line"),
                chain=tuple(raw.get("chain", ())),
            ))
    elif walk.get("status") in ("failed", "crashed", "timeout"):
        findings.append(Finding("WALK_INCOMPLETE", Severity.WARNING,
                                f"the import-graph walk did not finish ({walk.get('message') or walk.get('status')});"
                                " the real import above is still the judge"))
    elif walk.get("status") == "skipped":
        findings.append(Finding("WALK_SKIPPED", Severity.INFO, f"import-graph walk skipped: {walk.get('reason')}"))
    return findings


_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EADDRNOTAVAIL}


def _sandbox_limit(imp: dict[str, Any]) -> tuple[str, str] | None:
    """Which of the sandbox's limits (Lambda's own) an import-time exception ran into, if any."""
    exception, number = imp.get("exception"), imp.get("errno")
    if exception == "MemoryError":
        return "INIT_OUT_OF_MEMORY", (
            f"ran out of memory: the probe allows {PROBE_MEMORY_MB} MB, as a function configured with that "
            "much — reduce import-time work or memory, or raise the function's memory")
    if number == errno.EAGAIN and exception == "BlockingIOError":
        return "INIT_PROCESS_LIMIT", (
            f"could not start a process: it started more than the {PROBE_MAX_PROCESSES} the probe allows "
            "(Lambda allows 1,024) — don't start processes at import time")
    if number == errno.EROFS:
        return "INIT_WRITES_OUTSIDE_TMP", (
            f"wrote outside {TMP_ROOT}, which Lambda's read-only file system refuses — write to {TMP_ROOT}, "
            "or not at import time")
    if exception in ("gaierror", "herror", "timeout", "TimeoutError") or number in _NETWORK_ERRNOS:
        return "INIT_NETWORK", (
            "used the network, which the probe has none of (Lambda's init may have it, but slowly and "
            "counting against the init timeout) — make network calls in the handler, not at import time")
    return None


_FAULTHANDLER_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


def _hung_at(output: str, outcome: ProbeOutcome) -> tuple[str | None, int | None]:
    """The packaged line a hung import was running, from the stack faulthandler dumped (innermost first)."""
    for match in _FAULTHANDLER_FRAME.finditer(output):
        if match["file"].startswith((outcome.task_root + "/", outcome.opt + "/")):
            return _member(match["file"], outcome), int(match["line"])
    return None, None


def _import_failure(imp: dict[str, Any], outcome: ProbeOutcome) -> Finding:
    error_type = str(imp.get("error_type") or "INIT_EXCEPTION")
    message = str(imp.get("message") or "")
    member, line = None, None
    syntax = imp.get("syntax")
    frames = imp.get("frames") or []
    if syntax:
        member, line = _member(syntax.get("file"), outcome), syntax.get("line")
    elif frames:
        member, line = _member(frames[-1]["file"], outcome), frames[-1]["line"]
    if outcome.local:  # say /var/task as Lambda would, not the scratch folder it ran from
        message = message.replace(outcome.task_root, TASK_ROOT).replace(outcome.opt, LAYER_ROOT)
    if error_type.startswith("Runtime."):
        return Finding(error_type, Severity.ERROR, f"Lambda would fail with {error_type}: {message}", member, line)
    sandbox = _sandbox_limit(imp)
    if sandbox is not None:
        code, what = sandbox
        raised = f"{error_type}: {message}" if message else error_type
        return Finding(code, Severity.ERROR, f"importing the handler {what} ({raised})", member, line)
    return Finding("INIT_EXCEPTION", Severity.ERROR,
                   f"importing the handler raised {error_type}: {message} — Lambda's init would fail the same way",
                   member, line)


def invocation_from_probe(
    outcome: ProbeOutcome, event_label: str, timeout: float, owner: Callable[[str], str | None]
) -> tuple[Invocation | None, list[Finding]]:
    """The smoke invoke's result, and a finding when it failed. `owner` tells which distribution a
    member was installed by: those frames are libraries', and the report points at the function's own."""
    raw = (outcome.document.get("import") or {}).get("invoke")
    if not isinstance(raw, dict):
        return None, []
    status = str(raw.get("status"))
    frames: list[dict[str, Any]] = raw["stack"] if isinstance(raw.get("stack"), list) else raw.get("frames") or []
    stack = [frame for frame in (_frame(f, outcome) for f in frames) if frame is not None]
    own = tuple(f for f in stack if _packaged(f.member) and not owner(f.member))
    culprit = own[-1] if own else None
    invocation = Invocation(
        event=event_label, status=status, seconds=raw.get("seconds"), context=str(raw.get("context", "?")),
        response=raw.get("response"), response_bytes=raw.get("response_bytes"),
        output=str(raw.get("output") or ""),
        error_type=raw.get("error_type"), error_message=raw.get("message"), stack=own,
    )
    where = (culprit.member, culprit.line) if culprit else (None, None)
    if status == "ok":
        return invocation, []
    if status == "failed":
        finding = Finding(
            "INVOKE_ERROR", Severity.ERROR,
            f"calling the handler with {event_label} raised {invocation.error_type}: {invocation.error_message}"
            " — Lambda would answer the first request with this error",
            *where,
        )
    elif status == "network":
        target = raw.get("target")
        invocation = _replace_error(invocation, "lpkg.NoNetwork", f"network access to {target} during the smoke test")
        finding = Finding(
            "INVOKE_NETWORK", Severity.ERROR,
            f"the handler reached for the network ({target}); the smoke test runs with no network, so it was "
            "stopped there — smoke-test a path that needs no network (a health check), or check this call "
            "after deploy",
            *where,
        )
    elif status == "timeout":
        member, line = _hung_at(str(raw.get("stack") or ""), outcome)
        invocation = _replace_error(invocation, "Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds")
        finding = Finding(
            "INVOKE_TIMEOUT", Severity.ERROR,
            f"the handler did not return within {timeout:g} s (the function's timeout, --timeout) and was stopped"
            + (" while running this line" if member else ""),
            member, line,
        )
    elif status == "stood_in":
        invocation = _replace_error(invocation, "lpkg.StoodIn", str(raw.get("message")))
        finding = Finding(
            "INVOKE_NOT_CHECKED", Severity.WARNING,
            "the handler called into a module the Lambda runtime provides, which this machine lacks (the local "
            "probe stands in for it): the call was not checked past this line — run with Docker to check it",
            *where,
        )
    else:
        code = raw.get("returncode")
        why = "killed, probably out of memory" if code in (137, -9) else f"exited with status {code}"
        invocation = _replace_error(invocation, "Runtime.ExitError", f"the runtime {why} during the call")
        finding = Finding(
            "INVOKE_CRASHED", Severity.ERROR,
            f"the process running the handler {why} while the handler ran: {str(raw.get('stack') or '')[-300:]}",
            *where,
        )
    return invocation, [finding]


def _replace_error(invocation: Invocation, error_type: str, message: str) -> Invocation:
    return dataclasses.replace(invocation, error_type=error_type, error_message=message)


def _frame(raw: dict[str, Any], outcome: ProbeOutcome) -> StackFrame | None:
    member = _member(raw.get("file"), outcome)
    if member is None:
        return None
    return StackFrame(member, raw.get("line"), str(raw.get("function") or "?"), raw.get("code"))


def _packaged(member: str) -> bool:
    """A member of the zip or a layer, not the runtime's or the interpreter's own file."""
    return not member.startswith("/") or member.startswith(LAYER_ROOT + "/")
