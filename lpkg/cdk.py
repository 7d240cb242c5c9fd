"""lpkg as the bundling step of a Python CDK app: `lambda_.Code` whose asset is lpkg's verified zip.

    from lpkg.cdk import lpkg_code
    code = lpkg_code("lambda/orders", runtime=lambda_.Runtime.PYTHON_3_12)

`cdk synth` first tries local bundling: `lpkg build` on this machine (Docker used for the import test when
there, else a local interpreter). Only when lpkg cannot run here at all (exit 3: no way to install or
import) does CDK fall back to the same command in the SAM build image. A function that fails to build
fails the synth: the bad zip never becomes an asset.

The asset is the source root (the function folder's parent by default, e.g. lambda/), so first-party
packages beside the function (lambda/shared/) are there for lpkg to find, in both routes. lpkg leaves one
zip in the output folder, which CDK uploads as it is (BundlingOutput.ARCHIVED): the bytes lpkg verified
are the bytes deployed.

aws-cdk-lib is an optional extra (`pip install lpkg[cdk]`), imported only by this module.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import aws_cdk
import jsii
from aws_cdk import aws_lambda as lambda_

from lpkg.errors import EnvironmentProblem

CONTAINER_LPKG = "/tmp/lpkg"  # where the bundling container's pip puts lpkg (any user can write there)


def build_options(runtime: str, arch: str, extra: Sequence[str] = ()) -> list[str]:
    """The `lpkg build` options both routes pass (the function folder and --out differ)."""
    return ["--runtime", runtime, "--arch", arch, *extra]


@jsii.implements(aws_cdk.ILocalBundling)
class LpkgLocalBundling:
    """CDK's local bundling: `lpkg build` on this machine, with the interpreter running the CDK app."""

    def __init__(self, function_dir: Path, options: Sequence[str]) -> None:
        self.function_dir = function_dir
        self.options = list(options)

    def try_bundle(self, output_dir: str, options: object = None) -> bool:
        command = [sys.executable, "-m", "lpkg", "build", str(self.function_dir), *self.options, "--out", output_dir]
        # lpkg's report goes to stderr: a CDK app's stdout can be read by the toolkit.
        proc = subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr, stdin=subprocess.DEVNULL)
        if proc.returncode == EnvironmentProblem.exit_code:
            print("lpkg: cannot build here; CDK falls back to bundling in the build image", file=sys.stderr)
            return False
        if proc.returncode != 0:
            raise RuntimeError(f"lpkg build {self.function_dir} failed (exit {proc.returncode}); see its report above")
        return True


def lpkg_code(
    function_dir: str | os.PathLike[str],
    *,
    runtime: lambda_.Runtime,
    architecture: lambda_.Architecture | None = None,
    source_root: str | os.PathLike[str] | None = None,
    image: aws_cdk.DockerImage | None = None,
    lpkg_requirement: str = "lpkg",
    build_args: Sequence[str] = (),
) -> lambda_.Code:
    """The function's code as lpkg builds it. `image` (default: the runtime's SAM build image) and
    `lpkg_requirement` (what pip installs there) are for the container route."""
    function = Path(function_dir).absolute()
    root = Path(source_root).absolute() if source_root is not None else function.parent
    relative = function.relative_to(root).as_posix()
    arch = (architecture or lambda_.Architecture.X86_64).name
    options = build_options(runtime.name, arch, build_args)
    return lambda_.Code.from_asset(
        str(root),
        bundling=aws_cdk.BundlingOptions(
            image=image or runtime.bundling_image,
            command=container_command(relative, options, lpkg_requirement),
            # jsii calls try_bundle(output_dir, options); the generated stub spells the options out (aws-cdk#26581).
            local=cast(aws_cdk.ILocalBundling, LpkgLocalBundling(function, options)),
            output_type=aws_cdk.BundlingOutput.ARCHIVED,
        ),
    )


def container_command(function: str, options: Sequence[str], lpkg_requirement: str = "lpkg") -> list[str]:
    """The bundling command in the build image (CDK mounts the asset at /asset-input and collects
    /asset-output): pip puts lpkg where any user may write, then lpkg builds with pip here (no Docker there)."""
    build = shlex.join(["build", f"/asset-input/{function}", *options, "--backend", "local", "--out", "/asset-output"])
    return ["bash", "-c",
            f"pip install --quiet --target {CONTAINER_LPKG} {shlex.quote(lpkg_requirement)} && "
            f"PYTHONPATH={CONTAINER_LPKG} python -m lpkg {build}"]
