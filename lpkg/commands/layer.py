"""`lpkg layer`: a requirements file or a folder -> a Lambda layer zip, built the way `lpkg build` builds a
function (dependencies installed for the runtime, a deterministic zip, verified, published atomically).

Everything goes under `python/`, the layer folder on every Python runtime's sys.path (/opt/python). The layer
is verified as a function would use it: the host checks on the zip, then a stand-in function whose module
imports each top-level module of the layer, with the layer under /opt, in the runtime image.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from lpkg.archive.reader import ZipArchive, normalized_name
from lpkg.archive.writer import assemble, dependency_zip, discard_unless_published, write_zip
from lpkg.commands.inputs import BuildOptions
from lpkg.commands.publishing import left_out_findings, published_facts, verify_then_publish
from lpkg.commands.verify import VerifyOptions
from lpkg.errors import UsageError
from lpkg.files import resolved
from lpkg.install import InstallRequest
from lpkg.install.cache import Installed, install_dependencies
from lpkg.install.choose import choose_installer
from lpkg.plan.requirements import declared_names, folder_requirements, names_anything
from lpkg.plan.resolver import EXCLUDED_DIRS, EXCLUDED_FILES, unreadable_folder
from lpkg.probing.choose import choose_prober
from lpkg.report import BuildReport, Finding, Severity, Stopwatch
from lpkg.runtimes import DEFAULT_TIMEOUT_SECONDS, Arch, Runtime

LAYER_PREFIX = "python/"  # /opt/python: on sys.path in every Python runtime
CHECK_MODULE = "lpkg_layer_check"  # the stand-in function that imports the layer
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXTENSION = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.[^/]*\.so$|^(?P<plain>[A-Za-z_][A-Za-z0-9_]*)\.so$")


@dataclass(frozen=True)
class LayerSettings:
    source: Path  # a requirements file, or a folder
    out: Path
    name: str  # the zip's name, without .zip
    runtime: Runtime
    arch: Arch
    build_image: str
    image: str
    layers: tuple[Path, ...] = ()  # layers the new one is used with, before it in /opt order
    timeout: float = DEFAULT_TIMEOUT_SECONDS  # for the import test
    unseen_layers: tuple[str, ...] = ()  # layers the functions attach with this one that are not built here
    # False: the folder is the layer's content as it stands (a project layer's committed python/ folder, which
    # SAM without a BuildMethod, serverless and archive_file zip as they are): a requirements.txt in it is a file.
    install: bool = True
    # True: the folder's contents go straight under python/, as SAM's python builder and Terraform's
    # prefix_in_zip put them, even when the folder has an __init__.py (`lpkg layer FOLDER` nests a package).
    flat: bool = False

    @property
    def artifact(self) -> Path:
        return self.out / f"{self.name}.zip"


@dataclass(frozen=True)
class LayerPlan:
    requirement_files: tuple[Path, ...]
    dependencies: tuple[str, ...]
    files: tuple[tuple[str, Path], ...]  # (zip path under python/, source file)
    declared: frozenset[str] = frozenset()  # canonical names of every declared requirement (pinning boto3 keeps it)


def default_name(source: Path) -> str:
    """deps/requirements.txt -> "deps"; layers/pandas.txt -> "pandas"; a folder -> its name."""
    real = resolved(source)
    if real.is_dir() or real.stem.startswith("requirements"):
        return (real if real.is_dir() else real.parent).name
    return real.stem


def plan_layer(source: Path, install: bool = True, flat: bool = False) -> LayerPlan:
    """What goes into the layer. A file is a requirements file. A folder gives its requirements.txt (or the
    [project].dependencies of its pyproject.toml) and its Python code: a package folder (with __init__.py)
    goes in as python/<folder name>/, any other folder's modules and packages as python/<name>. Without
    `install`, a folder's requirements are not installed (LayerSettings.install); with `flat`, a package
    folder's contents go straight under python/ (LayerSettings.flat)."""
    resolved(source)  # a symlink loop says so, rather than "no such file"
    if source.is_file():
        if not names_anything(source):
            raise UsageError(f"{source}: nothing to put in a layer",
                             hint="the requirements file has only blank lines and comments")
        return LayerPlan((source.resolve(),), (), (), frozenset(declared_names([source.resolve()], ())))
    if not source.is_dir():
        raise UsageError(f"{source}: no such file or folder", hint="give a requirements file or a folder")
    folder = source.resolve()
    requirement_files, dependencies = folder_requirements(folder) if install else ([], [])
    prefix = LAYER_PREFIX + (f"{folder.name}/" if (folder / "__init__.py").is_file() and not flat else "")
    files = tuple(_code_files(folder, prefix))
    if not requirement_files and not dependencies and not files:
        raise UsageError(f"{source}: nothing to put in a layer",
                         hint="the folder has no requirements.txt, pyproject.toml dependencies or Python code")
    return LayerPlan(tuple(requirement_files), tuple(dependencies), files,
                     frozenset(declared_names(requirement_files, dependencies)))


def _code_files(folder: Path, prefix: str) -> list[tuple[str, Path]]:
    files = []
    for current, dirs, names in os.walk(folder, onerror=unreadable_folder):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_DIRS and not d.startswith("."))
        rel = Path(current).relative_to(folder).as_posix()
        here = prefix + ("" if rel == "." else rel + "/")
        for name in sorted(names):
            if name.startswith(".") or any(fnmatchcase(name, p) for p in EXCLUDED_FILES):
                continue
            if (Path(current) / name).is_file():
                files.append((here + name, Path(current) / name))
    return files


def top_level_modules(archive: ZipArchive, runtime: Runtime) -> list[str]:
    """The importable top-level names a layer provides on sys.path (packages, modules, extensions)."""
    names: set[str] = set()
    members = [normalized_name(n) for n in archive.names]
    for root in (f"{path}/" for path in runtime.layer_paths()):
        for member in members:
            if not member.startswith(root):
                continue
            rest = member[len(root):]
            head, _, tail = rest.partition("/")
            if tail == "__init__.py" and _IDENTIFIER.match(head):
                names.add(head)
            elif not tail:
                if head.endswith(".py") and _IDENTIFIER.match(head[:-3]):
                    names.add(head[:-3])
                elif match := _EXTENSION.match(head):
                    names.add(match["name"] or match["plain"])
    return sorted(names)


def check_function_source(layer_name: str, modules: list[str]) -> str:
    imports = "".join(f"import {module}\n" for module in modules)
    return (
        f'"""lpkg\'s import test of the layer {layer_name}: each of its top-level modules, as a function would."""\n\n'
        f"{imports}\n\ndef handler(event, context):\n    return None\n"
    )


def build_layer(settings: LayerSettings, options: BuildOptions) -> BuildReport:
    watch = Stopwatch()
    started = time.perf_counter()
    handler = f"{CHECK_MODULE}.handler"
    findings: list[Finding] = []
    verify_report = None

    def report(artifact: Path | None, **facts: str) -> BuildReport:
        watch.laps.append(("total", time.perf_counter() - started))
        return BuildReport(
            function=settings.name, function_dir=str(settings.source), artifact=str(artifact) if artifact else None,
            intended=str(settings.artifact), handler=handler, runtime=settings.runtime.name, arch=settings.arch,
            findings=tuple(findings), verify=verify_report, timings=tuple(watch.laps), facts=tuple(facts.items()),
        )

    with watch.lap("discover"):
        plan = plan_layer(settings.source, settings.install, settings.flat)
    request = InstallRequest(plan.requirement_files, plan.dependencies, settings.runtime, settings.arch)
    with tempfile.TemporaryDirectory(prefix="lpkg-layer-") as scratch_name:
        scratch = Path(scratch_name)
        installed = Installed(scratch / "site", "none (no requirements)")
        if not request.empty:
            installer = choose_installer(options.backend, settings.build_image, settings.arch)
            installed = install_dependencies(installer, request, options.cache, watch, installed.site)
        installed_with = installed.description
        with watch.lap("assemble"):
            # A layer's own pin of boto3 keeps it, as a function's does: a layer is how many ship a newer SDK.
            part = dependency_zip([installed.site], scratch / "zip", pinned=plan.declared,
                                  dependency_prefix=LAYER_PREFIX, keep_in=installed.zips_folder)
            assembled = assemble(settings.out, settings.name, plan.files, part)
        with discard_unless_published(assembled):
            # Verified under its own name (findings say "<name>.zip!python/..."), through a link to the temporary zip.
            named = _named_link(assembled.path, scratch / "layer", f"{settings.name}.zip")
            with ZipArchive(named) as archive:
                modules = top_level_modules(archive, settings.runtime)
            if not modules:
                findings.append(Finding(
                    "LAYER_NOTHING_IMPORTABLE", Severity.WARNING,
                    "the layer has no top-level module under python/: a function cannot import anything from it",
                ))
            check_zip = _check_function_zip(scratch, settings.name, modules)
            findings += left_out_findings(assembled)
            prober = (choose_prober(options.probe_mode, settings.runtime, settings.image, settings.arch)
                      if options.test and modules else None)
            verify_options = VerifyOptions(runtime=settings.runtime, arch=settings.arch, handler=handler,
                                           layers=(*settings.layers, named), timeout=settings.timeout,
                                           unseen_layers=settings.unseen_layers,
                                           contracts=False)  # the check function is lpkg's own code
            verify_report, final = verify_then_publish(assembled, check_zip, verify_options, prober, watch,
                                                       settings.artifact)
            if final is None:
                return report(None, installed_with=installed_with)
    return report(final, **published_facts(final, assembled), modules=", ".join(modules), installed_with=installed_with)


def _named_link(path: Path, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    try:
        os.link(path, target)
    except OSError:  # another file system, or no hard links there: a copy
        shutil.copyfile(path, target)
    return target


def _check_function_zip(scratch: Path, layer_name: str, modules: list[str]) -> Path:
    source = scratch / f"{CHECK_MODULE}.py"
    source.write_text(check_function_source(layer_name, modules), encoding="utf-8")
    path = scratch / f"{layer_name}-import-test.zip"
    with open(path, "wb") as raw:
        write_zip(raw, {f"{CHECK_MODULE}.py": source})
    return path
