"""The command line's shared options and option groups, spelled once for every command that takes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from lpkg.runtimes import MAX_TIMEOUT_SECONDS

# Options both commands take, spelled once.
layer_option = click.option("--layer", "layers", multiple=True, type=click.Path(path_type=Path),
                            help="A layer zip (repeatable), unpacked under /opt as Lambda does.")
timeout_option = click.option(
    "--timeout", type=click.FloatRange(1, MAX_TIMEOUT_SECONDS),
    help="The function's timeout in seconds: how long the handler import may take, and the call with --event "
    "(default 30, or `timeout` in the config).")
event_option = click.option(
    "--event", "event_spec", metavar="FILE|NAME",
    help="After the import, call the handler once with this event and a real LambdaContext (no network): a "
    "JSON file, - for stdin, or a built-in such as apigw:GET:/health (see `lpkg events`).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
format_option = click.option(
    "--format", "output_format", type=click.Choice(["human", "json", "github", "gitlab"]),
    help="human (default), json (as --json), github (workflow annotations at file and line) or gitlab (a code "
    "quality report). Under GITHUB_ACTIONS / GITLAB_CI, human output gets the annotations too.")
env_option = click.option("--env", "env", multiple=True, metavar="KEY=VALUE",
                          help="An environment variable for the import test and the smoke invoke (repeatable); "
                          "wins over `env` in the config and what a project file declares.")
# Options `build` and `layer` take, spelled once.
build_image_option = click.option(
    "--build-image", help="Image pip runs in; default public.ecr.aws/sam/build-python3.X:latest-ARCH.")
test_image_option = click.option(
    "--image", help="Runtime image for the import test; default public.ecr.aws/lambda/python:3.X-ARCH.")
no_test_option = click.option("--no-test", is_flag=True,
                              help="Skip the import test in the runtime image (host checks still run).")
backend_option = click.option(
    "--backend", type=click.Choice(["auto", "docker", "local"]), default="auto", show_default=True,
    help="Where pip installs dependencies: the build image (Docker), or pip here asking for the runtime's wheels. "
    "auto: Docker when a daemon answers and can run the target CPU.")
build_probe_option = click.option(
    "--probe", "probe_mode", type=click.Choice(["auto", "docker", "local"]), default="auto", show_default=True,
    help="Where the import test runs (see lpkg verify --help).")
no_cache_option = click.option(
    "--no-cache", is_flag=True,
    help="Run pip even if these requirements were installed before (cache: LPKG_CACHE_DIR, else ~/.cache/lpkg).")


def project_options(command: Callable[..., None]) -> Callable[..., None]:
    """The functions a project file declares, as the list to build or verify."""
    path = click.Path(path_type=Path, exists=True)
    for option in reversed((
        click.option("--template", type=path, help="A SAM / CloudFormation template: its Python functions."),
        click.option("--serverless", type=path, help="A serverless.yml: its Python functions."),
        click.option("--terraform", type=click.Path(path_type=Path, exists=True),
                     help="A Terraform folder: its aws_lambda_function resources and lambda modules."),
        click.option("--function", "only", multiple=True, help="Only this function of the project (repeatable)."),
    )):
        command = option(command)
    return command


def build_and_test_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options `build` and `layer` share: which images, which installer, whether and how to test."""
    for option in reversed((build_image_option, test_image_option, no_test_option, backend_option,
                            build_probe_option, timeout_option)):
        command = option(command)
    return command
