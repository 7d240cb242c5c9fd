"""`lpkg verify`: which zips to check and how, from the command line's arguments: a synthesized CDK app
(--cdk-out), a project file (named, or found here when no zip is given), or the zips given."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from lpkg.config import Overrides, parse_env_flag
from lpkg.errors import UsageError
from lpkg.report import ArtifactReport
from lpkg.runtimes import DEFAULT_RUNTIME, DEFAULT_TIMEOUT_SECONDS, RUNTIMES, get_runtime, parse_arch


def verify_targets(zips: tuple[Path, ...], flags: Overrides, probe_mode: str, *, cdk_out: Path | None,
                   project: tuple[Path | None, Path | None, Path | None, tuple[str, ...]],
                   progress: Callable[[str], None]) -> list[ArtifactReport]:
    """One report per zip checked. `flags`: the command line's --runtime, --arch, --handler, --out, --image,
    --layer, --timeout, --event and --env; `project`: --template, --serverless, --terraform and --function."""
    if cdk_out is not None:
        if zips or flags.handler is not None or flags.runtime or flags.layers or flags.event:
            raise UsageError("--cdk-out takes handler, runtime, architecture and layers from the templates",
                             hint="give either ZIP... or --cdk-out, and no --handler, --runtime, --layer or --event")
        from lpkg.commands.cdk_out import verify_assembly

        progress(f"checking the functions of {cdk_out}")
        return verify_assembly(cdk_out, image=flags.image, timeout=flags.timeout or DEFAULT_TIMEOUT_SECONDS,
                               probe_mode=probe_mode, environment=dict(parse_env_flag(e) for e in flags.env))
    from lpkg.commands.project import verify_project
    from lpkg.commands.targets import detected_spec, spec_from_flags

    spec = spec_from_flags(*project) or (None if zips else detected_spec(Path.cwd()))
    if spec is not None:
        if zips:
            raise UsageError("give zips or a project file, not both")
        return verify_project(spec, Overrides(runtime=flags.runtime, arch=flags.arch, handler=flags.handler,
                                              out=flags.out, image=flags.image, layers=flags.layers,
                                              timeout=flags.timeout, env=flags.env), probe_mode)
    return verify_zips(zips, flags, probe_mode, progress)


def verify_zips(zips: tuple[Path, ...], flags: Overrides, probe_mode: str,
                progress: Callable[[str], None]) -> list[ArtifactReport]:
    """The zips given, each with the same runtime, architecture, handler and layers, by one prober."""
    from lpkg.commands.verify import VerifyOptions, guess_runtime_minor, open_for_guessing, verify_zip
    from lpkg.events import load_event
    from lpkg.install.cache import cache_home
    from lpkg.probing.choose import choose_prober

    if not zips:
        raise UsageError("nothing to verify", hint="give one or more zips, a project file, or --cdk-out cdk.out")
    for path in (*zips, *flags.layers):
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
    if flags.event is not None and probe_mode == "none":
        raise UsageError("--event calls the handler in the probe, which --probe none skips",
                         hint="drop one of --event and --probe none")
    event = load_event(flags.event) if flags.event is not None else None
    lambda_arch = parse_arch(flags.arch or "x86_64")
    runtime = flags.runtime
    with contextlib.ExitStack() as stack:
        first = None  # read once: for the guess, then verified (verify_zip closes it; closing again is harmless)
        if runtime is None:
            first = open_for_guessing(zips[0])
            if first is not None:
                stack.callback(first.close)
            minor = guess_runtime_minor(first.names) if first is not None else None
            runtime = f"python3.{minor}" if minor is not None and f"python3.{minor}" in RUNTIMES else DEFAULT_RUNTIME
        rt = get_runtime(runtime)
        options = VerifyOptions(runtime=rt, arch=lambda_arch, handler=flags.handler, layers=flags.layers,
                                contract_cache=cache_home(), timeout=flags.timeout or DEFAULT_TIMEOUT_SECONDS,
                                event=event,
                                environment=tuple(sorted(dict(parse_env_flag(e) for e in flags.env).items())))
        prober = choose_prober(probe_mode, rt, flags.image or rt.runtime_image(lambda_arch), lambda_arch)
        reports = []
        for index, path in enumerate(zips):
            progress(f"checking {path} ({rt.name}, {lambda_arch})")
            reports.append(verify_zip(path, options, prober, first if index == 0 else None))
    return reports
