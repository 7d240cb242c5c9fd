"""`lpkg lock` and `lpkg lock --check` for one function folder: its lock inputs found by discovery, the lock
written by pip-compile in the build image or here (lpkg.install.lock)."""

from __future__ import annotations

from pathlib import Path

from lpkg.config import FunctionSettings, Overrides, resolve_settings
from lpkg.install.lock import (
    LockInputs,
    LockOutcome,
    check,
    compile_in_image,
    compile_locally,
    lock_path,
    read_lock,
    write_lock,
)


def inputs_of(function_dir: Path, overrides: Overrides) -> tuple[str, LockInputs, FunctionSettings]:
    """The function's name, its lock inputs (found by discovery, which only reads files), its settings."""
    from lpkg.plan.discover import discover

    settings = resolve_settings(function_dir, overrides)
    plan, _ = discover(settings)
    inputs = LockInputs(plan.requirement_files, plan.dependencies, settings.runtime, settings.arch)
    return settings.name, inputs, settings


def check_function(function_dir: Path, overrides: Overrides) -> LockOutcome:
    function, inputs, settings = inputs_of(function_dir, overrides)
    return check(function, settings.function_dir, inputs)


def lock_function(function_dir: Path, overrides: Overrides, *, backend: str, upgrade: bool) -> LockOutcome:
    """Write (or refresh) the function's lock. Without `upgrade`, the pins of an existing lock are kept
    where the inputs still allow them (pip-compile's own rule)."""
    function, inputs, settings = inputs_of(function_dir, overrides)
    path = lock_path(settings.function_dir)
    if inputs.empty:
        return LockOutcome(function, None, "nothing to lock", "no requirements.txt or pyproject dependencies")
    previous = path if path.is_file() and not upgrade else None
    if backend == "local":
        compiled = compile_locally(inputs, function, previous)
    else:
        from lpkg.install.choose import choose_installer
        from lpkg.install.docker import DockerInstaller

        installer = choose_installer(backend, settings.build_image, settings.arch)
        if isinstance(installer, DockerInstaller):
            compiled = compile_in_image(installer, inputs, function, previous)
        else:
            compiled = compile_locally(inputs, function, previous)
    changed = write_lock(path, inputs, compiled)
    pins = read_lock(path).pins
    return LockOutcome(function, path, "written" if changed else "unchanged", f"{pins} pinned, with hashes")
