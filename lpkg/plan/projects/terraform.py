"""Functions from a Terraform root module's folder (its *.tf files, parsed with python-hcl2).

Read: `resource "aws_lambda_function"` (handler, runtime, architectures, environment { variables },
layers, filename) whose `filename` is `data.archive_file.X.output_path`: the code is that archive's
`source_dir` (or `source_file`), its `excludes` are excluded; `resource "aws_lambda_layer_version"` built
the same way, when a function's layers name it; and `module` blocks of terraform-aws-modules/lambda/aws
(source_path, handler, runtime, architectures, environment_variables, layers; a module with
create_layer = true is a layer). A function whose filename is a zip built elsewhere, or whose code is in
S3 or an image, is skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpkg.errors import UsageError
from lpkg.plan.projects import DeclaredFunction, DeclaredLayer, Project, is_python_runtime
from lpkg.plan.projects.hcl import Block, Evaluator, parse_folder, unquote
from lpkg.plan.projects.values import Kind, Value, environment_of

FUNCTION_RESOURCE = "aws_lambda_function"
LAYER_RESOURCE = "aws_lambda_layer_version"
ARCHIVE_DATA = "archive_file"
# How the lambda module's `source` is written: the registry address or its GitHub repository.
LAMBDA_MODULE_SOURCES = ("terraform-aws-modules/lambda/aws", "terraform-aws-modules/terraform-aws-lambda")
# Inputs that, beside `handler`, mark a module block of a local copy of the lambda module.
LAMBDA_MODULE_INPUTS = ("source_path", "local_existing_package", "s3_existing_package", "create_package")
# A module block's arguments that are Terraform's, not inputs of the module.
MODULE_META_ARGUMENTS = ("source", "version", "count", "for_each", "providers", "depends_on")
MAX_MODULE_DEPTH = 8  # child modules followed below the root module
_ARCHIVE_OUTPUT = re.compile(r"data\.archive_file\.([\w-]+)\.output_path")
_ARCHIVE_HASH = re.compile(r"data\.archive_file\.([\w-]+)\.output_(base64)?(sha|md5)")
_LAYER_ARN = re.compile(r"aws_lambda_layer_version\.([\w-]+)\.(arn|id)")
_MODULE_LAYER_ARN = re.compile(r"module\.([\w-]+)\.lambda_layer_arn")
S3_OBJECT_RESOURCES = ("aws_s3_object", "aws_s3_bucket_object")  # the second is the AWS provider's older name
_S3_OBJECT_KEY = re.compile(r"aws_s3_(?:bucket_)?object\.(?P<name>[\w-]+)\.(?:key|id)")


@dataclass(frozen=True)
class _Code:
    folder: Path
    source_file: str | None = None
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Module:
    folder: Path
    blocks: tuple[Block, ...]
    evaluator: Evaluator

    def find(self, kind: str, *labels: str) -> Block | None:
        return next((b for b in self.blocks if b.kind == kind and b.labels == labels), None)


def read_terraform(path: Path) -> Project:
    folder = (path if path.is_dir() else path.parent).resolve()
    functions, skipped = _read_module(folder, folder, {}, ())
    return Project("terraform", folder, tuple(functions), tuple(skipped))


def _read_module(folder: Path, root: Path, inputs: dict[str, Any], parents: tuple[Path, ...]
                 ) -> tuple[list[DeclaredFunction], list[tuple[str, str]]]:
    """The functions of one module folder; `inputs` are the arguments its caller's module block gives it
    (they win over the variables' defaults, as in Terraform)."""
    blocks = tuple(parse_folder(folder))
    evaluator = Evaluator(folder, root=root)
    for block in blocks:
        if block.kind == "variable" and len(block.labels) == 1 and "default" in block.body:
            evaluator.variables[block.labels[0]] = block.body["default"]
        elif block.kind == "locals":
            evaluator.locals.update({k: v for k, v in block.body.items() if not k.startswith("__")})
    evaluator.variables.update(inputs)
    module = _Module(folder, blocks, evaluator)
    functions: list[DeclaredFunction] = []
    skipped: list[tuple[str, str]] = []
    for block in blocks:
        if block.kind == "resource" and block.labels[:1] == (FUNCTION_RESOURCE,) and len(block.labels) == 2:
            read = _resource_function
        elif block.kind == "module" and _is_lambda_module(block) and not _is_true(module, block, "create_layer"):
            read = _module_function
        elif block.kind == "module" and block.labels and not _is_lambda_module(block):
            more, more_skipped = _child_module(module, block, root, (*parents, folder))
            functions += more
            skipped += more_skipped
            continue
        else:
            continue
        for name, outcome in _instances(module, block, read):
            if isinstance(outcome, str):
                skipped.append((name, outcome))
            else:
                functions.append(outcome)
    return functions, skipped


def _instances(module: _Module, block: Block, read: Callable[[_Module, Block], DeclaredFunction | str]
               ) -> list[tuple[str, DeclaredFunction | str]]:
    """One function per instance of a block: one without for_each; with it, one per key the files say
    (`lambda_functions.locations` for `module "lambda_functions" { for_each = toset(["locations", ...]) }`),
    each read with each.key and each.value bound."""
    label = block.labels[-1]
    if "for_each" not in block.body:
        return [(label, read(module, block))]
    instances = module.evaluator.instances(block.body["for_each"])
    if instances is None:
        return [(label, f"for_each = {block.body['for_each']}: its keys are known only to Terraform")]
    found: list[tuple[str, DeclaredFunction | str]] = []
    for key, value in instances:
        instance = dataclasses.replace(module, evaluator=dataclasses.replace(module.evaluator, each=(key, value)))
        outcome = read(instance, block)
        name = f"{label}.{key}"
        found.append((name, dataclasses.replace(outcome, name=name) if isinstance(outcome, DeclaredFunction)
                      else outcome))
    return found


def _child_module(module: _Module, block: Block, root: Path, parents: tuple[Path, ...]
                  ) -> tuple[list[DeclaredFunction], list[tuple[str, str]]]:
    """`module "api" { source = "./modules/api" }`: the functions declared in a local child module, named
    `api.<name>`; a module from a registry or a repository is not read, and the report says so."""
    label = block.labels[0]
    source = unquote(str(block.body.get("source", "")))
    if not source.startswith(("./", "../")):
        return [], [(f"module.{label}", f"its source {source!r} is not a local folder: functions declared "
                                        "there are not read")]
    child = (module.folder / source).resolve()
    if not child.is_dir() or child in parents or len(parents) > MAX_MODULE_DEPTH:
        return [], [(f"module.{label}", f"source {source!r}: no such folder, or a module cycle")]
    inputs: dict[str, Any] = {}
    for key, raw in block.body.items():
        if key in MODULE_META_ARGUMENTS or key.startswith("__"):
            continue
        value = module.evaluator.text(raw)
        if value is not None and value.kind is not Kind.PLACEHOLDER:
            inputs[key] = raw if not isinstance(raw, str) else '"' + value.text.replace('"', '\\"') + '"'
    functions, skipped = _read_module(child, root, inputs, parents)
    where = child.relative_to(root).as_posix() if child.is_relative_to(root) else str(child)
    return ([dataclasses.replace(f, name=f"{label}.{f.name}", declared_at=f"{where}/{f.declared_at}")
             for f in functions],
            [(f"{label}.{name}", why) for name, why in skipped])


def _is_lambda_module(block: Block) -> bool:
    source = unquote(str(block.body.get("source", "")))
    if any(known in source for known in LAMBDA_MODULE_SOURCES):
        return True
    # A local copy or wrapper of the module (source = "../../"): its inputs say what it is.
    return "handler" in block.body and any(key in block.body for key in LAMBDA_MODULE_INPUTS)


def _is_true(module: _Module, block: Block, key: str) -> bool:
    value = module.evaluator.text(block.body.get(key))
    return value is not None and value.text == "true"


def _resource_function(module: _Module, block: Block) -> DeclaredFunction | str:
    body = block.body
    if unquote(str(body.get("package_type", ""))) == "Image" or "image_uri" in body:
        return "a container image function (package_type = Image)"
    not_python = _not_python(module, block)
    if not_python:
        return not_python
    archive = _archive_of(module, body) or _uploaded_archive(module, body)
    if archive is None and body.get("filename") is None:
        return "code in S3 (s3_bucket) or not declared"
    if archive is None:
        value = module.evaluator.text(body.get("filename"))
        shown = value.text if value is not None else body.get("filename")
        return f"filename is a zip built elsewhere ({shown}): verify it with lpkg verify"
    code = _archive_source(module, archive)
    if isinstance(code, str):
        return code
    variables = _environment_variables(module, _first_block(body.get("environment")).get("variables"))
    return _declared(module, block, code, variables, body.get("layers"))


def _not_python(module: _Module, block: Block) -> str | None:
    runtime = module.evaluator.text(block.body.get("runtime"))
    if runtime is not None and runtime.kind is not Kind.PLACEHOLDER and not is_python_runtime(runtime.text):
        return f"runtime {runtime.text} is not Python"
    return None


def _archive_of(module: _Module, body: dict[str, Any]) -> Block | None:
    """The archive_file whose zip `filename` is: named by filename or source_code_hash, or at the same path."""
    for key, pattern in (("filename", _ARCHIVE_OUTPUT), ("source_code_hash", _ARCHIVE_HASH)):
        match = pattern.search(str(body.get(key, "")))
        if match:
            return module.find("data", ARCHIVE_DATA, match.group(1))
    filename = module.evaluator.text(body.get("filename"))
    if filename is None or filename.kind is Kind.PLACEHOLDER:
        return None
    for block in module.blocks:
        if block.kind == "data" and block.labels[:1] == (ARCHIVE_DATA,):
            output = module.evaluator.text(block.body.get("output_path"))
            if output is not None and module.evaluator.path(output) == module.evaluator.path(filename):
                return block
    return None


def _uploaded_archive(module: _Module, body: dict[str, Any]) -> Block | None:
    """The archive_file the function's S3 object uploads: `s3_key = aws_s3_object.X.key`, where X's `source` is
    the archive's output_path (HashiCorp's Lambda tutorial, and aws-samples/serverless-patterns'
    apigw-http-api-lambda-terraform)."""
    uploaded = _S3_OBJECT_KEY.search(str(body.get("s3_key", "")))
    if uploaded is None:
        return None
    s3_object = next((b for kind in S3_OBJECT_RESOURCES if (b := module.find("resource", kind, uploaded["name"]))),
                     None)
    source = _ARCHIVE_OUTPUT.search(str(s3_object.body.get("source", ""))) if s3_object is not None else None
    return module.find("data", ARCHIVE_DATA, source.group(1)) if source is not None else None


def _module_function(module: _Module, block: Block) -> DeclaredFunction | str:
    body = block.body
    if unquote(str(body.get("package_type", ""))) == "Image":
        return "a container image function (package_type = Image)"
    for key, reason in (("create_function", "create_function = false"),
                        ("create_package", "create_package = false: a package built elsewhere")):
        value = module.evaluator.text(body.get(key))
        if value is not None and value.text == "false":
            return reason
    not_python = _not_python(module, block)
    if not_python:
        return not_python
    code = _module_source(module, block)
    if isinstance(code, str):
        return code
    variables = _environment_variables(module, body.get("environment_variables"))
    return _declared(module, block, code, variables, body.get("layers"))


def _declared(module: _Module, block: Block, code: _Code, variables: dict[str, Value],
              layers: Any) -> DeclaredFunction | str:
    evaluator = module.evaluator
    runtime = evaluator.text(block.body.get("runtime"))
    handler = evaluator.text(block.body.get("handler"))
    if handler is None or handler.kind is Kind.PLACEHOLDER:
        raise UsageError(f"{block.file}:{block.line}: {'.'.join(block.labels)} declares no handler lpkg can read",
                         hint='declare handler = "module.function"')
    arches = evaluator.value(block.body.get("architectures"))
    arch = arches[0] if isinstance(arches, list) and arches and isinstance(arches[0], Value) else None
    environment = environment_of(variables)
    return DeclaredFunction(
        name=block.labels[-1],
        code_dir=code.folder,
        handler=handler.text,
        runtime=runtime.text if runtime is not None and runtime.kind is not Kind.PLACEHOLDER else None,
        arch=arch.text if arch is not None and arch.kind is not Kind.PLACEHOLDER else None,
        environment=environment.variables,
        placeholders=environment.placeholders,
        layers=tuple(_layer(module, block, item) for item in _raw_items(layers)),
        include=(),
        exclude=code.exclude,
        build_method=None,
        declared_at=block.where,
        defaulted=environment.defaulted,
        source_file=code.source_file,
    )


def _first_block(value: Any) -> dict[str, Any]:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return value if isinstance(value, dict) else {}


def _raw_items(value: Any) -> list[Any]:
    """A list as written; one expression (`concat(...)`, `var.layers`) is one item: its placeholder says so."""
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _archive_source(module: _Module, archive: Block) -> _Code | str:
    evaluator = module.evaluator
    excludes = evaluator.value(archive.body.get("excludes"))
    exclude = tuple(glob for v in excludes if isinstance(v, Value) for glob in _zip_globs(v.text)) \
        if isinstance(excludes, list) else ()
    for key in ("source_dir", "source_file"):
        value = evaluator.text(archive.body.get(key))
        if value is None:
            continue
        if value.kind is Kind.PLACEHOLDER:
            return f"archive_file {archive.labels[-1]}: {key} is {value.text}, not known before terraform runs"
        path = evaluator.path(value)
        folder = path if key == "source_dir" else path.parent
        if not (path.is_dir() if key == "source_dir" else path.is_file()):
            raise UsageError(f"{archive.file}:{archive.line}: archive_file {archive.labels[-1]}: {key} "
                             f"{value.text}: not found", hint="paths are relative to the root module's folder")
        return _Code(folder, None if key == "source_dir" else path.name, exclude)
    return f"archive_file {archive.labels[-1]} has no source_dir or source_file (source blocks are not read)"


def _zip_globs(exclude: str) -> tuple[str, ...]:
    """archive_file's `excludes` entry as zip-path globs: a plain name is that file or that folder's tree."""
    exclude = exclude.strip("/")
    return (exclude,) if any(c in exclude for c in "*?[") else (exclude, f"{exclude}/**")


def _module_source(module: _Module, block: Block) -> _Code | str:
    raw = block.body.get("source_path")
    if isinstance(raw, list):  # [{path = ..., patterns = [...]}, ...] or ["dir", ...]: the first is the code
        raw = raw[0] if raw else None
        if isinstance(raw, dict):
            raw = raw.get("path")
    value = module.evaluator.text(raw)
    if value is None or value.kind is Kind.PLACEHOLDER:
        return f"source_path is {value.text if value else 'not declared'}, not a folder lpkg can read"
    path = module.evaluator.path(value)
    if path.is_file():
        return _Code(path.parent, path.name)
    if not path.is_dir():
        raise UsageError(f"{block.file}:{block.line}: module {block.labels[-1]}: source_path {value.text}: not found",
                         hint="paths are relative to the root module's folder")
    return _Code(path)


def _environment_variables(module: _Module, raw: Any) -> dict[str, Value]:
    resolved = module.evaluator.value(raw) if raw is not None else {}
    if not isinstance(resolved, dict):
        return {}
    return {key: value if isinstance(value, Value) else Value(f"<{value!r}>", Kind.PLACEHOLDER)
            for key, value in resolved.items()}


def _layer(module: _Module, function: Block, raw: Any) -> DeclaredLayer:
    text = str(raw)
    own = _LAYER_ARN.search(text)
    if own:
        layer = module.find("resource", LAYER_RESOURCE, own.group(1))
        archive = _archive_of(module, layer.body) if layer is not None else None
        if layer is not None and archive is not None:
            code = _archive_source(module, archive)
            if isinstance(code, _Code):
                return DeclaredLayer(name=own.group(1), content_dir=code.folder, arn=None, declared_at=layer.where)
    from_module = _MODULE_LAYER_ARN.search(text)
    if from_module:
        layer = module.find("module", from_module.group(1))
        if layer is not None:
            code = _module_source(module, layer)
            if isinstance(code, _Code):
                return DeclaredLayer(name=from_module.group(1), content_dir=code.folder, arn=None,
                                     declared_at=layer.where)
    value = module.evaluator.text(raw)
    arn = value.text if value is not None else f"<{text}>"
    return DeclaredLayer(name=arn, content_dir=None, arn=arn, declared_at=function.where)
