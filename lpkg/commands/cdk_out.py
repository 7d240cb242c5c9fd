"""`lpkg verify --cdk-out cdk.out`: every Lambda function of a synthesized CDK app, checked against its
template. Reads the cloud assembly's files (manifest.json, *.template.json, *.assets.json, asset
folders and zips); never runs the app or imports aws-cdk-lib.

For each AWS::Lambda::Function with a Python runtime: its code asset (a zip as lpkg's bundling leaves it,
or a folder, zipped here as CDK will zip it for upload) is verified with the template's Handler, Runtime,
Architectures, layers and Environment.Variables (set for the import test and the smoke invoke; a value the
template leaves to deploy time, such as `{"Ref": "Table"}`, becomes the placeholder `<!Ref Table>`, said in the
report). Findings name the construct path (the `aws:cdk:path` metadata).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpkg.archive.reader import ZipArchive, normalized_name
from lpkg.commands.verify import VerifyOptions, guess_runtime_minor, verify_zip
from lpkg.errors import UnreadableInput, UsageError
from lpkg.handler import parse_handler
from lpkg.install.cache import cache_home
from lpkg.probe.sources import analyse_source
from lpkg.probing.choose import choose_prober
from lpkg.probing.request import NoProbe, Prober
from lpkg.report import ArtifactReport, Finding, Severity, sort_findings
from lpkg.runtimes import RUNTIMES, Arch, parse_arch

MANIFEST = "manifest.json"
FUNCTION = "AWS::Lambda::Function"
LAYER = "AWS::Lambda::LayerVersion"
REST_API = "AWS::ApiGateway::RestApi"
TEMPLATE_ONLY = "-"  # runtime and arch of a report on a template rather than a function
Json = dict[str, Any]


@dataclass(frozen=True)
class CdkFunction:
    """One Python Lambda function as the synthesized template declares it."""

    construct_path: str  # aws:cdk:path, else stack/logical ID
    handler: str
    runtime: str  # "python3.12"
    arch: Arch
    asset: Path | None  # the code: a zip or a folder inside the assembly; None when not found there
    layers: tuple[Path, ...]  # layer assets found in the assembly
    findings: tuple[Finding, ...]  # what the template alone shows
    environment: tuple[tuple[str, str], ...] = ()  # Environment.Variables, sorted; deploy-time values as placeholders
    placeholders: tuple[str, ...] = ()  # keys whose value is a placeholder, not what Lambda will see


@dataclass(frozen=True)
class CdkAssembly:
    functions: tuple[CdkFunction, ...]
    stack_findings: tuple[tuple[str, Finding], ...]  # (template file, finding) not tied to a function


def read_assembly(root: Path) -> CdkAssembly:
    """Every Python function and the stack-level findings of the assembly at `root`, nested stages included."""
    if not (root / MANIFEST).is_file():
        raise UsageError(f"{root}: no {MANIFEST} here", hint="give the folder `cdk synth` wrote (default cdk.out)")
    functions: list[CdkFunction] = []
    stack_findings: list[tuple[str, Finding]] = []
    for directory, template_file in _templates(root, root):
        template = _read_json(template_file)
        resources: Mapping[str, Json] = template.get("Resources") or {}
        object_keys = _asset_object_keys(directory)
        label = os.path.relpath(template_file, root)
        for logical_id, resource in resources.items():
            kind = resource.get("Type")
            if kind == FUNCTION:
                function = _function(root, directory, template_file.name, logical_id, resource, resources, object_keys)
                if function is not None:
                    functions.append(function)
            elif kind == REST_API:
                finding = _edge_endpoint(logical_id, resource, template_file)
                if finding is not None:
                    stack_findings.append((label, finding))
    return CdkAssembly(tuple(functions), tuple(stack_findings))


def _templates(root: Path, directory: Path) -> Iterator[tuple[Path, Path]]:
    """(assembly folder, template file) of every stack, following nested assemblies (CDK stages)."""
    manifest = _read_json(directory / MANIFEST)
    for artifact in (manifest.get("artifacts") or {}).values():
        properties = artifact.get("properties") or {}
        if artifact.get("type") == "aws:cloudformation:stack" and properties.get("templateFile"):
            yield directory, directory / properties["templateFile"]
        elif artifact.get("type") == "cdk:cloud-assembly" and properties.get("directoryName"):
            nested = directory / properties["directoryName"]
            if (nested / MANIFEST).is_file():
                yield from _templates(root, nested)


def _read_json(path: Path) -> Json:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnreadableInput(f"{path}: cannot read as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UnreadableInput(f"{path}: not a JSON object")
    return data


def _asset_object_keys(directory: Path) -> dict[str, Path]:
    """S3 object key -> the asset's source in the assembly, from the *.assets.json files."""
    keys: dict[str, Path] = {}
    for manifest in directory.glob("*.assets.json"):
        for asset in (_read_json(manifest).get("files") or {}).values():
            source = (asset.get("source") or {}).get("path")
            if not source:
                continue
            for destination in (asset.get("destinations") or {}).values():
                key = destination.get("objectKey")
                if key:
                    keys[key] = directory / source
    return keys


def _asset_path(directory: Path, resource: Json, object_key: object, object_keys: Mapping[str, Path]) -> Path | None:
    """Where a resource's code is in the assembly: its aws:asset:path metadata, else its S3 key's asset."""
    metadata = resource.get("Metadata") or {}
    declared = metadata.get("aws:asset:path")
    if isinstance(declared, str) and (directory / declared).exists():
        return directory / declared
    if isinstance(object_key, str) and object_key in object_keys and object_keys[object_key].exists():
        return object_keys[object_key]
    return None


def _function(
    root: Path, directory: Path, template: str, logical_id: str, resource: Json, resources: Mapping[str, Json],
    object_keys: Mapping[str, Path],
) -> CdkFunction | None:
    properties = resource.get("Properties") or {}
    runtime = properties.get("Runtime")
    if not isinstance(runtime, str) or not runtime.startswith("python"):
        return None  # another language, or a container image: not lpkg's to check
    path = str((resource.get("Metadata") or {}).get("aws:cdk:path") or f"{template.split('.')[0]}/{logical_id}")
    findings: list[Finding] = []
    if runtime not in RUNTIMES:
        findings.append(Finding("CDK_RUNTIME_UNKNOWN", Severity.ERROR,
                                f"{path}: runtime {runtime!r} is not a Lambda Python runtime lpkg knows "
                                f"({', '.join(RUNTIMES)})"))
    architectures = properties.get("Architectures") or ["x86_64"]
    arch = parse_arch(str(architectures[0])) if architectures[0] in ("x86_64", "arm64") else "x86_64"
    code = properties.get("Code") or {}
    asset = _asset_path(directory, resource, code.get("S3Key"), object_keys)
    if asset is None:
        findings.append(Finding(
            "CDK_ASSET_NOT_FOUND", Severity.WARNING,
            f"{path}: its code is not an asset in this assembly (inline code, an S3 object or an image): not checked",
        ))
    layers: list[Path] = []
    for layer in properties.get("Layers") or []:
        ref = layer.get("Ref") if isinstance(layer, dict) else None
        layer_resource = resources.get(ref) if isinstance(ref, str) else None
        layer_asset = None
        if layer_resource is not None and layer_resource.get("Type") == LAYER:
            content = (layer_resource.get("Properties") or {}).get("Content") or {}
            layer_asset = _asset_path(directory, layer_resource, content.get("S3Key"), object_keys)
        if layer_asset is None:
            findings.append(Finding(
                "CDK_LAYER_UNCHECKED", Severity.INFO,
                f"{path}: layer {json.dumps(layer)} is not an asset of this assembly; the function was checked "
                "without it, so what it provides may be reported missing",
            ))
        else:
            layers.append(layer_asset)
    handler = properties.get("Handler")
    variables = (properties.get("Environment") or {}).get("Variables") or {}
    environment = {str(key): template_value(value) for key, value in variables.items()}
    return CdkFunction(path, str(handler or ""), runtime, arch, asset, tuple(layers), tuple(findings),
                       environment=tuple(sorted((key, text) for key, (text, _) in environment.items())),
                       placeholders=tuple(sorted(key for key, (_, known) in environment.items() if not known)))


def template_value(value: object) -> tuple[str, bool]:
    """A synthesized template's value as the import test sees it, and whether it is what Lambda will see.
    Intrinsics are known only at deploy time: `{"Ref": "T"}` -> `<!Ref T>`; `Fn::Join` keeps its literal parts
    (`arn:<!Ref AWS::Partition>:s3:::b`), as CDK writes most ARNs that way."""
    if isinstance(value, str):
        return value, True
    if isinstance(value, bool):
        return str(value).lower(), True  # CloudFormation turns a boolean into "true"/"false"
    if isinstance(value, (int, float)):
        return str(value), True
    if isinstance(value, dict) and len(value) == 1:
        (function, argument), = value.items()
        if function == "Fn::Join" and isinstance(argument, list) and len(argument) == 2 \
                and isinstance(argument[0], str) and isinstance(argument[1], list):
            parts = [template_value(part) for part in argument[1]]
            return argument[0].join(text for text, _ in parts), all(known for _, known in parts)
        if function == "Ref" or str(function).startswith("Fn::"):
            return f"<!{str(function).removeprefix('Fn::')} {_argument_text(argument)}>", False
    return json.dumps(value, sort_keys=True), False


def _argument_text(argument: object) -> str:
    if isinstance(argument, list):
        if len(argument) == 2 and all(isinstance(a, str) for a in argument):
            return ".".join(argument)  # Fn::GetAtt [Table, Arn], written !GetAtt Table.Arn
        return "[" + ", ".join(_argument_text(a) for a in argument) + "]"
    if isinstance(argument, dict):
        return template_value(argument)[0]
    return str(argument)


def _edge_endpoint(logical_id: str, resource: Json, template: Path) -> Finding | None:
    properties = resource.get("Properties") or {}
    types = (properties.get("EndpointConfiguration") or {}).get("Types")
    if types:
        return None
    path = (resource.get("Metadata") or {}).get("aws:cdk:path") or f"{template.name.split('.')[0]}/{logical_id}"
    return Finding(
        "CDK_API_EDGE_DEFAULT", Severity.WARNING,
        f"{path}: REST API without an explicit endpoint type: API Gateway makes it EDGE (behind its own "
        "CloudFront distribution), which in front of another CloudFront distribution answers 403 — set "
        "endpoint_types=[EndpointType.REGIONAL] (or EDGE, on purpose)",
    )


def zip_asset_folder(folder: Path, target: Path) -> Path:
    """Zip an asset folder as CDK will for upload: every file, its permissions kept (a 0600 file stays one)."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for current, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = Path(current) / name
                info = zipfile.ZipInfo.from_file(path, path.relative_to(folder).as_posix())
                info.external_attr = (stat.S_IFREG | (path.stat().st_mode & 0o777)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with path.open("rb") as source, zf.open(info, "w") as dest:
                    dest.write(source.read())
    return target


def template_findings(function: CdkFunction, archive: ZipArchive, built_minor: int | None) -> list[Finding]:
    """What the template says against the code: a handler it does not define, a runtime it was not built for."""
    findings = list(function.findings)
    try:
        handler = parse_handler(function.handler)
    except UsageError as exc:
        findings.append(Finding("CDK_HANDLER_MISMATCH", Severity.ERROR, f"{function.construct_path}: {exc.message}"))
        return findings
    runtime = RUNTIMES.get(function.runtime)
    if runtime is not None and built_minor is not None and built_minor != runtime.version[1]:
        findings.append(Finding(
            "CDK_RUNTIME_MISMATCH", Severity.ERROR,
            f"{function.construct_path}: the template says {function.runtime}, but the code's extension modules "
            f"were built for python3.{built_minor}; build the asset for the function's runtime (lpkg build "
            f"--runtime {function.runtime}) or change the runtime",
        ))
    names = {normalized_name(m.name): m.name for m in archive.members if not m.is_dir}
    module_file = next((f for f in handler.module_files() if f.endswith(".py") and f in names), None)
    if module_file is None:
        return findings  # verify says HANDLER_MISSING
    facts = analyse_source(archive.read(names[module_file]), module_file)
    if facts.syntax_error is None and not facts.dynamic and handler.function not in facts.names:
        close = difflib.get_close_matches(handler.function, sorted(facts.names), n=1)
        findings.append(Finding(
            "CDK_HANDLER_MISMATCH", Severity.ERROR,
            f"{function.construct_path}: the template's handler {function.handler!r} names {handler.function}, "
            f"which {module_file} does not define" + (f" — did you mean {close[0]!r}?" if close else
                                                       f" (it defines {', '.join(sorted(facts.names)[:5])})")
            + "; Lambda would fail with Runtime.HandlerNotFound",
            member=module_file,
        ))
    return findings


def environment_findings(function: CdkFunction) -> list[Finding]:
    """A placeholder value is not what Lambda will see: say so, as for a SAM template."""
    values = dict(function.environment)
    return [Finding("ENV_PLACEHOLDER", Severity.INFO,
                    f"{function.construct_path}: {key}={values[key]}: the template leaves this value to deploy "
                    "time; the import test saw the placeholder") for key in function.placeholders]


def verify_assembly(root: Path, *, image: str | None, timeout: float, probe_mode: str,
                    environment: Mapping[str, str] | None = None) -> list[ArtifactReport]:
    """One report per Python function of the assembly (named by construct path), then one per template with
    stack-level findings. `environment` (--env) wins over what a template declares."""
    assembly = read_assembly(root)
    probers: dict[tuple[str, Arch], Prober | NoProbe | None] = {}
    reports: list[ArtifactReport] = []
    with tempfile.TemporaryDirectory(prefix="lpkg-cdk-") as scratch:
        for index, function in enumerate(assembly.functions):
            runtime = RUNTIMES.get(function.runtime)
            if function.asset is None or runtime is None:
                reports.append(_template_only(function.construct_path, function, function.findings))
                continue
            zip_path = _as_zip(function.asset, Path(scratch) / f"function-{index}.zip")
            layers = tuple(_as_zip(layer, Path(scratch) / f"layer-{index}-{n}.zip")
                           for n, layer in enumerate(function.layers))
            # Read once: the runtime guess, the template's checks and the verify share it (closing twice is harmless).
            with ZipArchive(zip_path) as archive:
                findings = template_findings(function, archive, guess_runtime_minor(archive.names))
                findings += environment_findings(function)
                label = f"{function.construct_path} ({os.path.relpath(function.asset, root)})"
                if any(f.code == "CDK_HANDLER_MISMATCH" and f.member is None for f in findings):
                    reports.append(_template_only(label, function, tuple(findings)))  # no handler to import
                    continue
                key = (runtime.name, function.arch)
                if key not in probers:
                    probers[key] = choose_prober(probe_mode, runtime, image or runtime.runtime_image(function.arch),
                                                 function.arch)
                options = VerifyOptions(runtime=runtime, arch=function.arch, handler=function.handler, layers=layers,
                                        contract_cache=cache_home(), timeout=timeout,
                                        environment=tuple(sorted({**dict(function.environment),
                                                                  **(environment or {})}.items())))
                report = verify_zip(zip_path, options, probers[key], archive)
            reports.append(dataclasses.replace(report, artifact=label,
                                               findings=sort_findings((*report.findings, *findings))))
    by_template: dict[str, list[Finding]] = {}
    for template, finding in assembly.stack_findings:
        by_template.setdefault(template, []).append(finding)
    for template, findings in by_template.items():
        reports.append(ArtifactReport(artifact=template, handler=None, runtime=TEMPLATE_ONLY, arch=TEMPLATE_ONLY,
                                      findings=sort_findings(findings), probe="not run: template checks"))
    return reports


def _as_zip(asset: Path, scratch_zip: Path) -> Path:
    return asset if asset.is_file() else zip_asset_folder(asset, scratch_zip)


def _template_only(label: str, function: CdkFunction, findings: tuple[Finding, ...]) -> ArtifactReport:
    return ArtifactReport(artifact=label, handler=function.handler, runtime=function.runtime, arch=function.arch,
                          findings=sort_findings(findings), probe="not run: see the findings")
