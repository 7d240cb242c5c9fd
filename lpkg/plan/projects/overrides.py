"""A declared function as lpkg's build settings: the `Overrides` a build of it starts from.

Precedence: what the user typed on the command line wins; then the declaration (it is what Lambda will run:
handler, runtime, architecture); the config file's tables and the defaults fill the rest. The declared
environment is the lowest layer of the environment (`env_declared`: `[tool.lpkg] env` and `--env` win key
by key), placeholders included, so a variable read at import exists (its value says it is a placeholder).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from lpkg.config import Overrides
from lpkg.plan.projects import DeclaredFunction, DeclaredLayer, Project


def is_code_root(project: Project, function: DeclaredFunction) -> bool:
    """The function's asset is a repository's root rather than a function folder: it holds the project file
    (a serverless service folder, `CodeUri: .`), or the archive is a single file of a larger folder. Then
    only what the handler's imports reach belongs in the zip."""
    project_folder = project.path if project.path.is_dir() else project.path.parent
    return function.source_file is not None or project_folder.resolve().is_relative_to(function.code_dir)


def overrides_for(project: Project, function: DeclaredFunction, flags: Overrides,
                  layer_zips: Mapping[Path, Path] | None = None) -> Overrides:
    """`flags` with what the declaration says filled in where the flag was not given. `layer_zips` maps a
    declared layer's content_dir to the zip `lpkg layer` built from it; layers given by ARN cannot be
    attached to the import test (see `unattached_layers`)."""
    built = layer_zips or {}
    own_layers = tuple(built[layer.content_dir] for layer in function.layers
                       if layer.content_dir is not None and layer.content_dir in built)
    return dataclasses.replace(
        flags,
        runtime=flags.runtime or function.runtime,
        arch=flags.arch or function.arch,
        handler=flags.handler or function.handler,
        name=flags.name or function.name,
        env_declared=function.environment,
        env_placeholders=function.placeholders,
        code_root=flags.code_root or is_code_root(project, function),
        exclude=flags.exclude or function.exclude,
        include=function.include,
        layers=flags.layers or own_layers,
        # Given --layer, the user attached what the import test should see: nothing is unseen.
        unseen_layers=() if flags.layers else tuple(layer.arn or layer.name
                                                    for layer in unattached_layers(function, built)),
    )


def unattached_layers(function: DeclaredFunction, layer_zips: Mapping[Path, Path] | None = None
                      ) -> tuple[DeclaredLayer, ...]:
    """Declared layers the import test runs without: ARNs (and placeholders), and folders not built."""
    built = layer_zips or {}
    return tuple(layer for layer in function.layers if layer.content_dir is None or layer.content_dir not in built)
