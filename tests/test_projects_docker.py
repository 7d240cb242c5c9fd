"""The project readers driving real builds in the stand-in image: each fixture project's function built
from its declaration alone (handler, runtime, code folder, environment, layers), as `lpkg build --template`
will. A declared variable read at import is set; without the declaration the same build fails."""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

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


def test_terraform_archive_function_with_its_layer(standin_image: str, tmp_path: Path) -> None:
    artifact, _ = build("terraform", "ingest", standin_image, tmp_path)
    assert artifact is not None
    assert members(artifact) == {"handler.py", "parsers/__init__.py", "parsers/csv_records.py"}
