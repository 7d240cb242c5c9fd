"""What `lpkg build` and `lpkg verify` act on: the folders or zips given, else the project file named on the
command line or found in the current folder, else what the config or the source roots hold.

Apart from lpkg.commands.project so that a build of folders does not import the project machinery."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lpkg.config import Overrides
from lpkg.errors import LpkgError, UsageError
from lpkg.report import BuildReport

if TYPE_CHECKING:
    from lpkg.commands.inputs import BuildOptions


@dataclass(frozen=True)
class ProjectSpec:
    """Which project file the command line named (--template, --serverless, --terraform), and which functions."""

    kind: str | None
    path: Path | None  # None: the one found in the current folder
    functions: tuple[str, ...] = ()


def spec_from_flags(template: Path | None, serverless: Path | None, terraform: Path | None,
                    functions: tuple[str, ...]) -> ProjectSpec | None:
    given = [(kind, path) for kind, path in (("sam", template), ("serverless", serverless),
                                             ("terraform", terraform)) if path is not None]
    if len(given) > 1:
        raise UsageError("name one project file: --template, --serverless or --terraform")
    if given:
        return ProjectSpec(given[0][0], given[0][1], functions)
    if functions:
        raise UsageError("--function picks functions of a project file",
                         hint="add --template, --serverless or --terraform (or run where the file is)")
    return None


def detected_spec(folder: Path) -> ProjectSpec | None:
    """A project file in the folder, for a command given no function folder."""
    from lpkg.plan.projects import detect_project

    found = detect_project(folder)
    return None if found is None else ProjectSpec(found[0], found[1])


def run_builds(function_dirs: Sequence[Path], spec: ProjectSpec | None, flags: Overrides, options: BuildOptions,
               jobs: int, say: Callable[[str], None], progress: Callable[[str], None],
               ) -> tuple[list[BuildReport], list[LpkgError]]:
    """`lpkg build`: the folders given; else the project file named or found here; else what the config or the
    source roots hold. With several functions, `say` gets one line per function as it finishes."""
    from lpkg.commands.build import build_functions
    from lpkg.config import find_function_dirs

    if spec is None and not function_dirs:
        spec = detected_spec(Path.cwd())
        if spec is not None and spec.path is not None:
            progress(f"building the functions {spec.path.name} declares")
    plan = None
    if spec is not None:
        from lpkg.commands.project import build_layers, build_project, load_project, plan_project

        plan = plan_project(load_project(spec.kind, spec.path, spec.functions), flags)
        folders: Sequence[Path] = [folder for _, folder, _ in plan.functions]
        names = [declared.name for declared, _, _ in plan.functions]
    else:
        folders = function_dirs or find_function_dirs(Path.cwd(), flags.source_roots)
        names = [folder.name for folder in folders]

    def done(index: int, folder: Path, report: BuildReport | None, seconds: float) -> None:
        if len(folders) > 1:
            outcome = "error (below)" if report is None else (
                f"built {report.artifact}" if report.ok else f"FAILED, nothing written to {report.intended}")
            say(f"[{index + 1}/{len(folders)}] {names[index]}: {outcome} ({seconds:.1f} s)")

    if len(folders) == 1:
        progress(f"building {folders[0]}")
    if plan is None:
        return build_functions(folders, flags, options, jobs, done)
    layer_reports = build_layers(plan, options, flags)
    if not all(r.ok for r in layer_reports):
        failed = ", ".join(r.function for r in layer_reports if not r.ok)
        say(f"{len(names)} function(s) not built: their import tests need the layers, and {failed} failed")
        return layer_reports, []
    reports, errors = build_project(plan, options, jobs, done)
    return [*layer_reports, *reports], errors
