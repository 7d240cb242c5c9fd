"""Functions from a Serverless Framework serverless.yml (AWS provider).

Read: `provider` (runtime, architecture, environment, layers), `functions.*` (handler, runtime,
architecture, environment merged key by key over the provider's, layers replacing the provider's,
package.patterns / include / exclude added to the service's), the top-level `package`, and `layers:` of the
same file (`path` -> content_dir), referenced as `{Ref: <Name>LambdaLayer}`. The code root is the service
folder (where serverless.yml is), as the framework zips it. Variables: see sls_variables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpkg.errors import UsageError
from lpkg.plan.projects import DeclaredFunction, DeclaredLayer, Project, is_python_runtime
from lpkg.plan.projects.cfn_yaml import Intrinsic, LineDict, load_yaml
from lpkg.plan.projects.sls_variables import VariableResolver
from lpkg.plan.projects.values import Kind, Value, environment_of

LAYER_LOGICAL_ID_SUFFIX = "LambdaLayer"  # the framework names layer `foo-bar` FooDashbarLambdaLayer


@dataclass(frozen=True)
class _Service:
    path: Path
    document: LineDict
    resolver: VariableResolver
    layers: dict[str, DeclaredLayer]  # by the layer's logical id (FooLambdaLayer) and by its key

    @property
    def folder(self) -> Path:
        return self.path.parent.resolve()

    def setting(self, table: Any, key: str) -> str | None:
        value = table.get(key) if isinstance(table, dict) else None
        return self.resolver.resolve_text(value)[0]

    def known_setting(self, *tables_and_key: Any) -> Value | None:
        """The first table's value of the key that is set (the function's, then the provider's)."""
        *tables, key = tables_and_key
        for table in tables:
            value = table.get(key) if isinstance(table, dict) else None
            text, kind = self.resolver.resolve_text(value)
            if text is not None:
                return Value(text, kind)
        return None


def layer_logical_id(name: str) -> str:
    """The CloudFormation logical id the framework gives the layer `name`."""
    normalized = name.replace("-", "Dash").replace("_", "Underscore")
    return normalized[:1].upper() + normalized[1:] + LAYER_LOGICAL_ID_SUFFIX


def read_serverless(path: Path) -> Project:
    document = load_yaml(path)
    if not isinstance(document, LineDict):
        raise UsageError(f"{path}:1: not a serverless.yml: the top level must be a mapping")
    resolver = VariableResolver(document)
    provider = document.get("provider")
    provider = provider if isinstance(provider, dict) else {}
    provider_name = resolver.resolve_text(provider.get("name"))[0]
    if provider_name not in (None, "aws"):
        line = document.line_of("provider")
        raise UsageError(f"{path}:{line}: provider {provider_name!r}: lpkg reads AWS Lambda functions only")
    service = _Service(path, document, resolver, {})
    service.layers.update(_own_layers(service))
    functions_table = _functions_table(path, document)
    functions: list[DeclaredFunction] = []
    skipped: list[tuple[str, str]] = []
    for name, declared in functions_table.items():
        outcome = _function(service, provider, str(name), declared, functions_table)
        if isinstance(outcome, str):
            skipped.append((str(name), outcome))
        else:
            functions.append(outcome)
    return Project("serverless", path, tuple(functions), tuple(skipped))


def _functions_table(path: Path, document: LineDict) -> LineDict:
    """`functions:` as a mapping; the framework also takes a list of mappings, merged in order."""
    declared = document.get("functions")
    if declared is None:
        return LineDict()
    if isinstance(declared, list) and all(isinstance(item, LineDict) for item in declared):
        merged = LineDict()
        for item in declared:
            merged.update(item)
            merged.key_lines.update(item.key_lines)
        return merged
    if not isinstance(declared, LineDict):
        raise UsageError(f"{path}:{document.line_of('functions')}: functions is {declared!r}, not a mapping of "
                         "name to function", hint="lpkg reads the functions written in serverless.yml itself")
    return declared


def _own_layers(service: _Service) -> dict[str, DeclaredLayer]:
    table = service.document.get("layers")
    if not isinstance(table, LineDict):
        return {}
    layers: dict[str, DeclaredLayer] = {}
    for key, declared in table.items():
        where = f"{service.path.name}:{table.line_of(key)}"
        folder_text = service.setting(declared, "path")
        if folder_text is None:
            continue  # a layer from a prebuilt artifact: referenced by ARN
        folder = (service.folder / folder_text).resolve()
        if not folder.is_dir():
            raise UsageError(f"{service.path}:{table.line_of(key)}: layer {key}: path {folder_text}: no such folder",
                             hint="layer paths are relative to the service folder")
        layer = DeclaredLayer(name=str(key), content_dir=folder, arn=None, declared_at=where)
        layers[layer_logical_id(str(key))] = layer
        layers[str(key)] = layer
    return layers


def _function(service: _Service, provider: dict[str, Any], name: str, declared: Any,
              table: LineDict) -> DeclaredFunction | str:
    line = table.line_of(name)
    if not isinstance(declared, dict):
        raise UsageError(f"{service.path}:{line}: function {name} must be a mapping (handler, runtime, ...)")
    if declared.get("image") is not None:
        return "a container image function (image:)"
    package = declared.get("package") if isinstance(declared.get("package"), dict) else {}
    if service.setting(package, "artifact") is not None:
        return f"a prebuilt artifact ({service.setting(package, 'artifact')}): verify it with lpkg verify"
    declared_runtime = service.known_setting(declared, provider, "runtime")
    if declared_runtime is None:
        return "no runtime declared (the Serverless Framework's default is Node.js)"
    runtime = declared_runtime.text
    if declared_runtime.kind is Kind.PLACEHOLDER:
        return f"runtime {runtime}: not known before deploy"
    if not is_python_runtime(runtime):
        return f"runtime {runtime} is not Python"
    handler = service.setting(declared, "handler")
    if handler is None or handler.startswith("<"):
        raise UsageError(f"{service.path}:{line}: function {name} declares no handler lpkg can read",
                         hint="declare handler: path/to/module.function")
    environment = environment_of(_environment(service, provider, declared))
    include, exclude = _patterns(service, service.document.get("package"), package)
    layers_declared = declared.get("layers", provider.get("layers"))
    return DeclaredFunction(
        name=name,
        code_dir=service.folder,
        handler=handler,
        runtime=runtime,
        arch=_known(service.known_setting(declared, provider, "architecture")),
        environment=environment.variables,
        placeholders=environment.placeholders,
        layers=tuple(_layer(service, item, line) for item in _items(layers_declared)),
        include=include,
        exclude=exclude,
        build_method=None,
        declared_at=f"{service.path.name}:{line}",
        defaulted=environment.defaulted,
    )


def _known(value: Value | None) -> str | None:
    return None if value is None or value.kind is Kind.PLACEHOLDER else value.text  # a placeholder: at deploy


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _environment(service: _Service, provider: dict[str, Any], declared: dict[str, Any]) -> dict[str, Value]:
    """provider.environment, then the function's, key by key; either may be a variable naming a mapping."""
    values: dict[str, Value] = {}
    for table in (provider.get("environment"), declared.get("environment")):
        table_kind = Kind.LITERAL
        if isinstance(table, str):
            table, table_kind = service.resolver.resolve(table)
        if not isinstance(table, dict):
            continue  # `environment: ${file(env.yml)}`: nothing lpkg can read here
        for key, raw in table.items():
            text, kind = service.resolver.resolve_text(raw)
            if text is None:  # an intrinsic, a mapping: what Lambda gets is decided at deploy time
                text, kind = (raw.placeholder() if isinstance(raw, Intrinsic) else f"<{raw!r}>"), Kind.PLACEHOLDER
            values[str(key)] = Value(text, kind if kind is not Kind.LITERAL else table_kind)
    return values


def _patterns(service: _Service, *packages: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """package.patterns (a leading `!` excludes) and the older include/exclude, service then function."""
    include: list[str] = []
    exclude: list[str] = []
    for package in packages:
        if not isinstance(package, dict):
            continue
        for pattern in _texts(service, package.get("patterns")):
            (exclude.append(pattern[1:]) if pattern.startswith("!") else include.append(pattern))
        include.extend(_texts(service, package.get("include")))
        exclude.extend(_texts(service, package.get("exclude")))
    return tuple(include), tuple(exclude)


def _texts(service: _Service, value: Any) -> list[str]:
    texts = (service.resolver.resolve_text(item)[0] for item in _items(value))
    return [text for text in texts if text]


def _layer(service: _Service, item: Any, line: int) -> DeclaredLayer:
    where = f"{service.path.name}:{line}"
    own = isinstance(item, Intrinsic) and item.function == "Ref" and isinstance(item.argument, str)
    if own and item.argument in service.layers:
        return service.layers[item.argument]
    if isinstance(item, Intrinsic):
        return DeclaredLayer(name=item.placeholder(), content_dir=None, arn=item.placeholder(), declared_at=where)
    text, _ = service.resolver.resolve_text(item)
    arn = text if text is not None else f"<{item!r}>"
    return service.layers.get(arn) or DeclaredLayer(name=arn, content_dir=None, arn=arn, declared_at=where)


