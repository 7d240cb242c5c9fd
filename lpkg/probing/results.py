"""The probe's JSON document -> findings and the smoke invoke's result, with paths turned into zip members."""

from __future__ import annotations

import dataclasses
import errno
import re
from collections.abc import Callable
from typing import Any

from lpkg.invocation import Invocation, StackFrame
from lpkg.probing.request import ProbeOutcome
from lpkg.report import Finding, Severity
from lpkg.runtimes import (
    LAYER_ROOT,
    PROBE_MAX_PROCESSES,
    PROBE_MEMORY_MB,
    TASK_ROOT,
    TMP_ROOT,
)


def _member(path: str | None, outcome: ProbeOutcome) -> str | None:
    if not path:
        return None
    for root, prefix in ((outcome.task_root, ""), (outcome.opt, "/opt")):
        if path.startswith(root + "/"):
            return prefix + path[len(root):] if prefix else path[len(root) + 1:]
    return path


def findings_from_probe(outcome: ProbeOutcome, timeout: float,
                        owner: Callable[[str], str | None] | None = None) -> list[Finding]:
    """`owner` tells which distribution installed a member: a finding then points at the function's own line."""
    doc = outcome.document
    findings: list[Finding] = []
    imp = doc.get("import") or {}
    status = imp.get("status")
    if status == "failed":
        findings.append(_import_failure(imp, outcome, owner))
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
    findings += _stand_in_findings(imp)
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


def _stand_in_findings(imp: dict[str, Any]) -> list[Finding]:
    """What the import test stood in for: modules a layer it has not got may provide, the runtime's (local)."""
    findings = []
    if imp.get("layer_stood_in"):
        findings.append(Finding(
            "LAYER_MODULES_STOOD_IN", Severity.WARNING,
            f"{', '.join(imp['layer_stood_in'])}: in neither the zip nor the layers attached here — a layer Lambda "
            "attaches but lpkg has not got may provide them; the import test stopped there, then went on with "
            "stand-ins, so what the code takes from them was not checked (pass that layer's zip with --layer)",
        ))
    if imp.get("stood_in"):
        findings.append(Finding(
            "RUNTIME_PROVIDED_STOOD_IN", Severity.INFO,
            f"{', '.join(imp['stood_in'])}: provided by the Lambda runtime, not on this machine — the local "
            "import used stand-ins for them, so calls into them at import time were not really made",
        ))
    return findings


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
    return None


def _network_finding(network: dict[str, Any], member: str | None, line: int | None) -> Finding:
    """The import failed for want of the network, which the probe has none of: the probe says so, with the
    failed attempt it found behind the SDK's own exception (importer.network_cause). A warning, not an error:
    Lambda's init has the network (fetching a parameter or a secret at init is common and correct), so the
    failure is the probe's; but nothing after that line was checked."""
    target = network.get("target")
    failed = f"{network.get('exception')}: {network.get('message')}"
    where = f" ({target})" if target else ""
    return Finding("INIT_NETWORK", Severity.WARNING,
                   f"importing the handler reached for the network{where} and stopped there ({failed}): the probe "
                   "has none, so the rest of the import was not checked. In Lambda the call needs a route out (in a "
                   "VPC, a NAT gateway or an endpoint), or for localhost the extension that serves it, and its time "
                   "counts against the init phase", member, line)


_FAULTHANDLER_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


def _hung_at(output: str, outcome: ProbeOutcome) -> tuple[str | None, int | None]:
    """The packaged line a hung import was running, from the stack faulthandler dumped (innermost first)."""
    for match in _FAULTHANDLER_FRAME.finditer(output):
        if match["file"].startswith((outcome.task_root + "/", outcome.opt + "/")):
            return _member(match["file"], outcome), int(match["line"])
    return None, None


def _import_failure(imp: dict[str, Any], outcome: ProbeOutcome, owner: Callable[[str], str | None] | None) -> Finding:
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
    network = imp.get("network")
    if isinstance(network, dict):
        if owner is not None:
            # The line of the function's own code that made the call, not the SDK's socket call under it.
            own = [f for f in frames if not owner(_member(f["file"], outcome) or "")]
            if own:
                member, line = _member(own[-1]["file"], outcome), own[-1]["line"]
        return _network_finding(network, member, line)
    sandbox = _sandbox_limit(imp)
    if sandbox is not None:
        code, what = sandbox
        raised = f"{error_type}: {message}" if message else error_type
        return Finding(code, Severity.ERROR, f"importing the handler {what} ({raised})", member, line)
    said = f"importing the handler raised {error_type}: {message} — Lambda's init would fail the same way"
    code_line = str(frames[-1].get("code") or "") if frames else ""
    if error_type == "KeyError" and "environ" in code_line:
        # A variable read at import: Lambda sets the function's declared variables, the probe only those it knows.
        said += (f". If Lambda sets {message} for this function, declare it (template, serverless.yml, Terraform) "
                 f"or pass --env {message.strip(chr(39))}=VALUE")
    read = [str(key) for key in imp.get("placeholders_read") or []]
    if read:
        # The project leaves these values to deploy time: the failure may be the placeholder's, not the code's.
        names = ", ".join(read)
        return Finding("INIT_EXCEPTION_PLACEHOLDER", Severity.WARNING,
                       f"importing the handler raised {error_type}: {message} — after reading {names}, whose values "
                       "the project leaves to deploy time (the import saw placeholders): not checked; give real "
                       f"values with --env ({read[0]}=...) to check it", member, line)
    return Finding("INIT_EXCEPTION", Severity.ERROR, said, member, line)


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
    if status == "ok":
        return invocation, []
    where = (culprit.member, culprit.line) if culprit else (None, None)
    invocation, finding = _failed_invocation(invocation, raw, where, timeout, outcome)
    return invocation, [finding]


def _failed_invocation(invocation: Invocation, raw: dict[str, Any], where: tuple[str | None, int | None],
                       timeout: float, outcome: ProbeOutcome) -> tuple[Invocation, Finding]:
    """A call that did not return: the invocation as Lambda would report it, and the finding that says why.
    `where`: the function's own innermost frame."""
    status, event_label = invocation.status, invocation.event
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
            "the handler called into a module the import test stands in for (one the Lambda runtime provides, "
            "which this machine lacks, or one a layer lpkg has not got may provide): the call was not checked "
            "past this line — run with Docker, or pass the layer's zip with --layer, to check it",
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
    return invocation, finding


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
