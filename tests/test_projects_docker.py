"""The project readers driving real builds in the stand-in image: each fixture project's function built
from its declaration alone (handler, runtime, code folder, environment, layers), as `lpkg build --template`
will. A declared variable read at import is set; without the declaration the same build fails."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

import pytest
from helpers import run_lpkg

from lpkg.commands.build import build_function
from lpkg.commands.inputs import BuildOptions
from lpkg.config import Overrides
from lpkg.plan.projects import DeclaredLayer, read_project
from lpkg.plan.projects.overrides import overrides_for

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "projects"
OPTIONS = BuildOptions(probe_mode="docker", backend="docker", cache=False)

pytestmark = [pytest.mark.docker, pytest.mark.network]


@pytest.fixture(autouse=True)
def host_network() -> Iterator[None]:
    # pip in the build container reaches the index over the host's network (path requirements need setuptools)
    previous = os.environ.get("LPKG_DOCKER_NETWORK")
    os.environ["LPKG_DOCKER_NETWORK"] = "host"
    yield
    if previous is None:
        del os.environ["LPKG_DOCKER_NETWORK"]
    else:
        os.environ["LPKG_DOCKER_NETWORK"] = previous


def layer_zip(layer: DeclaredLayer, image: str, out: Path) -> Path:
    """The layer as the lead's `lpkg build --template` will make it: `lpkg layer` for Python code to put
    under python/, the folder zipped as it is for a folder that already is the layer's zip root."""
    assert layer.content_dir is not None
    if layer.zip_root:
        target = out / f"{layer.name}.zip"
        with zipfile.ZipFile(target, "w") as archive:
            for path in sorted(layer.content_dir.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(layer.content_dir).as_posix())
        return target
    run = run_lpkg("layer", layer.content_dir, "--runtime", "python3.11", "--build-image", image, "--image", image,
                   "--out", out, "--json")
    assert run.returncode == 0, run.stderr
    return out / f"{layer.content_dir.name}.zip"


def build(kind: str, name: str, image: str, tmp_path: Path, *, declared_env: bool = True) -> tuple[Path | None, str]:
    project = read_project(kind, FIXTURES / f"{kind}-app")
    (function,) = [f for f in project.functions if f.name == name]
    zips = {layer.content_dir: layer_zip(layer, image, tmp_path) for layer in function.layers if layer.content_dir}
    flags = Overrides(build_image=image, image=image, out=tmp_path / "out", arch="x86_64")  # x86_64: no emulation
    overrides = overrides_for(project, function, flags, zips)
    if not declared_env:
        overrides = dataclasses.replace(overrides, env_declared=())
    report = build_function(function.code_dir, overrides, OPTIONS)
    messages = " ".join(f.message for f in (*report.findings, *(report.verify.findings if report.verify else ())))
    return (Path(report.artifact) if report.artifact else None), messages


def members(artifact: Path) -> set[str]:
    with zipfile.ZipFile(artifact) as archive:
        return {m for m in archive.namelist() if not m.endswith("/")}


def test_sam_function_reads_its_declared_table_name_at_import(standin_image: str, tmp_path: Path) -> None:
    artifact, _ = build("sam", "CreateOrderFunction", standin_image, tmp_path)
    assert artifact is not None and artifact.name == "CreateOrderFunction.zip"
    assert members(artifact) == {"common/__init__.py", "common/responses.py", "orders/__init__.py",
                                 "orders/create.py"}  # audit_trail comes from the layer


def test_without_the_declared_environment_the_import_fails(standin_image: str, tmp_path: Path) -> None:
    artifact, messages = build("sam", "CreateOrderFunction", standin_image, tmp_path, declared_env=False)
    assert artifact is None
    assert "TABLE_NAME" in messages


def test_sam_path_requirement_is_built_into_the_zip(standin_image: str, tmp_path: Path) -> None:
    artifact, _ = build("sam", "DailyReportFunction", standin_image, tmp_path)
    assert artifact is not None
    assert {"app.py", "orders_shared/dates.py"} <= members(artifact)


def test_serverless_service_folder_as_code_root(standin_image: str, tmp_path: Path) -> None:
    artifact, _ = build("serverless", "createOrder", standin_image, tmp_path)
    assert artifact is not None
    names = members(artifact)
    assert {"handlers/orders.py", "billing/totals.py", "pricing/__init__.py"} <= names
    assert not any(n.startswith(("tests/", "web/", "layers/", "packages/")) for n in names), sorted(names)


def test_serverless_package_patterns_put_a_template_in_the_zip(standin_image: str, tmp_path: Path) -> None:
    artifact, messages = build("serverless", "dailyReport", standin_image, tmp_path)
    assert artifact is not None, messages
    names = members(artifact)
    assert {"handlers/reports.py", "billing/totals.py", "templates/report.html"} <= names
    assert not any(n.startswith(("tests/", "web/", "layers/")) for n in names), sorted(names)


def test_terraform_archive_function_with_its_layer(standin_image: str, tmp_path: Path) -> None:
    artifact, _ = build("terraform", "ingest", standin_image, tmp_path)
    assert artifact is not None
    assert members(artifact) == {"handler.py", "parsers/__init__.py", "parsers/csv_records.py"}


def test_terraform_module_function_with_a_path_requirement_and_the_layer(standin_image: str, tmp_path: Path) -> None:
    """module "thumbnails" (terraform-aws-modules/lambda): libs/imaging by a path requirement, metrics from
    the layer, both needed at import."""
    artifact, messages = build("terraform", "thumbnails", standin_image, tmp_path)
    assert artifact is not None, messages
    names = members(artifact)
    assert {"app.py", "imaging/__init__.py", "imaging/sizes.py"} <= names
    assert not any(n.startswith("metrics/") for n in names)  # the layer's, not the zip's


def test_lpkg_build_template_builds_the_declared_function_with_its_layer(standin_image: str, tmp_path: Path) -> None:
    """The command line end to end: the project file is the function list; the layer built from the same
    project comes first and is in the function's import test; placeholders are said in the report."""
    out = tmp_path / "dist"
    run = run_lpkg("build", "--template", FIXTURES / "sam-app" / "template.yaml", "--function", "CreateOrderFunction",
                   "--build-image", standin_image, "--image", standin_image, "--out", out, "--json", "--no-cache")
    assert run.returncode == 0, run.stdout + run.stderr
    reports = {r["function"]: r for r in json.loads(run.stdout)["functions"]}
    assert set(reports) == {"AuditTrailLayer", "CreateOrderFunction"}
    assert (out / "layers" / "AuditTrailLayer.zip").is_file() and (out / "CreateOrderFunction.zip").is_file()
    said = {f["code"]: f for f in reports["CreateOrderFunction"]["findings"]}
    assert "TABLE_NAME=<!Ref OrdersTable>" in said["ENV_PLACEHOLDER"]["message"]
    assert said["ENV_PLACEHOLDER"]["member"].startswith("template.yaml:")
    assert "audit_trail" in reports["CreateOrderFunction"]["largest"]  # the layer was in the import test

    # lpkg verify with the same flags checks the built zip against the declaration, layer attached.
    template = FIXTURES / "sam-app" / "template.yaml"
    verified = run_lpkg("verify", "--template", template, "--function", "CreateOrderFunction", "--out", out,
                        "--image", standin_image, "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    [artifact] = json.loads(verified.stdout)["artifacts"]
    assert artifact["handler"] == "orders.create.lambda_handler"
    assert "AuditTrailLayer.zip" in artifact["facts"]["layers"]
    (out / "layers" / "AuditTrailLayer.zip").unlink()
    missing = run_lpkg("verify", "--template", template, "--function", "CreateOrderFunction", "--out", out,
                       "--image", standin_image, "--json")
    assert missing.returncode == 1
    [finding] = json.loads(missing.stdout)["artifacts"][0]["findings"]
    assert finding["code"] == "PROJECT_ARTIFACT_MISSING" and "AuditTrailLayer.zip" in finding["message"]


def test_modules_of_a_layer_attached_by_arn_are_not_called_missing(standin_image: str, tmp_path: Path) -> None:
    """Powertools attached by ARN (Lambda has it, lpkg cannot fetch it): the project's own layer and the function
    importing it build, with a warning at each such import; a name the project's layer lacks is still an error."""
    out = tmp_path / "dist"
    template = FIXTURES / "sam-arn-layer" / "template.yaml"
    run = run_lpkg("build", "--template", template, "--build-image", standin_image, "--image", standin_image,
                   "--out", out, "--json", "--no-cache")
    assert run.returncode == 1, run.stdout + run.stderr
    reports = {r["function"]: r for r in json.loads(run.stdout)["functions"]}
    assert reports["SharedLayer"]["ok"] and reports["CartFunction"]["ok"], run.stdout
    cart = reports["CartFunction"]["findings"]
    assert not [f for f in cart if f["severity"] == "error"], cart
    unseen = {(f["member"], f["line"]) for f in cart if f["code"] == "IMPORT_FROM_UNSEEN_LAYER"}
    assert ("app.py", 1) in unseen and ("/opt/python/cart_shared.py", 1) in unseen
    assert any(f["code"] == "LAYER_MODULES_STOOD_IN" and f["message"].startswith("aws_lambda_powertools:")
               for f in cart)
    assert (out / "CartFunction.zip").is_file() and (out / "layers" / "SharedLayer.zip").is_file()
    broken = reports["BrokenFunction"]
    assert not broken["ok"] and not (out / "BrokenFunction.zip").exists()
    errors = {(f["code"], f["member"], f["line"]) for f in broken["findings"] if f["severity"] == "error"}
    assert ("IMPORT_NAME_MISSING", "app.py", 3) in errors, broken["findings"]
    # lpkg verify of the built zip, against the same declaration: the same warnings, no error.
    verified = run_lpkg("verify", "--template", template, "--function", "CartFunction", "--out", out,
                        "--image", standin_image, "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    codes = {f["code"] for f in json.loads(verified.stdout)["artifacts"][0]["findings"]}
    assert {"IMPORT_FROM_UNSEEN_LAYER", "LAYER_MODULES_STOOD_IN"} <= codes


PLACEHOLDER_SERVICE = """service: ports
provider:
  name: aws
  runtime: python3.11
  environment:
    PORT: ${env:PORT}
functions:
  reads:
    handler: reads.handler
  broken:
    handler: broken.handler
"""


def test_an_import_that_fails_on_a_placeholder_value_is_a_warning(standin_image: str, tmp_path: Path) -> None:
    """PORT is left to deploy time (${env:PORT}): int() of its placeholder fails at import, which says nothing
    of the code; with a real value the import passes. A failure that reads no placeholder stays an error."""
    (tmp_path / "serverless.yml").write_text(PLACEHOLDER_SERVICE)
    (tmp_path / "reads.py").write_text("import os\n\nPORT = int(os.environ['PORT'])\n\n\n"
                                       "def handler(event, context):\n    return PORT\n")
    (tmp_path / "broken.py").write_text("LIMITS = {'a': 1}\nLIMIT = LIMITS['b']\n\n\n"
                                        "def handler(event, context):\n    return LIMIT\n")

    def build(*extra: str) -> dict[str, dict]:  # type: ignore[type-arg]
        run = run_lpkg("build", "--serverless", tmp_path / "serverless.yml", "--build-image", standin_image,
                       "--image", standin_image, "--out", tmp_path / "dist", "--json", "--no-cache", *extra)
        assert "Traceback" not in run.stderr
        return {r["function"]: r for r in json.loads(run.stdout)["functions"]}

    reports = build()
    said = {f["code"]: f for f in reports["reads"]["findings"]}
    assert reports["reads"]["ok"], reports["reads"]["findings"]
    placeholder = said["INIT_EXCEPTION_PLACEHOLDER"]
    assert (placeholder["severity"], placeholder["member"], placeholder["line"]) == ("warning", "reads.py", 3)
    assert "PORT" in placeholder["message"] and "--env" in placeholder["message"]
    broken = {(f["code"], f["severity"], f["line"]) for f in reports["broken"]["findings"]}
    assert not reports["broken"]["ok"] and ("INIT_EXCEPTION", "error", 2) in broken
    given = build("--env", "PORT=8080", "--function", "reads")
    assert given["reads"]["ok"]
    assert not {f["code"] for f in given["reads"]["findings"]} & {"INIT_EXCEPTION", "INIT_EXCEPTION_PLACEHOLDER",
                                                                   "ENV_PLACEHOLDER"}  # --env gave its value


def test_lpkg_build_finds_the_project_file_in_the_current_folder(standin_image: str, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    project = tmp_path / "terraform-app"
    shutil.copytree(FIXTURES / "terraform-app", project)
    run = run_lpkg("build", "--function", "ingest", "--terraform", ".", "--build-image", standin_image,
                   "--image", standin_image, "--out", out, "--json", "--no-cache", cwd=project)
    assert run.returncode == 0, run.stdout + run.stderr
    names = [r["function"] for r in json.loads(run.stdout)["functions"]]
    assert names[-1] == "ingest" and (out / "ingest.zip").is_file()


def test_function_that_the_project_does_not_declare_is_a_usage_error(tmp_path: Path) -> None:
    run = run_lpkg("build", "--template", FIXTURES / "sam-app" / "template.yaml", "--function", "Nope",
                   "--out", tmp_path)
    assert run.returncode == 2 and "no Python function named Nope" in run.stderr, run.stderr
    assert "CreateOrderFunction" in run.stderr


# The marker environment of the stand-in python3.11 x86_64 image, for reading which locked pins apply.
LINUX_311 = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
             "python_version": "3.11", "python_full_version": "3.11.9", "implementation_name": "cpython",
             "platform_python_implementation": "CPython"}


def test_a_poetry_lock_is_the_pinned_set_of_a_build(standin_image: str, tmp_path: Path) -> None:
    """poetry.lock above the function folder: exactly the locked runtime versions in the zip, the local package
    built from its folder, no dev group."""
    out = tmp_path / "dist"
    run = run_lpkg("build", FIXTURES / "poetry-app" / "reports", "--runtime", "python3.11", "--build-image",
                   standin_image, "--image", standin_image, "--out", out, "--json", "--no-cache", "--event", "empty")
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)["functions"][0]
    assert "poetry.lock" in report["facts"]["installed_with"]
    from packaging.markers import Marker

    expected = {}
    for package in tomllib.loads((FIXTURES / "poetry-app" / "poetry.lock").read_text(encoding="utf-8"))["package"]:
        markers = package.get("markers")  # Poetry 2: a string, or one per group
        marker = markers.get("main") if isinstance(markers, dict) else markers
        if "main" in package.get("groups", ["main"]) and (not marker or Marker(marker).evaluate(LINUX_311)):
            expected[package["name"].lower()] = package["version"]
    installed = zip_distributions(out / "reports.zip")
    assert installed == expected  # exactly the locked runtime set: the dev group and win32-only packages left out
    assert "pytest" not in installed and "colorama" not in installed
    assert json.loads(report["invocation"]["response"])["day"] == "2026-01-01"


def zip_distributions(artifact: Path) -> dict[str, str]:
    """name (canonical) -> version of each *.dist-info folder in the zip."""
    with zipfile.ZipFile(artifact) as archive:
        folders = {n.split("/")[0] for n in archive.namelist() if n.split("/")[0].endswith(".dist-info")}
    pairs = (folder[: -len(".dist-info")].rsplit("-", 1) for folder in folders)
    return {name.replace("_", "-").lower(): version for name, version in pairs}


def test_a_uv_lock_is_the_pinned_set_of_a_build(standin_image: str, tmp_path: Path) -> None:
    """uv.lock (made here by uv itself: a committed one would name the index's URLs): the zip holds exactly
    the pins `uv export --no-dev` gives for Linux x86_64 and Python 3.11, the path package built, no dev group."""
    from packaging.markers import Marker

    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is a dependency of lpkg"
    project = tmp_path / "uv-app"
    shutil.copytree(FIXTURES / "uv-app", project)
    subprocess.run([uv, "lock", "--quiet"], cwd=project, check=True, capture_output=True)
    out = tmp_path / "dist"
    run = run_lpkg("build", project / "orders", "--runtime", "python3.11", "--build-image", standin_image,
                   "--image", standin_image, "--out", out, "--json", "--no-cache")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "uv.lock" in json.loads(run.stdout)["functions"][0]["facts"]["installed_with"]

    exported = subprocess.run([uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project",
                               "--no-header", "--no-annotate"], cwd=project, check=True, capture_output=True,
                              text=True).stdout
    expected = {}
    for line in exported.splitlines():
        if not line or line.startswith((" ", "#", ".", "-e")):
            continue
        pin, _, marker = line.partition(";")
        if not marker.strip() or Marker(marker.strip()).evaluate(LINUX_311):
            name, _, version = pin.strip().partition("==")
            expected[name.lower()] = version
    installed = zip_distributions(out / "orders.zip")
    assert installed.pop("greeting") == "0.2.0"  # the path package, built from libs/greeting (its version)
    assert installed == expected
    assert "pytest" not in installed and "colorama" not in installed


def test_a_nested_application_is_built_with_the_layer_and_values_its_parent_passes(standin_image: str,
                                                                                   tmp_path: Path) -> None:
    """`AWS::Serverless::Application` with a local Location: its function builds from the nested template, the
    parent's layer (passed as a Parameter) is in the import test, and the handler reads at import the variables
    the parent passes; the Serverless Application Repository app is said, not built."""
    out = tmp_path / "dist"
    template = FIXTURES / "sam-nested" / "template.yaml"
    event = tmp_path / "event.json"
    event.write_text('{"cents": 1234}')
    run = run_lpkg("build", "--template", template, "--build-image", standin_image, "--image", standin_image,
                   "--out", out, "--json", "--no-cache", "--event", event)
    assert run.returncode == 0, run.stdout + run.stderr
    reports = {r["function"]: r for r in json.loads(run.stdout)["functions"]}
    assert set(reports) == {"MoneyLayer", "BillingApp.InvoiceFunction"}
    assert "AuthorizerApp is not built: an application from the Serverless Application Repository" in run.stderr
    assert members(out / "BillingApp.InvoiceFunction.zip") == {"invoices.py"}  # money comes from the layer
    response = json.loads(reports["BillingApp.InvoiceFunction"]["invocation"]["response"])
    assert response == {"stage": "staging", "total": "12.34 EUR"}
