"""Contracts without an event: what certainly raises when a line of first-party code runs, on every branch.

The one module that runs the type checker (ty, in a subprocess). It type-checks a temporary copy of the
function's first-party code laid out as in the zip, with the zip's installed dependencies as the checker's
search path; in that copy the annotation of the handler's context parameter, and of every first-party
parameter the context is handed to, is replaced by a class generated from Lambda's context model
(lambda_context.py). Of the checker's diagnostics only the kinds that raise at run time are kept, and each
only when the host's parser confirms it (contract_rules.py): a receiver whose class is first-party with known
bases and no dynamic attributes, a name bound nowhere, a call no binding of the signature accepts.
Nothing packaged is imported or run here: files are only read, and the checker only reads them too.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lpkg.checks import contract_calls, contract_context, contract_index, contract_rules, lambda_context
from lpkg.checks.contract_calls import confirm_call
from lpkg.checks.contract_context import context_parameters
from lpkg.checks.contract_index import ProjectIndex, build_index, chains_from
from lpkg.checks.contract_rules import Diagnostic, confirm
from lpkg.report import Finding, Severity

CHECKER = "ty"
# The checker's rules whose diagnostics can mean "raises when it runs"; every other rule is off.
RULES = ("missing-attribute", "unresolved-reference", "missing-argument", "too-many-positional-arguments",
         "unknown-argument", "parameter-already-assigned")
TIMEOUT_SECONDS = 120
_IGNORE = re.compile(r"#\s*lpkg:\s*ignore(?:\[([A-Za-z0-9_,\s]*)\])?")
_CONTEXT_IMPORT = (f"\nfrom {lambda_context.STUB_MODULE} import {lambda_context.CONTEXT_CLASS}"
                   "  # added by lpkg's contract check\n").encode()


@dataclass(frozen=True)
class ContractInputs:
    files: Mapping[str, Path]  # first-party code: zip path ("shared/config.py") -> the file on disk
    search_path: tuple[Path, ...]  # the installed dependencies (the zip's site folders), first wins
    handler_module: str  # "handler", "service.handlers.orders"
    handler_function: str
    python_version: str  # "3.11"
    ignored_codes: frozenset[str] = frozenset()  # the config setting that turns codes off


def check_contracts(inputs: ContractInputs, cache_dir: Path | None) -> list[Finding]:
    """Errors for what certainly raises at run time in first-party code the handler imports."""
    try:
        return _checked(inputs, cache_dir)
    except (OSError, RecursionError) as exc:
        # A file the system will not read or lay out again (a path past PATH_MAX under the temporary folder, a
        # nesting too deep for pathlib): the check is skipped and the report says so; the probe still judges.
        why = getattr(exc, "strerror", None) or ("folders nested too deep" if isinstance(exc, RecursionError) else exc)
        return [Finding("CONTRACTS_NOT_CHECKED", Severity.WARNING,
                        f"the contract check did not run ({why}): attributes, names and calls were not checked")]


def _checked(inputs: ContractInputs, cache_dir: Path | None) -> list[Finding]:
    sources = {member: path.read_bytes() for member, path in inputs.files.items()
               if member.endswith(".py") and path.is_file()}
    cache_file = cache_dir / "contracts" / f"{_cache_key(inputs, sources)}.json" if cache_dir else None
    findings = _read_cache(cache_file) if cache_file else None
    if findings is None:
        findings, complete = _check(inputs, sources)
        if cache_file and complete:
            _write_cache(cache_file, findings)
    return [f for f in findings if f.code not in inputs.ignored_codes]


def _check(inputs: ContractInputs, sources: Mapping[str, bytes]) -> tuple[list[Finding], bool]:
    index = build_index(sources)
    chains = chains_from(index, inputs.handler_module)
    if not chains:
        return [], True  # the handler module is not first-party Python here: HANDLER_MISSING's business
    root = Path(tempfile.mkdtemp(prefix="lpkg-contracts-"))
    try:
        write_layout(root, inputs, index, sources)
        diagnostics, problem = _run_checker(root, inputs)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if problem:
        return [Finding("CONTRACTS_NOT_CHECKED", Severity.WARNING,
                        f"the contract check did not run ({problem}): attributes, names and calls were not checked; "
                        "reinstall lpkg (it brings ty), or report it to us")], False
    findings: dict[tuple[str, int, str], Finding] = {}
    for diagnostic in diagnostics:
        module = index.by_member.get(diagnostic.member)
        if module not in chains:
            continue  # not first-party, or never imported from the handler: it does not run
        confirmed = (confirm_call if diagnostic.rule in contract_calls.RULES else confirm)(index, diagnostic)
        if confirmed is None or _ignored(sources[diagnostic.member], diagnostic.line, confirmed.code):
            continue
        key = (diagnostic.member, diagnostic.line, confirmed.message)
        findings.setdefault(key, Finding(confirmed.code, Severity.ERROR, confirmed.message, member=diagnostic.member,
                                         line=diagnostic.line, chain=chains[module]))
    return sorted(findings.values(), key=lambda f: (f.member or "", f.line or 0, f.code)), True


def write_layout(root: Path, inputs: ContractInputs, index: ProjectIndex, sources: Mapping[str, bytes]) -> None:
    """The zip's first-party code under root/code, Lambda's context in place of its annotations, a Python
    environment of its own (nothing of this machine's) whose only packages are the search path.
    benchmarks/contracts.py gives the other checkers the same copy."""
    shadowed = _shadow_context(index, sources, inputs)
    code = root / "code"
    for member, data in sources.items():
        target = code / member
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(shadowed.get(member, data))
    (code / f"{lambda_context.STUB_MODULE}.pyi").write_text(lambda_context.context_stub_source())
    site = root / "env" / "lib" / f"python{inputs.python_version}" / "site-packages"
    site.mkdir(parents=True)
    (root / "env" / "bin").mkdir()  # pyvenv.cfg's home: an interpreter's folder with no interpreter in it
    (root / "env" / "pyvenv.cfg").write_text(f"home = {root / 'env' / 'bin'}\nversion_info = {inputs.python_version}\n")
    (site / "lpkg-search-path.pth").write_text("".join(f"{p.resolve()}\n" for p in inputs.search_path))
    rules = "\n".join(f'{rule} = "error"' for rule in RULES)
    (root / "ty.toml").write_text(f'[rules]\nall = "ignore"\n{rules}\n\n[src]\nrespect-ignore-files = false\n')


def _shadow_context(index: ProjectIndex, sources: Mapping[str, bytes], inputs: ContractInputs) -> dict[str, bytes]:
    """Each file with a context parameter, its annotation replaced (on the same line, so lines keep their numbers)
    and the generated class imported at the end."""
    edits: dict[str, list[tuple[int, int, int, bytes]]] = {}  # member -> (line, start, end, text)
    quoted = f'"{lambda_context.CONTEXT_CLASS}"'.encode()
    for module, _, param in context_parameters(index, inputs.handler_module, inputs.handler_function):
        member = index.modules[module].member
        annotation = param.annotation
        if annotation is None:
            edit = (param.lineno, param.end_col_offset or 0, param.end_col_offset or 0, b": " + quoted)
        elif annotation.lineno == annotation.end_lineno:
            edit = (annotation.lineno, annotation.col_offset, annotation.end_col_offset or 0, quoted)
        else:
            continue
        edits.setdefault(member, []).append(edit)
    shadowed: dict[str, bytes] = {}
    for member, changes in edits.items():
        lines = sources[member].splitlines(keepends=True)
        for line, start, end, text in sorted(changes, reverse=True):
            lines[line - 1] = lines[line - 1][:start] + text + lines[line - 1][end:]
        body = b"".join(lines)
        shadowed[member] = (body if body.endswith(b"\n") else body + b"\n") + _CONTEXT_IMPORT
    return shadowed


def _run_checker(root: Path, inputs: ContractInputs) -> tuple[list[Diagnostic], str]:
    binary = _checker_binary()
    if binary is None:
        return [], "ty is not installed beside lpkg"
    # The checker must see nothing of this machine: no virtual environment, no user configuration.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(root), "XDG_CONFIG_HOME": str(root / "xdg")}
    command = [binary, "check", "--project", str(root / "code"), "--config-file", str(root / "ty.toml"),
               "--python", str(root / "env"), "--python-version", inputs.python_version,
               "--python-platform", "linux", "--output-format", "gitlab", "--no-progress", "--color", "never",
               str(root / "code")]
    try:
        done = subprocess.run(command, cwd=root / "code", env=env, capture_output=True, timeout=TIMEOUT_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired:
        return [], f"ty did not finish within {TIMEOUT_SECONDS} s"
    except OSError as exc:
        return [], f"ty could not be started: {exc}"
    # Status 2 with a report: ty could not read a file (not UTF-8, say), and checked the others.
    failed = f"ty exited with status {done.returncode}: {done.stderr.decode(errors='replace').strip()[-300:]}"
    try:
        entries = json.loads(done.stdout or b"[]")
        if not isinstance(entries, list) or (done.returncode not in (0, 1) and not entries):
            return [], failed
        return [d for d in (_diagnostic(entry, root / "code") for entry in entries) if d is not None], ""
    except (ValueError, KeyError, TypeError) as exc:
        return [], failed if done.returncode not in (0, 1) else f"ty's output could not be read ({exc})"


_BINARY_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _locate_binary() -> str | None:
    try:
        from ty import find_ty_bin  # the package only locates its binary

        return find_ty_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which(CHECKER)


def _checker_binary() -> str | None:
    # Once per process, under a lock: ty's locator reads sysconfig, whose first read is not thread-safe (two
    # functions built side by side saw a config variable as None).
    with _BINARY_LOCK:
        return _locate_binary()


def _diagnostic(entry: dict[str, object], code: Path) -> Diagnostic | None:
    """None for a diagnostic outside the copied code (about the configuration, say)."""
    location = entry["location"]
    assert isinstance(location, dict)
    path = Path(str(location["path"]))
    if path.is_absolute() and not path.is_relative_to(code):
        return None
    member = (path.relative_to(code) if path.is_absolute() else path).as_posix()
    if member.startswith("../"):
        return None
    begin = location["positions"]["begin"]
    rule = str(entry["check_name"])
    message = str(entry["description"]).removeprefix(f"{rule}: ")
    return Diagnostic(rule, message, member, int(begin["line"]), int(begin["column"]))


def _ignored(data: bytes, line: int, code: str) -> bool:
    lines = data.splitlines()
    text = lines[line - 1].decode(errors="replace") if 0 < line <= len(lines) else ""
    for match in _IGNORE.finditer(text):
        if match.group(1) is None or code in {c.strip() for c in match.group(1).split(",")}:
            return True
    return False


def _cache_key(inputs: ContractInputs, sources: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    own = [Path(m.__file__ or "") for m in (contract_calls, contract_context, contract_index, contract_rules,
                                                   lambda_context)]
    own.append(Path(__file__))
    from importlib import metadata  # only here: it takes longer to import than the rest of this module

    try:
        checker = metadata.version(CHECKER)
    except metadata.PackageNotFoundError:
        checker = "missing"
    header = {"checker": checker, "python": inputs.python_version, "handler": [inputs.handler_module,
              inputs.handler_function], "search": [_folder_identity(p) for p in inputs.search_path]}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for path in own:
        digest.update(path.read_bytes())
    for member in sorted(sources):
        digest.update(f"\0{member}\0{len(sources[member])}\0".encode() + sources[member])
    return digest.hexdigest()


def _folder_identity(folder: Path) -> list[str]:
    """Cheap and enough: the folder's top-level names and each installed distribution's RECORD digest. Not its
    path: verify unpacks into a new scratch folder each time, and the same zip must hit the same entry."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return ["missing"]
    identity = ["folder"]
    for entry in entries:
        identity.append(entry.name)
        record = Path(entry.path) / "RECORD"
        if entry.name.endswith(".dist-info") and record.is_file():
            identity.append(hashlib.sha256(record.read_bytes()).hexdigest())
    return identity


def _read_cache(path: Path) -> list[Finding] | None:
    try:
        entries = json.loads(path.read_text())
        return [Finding(e["code"], Severity[e["severity"].upper()], e["message"], member=e["member"], line=e["line"],
                        chain=tuple(e["chain"])) for e in entries]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(path: Path, findings: list[Finding]) -> None:
    """Atomically: builds running side by side (--jobs) may write the same entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        out.write(json.dumps([f.to_json() for f in findings]))
    os.replace(scratch, path)


__all__ = ["ContractInputs", "check_contracts"]
