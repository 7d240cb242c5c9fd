"""`lpkg verify`: host checks on a zip (and its layers), then the probe, merged into one report."""

from __future__ import annotations

import contextlib
import datetime
import functools
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lpkg.archive.dists import DistributionIndex, index_distributions
from lpkg.archive.members import MemberFacts, record_added, store_limit
from lpkg.archive.reader import (
    ZipArchive,
    file_mode,
)
from lpkg.archive.unpack import UnpackJob, unpack_all
from lpkg.checks import CheckContext, Layer, NativeFile
from lpkg.checks.handler_module import missing_handler
from lpkg.checks.permissions import check_permissions
from lpkg.checks.runtime import check_runtime
from lpkg.checks.sizes import check_sizes, describe_largest, mb
from lpkg.checks.structure import check_structure
from lpkg.commands.stores import keyed_bytecode, keyed_sources, member_store_for, scratch_folder, scratch_parent
from lpkg.errors import UsageError
from lpkg.events import Event
from lpkg.handler import CANDIDATE_MODULES, Handler, infer_handler, parse_handler, started_by_wrapper
from lpkg.invocation import Invocation
from lpkg.probe.sources import analyse_source
from lpkg.probing.bytecode import BytecodeStore
from lpkg.probing.request import LAYER_DIR, TASK_DIR, NoProbe, ProbeOutcome, Prober, ProbeRequest
from lpkg.probing.results import findings_from_probe, invocation_from_probe
from lpkg.report import ArtifactReport, Finding, Severity, Stopwatch, sort_findings
from lpkg.runtimes import UNZIPPED_LIMIT_BYTES, Arch, Runtime

NATIVE_SUFFIX = re.compile(r"\.(so(\.[0-9]+)*|pyd|dylib)$")
# Findings after which unpacking or importing would be unsafe or meaningless.
BLOCKING = {"SIZE_UNZIPPED", "ZIP_CORRUPT", "ZIP_EMPTY", "ZIP_OVERLAP"}

CONTRACT_PATH_BYTES = 1024  # the longest member path the contract check lays out


@dataclass(frozen=True)
class DependencyPart:
    """The part of a zip lpkg built that is a cached dependency install (lpkg build only).

    `members` are the zip's (normalised) member names that came from the install. `bytecode` is a folder
    kept with the install between builds, in the layout of sys.pycache_prefix: the probe may read the
    compiled form of those members from it and add what its import compiled, so the next build's import
    skips compiling unchanged dependencies (lpkg.probing.bytecode)."""

    bytecode: Path
    members: frozenset[str]


@dataclass(frozen=True)
class VerifyOptions:
    runtime: Runtime
    arch: Arch
    handler: str | None = None
    layers: tuple[Path, ...] = ()
    unseen_layers: tuple[str, ...] = ()  # attached in Lambda but not here: a module missing may come from them
    placeholders: tuple[str, ...] = ()  # environment keys whose value is a deploy-time placeholder
    timeout: float = 30.0  # the function's timeout: for the import, and for the call with `event`
    event: Event | None = None  # call the handler with it once the import succeeded (the smoke invoke)
    function_name: str | None = None  # default: the zip's file name without .zip
    dependencies: DependencyPart | None = None  # lpkg build: what of the zip is a cached install
    environment: tuple[tuple[str, str], ...] = ()  # the function's variables, for the import and the invoke
    ignored_codes: frozenset[str] = frozenset()  # contract-check codes the config turns off
    contracts: bool = True  # the contract checks (lpkg.checks.contracts) on the first-party code
    contract_cache: Path | None = None  # where their results are kept by content; None: not kept


@dataclass(frozen=True)
class Payload:
    """What the single pass over the members produced."""

    native: tuple[NativeFile, ...]
    findings: tuple[Finding, ...]
    source_keys: tuple[tuple[str, str], ...] = ()  # (task-root member, member store key) of each .py


def resolve_handler(archive: ZipArchive, given: str | None) -> Handler:
    if given is not None:  # --handler "" is a handler string, and a bad one
        return parse_handler(given)
    names = {m.path: m for m in archive.members if not m.is_dir}
    sources = {
        f"{module}.py": archive.read_text(names[f"{module}.py"].name)
        for module in CANDIDATE_MODULES
        if f"{module}.py" in names
    }
    return infer_handler(sources)


def handler_module_present(handler: Handler, names: set[str], layers: Sequence[ZipArchive], runtime: Runtime) -> bool:
    stem = handler.module.replace(".", "/")
    roots = [""]
    layer_names: set[str] = set()
    for layer in layers:
        layer_names |= layer.paths
    roots += [f"{path}/" for path in runtime.layer_paths()]
    for root in roots:
        pool = names if root == "" else layer_names
        for name in pool:
            if not name.startswith(root + stem):
                continue
            rest = name[len(root + stem):]
            if rest in (".py", ".pyc", "/__init__.py") or (rest.startswith(".") and NATIVE_SUFFIX.search(rest)):
                return True
    return False


def unpack_payload(ctx: CheckContext, root: Path, store: Path | None = None) -> Payload:
    """One pass over every safe member of the zip and its layers, unpacked under `root` (task root
    and /opt as they will be in Lambda): CRCs and the size limit are checked on the bytes actually
    produced, and native files are read back for the ELF checks. Nothing unpacked is ever imported here.
    With `store` (lpkg.archive.members), members unpacked before are linked from it."""
    sources = [(ctx.archive, ctx.dists, root / TASK_DIR, False, "")] + [
        (layer.archive, layer.dists, root / LAYER_DIR, True, f"{layer.archive.path.name}!") for layer in ctx.layers
    ]
    for _, _, folder, _, _ in sources:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
    # Layers are unpacked in order into /opt, a later one replacing an earlier one's file:
    # walking them backwards, each path is written once, by the layer that wins.
    jobs: list[UnpackJob] = []
    origin: dict[tuple[str, str], tuple[DistributionIndex, bool, str]] = {}
    for archive, dists, folder, in_layer, label in reversed(sources):
        for member in archive.safe_files():
            name = member.path
            if (str(folder), name) in origin:
                continue
            origin[(str(folder), name)] = (dists, in_layer, label)
            facts = MemberFacts(member.name, member.header_offset, member.compressed_size, member.size,
                                        member.crc, member.compress_type, member.flag_bits, file_mode(member),
                                        member.mtime)
            jobs.append(UnpackJob(str(archive.path), member.name, name, str(folder), file_mode(member),
                                  member.mtime, member.compressed_size, facts))
    result = unpack_all(jobs, UNZIPPED_LIMIT_BYTES, store)
    if store is not None:
        record_added(store, result.added, store_limit())
    findings = [
        Finding("ZIP_CORRUPT", Severity.ERROR, f"member is corrupt ({reason}); rebuild the zip",
                member=origin[(job.target_dir, job.name)][2] + job.name)
        for job, reason in result.corrupt
    ]
    if result.over_budget is not None:
        # The central directory understated the sizes: unpacking was stopped there.
        findings.append(Finding(
            "SIZE_UNZIPPED", Severity.ERROR,
            f"unpacking produced more than Lambda's limit of {result.over_budget.limit:,} bytes although the "
            f"zip's directory claims {mb(sum(a.claimed_unzipped_size for a, *_ in sources))}: the directory "
            "lies (a zip bomb?) — unpacking was stopped",
            member=result.over_budget.member,
        ))
        return Payload((), tuple(findings))
    bad = {(job.target_dir, job.name) for job, _ in result.corrupt}
    member_keys = {(target, name): key for target, name, key in result.keys}
    # Read on the ELF checks' thread, and only where the member store keeps no facts for the member's key.
    native = [
        NativeFile(job.name, Path(job.target_dir) / job.name, dists.of(job.name), in_layer,
                   member_keys.get((job.target_dir, job.name)))
        for job in jobs
        if NATIVE_SUFFIX.search(job.name) and (job.target_dir, job.name) not in bad
        for dists, in_layer, _ in [origin[(job.target_dir, job.name)]]
    ]
    native.sort(key=lambda f: (f.in_layer, f.member))
    task_root = str(root / TASK_DIR)
    keys = tuple((name, key) for (target, name), key in member_keys.items()
                 if target == task_root and name.endswith(".py"))
    return Payload(tuple(native), tuple(sorted(findings, key=lambda f: f.member or "")), keys)


def verify_zip(path: Path, options: VerifyOptions, prober: Prober | NoProbe | None,
               opened: ZipArchive | None = None) -> ArtifactReport:
    """Every check of the zip at `path`; `opened` is that zip already read by the caller (and closed here)."""
    watch = Stopwatch()
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        archive = stack.enter_context(opened or ZipArchive(path))
        layer_archives = [stack.enter_context(ZipArchive(p)) for p in options.layers]
        with watch.lap("read"):
            ctx = CheckContext(
                archive=archive,
                dists=index_distributions(archive),
                runtime=options.runtime,
                arch=options.arch,
                layers=tuple(Layer(la, index_distributions(la)) for la in layer_archives),
            )
            findings = directory_findings(ctx) + check_runtime(options.runtime, datetime.date.today())
            handler = _handler_unless_blocked(archive, options.handler, findings)
        everything = [archive, *layer_archives]
        facts: tuple[tuple[str, str], ...] = (
            ("zipped", mb(archive.zipped_size)),
            ("unzipped", mb(sum(a.claimed_unzipped_size for a in everything))),
            ("largest", describe_largest(everything)),
        )
        invocation = None
        if layer_archives:  # in /opt order: a later layer's file replaces an earlier one's
            facts += (("layers", ", ".join(f"{la.path.name} {mb(la.claimed_unzipped_size)}" for la in layer_archives)),)
        if handler is None or _blocked(findings):
            probe_description = "not run: " + ", ".join(sorted({f.code for f in findings if f.code in BLOCKING}))
        else:
            more, probe_description, invocation = _unpack_and_probe(ctx, handler, options, prober, watch)
            findings += more
    watch.laps.append(("total", time.perf_counter() - started))
    return ArtifactReport(
        artifact=str(path),
        handler=handler.string if handler else None,
        runtime=options.runtime.name,
        arch=options.arch,
        findings=sort_findings(findings),
        probe=probe_description,
        timings=tuple(watch.laps),
        facts=facts,
        invocation=invocation,
    )


def directory_findings(ctx: CheckContext) -> list[Finding]:
    """What the central directories alone show: structure, permissions, sizes. Nothing is unpacked."""
    findings = check_structure(ctx.archive) + check_permissions(ctx.archive)
    for layer in ctx.layers:
        label = f"{layer.archive.path.name}!"
        findings += check_structure(layer.archive, label) + check_permissions(layer.archive, label)
    return findings + check_sizes(ctx.archive, [layer.archive for layer in ctx.layers])


def _handler_unless_blocked(archive: ZipArchive, given: str | None, findings: Sequence[Finding]) -> Handler | None:
    # A zip with nothing in it has no handler to infer: say that, not "cannot tell the handler".
    try:
        return resolve_handler(archive, given)
    except UsageError:
        if not _blocked(findings):
            raise
        return None


def _unpack_and_probe(
    ctx: CheckContext, handler: Handler, options: VerifyOptions, prober: Prober | NoProbe | None, watch: Stopwatch
) -> tuple[list[Finding], str, Invocation | None]:
    """Unpack to a scratch folder, then run the ELF checks and the probe side by side on it."""
    findings: list[Finding] = []
    description = "not run: not asked for"
    invocation = None
    if isinstance(prober, NoProbe):
        findings.append(prober.finding(options.runtime))
        description = f"not run: {prober.reason}"
        prober = None
    names = set(ctx.archive.paths)
    present = handler_module_present(handler, names, [la.archive for la in ctx.layers], options.runtime)
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(scratch_folder())
        store = member_store_for(prober, scratch_parent())
        keyed = None
        run_probe = None
        if prober is not None and present:
            # The container is created while the zip is unpacked.
            bytecode = _bytecode_store(options)
            keyed = keyed_bytecode(store, options.runtime, ctx.archive.path) if bytecode is None else None
            request = ProbeRequest(handler.string, options.timeout, options.event.body if options.event else None,
                                   options.function_name or ctx.archive.path.stem, bytecode,
                                   options.environment, keyed_bytecode=keyed,
                                   unseen_layers=options.unseen_layers, placeholders=options.placeholders)
            run_probe = stack.enter_context(prober.prepare(root, request))
        with watch.lap("unpack"):
            payload = unpack_payload(ctx, root, store)
        if keyed is not None:
            keyed.keys.update(keyed_sources(payload.source_keys, root / TASK_DIR, ctx.archive, keyed.cache_tag))
        findings += payload.findings
        if not present:
            missing, description = missing_handler(
                handler, started_by_wrapper(options.environment, handler, names.__contains__))
            findings.append(missing)
        elif _blocked(findings):
            description = "not run: the zip cannot be unpacked"
            run_probe = None
        if run_probe is None and present:
            # No import test: at least say whether the handler module parses (reading it, never running it).
            findings += _handler_source_findings(root / TASK_DIR, handler)
        jobs = [("native (beside the probe)", functools.partial(_native_findings, payload.native, ctx, store))]
        if options.contracts and present and not _blocked(findings):
            jobs.append(("contracts (beside the probe)",
                         functools.partial(_contract_findings, ctx, handler, root, options)))
        with _HostChecks(jobs) as host_checks:
            if run_probe is not None:
                with watch.lap("probe"):
                    outcome = run_probe(host_checks.start)
                findings += findings_from_probe(outcome, options.timeout, ctx.dists.of)
                if options.event is not None:
                    invocation, more = invocation_from_probe(outcome, options.event.label, options.timeout,
                                                             ctx.dists.of)
                    findings += more
                watch.laps.extend(_inside_laps(outcome))
                description = outcome.description
            findings += host_checks.results(watch)
    return findings, description, invocation


class _HostChecks:
    """The checks beside the probe, on threads: the ELF checks are pure CPU, the contract check waits on its type
    checker's process, the probe mostly on the container. They start once the probe is under way (`start` is
    its callback): before, their hold on the GIL would slow the probe's setup, hundreds of file calls each
    waiting for the GIL back."""

    def __init__(self, jobs: Sequence[tuple[str, Callable[[], list[Finding]]]]) -> None:
        self.jobs = jobs
        self.pool = ThreadPoolExecutor(max_workers=2)
        self.futures: list[tuple[str, Future[list[Finding]]]] = []
        self.started = 0.0

    def __enter__(self) -> _HostChecks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.pool.shutdown(wait=True)

    def start(self) -> None:
        if not self.futures:
            self.started = time.perf_counter()
            self.futures = [(lap, self.pool.submit(job)) for lap, job in self.jobs]

    def results(self, watch: Stopwatch) -> list[Finding]:
        self.start()  # no probe, or one that ended before it ran
        findings: list[Finding] = []
        for lap, future in self.futures:
            findings += future.result()
            watch.laps.append((lap, time.perf_counter() - self.started))
        return findings


def _contract_findings(ctx: CheckContext, handler: Handler, root: Path, options: VerifyOptions) -> list[Finding]:
    """The contract checks (lpkg.checks.contracts) on the zip's first-party code: its .py members that no
    installed distribution's RECORD claims; the zip's dependencies and the layers are the checker's path."""
    from lpkg.checks.contracts import ContractInputs, check_contracts

    task = root / TASK_DIR
    names = (m.path for m in ctx.archive.safe_files())
    # A module nested deeper than any import chain goes (the zip may nest thousands of folders) is not copied
    # into the checker's layout, whose temporary folder would take it past PATH_MAX.
    files = {name: task / name for name in names
             if name.endswith(".py") and ctx.dists.of(name) is None and len(name) <= CONTRACT_PATH_BYTES}
    layers = tuple(root / LAYER_DIR / path for path in options.runtime.layer_paths())
    inputs = ContractInputs(files, (task, *layers), handler.module, handler.function, options.runtime.minor,
                            options.ignored_codes)
    return check_contracts(inputs, options.contract_cache)


def _bytecode_store(options: VerifyOptions) -> BytecodeStore | None:
    part = options.dependencies
    return BytecodeStore(part.bytecode, part.members) if part is not None else None


def _handler_source_findings(task_root: Path, handler: Handler) -> list[Finding]:
    member = handler.module.replace(".", "/") + ".py"
    try:
        data = (task_root / member).read_bytes()
    except OSError:
        return []  # a package, a .pyc, or in a layer: the probe is the judge
    facts = analyse_source(data, member)
    if facts.syntax_error is None:
        return []
    line, message = facts.syntax_error
    return [Finding("SYNTAX_ERROR", Severity.ERROR,
                    f"the handler module does not parse ({message}); Lambda would fail with "
                    "Runtime.UserCodeSyntaxError", member, line)]


def _native_findings(files: Sequence[NativeFile], ctx: CheckContext, store: Path | None) -> list[Finding]:
    if not files:
        return []  # a pure-Python zip: no ELF reader to import
    from lpkg.checks.native import check_native

    return check_native(files, ctx, store)


def _inside_laps(outcome: ProbeOutcome) -> list[tuple[str, float]]:
    laps = []
    imported = outcome.document.get("import") or {}
    for job, seconds in (
        ("import", imported.get("import_seconds")),
        ("invoke", (imported.get("invoke") or {}).get("seconds")),
        ("walk", (outcome.document.get("walk") or {}).get("walk_seconds")),
    ):
        if isinstance(seconds, (int, float)):
            laps.append((f"{job} (inside the probe)", float(seconds)))
    return laps


def _blocked(findings: Sequence[Finding]) -> bool:
    return any(f.code in BLOCKING and f.severity is Severity.ERROR for f in findings)


CPYTHON_TAG = re.compile(r"\.cpython-3(\d+)[a-z]*-")


def guess_runtime_minor(names: Iterable[str]) -> int | None:
    """The CPython minor version a zip's extension modules (by their member names) were built for, if they agree."""
    minors = {int(m.group(1)) for m in (CPYTHON_TAG.search(n) for n in names) if m}
    return minors.pop() if len(minors) == 1 else None


def open_for_guessing(path: Path) -> ZipArchive | None:
    """The zip, opened once for the runtime guess and then handed to verify_zip; None if it cannot be read
    (verify_zip then opens it itself and reports why)."""
    try:
        return ZipArchive(path)
    except Exception:  # noqa: BLE001 - an unreadable zip is reported when it is verified
        return None
