"""lpkg in a CDK app (issue 5), for real: aws-cdk-lib from the package index, the CDK CLI from the npm
registry (scripts/test-env.sh keeps it in its state folder), `cdk synth` of fixtures/projects/cdk-app
(two functions sharing lambda/shared/), and the bundling command inside the build image.

The synthesized app is made once per module; the handler-typo test synthesizes a changed copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import IN_CI
from helpers import FIXTURES, REPO, run_lpkg

CDK_APP = FIXTURES / "projects" / "cdk-app"
STATE_DIR = Path(os.environ.get("LPKG_TEST_ENV_DIR", "/var/tmp/lpkg-test-env"))
CDK_CLI = Path(os.environ.get("LPKG_CDK_CLI", STATE_DIR / "cdk-cli" / "node_modules" / ".bin" / "cdk"))
FUNCTIONS = {"Orders": "orders", "Reports": "reports"}
STACK = "LpkgCdkExample"

pytestmark = pytest.mark.docker  # the import test runs in the stand-in runtime image


def cdk_or_skip() -> Path:
    """The CDK CLI and aws-cdk-lib; missing in CI is a failure, not a skip."""
    problems = []
    if not CDK_CLI.is_file() or shutil.which("node") is None:
        problems.append(f"no CDK CLI at {CDK_CLI} (scripts/test-env.sh installs it with npm)")
    try:
        import aws_cdk  # noqa: F401
    except ImportError:
        problems.append("aws-cdk-lib is not installed (pip install -e '.[cdk]')")
    if problems:
        if IN_CI:
            pytest.fail("; ".join(problems))
        pytest.skip("; ".join(problems))
    return CDK_CLI


def synth(app: Path, out: str, image: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LPKG_BUILD_ARGS": f"--image {image}",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "1",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
    return subprocess.run(
        [str(cdk_or_skip()), "synth", "--app", f"{sys.executable} app.py", "--output", out, "--no-notices", "-q"],
        cwd=app, env=env, capture_output=True, text=True, timeout=900,
    )


def zip_contents(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist() if not name.endswith("/")}


def function_assets(cdk_out: Path) -> dict[str, Path]:
    """Construct ID -> the asset file its template points at (aws:asset:path)."""
    template = json.loads((cdk_out / f"{STACK}.template.json").read_text())
    assets = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::Function":
            construct = resource["Metadata"]["aws:cdk:path"].split("/")[1]
            assets[construct] = cdk_out / resource["Metadata"]["aws:asset:path"]
    return assets


@dataclass(frozen=True)
class Synthesized:
    app: Path
    cdk_out: Path
    run: subprocess.CompletedProcess[str]
    expected: Mapping[str, Path]  # function folder -> the zip `lpkg build` makes of it outside CDK


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory, standin_image: str) -> Synthesized:
    app = tmp_path_factory.mktemp("cdk") / "cdk-app"
    shutil.copytree(CDK_APP, app, ignore=shutil.ignore_patterns("cdk.out", "__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    for folder in FUNCTIONS.values():
        built = run_lpkg("build", app / "lambda" / folder, "--runtime", "python3.11", "--image", standin_image,
                         "--out", dist)
        assert built.returncode == 0, built.stdout + built.stderr
    run = synth(app, "cdk.out", standin_image)
    return Synthesized(app, app / "cdk.out", run, {f: dist / f"{f}.zip" for f in FUNCTIONS.values()})


def test_cdk_synth_bundles_each_function_with_lpkg(synthesized: Synthesized) -> None:
    assert synthesized.run.returncode == 0, synthesized.run.stdout[-3000:] + synthesized.run.stderr[-3000:]
    assets = function_assets(synthesized.cdk_out)
    assert set(assets) == set(FUNCTIONS)
    for construct, folder in FUNCTIONS.items():
        asset = assets[construct]
        assert asset.suffix == ".zip" and asset.is_file(), asset  # lpkg's zip, uploaded as it is
        files = zip_contents(asset)
        assert files == zip_contents(synthesized.expected[folder])
        assert {"handler.py", "shared/__init__.py", "shared/responses.py"} <= set(files)
    assert "probe: docker:" in synthesized.run.stderr  # local bundling ran lpkg, and its import test


def test_verify_cdk_out_checks_every_function_against_its_template(synthesized: Synthesized) -> None:
    assert synthesized.run.returncode == 0, synthesized.run.stderr[-3000:]
    run = run_lpkg("verify", "--cdk-out", synthesized.cdk_out, "--image", "lpkg-standin/lambda-python:3.11-x86_64",
                   "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    artifacts = json.loads(run.stdout)["artifacts"]
    checked = {a["artifact"].split(" ")[0]: a for a in artifacts}
    for construct in FUNCTIONS:
        report = checked[f"{STACK}/{construct}/Resource"]
        assert report["ok"] and report["handler"] == "handler.handler" and report["runtime"] == "python3.11"
        assert report["probe"].startswith("docker:")
    edge = checked[f"{STACK}.template.json"]["findings"]
    assert [f["code"] for f in edge] == ["CDK_API_EDGE_DEFAULT"]
    assert f"{STACK}/Api/Resource" in edge[0]["message"]


def test_handler_typo_in_the_cdk_app_fails_verify_cdk_out(
    synthesized: Synthesized, tmp_path: Path, standin_image: str
) -> None:
    app = tmp_path / "cdk-app"
    shutil.copytree(synthesized.app, app, ignore=shutil.ignore_patterns("cdk.out", "__pycache__"))
    source = (app / "app.py").read_text()
    orders = 'handler="handler.handler", code=code("orders")'
    typo = source.replace(orders, orders.replace("handler.handler", "handler.hanlder"))
    assert typo != source
    (app / "app.py").write_text(typo)
    run = synth(app, "cdk.out", standin_image)
    assert run.returncode == 0, run.stderr[-3000:]  # CDK has no idea; the asset itself is fine
    check = run_lpkg("verify", "--cdk-out", app / "cdk.out", "--image", standin_image, "--json")
    assert check.returncode == 1, check.stdout + check.stderr
    failed = [a for a in json.loads(check.stdout)["artifacts"] if not a["ok"]]
    assert [a["artifact"].split(" ")[0] for a in failed] == [f"{STACK}/Orders/Resource"]
    mismatch = next(f for f in failed[0]["findings"] if f["code"] == "CDK_HANDLER_MISMATCH")
    assert f"{STACK}/Orders/Resource" in mismatch["message"] and "did you mean 'handler'" in mismatch["message"]
    assert mismatch["member"] == "handler.py"


@pytest.mark.network
def test_bundling_command_inside_the_build_image(tmp_path: Path, standin_image: str) -> None:
    """CDK's container route, as CDK runs it: the asset (lambda/) at /asset-input, the command lpkg.cdk gives,
    in the build image (the stand-in) with no Docker inside; /asset-output must hold the same zip."""
    from lpkg.cdk import build_options, container_command

    source = tmp_path / "src"
    shutil.copytree(REPO / "lpkg", source / "lpkg", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(source)],
                   check=True, capture_output=True)
    wheel = next(wheels.glob("lpkg-*.whl"))
    out = tmp_path / "asset-output"
    out.mkdir()
    command = container_command("orders", build_options("python3.11", "x86_64"), f"/wheels/{wheel.name}")
    docker = ["docker", "run", "--rm", "--network", "host", "--entrypoint", command[0],
              "-v", f"{CDK_APP / 'lambda'}:/asset-input:ro", "-v", f"{out}:/asset-output",
              "-v", f"{wheels}:/wheels:ro", "-w", "/asset-input"]
    ca = os.environ.get("PIP_CERT")
    if ca and Path(ca).is_file():
        docker += ["-v", f"{Path(ca).resolve()}:/host-ca.pem:ro", "-e", "PIP_CERT=/host-ca.pem"]
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "HTTPS_PROXY", "HTTP_PROXY"):
        if os.environ.get(key):
            docker += ["-e", f"{key}={os.environ[key]}"]
    run = subprocess.run([*docker, standin_image, *command[1:]], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["orders.zip"]  # one zip: CDK uploads it as it is
    assert "the Lambda image's interpreter" in run.stdout  # the probe ran with the image's own python3.11
    expected = tmp_path / "expected"
    built = run_lpkg("build", CDK_APP / "lambda" / "orders", "--runtime", "python3.11", "--no-test", "--out", expected)
    assert built.returncode == 0, built.stderr
    assert zip_contents(out / "orders.zip") == zip_contents(expected / "orders.zip")
