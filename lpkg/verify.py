"""`lpkg verify`: host checks on a zip (and its layers), then the probe, merged into one report."""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lpkg.archive import (
    BudgetExceeded,
    MemberCorrupt,
    SizeBudget,
    ZipArchive,
    add_dirs_to_tar,
    add_to_tar,
    file_mode,
    normalized_name,
    open_tar_writer,
)
from lpkg.checks import CheckContext, Layer, NativeFile
from lpkg.checks.native import check_native
from lpkg.checks.permissions import check_permissions
from lpkg.checks.sizes import check_sizes, describe_largest, mb
from lpkg.checks.structure import check_structure
from lpkg.dists import index_distributions
from lpkg.handler import CANDIDATE_MODULES, Handler, infer_handler, parse_handler
from lpkg.probe import payload_files
from lpkg.probing import LAYER_PREFIX, PROBE_PREFIX, TASK_PREFIX, Prober, findings_from_probe
from lpkg.report import ArtifactReport, Finding, Severity, sort_findings
from lpkg.runtimes import UNZIPPED_LIMIT_BYTES, Arch, Runtime

NATIVE_SUFFIX = re.compile(r"\.(so(\.[0-9]+)*|pyd|dylib)$")
# Findings after which unpacking or importing would be unsafe or meaningless.
BLOCKING = {"SIZE_UNZIPPED", "ZIP_CORRUPT", "ZIP_EMPTY"}


@dataclass(frozen=True)
class VerifyOptions:
    runtime: Runtime
    arch: Arch
    handler: str | None = None
    layers: tuple[Path, ...] = ()
    timeout: float = 30.0


@dataclass(frozen=True)
class Payload:
    """What the single pass over the members produced."""

    native: tuple[NativeFile, ...]
    findings: tuple[Finding, ...]
    unzipped_bytes: int


class Stopwatch:
    def __init__(self) -> None:
        self.laps: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def lap(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.laps.append((name, time.perf_counter() - start))


def resolve_handler(archive: ZipArchive, given: str | None) -> Handler:
    if given:
        return parse_handler(given)
    names = {normalized_name(m.name): m for m in archive.members if not m.is_dir}
    sources = {
        f"{module}.py": archive.read_text(names[f"{module}.py"].name)
        for module in CANDIDATE_MODULES
        if f"{module}.py" in names
    }
    return infer_handler(sources)


def handler_module_present(handler: Handler, names: set[str], layers: Sequence[ZipArchive], minor: str) -> bool:
    stem = handler.module.replace(".", "/")
    roots = [""]
    layer_names = set()
    for layer in layers:
        layer_names |= {normalized_name(n) for n in layer.names}
    for root in ("python/", f"python/lib/python{minor}/site-packages/"):
        roots.append(root)
    for root in roots:
        pool = names if root == "" else layer_names
        for name in pool:
            if not name.startswith(root + stem):
                continue
            rest = name[len(root + stem):]
            if rest in (".py", ".pyc", "/__init__.py") or (rest.startswith(".") and NATIVE_SUFFIX.search(rest)):
                return True
    return False


def write_payload(ctx: CheckContext, tar_file: IO[bytes]) -> Payload:
    """One pass over every safe member of the zip and its layers: CRCs and the size limit are checked
    on the bytes actually produced, native files are kept for the ELF checks, and everything goes
    into a tar for the probe (root-owned, the zip's own permission bits)."""
    budget = SizeBudget(UNZIPPED_LIMIT_BYTES)
    native: list[NativeFile] = []
    findings: list[Finding] = []
    written: set[str] = set()
    sources = [(ctx.archive, ctx.dists, TASK_PREFIX, False, "")] + [
        (layer.archive, layer.dists, LAYER_PREFIX, True, f"{layer.archive.path.name}!") for layer in ctx.layers
    ]
    with open_tar_writer(tar_file) as tar:
        try:
            for archive, dists, prefix, in_layer, label in sources:
                for member in archive.safe_files():
                    name = normalized_name(member.name)
                    try:
                        data = archive.read(member.name, budget)
                    except MemberCorrupt as exc:
                        findings.append(Finding("ZIP_CORRUPT", Severity.ERROR,
                                                f"member is corrupt ({exc.reason}); rebuild the zip",
                                                member=label + name))
                        continue
                    if NATIVE_SUFFIX.search(name):
                        native.append(NativeFile(name, data, dists.of(name), in_layer))
                    add_to_tar(tar, prefix + name, data, file_mode(member))
                    written.add(prefix + name)
        except BudgetExceeded as exc:
            # The central directory understated the sizes: stop before producing more.
            findings.append(Finding(
                "SIZE_UNZIPPED", Severity.ERROR,
                f"unpacking produced more than Lambda's limit of {exc.limit:,} bytes although the zip's "
                f"directory claims {mb(sum(a.claimed_unzipped_size for a, *_ in sources))}: the directory "
                "lies (a zip bomb?) — unpacking was stopped",
                member=exc.member,
            ))
        payload_names = {f"{PROBE_PREFIX}{rel}" for rel, _ in payload_files()}
        for rel, content in payload_files():
            add_to_tar(tar, PROBE_PREFIX + rel, content, 0o644)
        add_dirs_to_tar(tar, written | payload_names)
    return Payload(tuple(native), tuple(findings), budget.used)


def verify_zip(path: Path, options: VerifyOptions, prober: Prober | None) -> ArtifactReport:
    watch = Stopwatch()
    findings: list[Finding] = []
    with contextlib.ExitStack() as stack:
        archive = stack.enter_context(ZipArchive(path))
        layer_archives = [stack.enter_context(ZipArchive(p)) for p in options.layers]
        with watch.lap("read"):
            ctx = CheckContext(
                archive=archive,
                dists=index_distributions(archive),
                runtime=options.runtime,
                arch=options.arch,
                layers=tuple(Layer(la, index_distributions(la)) for la in layer_archives),
            )
            handler = resolve_handler(archive, options.handler)
            findings += check_structure(archive)
            findings += check_permissions(archive)
            for layer in layer_archives:
                findings += check_structure(layer, f"{layer.path.name}!")
                findings += check_permissions(layer, f"{layer.path.name}!")
            findings += check_sizes(archive, layer_archives)
        facts = [
            ("zipped", mb(archive.zipped_size)),
            ("unzipped", mb(archive.claimed_unzipped_size + sum(la.claimed_unzipped_size for la in layer_archives))),
            ("largest", describe_largest([archive, *layer_archives])),
        ]
        probe_description = "not run: " + ("--probe none" if prober is None else "the zip cannot be unpacked")
        if not _blocked(findings):
            with tempfile.TemporaryFile(prefix="lpkg-payload-") as tar_file:
                with watch.lap("unpack"):
                    payload = write_payload(ctx, tar_file)
                findings += payload.findings
                with watch.lap("native"):
                    findings += check_native(payload.native, ctx)
                names = {normalized_name(n) for n in archive.names}
                present = handler_module_present(handler, names, layer_archives, options.runtime.minor)
                if not present:
                    findings.append(Finding(
                        "HANDLER_MISSING", Severity.ERROR,
                        f"the handler module {handler.module} is not in the zip or a layer "
                        f"(looked for {', '.join(handler.module_files())}); Lambda would fail with "
                        "Runtime.ImportModuleError — check the handler setting and the zip's top level",
                    ))
                    probe_description = "not run: the handler module is missing"
                elif _blocked(findings):
                    probe_description = "not run: the zip cannot be unpacked"
                elif prober is not None:
                    tar_file.seek(0)
                    with watch.lap("probe"):
                        outcome = prober.run(tar_file, handler.string, options.timeout)
                    findings += findings_from_probe(outcome, options.timeout)
                    probe_description = outcome.description
        else:
            probe_description = "not run: " + ", ".join(sorted({f.code for f in findings if f.code in BLOCKING}))
    return ArtifactReport(
        artifact=str(path),
        handler=handler.string,
        runtime=options.runtime.name,
        arch=options.arch,
        findings=sort_findings(findings),
        probe=probe_description,
        timings=tuple(watch.laps),
        facts=tuple(facts),
    )


def _blocked(findings: Sequence[Finding]) -> bool:
    return any(f.code in BLOCKING and f.severity is Severity.ERROR for f in findings)


CPYTHON_TAG = re.compile(r"\.cpython-3(\d+)[a-z]*-")


def guess_runtime_minor(path: Path) -> int | None:
    """The CPython minor version the zip's extension modules were built for, if they agree."""
    try:
        with ZipArchive(path) as archive:
            minors = {int(m.group(1)) for m in (CPYTHON_TAG.search(n) for n in archive.names) if m}
    except Exception:  # noqa: BLE001 - an unreadable zip is reported when it is verified
        return None
    return minors.pop() if len(minors) == 1 else None
