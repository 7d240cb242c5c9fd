"""Running the probe with the target interpreter, and reading what it found.

Two ways to run it, one Protocol: in the Lambda runtime image through Docker (sandboxed:
no network, non-root, root-owned task root, memory and time limits), or — only where there is
no Docker and the user is told so — in a local interpreter of the same minor version.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lpkg.archive import unpack_member
from lpkg.errors import EnvironmentProblem
from lpkg.probe import payload_files
from lpkg.report import Finding, Severity
from lpkg.runtimes import LAYER_ROOT, RUNTIME_DIR, RUNTIME_PROVIDED_MODULES, SANDBOX_USER, TASK_ROOT, Runtime

PROBE_ROOT = "/lpkg-probe"
# Folders under the scratch root that verify unpacks into; each is mounted at "/" + its name.
TASK_DIR = TASK_ROOT.lstrip("/")
LAYER_DIR = LAYER_ROOT.lstrip("/")
PROBE_DIR = PROBE_ROOT.lstrip("/")
# The runtime table's list, for the probe (which cannot import lpkg).
RUNTIME_PROVIDED_ARG = ",".join(RUNTIME_PROVIDED_MODULES)
GO_FILE = "go"  # written into the probe folder once the zip is unpacked
GRACE_SECONDS = 20.0  # container start and the probe's own start, beyond the import timeout


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

    def prepare(self, root: Path, handler: str, timeout: float) -> AbstractContextManager[ProbeRun]:
        """Get ready to import the handler from `root`/var/task (layers in `root`/opt) while the caller
        fills those folders; the context gives the function that runs the probe once they are full."""
        ...


def write_probe(root: Path) -> Path:
    """The probe's files under root/lpkg-probe, world-readable whatever the umask."""
    target = root / PROBE_DIR
    for rel, content in payload_files():
        unpack_member(target, rel, content, 0o644)
    target.chmod(0o755)
    return target


class DockerProber:
    def __init__(self, image: str, memory_mb: int = 1024) -> None:
        from lpkg.container import docker_session

        self.session = docker_session()
        self.image = image
        self.memory_mb = memory_mb
        self.session.ensure_image(image)
        self.description = f"docker:{image} (sandboxed: network none, user {SANDBOX_USER}, read-only task root)"

    @contextlib.contextmanager
    def prepare(self, root: Path, handler: str, timeout: float) -> Iterator[ProbeRun]:
        write_probe(root)
        command = [
            "/var/lang/bin/python3", "-I", "-S", f"{PROBE_ROOT}/entry.py",
            "--handler", handler, "--timeout", str(timeout), "--runtime-provided", RUNTIME_PROVIDED_ARG,
        ]
        options: dict[str, Any] = {
            "entrypoint": [],
            "user": SANDBOX_USER,
            "network_mode": "none",
            "mem_limit": f"{self.memory_mb}m",
            "memswap_limit": f"{self.memory_mb}m",
            "pids_limit": 256,
            "working_dir": TASK_ROOT,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
        }
        mounts = {TASK_DIR: TASK_ROOT, LAYER_DIR: LAYER_ROOT, PROBE_DIR: PROBE_ROOT}
        for rel in mounts:
            (root / rel).mkdir(parents=True, exist_ok=True)
            (root / rel).chmod(0o755)
        if self.session.is_local:
            # Read-only bind mounts of lpkg's own scratch copy: no copying, and nothing can write back.
            options["volumes"] = {str(root / rel): {"bind": dest, "mode": "ro"} for rel, dest in mounts.items()}
        go = root / PROBE_DIR / GO_FILE
        if self.session.is_local:
            # Started now and waiting for the go file, so the container and its interpreter start while
            # the caller unpacks: the bind mounts show the files the moment they are written.
            command += ["--wait-for", f"{PROBE_ROOT}/{GO_FILE}"]
        with self.session.container(self.image, command, **options) as container:
            if self.session.is_local:
                container.start()

            def run() -> ProbeOutcome:
                if self.session.is_local:
                    go.touch()
                else:
                    # A remote daemon cannot see this machine's folders: copy them in (root-owned, so the
                    # sandbox user cannot write to them either).
                    container.put_folders({dest: root / rel for rel, dest in mounts.items()})
                result = container.run(timeout + GRACE_SECONDS)
                if result.timed_out:
                    document: dict[str, Any] = {"import": {"status": "timeout", "seconds": timeout + GRACE_SECONDS}}
                elif result.oom_killed or result.exit_code == 137:
                    document = {"import": {"status": "crashed", "returncode": 137, "output": "killed: out of memory"}}
                else:
                    document = _parse_document(result.stdout, result.stderr, self.image)
                return ProbeOutcome(document, TASK_ROOT, LAYER_ROOT, False, self.description)

            yield run


class LocalProber:
    """The probe in a subprocess of a local python3.X: no sandbox, other OS and glibc."""

    def __init__(self, runtime: Runtime) -> None:
        found = shutil.which(f"python{runtime.minor}")
        if found is not None and not _answers_as(found, runtime):
            found = None  # e.g. a pyenv shim for a version that is installed but not selected
        if found is None:
            raise EnvironmentProblem(
                f"no Docker daemon and no local python{runtime.minor} to import the handler with",
                hint=f"start Docker, install python{runtime.minor}, or use --probe none for host checks only",
            )
        self.interpreter = found
        self.description = (
            f"local:{found} (NOT sandboxed; this machine's OS and libraries, not Lambda's: "
            "native libraries and glibc are checked on the host only)"
        )

    @contextlib.contextmanager
    def prepare(self, root: Path, handler: str, timeout: float) -> Iterator[ProbeRun]:
        yield lambda: self.run(root, handler, timeout)

    def run(self, root: Path, handler: str, timeout: float) -> ProbeOutcome:
        probe = write_probe(root)
        task_root, opt = str(root / TASK_DIR), str(root / LAYER_DIR)
        command = [
            self.interpreter, "-I", "-S", str(probe / "entry.py"),
            "--handler", handler, "--timeout", str(timeout), "--runtime-provided", RUNTIME_PROVIDED_ARG,
            "--task-root", task_root, "--opt", opt,
            "--runtime-dir", str(root / RUNTIME_DIR.lstrip("/")), "--stand-ins",
        ]
        with tempfile.TemporaryDirectory(prefix="lpkg-local-home-") as home:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "TMPDIR": home}
            try:
                proc = subprocess.run(
                    command, cwd=task_root, env=env, stdin=subprocess.DEVNULL,
                    capture_output=True, timeout=timeout + GRACE_SECONDS,
                )
            except subprocess.TimeoutExpired:
                document: dict[str, Any] = {"import": {"status": "timeout", "seconds": timeout}}
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


def choose_prober(mode: str, runtime: Runtime, image: str) -> Prober | None:
    """`auto`: Docker when a daemon answers, else a local interpreter (said on stderr)."""
    if mode == "none":
        return None
    if mode == "docker":
        return DockerProber(image)
    if mode == "local":
        return LocalProber(runtime)
    try:
        return DockerProber(image)
    except EnvironmentProblem as docker_problem:
        try:
            prober = LocalProber(runtime)
        except EnvironmentProblem:
            raise EnvironmentProblem(
                docker_problem.message + f"; and there is no local python{runtime.minor} either",
                hint="the host checks (archive, sizes, permissions, native code) run without Docker: "
                "use --probe none for those alone, or start Docker for the import checks",
            ) from None
        print(
            f"lpkg: {docker_problem.message}; importing the handler with {prober.interpreter} instead,"
            " NOT sandboxed and not on Lambda's OS",
            file=sys.stderr,
        )
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
    elif status == "crashed":
        code = imp.get("returncode")
        why = "killed, probably out of memory" if code in (137, -9) else f"exited with status {code}"
        findings.append(Finding(
            "INIT_CRASHED", Severity.ERROR,
            f"the interpreter importing the handler {why}: {(imp.get('output') or '').strip()[-300:]}",
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
    return Finding("INIT_EXCEPTION", Severity.ERROR,
                   f"importing the handler raised {error_type}: {message} — Lambda's init would fail the same way",
                   member, line)
