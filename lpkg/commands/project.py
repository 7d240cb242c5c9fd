"""A project's own declarations as the function list: each Python function a SAM template, serverless.yml or
Terraform folder declares becomes a build (or a verify) with the declared handler, runtime, architecture,
environment and layers. A layer built from the same project is built first (`lpkg layer`) and used in the
functions' import tests. Flags given on the command line still win over what the project declares.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lpkg.config import DEFAULT_OUT, Overrides, parse_env_flag, still_placeholders
from lpkg.errors import LpkgError, UsageError
from lpkg.install.cache import cache_home
from lpkg.report import ArtifactReport, BuildReport, Finding, Severity, notice, sort_findings
from lpkg.runtimes import DEFAULT_RUNTIME, DEFAULT_TIMEOUT_SECONDS, get_runtime, parse_arch

if TYPE_CHECKING:
    from lpkg.commands.inputs import BuildOptions
    from lpkg.commands.targets import ProjectSpec
    from lpkg.plan.projects import DeclaredFunction, DeclaredLayer, Project
    from lpkg.probing.request import NoProbe, Prober

LAYERS_FOLDER = "layers"  # under the output folder: the layers a project builds for its functions


@dataclass(frozen=True)
class LayerBuild:
    """A layer of this project, to build once for the functions that use it."""

    layer: DeclaredLayer
    runtime: str
    arch: str

    @property
    def source(self) -> Path:
        assert self.layer.content_dir is not None
        # A folder that is the zip's root holds python/: its contents are what goes under python/.
        return self.layer.content_dir / "python" if self.as_it_stands else self.layer.content_dir

    @property
    def as_it_stands(self) -> bool:
        """The layer is its folder's python/ as committed (installed packages): nothing in it is installed."""
        content = self.layer.content_dir
        return self.layer.zip_root and content is not None and (content / "python").is_dir()


@dataclass(frozen=True)
class ProjectPlan:
    project: Project
    out: Path
    functions: tuple[tuple[DeclaredFunction, Path, Overrides], ...]  # (declared, folder, overrides)
    layers: tuple[LayerBuild, ...]


def load_project(kind: str | None, path: Path | None, only: Sequence[str] = ()) -> Project:
    """The project named by a flag, else the one found in the current folder; `only` picks functions by name."""
    from lpkg.plan.projects import read_project  # the project readers: only when there is a project file

    project = read_project(kind, path if path is not None else Path.cwd())
    for name, why in project.skipped:
        notice(f"{project.path.name}: {name} is not built: {why}")
    if only:
        if project.kind == "sam":  # sam build's name for a nested application's function: App/Function
            only = [name.replace("/", ".") for name in only]
        unknown = sorted(set(only) - {f.name for f in project.functions})
        if unknown:
            raise UsageError(f"{project.path}: no Python function named {', '.join(unknown)}",
                             hint="declared: " + ", ".join(f.name for f in project.functions))
        project = dataclasses.replace(project, functions=tuple(f for f in project.functions if f.name in only))
    if not project.functions:
        raise UsageError(f"{project.path}: declares no Python function lpkg can build")
    return project


def _project_root(project: Project) -> Path:
    return project.path if project.path.is_dir() else project.path.parent


def layer_zip(out: Path, layer: DeclaredLayer) -> Path:
    return out / LAYERS_FOLDER / f"{layer.name}.zip"


def plan_project(project: Project, flags: Overrides) -> ProjectPlan:
    from lpkg.plan.projects.overrides import overrides_for

    out = (flags.out or Path(DEFAULT_OUT)).absolute()
    functions: list[tuple[DeclaredFunction, Path, Overrides]] = []
    layers: dict[Path, LayerBuild] = {}
    for declared in project.functions:
        zips = {layer.content_dir: layer_zip(out, layer) for layer in declared.layers if layer.content_dir}
        overrides = overrides_for(project, declared, dataclasses.replace(flags, out=out), zips)
        for layer in declared.layers:  # built once, for the first function that uses it, on its runtime
            if layer.content_dir is not None:
                layers.setdefault(layer.content_dir, LayerBuild(layer, overrides.runtime or DEFAULT_RUNTIME,
                                                                overrides.arch or "x86_64"))
        functions.append((declared, declared.code_dir, overrides))
    return ProjectPlan(project, out, tuple(functions), tuple(layers.values()))


def declared_findings(declared: DeclaredFunction, placeholders: Collection[str]) -> list[Finding]:
    """What the report says of the declarations themselves: the placeholder values the import test still saw
    (config.still_placeholders), layers not built here."""
    findings = []
    for key in (key for key in declared.placeholders if key in placeholders):
        value = dict(declared.environment)[key]
        findings.append(Finding(
            "ENV_PLACEHOLDER", Severity.INFO,
            f"{key}={value}: the project leaves this value to deploy time; the import test saw the placeholder",
            declared.declared_at))
    for layer in declared.layers:
        if layer.content_dir is None:
            findings.append(Finding(
                "LAYER_NOT_IN_PROJECT", Severity.WARNING,
                f"layer {layer.arn or layer.name} is not built from this project: the import test ran without it",
                layer.declared_at))
    return findings


def build_layers(plan: ProjectPlan, options: BuildOptions, flags: Overrides) -> list[BuildReport]:
    """Build each layer of the project that its functions use, into OUT/layers/<name>.zip, first."""
    from lpkg.commands.layer import LayerSettings, build_layer

    reports = []
    for build in plan.layers:
        runtime = get_runtime(build.runtime)
        arch = parse_arch(build.arch)
        settings = LayerSettings(
            source=build.source, out=plan.out / LAYERS_FOLDER, name=build.layer.name, runtime=runtime, arch=arch,
            build_image=flags.build_image or runtime.build_image(arch),
            image=flags.image or runtime.runtime_image(arch), timeout=flags.timeout or DEFAULT_TIMEOUT_SECONDS,
            unseen_layers=_unseen_beside(plan, build.layer), install=not build.as_it_stands, flat=True,
        )
        reports.append(build_layer(settings, dataclasses.replace(options, compile=False)))
    return reports


def _unseen_beside(plan: ProjectPlan, layer: DeclaredLayer) -> tuple[str, ...]:
    """The layers not built here (ARNs) that a function using `layer` attaches with it: a module the layer
    imports may come from one of them, as the functions get them all."""
    unseen: dict[str, None] = {}
    for declared, _, _ in plan.functions:
        if any(attached.content_dir == layer.content_dir for attached in declared.layers):
            unseen.update((other.arn or other.name, None) for other in declared.layers if other.content_dir is None)
    return tuple(unseen)


def _placeholders_seen(overrides: Overrides) -> tuple[str, ...]:
    """The declared placeholders --env did not replace: what the import test saw."""
    typed = dict(parse_env_flag(e) for e in overrides.env)
    return still_placeholders(overrides, tuple({**dict(overrides.env_declared), **typed}.items()))


def build_project(plan: ProjectPlan, options: BuildOptions, jobs: int,
                  on_done: Callable[[int, Path, BuildReport | None, float], None] | None = None,
                  ) -> tuple[list[BuildReport], list[LpkgError]]:
    """The project's functions, each with what the report says of its declarations."""
    from lpkg.commands.build import build_functions

    folders = [folder for _, folder, _ in plan.functions]
    reports, errors = build_functions(folders, [o for _, _, o in plan.functions], options, jobs, on_done)
    declared = {d.name: (d, _placeholders_seen(o)) for d, _, o in plan.functions}
    said = [dataclasses.replace(r, findings=sort_findings((*r.findings, *declared_findings(*declared[r.function]))))
            if r.function in declared else r for r in reports]
    return said, errors


def verify_project(spec: ProjectSpec, flags: Overrides, probe_mode: str) -> list[ArtifactReport]:
    """`lpkg verify --template …`: each declared function's built zip (OUT/<name>.zip) checked against its
    declaration: the declared handler resolvable, the runtime's and architecture's native code, the declared
    layers attached (the ones this project builds, from OUT/layers), the declared environment at import."""
    from lpkg.commands.verify import VerifyOptions, verify_zip
    from lpkg.probing.choose import choose_prober

    plan = plan_project(load_project(spec.kind, spec.path, spec.functions), flags)
    typed = dict(parse_env_flag(e) for e in flags.env)
    reports = []
    probers: dict[tuple[str, str, str], Prober | NoProbe | None] = {}
    for declared, _, overrides in plan.functions:
        runtime = get_runtime(overrides.runtime or DEFAULT_RUNTIME)
        arch = parse_arch(overrides.arch or "x86_64")
        artifact = plan.out / f"{declared.name}.zip"
        missing = [p for p in (artifact, *overrides.layers) if not p.is_file()]
        if missing:
            reports.append(ArtifactReport(
                artifact=str(artifact), handler=overrides.handler, runtime=runtime.name, arch=arch,
                findings=tuple(Finding("PROJECT_ARTIFACT_MISSING", Severity.ERROR,
                                       f"{p} is not there: build it first (lpkg build with the same project flag)",
                                       declared.declared_at) for p in missing),
                probe="not run: nothing to check"))
            continue
        options = VerifyOptions(
            contract_cache=cache_home(),
            runtime=runtime, arch=arch, handler=overrides.handler, layers=overrides.layers,
            unseen_layers=overrides.unseen_layers,
            placeholders=_placeholders_seen(overrides),
            timeout=flags.timeout or DEFAULT_TIMEOUT_SECONDS, function_name=declared.name,
            environment=tuple(sorted({**dict(declared.environment), **typed}.items())),
        )
        image = flags.image or runtime.runtime_image(arch)
        if (runtime.name, arch, image) not in probers:  # one per image, as `lpkg verify a.zip b.zip` has
            probers[(runtime.name, arch, image)] = choose_prober(probe_mode, runtime, image, arch)
        prober = probers[(runtime.name, arch, image)]
        report = verify_zip(artifact, options, prober)
        reports.append(dataclasses.replace(
            report, findings=sort_findings((*report.findings,
                                            *declared_findings(declared, options.placeholders)))))
    return reports
