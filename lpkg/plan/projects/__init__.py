"""The functions a project declares: SAM/CloudFormation templates, serverless.yml, Terraform.

Each reader turns one project file (or Terraform folder) into a `Project`: the Python functions it declares,
with code folder, handler, runtime, architecture, environment and layers as declared, and the functions it
declares that lpkg cannot build (another runtime, a container image, code in S3) with the reason. Readers
read files only; a value the file leaves to deploy time (an intrinsic, a reference, a variable with no
default) becomes a placeholder such as `<!Ref Environment>`. Each reader is imported only when its format is
read, so its parser costs nothing otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lpkg.errors import UsageError

ProjectKind = Literal["sam", "serverless", "terraform"]
PROJECT_KINDS: tuple[ProjectKind, ...] = ("sam", "serverless", "terraform")
# What autodetection looks for in a folder, in this order: the first format with a file there wins.
PROJECT_FILES: tuple[tuple[ProjectKind, tuple[str, ...]], ...] = (
    ("sam", ("template.yaml", "template.yml", "template.json")),
    ("serverless", ("serverless.yml", "serverless.yaml")),
)
TERRAFORM_SUFFIX = ".tf"


@dataclass(frozen=True)
class DeclaredLayer:
    """A layer a function declares: built from a folder of this project (content_dir), or an ARN."""

    name: str  # logical id / layer key / resource name; for an ARN, the ARN
    content_dir: Path | None  # absolute; None for a layer that is not in this project
    arn: str | None  # as declared (may be a placeholder); None for a layer built here
    declared_at: str  # "template.yaml:40"
    build_method: str | None = None  # SAM Metadata.BuildMethod ("python3.12", "makefile")
    # True: content_dir is the layer zip's root as it is (python/ inside it: serverless, Terraform, SAM
    # without a BuildMethod). False: Python code and a requirements.txt that a build puts under python/
    # (SAM BuildMethod python3.x, the way `lpkg layer FOLDER` builds one).
    zip_root: bool = True


@dataclass(frozen=True)
class DeclaredFunction:
    """One Python function as its project declares it."""

    name: str  # logical id / function key / resource or module name
    code_dir: Path  # absolute: CodeUri / the serverless service folder / source_dir / source_path
    handler: str  # as declared
    runtime: str | None  # "python3.12"; None if not declared
    arch: str | None  # "x86_64" | "arm64"; None if not declared
    environment: tuple[tuple[str, str], ...]  # sorted by key; unresolved values are placeholders "<!Ref X>"
    placeholders: tuple[str, ...]  # keys whose value is a placeholder, not what Lambda will see
    layers: tuple[DeclaredLayer, ...]
    include: tuple[str, ...]  # zip-path globs the project adds (serverless package.patterns)
    exclude: tuple[str, ...]  # zip-path globs the project leaves out
    build_method: str | None  # SAM Metadata.BuildMethod
    declared_at: str  # "template.yaml:12", relative to the project file's folder
    # Keys whose value is a default the deploy may override (a template Parameter's Default, `${opt:x, 'dev'}`).
    defaulted: tuple[str, ...] = ()
    source_file: str | None = None  # Terraform archive_file source_file: the one file, relative to code_dir


@dataclass(frozen=True)
class Project:
    kind: ProjectKind
    path: Path  # the project file (Terraform: the folder)
    functions: tuple[DeclaredFunction, ...]
    skipped: tuple[tuple[str, str], ...]  # (function name, why lpkg does not build it)


def detect_project(folder: Path) -> tuple[ProjectKind, Path] | None:
    """The project file in `folder`: template.yaml/.yml/.json, serverless.yml/.yaml, else the folder itself
    when it holds *.tf files. None when there is none."""
    for kind, names in PROJECT_FILES:
        for name in names:
            if (folder / name).is_file():
                return kind, folder / name
    if any(p.is_file() for p in folder.glob(f"*{TERRAFORM_SUFFIX}")):
        return "terraform", folder
    return None


def kind_of_file(path: Path) -> ProjectKind:
    """The format of a named project file (or a Terraform folder/file), from its name and suffix."""
    if path.is_dir() or path.suffix == TERRAFORM_SUFFIX:
        return "terraform"
    if path.name.startswith("serverless."):
        return "serverless"
    if path.suffix in (".yaml", ".yml", ".json", ".template"):
        return "sam"
    raise UsageError(f"{path}: not a project file lpkg knows",
                     hint="name a SAM/CloudFormation template, a serverless.yml or a Terraform folder")


def read_project(kind: str | None, path: Path) -> Project:
    """The functions the project at `path` declares. `kind` None: from the file's name, or, for a folder, the
    project file found in it (see detect_project). Unreadable or malformed input is a UsageError naming
    file and line."""
    path = path.absolute()
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if kind is None:
        if path.is_dir():
            found = detect_project(path)
            if found is None:
                raise UsageError(f"{path}: no template.yaml, serverless.yml or *.tf here",
                                 hint="name the project file (--template, --serverless, --terraform)")
            kind, path = found
        else:
            kind = kind_of_file(path)
    elif kind != "terraform" and path.is_dir():
        found = detect_project(path)
        if found is None or found[0] != kind:
            raise UsageError(f"{path}: no {kind} project file here")
        path = found[1]
    return _read(kind, path)


def _read(kind: str, path: Path) -> Project:
    # Each reader imports its parser (PyYAML, python-hcl2); only the one asked for is loaded.
    if kind == "sam":
        from lpkg.plan.projects.sam import read_sam

        return read_sam(path)
    if kind == "serverless":
        from lpkg.plan.projects.serverless import read_serverless

        return read_serverless(path)
    if kind == "terraform":
        from lpkg.plan.projects.terraform import read_terraform

        return read_terraform(path)
    raise UsageError(f"unknown project kind {kind!r}", hint=f"one of: {', '.join(PROJECT_KINDS)}")


def sorted_environment(variables: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(variables.items()))


def is_python_runtime(runtime: str) -> bool:
    return runtime.startswith("python")
