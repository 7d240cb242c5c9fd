"""Layers (issue 7): `lpkg layer` builds a python/ layer zip the way `lpkg build` builds a function, and
`build --layer` / `verify --layer` put layers under /opt in order, as Lambda does."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from helpers import LpkgRun, run_lpkg, write_zip

BUILD_ENV = {"LPKG_DOCKER_NETWORK": "host"}
HANDLER_USING_IDNA = (
    "import idna\n\n\ndef handler(event, context):\n    return idna.encode('example.com').decode()\n"
)

Json = dict[str, Any]


def lpkg_json(*args: str | Path) -> tuple[LpkgRun, Json]:
    run = run_lpkg(*args, "--json", env=BUILD_ENV)
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    return run, json.loads(run.stdout)


def layer(source: Path, out: Path, image: str, *extra: str) -> tuple[LpkgRun, Json]:
    run, document = lpkg_json("layer", source, "--out", out, "--runtime", "python3.11", "--build-image", image,
                              "--image", image, *extra)
    return run, document["functions"][0]


def build(function: Path, out: Path, image: str, *extra: str) -> tuple[LpkgRun, Json]:
    run, document = lpkg_json("build", function, "--out", out, "--runtime", "python3.11", "--build-image", image,
                              "--image", image, *extra)
    return run, document["functions"][0]


def error_codes(report: Json) -> set[str]:
    return {f["code"] for f in report["findings"] if f["severity"] == "error"}


def names(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as zf:
        return zf.namelist()


@pytest.fixture(scope="module")
def idna_layer(tmp_path_factory: pytest.TempPathFactory, standin_image: str) -> Path:
    source = tmp_path_factory.mktemp("src") / "web-deps"
    source.mkdir()
    (source / "requirements.txt").write_text("idna==3.10\n")
    out = tmp_path_factory.mktemp("dist")
    run, report = layer(source / "requirements.txt", out, standin_image)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert report["artifact"] == str(out / "web-deps.zip")
    return out / "web-deps.zip"


@pytest.mark.docker
@pytest.mark.network
def test_layer_from_requirements_puts_everything_under_python_and_is_deterministic(
    idna_layer: Path, tmp_path: Path, standin_image: str
) -> None:
    members = names(idna_layer)
    assert "python/idna/__init__.py" in members
    assert all(m.startswith("python/") for m in members)
    assert not [m for m in members if m.endswith(".pyc")]
    # The same requirements again (pip really runs: --no-cache), somewhere else: the same bytes.
    again_src = tmp_path / "web-deps"
    again_src.mkdir()
    (again_src / "requirements.txt").write_text("idna==3.10\n")
    run, report = layer(again_src / "requirements.txt", tmp_path / "out", standin_image, "--no-cache")
    assert run.returncode == 0, run.stderr[-3000:]
    again = tmp_path / "out" / "web-deps.zip"
    assert hashlib.sha256(again.read_bytes()).hexdigest() == hashlib.sha256(idna_layer.read_bytes()).hexdigest()
    assert report["facts"]["modules"] == "idna"
    assert report["probe"].startswith("docker:")  # the layer's modules were imported in the runtime image


@pytest.mark.docker
@pytest.mark.network
def test_function_whose_dependency_is_only_in_a_layer_passes_with_it_and_fails_without(
    idna_layer: Path, tmp_path: Path, standin_image: str
) -> None:
    function = tmp_path / "lambda" / "resolver"
    function.mkdir(parents=True)
    (function / "handler.py").write_text(HANDLER_USING_IDNA)
    run, report = build(function, tmp_path / "with", standin_image, "--layer", str(idna_layer))
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert report["ok"] is True and report["probe"].startswith("docker:")
    built = tmp_path / "with" / "resolver.zip"
    assert names(built) == ["handler.py"]  # the dependency stays in the layer

    run, report = build(function, tmp_path / "without", standin_image)
    assert run.returncode == 1
    assert {"IMPORT_MISSING", "Runtime.ImportModuleError"} <= error_codes(report)
    missing = next(f for f in report["findings"] if f["code"] == "IMPORT_MISSING")
    assert (missing["member"], missing["line"]) == ("handler.py", 1)
    assert not (tmp_path / "without").exists()

    # verify says the same of the built zip, and lists the layer with its size.
    run, document = lpkg_json("verify", built, "--runtime", "python3.11", "--image", standin_image,
                              "--layer", idna_layer)
    assert run.returncode == 0, run.stdout
    assert document["artifacts"][0]["facts"]["layers"].startswith("web-deps.zip ")
    run, document = lpkg_json("verify", built, "--runtime", "python3.11", "--image", standin_image)
    assert run.returncode == 1
    assert "IMPORT_MISSING" in error_codes(document["artifacts"][0])


@pytest.mark.docker
def test_layer_from_a_package_folder_and_one_that_fails_to_import(tmp_path: Path, standin_image: str) -> None:
    package = tmp_path / "shared"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "clients.py").write_text("def make():\n    return 'client'\n")
    (package / "tests").mkdir()
    (package / "tests" / "test_clients.py").write_text("")
    run, report = layer(package, tmp_path / "out", standin_image)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert sorted(n for n in names(tmp_path / "out" / "shared.zip") if not n.endswith("/")) == [
        "python/shared/__init__.py", "python/shared/clients.py",
    ]

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "settings.py").write_text("import os\n\nTABLE = os.environ['TABLE_NAME']\n")
    run, report = layer(broken, tmp_path / "out", standin_image)
    assert run.returncode == 1
    assert "INIT_EXCEPTION" in error_codes(report)
    failure = next(f for f in report["findings"] if f["code"] == "INIT_EXCEPTION")
    assert failure["member"] == "/opt/python/settings.py" and failure["line"] == 3
    assert not (tmp_path / "out" / "broken.zip").exists()  # nothing published


@pytest.mark.docker
def test_layers_are_stacked_under_opt_in_the_order_given(tmp_path: Path, standin_image: str) -> None:
    function = write_zip(tmp_path / "fn.zip", {
        "handler.py": "import flavour\n\nassert flavour.NAME == 'second', flavour.NAME\n\n\n"
                      "def handler(event, context):\n    return flavour.NAME\n",
    })
    first = write_zip(tmp_path / "first.zip", {"python/flavour.py": "NAME = 'first'\n"})
    second = write_zip(tmp_path / "second.zip", {"python/flavour.py": "NAME = 'second'\n"})
    ok = run_lpkg("verify", function, "--runtime", "python3.11", "--image", standin_image,
                  "--layer", first, "--layer", second)
    assert ok.returncode == 0, ok.stdout
    assert "layers: first.zip 15 B, second.zip 16 B" in ok.stdout
    swapped = run_lpkg("verify", function, "--runtime", "python3.11", "--image", standin_image,
                       "--layer", second, "--layer", first)
    assert swapped.returncode == 1
    assert "INIT_EXCEPTION" in swapped.stdout and "first" in swapped.stdout


@pytest.mark.docker
@pytest.mark.network
def test_a_layer_that_pins_the_sdk_ships_it(tmp_path: Path, standin_image: str) -> None:
    """A layer is the usual way to ship a newer boto3 than the runtime's: its own pin keeps the SDK in (found
    building a public SAM project whose UtilsLayer pins boto3: the layer came out without it)."""
    source = tmp_path / "sdk-layer"
    source.mkdir()
    (source / "requirements.txt").write_text("boto3==1.35.0\n")
    run, report = layer(source, tmp_path / "dist", standin_image)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    members = names(tmp_path / "dist" / "sdk-layer.zip")
    assert {"python/boto3/__init__.py", "python/botocore/__init__.py", "python/s3transfer/__init__.py"} <= set(members)
    assert "BUILD_RUNTIME_SDK" not in {f["code"] for f in report["findings"]}
