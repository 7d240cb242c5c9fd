"""Functions from a SAM or plain CloudFormation template (YAML or JSON).

Read: `AWS::Serverless::Function` with `Globals.Function` merged the way SAM merges it (a function's
scalar replaces the global one, maps such as Environment.Variables merge key by key, lists such as Layers
are the global items then the function's; Architectures, one item by Lambda's rule, is replaced), and
`AWS::Lambda::Function` whose `Code` is a local path (as `aws cloudformation package` takes it). CodeUri
and ContentUri are relative to the template's folder; no CodeUri is the template's folder, as SAM CLI
takes it. A `!Ref` to a template Parameter with a Default resolves to that default and is reported in
`defaulted` (not an SSM parameter type: its Default names the parameter); every other intrinsic becomes
a placeholder such as `<!GetAtt Table.Arn>`.

A nested application (`AWS::Serverless::Application` with a local `Location`, `AWS::CloudFormation::Stack`
with a local `TemplateURL`, as `sam build` follows them) is read too: its functions are named
`<Application>.<Function>` and its Parameters are the values the parent passes (resolved as above), else
its own Defaults. An application from the Serverless Application Repository or S3 is said, not read.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpkg.errors import UsageError
from lpkg.plan.projects import DeclaredFunction, DeclaredLayer, Project, is_python_runtime
from lpkg.plan.projects.cfn_yaml import Intrinsic, LineDict, load_yaml, scalar_text
from lpkg.plan.projects.values import Kind, Value, environment_of, least_known

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"
SERVERLESS_APPLICATION = "AWS::Serverless::Application"
CLOUDFORMATION_STACK = "AWS::CloudFormation::Stack"
# Where each nested-stack type names its template.
TEMPLATE_KEYS = {SERVERLESS_APPLICATION: "Location", CLOUDFORMATION_STACK: "TemplateURL"}
LAMBDA_LAYER = "AWS::Lambda::LayerVersion"
# Where each resource type keeps its local code path.
CODE_KEYS = {SERVERLESS_FUNCTION: "CodeUri", LAMBDA_FUNCTION: "Code", SERVERLESS_LAYER: "ContentUri",
             LAMBDA_LAYER: "Content"}
# Globals keys whose value replaces the global one even though it is a list.
REPLACED_LISTS = frozenset({"Architectures"})
SSM_PARAMETER_TYPE = "AWS::SSM::Parameter::Value"
_SUB_REFERENCE = re.compile(r"\$\{([^}!][^}]*)\}")


@dataclass(frozen=True)
class _Template:
    path: Path
    parameters: Mapping[str, Value]  # parameter name -> what a Ref to it gives; parameters with none are absent
    resources: LineDict
    label: str  # the template's path from the top template's folder, for `declared_at`
    prefix: str = ""  # "<Application>." for a nested application's functions and layers
    # Parameters a parent set to a layer of its own (`LayerArn: !Ref SharedLayer`): a Ref to one is that layer.
    passed_layers: Mapping[str, DeclaredLayer] = dataclasses.field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def where(self, logical_id: str) -> str:
        return f"{self.label}:{self.resources.line_of(logical_id)}"


@dataclass
class _Found:
    functions: list[DeclaredFunction]
    skipped: list[tuple[str, str]]


def read_sam(path: Path) -> Project:
    found = _Found([], [])
    _read_template(path, path.parent, "", {}, {}, (path.resolve(),), found)
    return Project("sam", path, tuple(found.functions), tuple(found.skipped))


def _read_template(path: Path, top_folder: Path, prefix: str, passed: Mapping[str, Value],
                   passed_layers: Mapping[str, DeclaredLayer], chain: tuple[Path, ...], found: _Found) -> None:
    data = load_yaml(path)
    if not isinstance(data, LineDict) or not isinstance(data.get("Resources"), LineDict):
        raise UsageError(f"{path}:1: not a CloudFormation template: no Resources mapping",
                         hint="name a SAM or CloudFormation template (template.yaml)")
    parameters: dict[str, Value] = {}
    for name, declared in _mapping(data.get("Parameters")).items():
        if not isinstance(declared, dict) or _resolved_at_deploy(declared):
            continue
        if name in passed:
            parameters[name] = passed[name]
        elif (default := scalar_text(declared.get("Default"))) is not None:
            parameters[name] = Value(default, Kind.DEFAULT)
    label = path.relative_to(top_folder).as_posix() if path.is_relative_to(top_folder) else str(path)
    template = _Template(path, parameters, data["Resources"], label, prefix,
                         {name: layer for name, layer in passed_layers.items() if name in parameters})
    raw_globals = _mapping(data.get("Globals")).get("Function")
    function_globals = raw_globals if isinstance(raw_globals, dict) else {}
    for logical_id, resource in template.resources.items():
        if not isinstance(resource, dict):
            continue
        if isinstance(resource.get("Type"), str) and resource["Type"] in TEMPLATE_KEYS:
            _nested(template, str(logical_id), resource, top_folder, chain, found)
            continue
        if resource.get("Type") not in (SERVERLESS_FUNCTION, LAMBDA_FUNCTION):
            continue
        properties = _mapping(resource.get("Properties"))
        if resource["Type"] == SERVERLESS_FUNCTION:
            properties = merged_globals(function_globals, properties)
        outcome = _function(template, str(logical_id), resource, properties)
        if isinstance(outcome, str):
            found.skipped.append((prefix + str(logical_id), outcome))
        else:
            found.functions.append(outcome)


def _nested(parent: _Template, logical_id: str, resource: Mapping[str, Any], top_folder: Path,
            chain: tuple[Path, ...], found: _Found) -> None:
    """A nested application's functions, read from its local template, or why it is not read."""
    properties = _mapping(resource.get("Properties"))
    key = TEMPLATE_KEYS[resource["Type"]]
    location = properties.get(key)
    name = parent.prefix + logical_id
    text = None if isinstance(location, dict) and not isinstance(location, Intrinsic) else _text(parent, location)
    if location is not None and (text is None or text.text.startswith("arn:")):  # {ApplicationId: ...} or its ARN
        found.skipped.append((name, "an application from the Serverless Application Repository: its code "
                                    "is not in this project"))
        return
    if text is None or text.kind is Kind.PLACEHOLDER or "://" in text.text:
        shown = "nothing" if text is None else text.text
        found.skipped.append((name, f"a nested application whose {key} is not a local template ({shown})"))
        return
    path = (parent.folder / text.text).resolve()
    where = f"{parent.path}:{parent.resources.line_of(logical_id)}"
    if not path.is_file():
        raise UsageError(f"{where}: nested application {logical_id}: {key} {text.text}: no such file",
                         hint=f"{key} is relative to the template's folder")
    if path in chain:  # resolved paths: any cycle comes back to one of them
        raise UsageError(f"{where}: nested application {logical_id} includes {text.text}, which includes it",
                         hint="a template cannot nest itself")
    given = _mapping(properties.get("Parameters"))
    passed = {str(k): value for k, v in given.items() if (value := _text(parent, v)) is not None}
    layers = {str(k): layer for k, v in given.items() if (layer := _template_layer(parent, v)) is not None}
    _read_template(path, top_folder, f"{name}.", passed, layers, (*chain, path), found)


def _resolved_at_deploy(parameter: Mapping[str, Any]) -> bool:
    # An SSM parameter type's Default is the parameter's name; CloudFormation reads its value at deploy.
    return str(parameter.get("Type", "")).startswith(SSM_PARAMETER_TYPE)


def merged_globals(globals_: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """A function's properties over Globals.Function, as SAM merges them."""
    merged = dict(globals_)
    for key, value in own.items():
        base = merged.get(key)
        if isinstance(base, dict) and not isinstance(base, Intrinsic) and isinstance(value, dict):
            merged[key] = merged_globals(base, value)
        elif isinstance(base, list) and isinstance(value, list) and key not in REPLACED_LISTS:
            merged[key] = base + value
        else:
            merged[key] = value
    return merged


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _function(template: _Template, logical_id: str, resource: Mapping[str, Any],
              properties: Mapping[str, Any]) -> DeclaredFunction | str:
    """The declared function, or why lpkg does not build it."""
    where = template.where(logical_id)
    if properties.get("PackageType") == "Image":
        return "a container image function (PackageType: Image)"
    code = _code_dir(template, resource["Type"], properties)
    if isinstance(code, str):
        return code
    runtime = _known(_text(template, properties.get("Runtime")))  # unknown until deploy: lpkg's --runtime
    if runtime is not None and not is_python_runtime(runtime.text):
        return f"runtime {runtime.text} is not Python"
    handler = _text(template, properties.get("Handler"))
    if handler is None or handler.kind is Kind.PLACEHOLDER:
        raise UsageError(f"{template.path}:{template.resources.line_of(logical_id)}: function {logical_id} "
                         f"declares no Handler{'' if handler is None else ' lpkg can read: ' + handler.text}",
                         hint="declare Handler: module.function (or in Globals.Function)")
    if not code.is_dir():
        raise UsageError(f"{template.path}:{template.resources.line_of(logical_id)}: function {logical_id}: "
                         f"{CODE_KEYS[resource['Type']]} {code}: no such folder",
                         hint="code paths are relative to the template's folder")
    arches = properties.get("Architectures")
    arch = _known(_text(template, arches[0])) if isinstance(arches, list) and arches else None
    environment = environment_of(_variables(template, properties))
    metadata = _mapping(resource.get("Metadata"))
    return DeclaredFunction(
        name=template.prefix + logical_id,
        code_dir=code,
        handler=handler.text,
        runtime=None if runtime is None else runtime.text,
        arch=None if arch is None else arch.text,
        environment=environment.variables,
        placeholders=environment.placeholders,
        layers=tuple(_layer(template, item) for item in _list(properties.get("Layers"))),
        include=(),
        exclude=(),
        build_method=scalar_text(metadata.get("BuildMethod")),
        declared_at=where,
        defaulted=environment.defaulted,
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _code_dir(template: _Template, resource_type: str, properties: Mapping[str, Any]) -> Path | str:
    """The function's local code folder (absolute), or why it has none lpkg can build."""
    key = CODE_KEYS[resource_type]
    if "InlineCode" in properties or (isinstance(properties.get(key), dict) and "ZipFile" in properties[key]):
        return "inline code in the template"
    declared = properties.get(key)
    if declared is None:
        if resource_type == LAMBDA_FUNCTION:
            return "no Code declared"
        return template.folder.resolve()  # SAM CLI builds a function without CodeUri from the template's folder
    text = _text(template, declared)
    if text is None or text.kind is Kind.PLACEHOLDER:
        return f"{key} is not a local path ({text.text if text else 'an S3 location'})"
    if text.text.startswith("s3://"):
        return f"{key} is in S3 ({text.text})"
    path = (template.folder / text.text).resolve()
    if path.is_file():
        return f"{key} is a built archive ({text.text}): verify it with lpkg verify"
    return path


def _text(template: _Template, value: Any) -> Value | None:
    """A scalar property: literal, a Parameter's value (`!Ref P`), else a placeholder. None: not set."""
    if value is None:
        return None
    text = scalar_text(value)
    if text is not None:
        return Value(text)
    if isinstance(value, Intrinsic):
        if value.function == "Ref" and isinstance(value.argument, str) and value.argument in template.parameters:
            return template.parameters[value.argument]
        if value.function == "Fn::Sub" and isinstance(value.argument, str):
            return _sub(template, value)
        return Value(value.placeholder(), Kind.PLACEHOLDER)
    return Value(f"<{value!r}>", Kind.PLACEHOLDER)


def _known(value: Value | None) -> Value | None:
    return None if value is None or value.kind is Kind.PLACEHOLDER else value


def _sub(template: _Template, value: Intrinsic) -> Value:
    """`!Sub` whose every `${Name}` is a Parameter with a value, resolved; any other is a placeholder."""
    names = _SUB_REFERENCE.findall(value.argument)
    known = {name: template.parameters.get(name) for name in names}
    resolved = {name: v for name, v in known.items() if v is not None and v.kind is not Kind.PLACEHOLDER}
    if len(resolved) != len(known):
        return Value(value.placeholder(), Kind.PLACEHOLDER)
    text = _SUB_REFERENCE.sub(lambda m: resolved[m.group(1)].text, value.argument).replace("${!", "${")
    return Value(text, least_known(*(v.kind for v in resolved.values())))


def _variables(template: _Template, properties: Mapping[str, Any]) -> dict[str, Value]:
    declared = _mapping(_mapping(properties.get("Environment")).get("Variables"))
    values: dict[str, Value] = {}
    for key, value in declared.items():
        text = _text(template, value)
        values[str(key)] = text if text is not None else Value("", Kind.LITERAL)
    return values


def _template_layer(template: _Template, item: Any) -> DeclaredLayer | None:
    """The layer a `!Ref` names: a LayerVersion of this template, or one a parent passed as a Parameter."""
    if not (isinstance(item, Intrinsic) and item.function == "Ref" and isinstance(item.argument, str)):
        return None
    if item.argument in template.passed_layers:
        return template.passed_layers[item.argument]
    resource = template.resources.get(item.argument)
    if isinstance(resource, dict) and resource.get("Type") in (SERVERLESS_LAYER, LAMBDA_LAYER):
        return _own_layer(template, item.argument, resource)
    return None


def _layer(template: _Template, item: Any) -> DeclaredLayer:
    """A Layers item: a LayerVersion of this template or a parent's (built from its ContentUri), else an ARN."""
    if (layer := _template_layer(template, item)) is not None:
        return layer
    text = _text(template, item)
    arn = text.text if text is not None else str(item)
    where = f"{template.label}:{item.line}" if isinstance(item, Intrinsic) else template.label
    return DeclaredLayer(name=arn, content_dir=None, arn=arn, declared_at=where)


def _own_layer(template: _Template, logical_id: str, resource: Mapping[str, Any]) -> DeclaredLayer:
    properties = _mapping(resource.get("Properties"))
    content = _text(template, properties.get(CODE_KEYS[resource["Type"]]))
    where = template.where(logical_id)
    if content is None or content.kind is Kind.PLACEHOLDER or content.text.startswith("s3://"):
        return DeclaredLayer(name=template.prefix + logical_id, content_dir=None, arn=f"<!Ref {logical_id}>",
                             declared_at=where)
    folder = (template.folder / content.text).resolve()
    if not folder.is_dir():
        raise UsageError(f"{template.path}:{template.resources.line_of(logical_id)}: layer {logical_id}: "
                         f"{content.text}: no such folder", hint="ContentUri is relative to the template's folder")
    build_method = scalar_text(_mapping(resource.get("Metadata")).get("BuildMethod"))
    if build_method and not build_method.startswith("python"):
        # `BuildMethod: makefile` (or a custom builder): sam build runs the project's own build, lpkg does not.
        # The layer is then one lpkg has not got: what the functions import from it is a warning, not missing.
        return DeclaredLayer(name=template.prefix + logical_id, content_dir=None,
                             arn=f"<!Ref {logical_id}> (BuildMethod {build_method})", declared_at=where,
                             build_method=build_method)
    return DeclaredLayer(name=template.prefix + logical_id, content_dir=folder, arn=None, declared_at=where,
                         build_method=build_method,
                         zip_root=not (build_method or "").startswith("python"))
