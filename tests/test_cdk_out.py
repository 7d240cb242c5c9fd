"""`lpkg verify --cdk-out` on a cloud assembly written here (no CDK needed): a nested stage, assets found by
S3 key rather than metadata, a folder asset, a layer, template-only checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import run_lpkg, write_zip

from lpkg.commands.cdk_out import read_assembly, template_value

HANDLER = "def handler(event, context):\n    return 1\n"


def function(handler: str, runtime: str, key: str, path: str, *, layers: list[Any] | None = None,
             architectures: list[str] | None = None, asset_metadata: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"aws:cdk:path": path}
    if asset_metadata:
        metadata["aws:asset:path"] = f"asset.{key}"
    properties: dict[str, Any] = {"Handler": handler, "Runtime": runtime,
                                  "Code": {"S3Bucket": "bucket", "S3Key": f"{key}.zip"}}
    if layers:
        properties["Layers"] = layers
    if architectures:
        properties["Architectures"] = architectures
    return {"Type": "AWS::Lambda::Function", "Properties": properties, "Metadata": metadata}


def write_stage(folder: Path, stack: str, resources: dict[str, Any], assets: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stack}.template.json").write_text(json.dumps({"Resources": resources}))
    files = {key: {"source": {"path": source, "packaging": "file" if source.endswith(".zip") else "zip"},
                   "destinations": {"d": {"bucketName": "bucket", "objectKey": f"{key}.zip"}}}
             for key, source in assets.items()}
    (folder / f"{stack}.assets.json").write_text(json.dumps({"version": "1", "files": files}))


def make_assembly(root: Path) -> Path:
    """Top level: a manifest with one nested stage. The stage's stack has a good function (zip asset, found by
    S3 key, with a layer), a folder asset whose handler names a missing function, a function whose extension
    modules are for another Python, a Node.js function (ignored) and two REST APIs."""
    stage = root / "assembly-Prod"
    stage.mkdir(parents=True)
    write_zip(stage / "asset.good.zip", {"app.py": "from helper import X\n" + HANDLER})
    write_zip(stage / "asset.layer.zip", {"python/helper.py": "X = 1\n"})
    folder = stage / "asset.folder"
    folder.mkdir()
    (folder / "index.py").write_text("def main(event, context):\n    return 2\n")
    write_zip(stage / "asset.native.zip", {"handler.py": HANDLER, "fast.cpython-312-x86_64-linux-gnu.so": b"\x7fELF"})
    resources = {
        "Good": function("app.handler", "python3.11", "good", "Prod/Api/Good/Resource",
                         layers=[{"Ref": "Layer"}, "arn:aws:lambda:us-east-1:123456789012:layer:other:1"]),
        "Layer": {"Type": "AWS::Lambda::LayerVersion",
                  "Properties": {"Content": {"S3Bucket": "bucket", "S3Key": "layer.zip"}}},
        "Folder": function("index.handler", "python3.12", "folder", "Prod/Api/Folder/Resource",
                           architectures=["arm64"], asset_metadata=True),
        "Native": function("handler.handler", "python3.11", "native", "Prod/Api/Native/Resource"),
        "Node": {"Type": "AWS::Lambda::Function", "Properties": {"Runtime": "nodejs20.x", "Handler": "index.h"}},
        "Edge": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "edge"},
                 "Metadata": {"aws:cdk:path": "Prod/Api/Edge/Resource"}},
        "Regional": {"Type": "AWS::ApiGateway::RestApi",
                     "Properties": {"EndpointConfiguration": {"Types": ["REGIONAL"]}}},
    }
    write_stage(stage, "ProdApi", resources, {"good": "asset.good.zip", "layer": "asset.layer.zip",
                                              "native": "asset.native.zip"})
    (stage / "manifest.json").write_text(json.dumps({"version": "36.0.0", "artifacts": {
        "ProdApi": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "ProdApi.template.json"}}}}))
    (root / "manifest.json").write_text(json.dumps({"version": "36.0.0", "artifacts": {
        "assembly-Prod": {"type": "cdk:cloud-assembly", "properties": {"directoryName": "assembly-Prod"}}}}))
    return root


def test_reads_functions_of_nested_stages(tmp_path: Path) -> None:
    assembly = read_assembly(make_assembly(tmp_path / "cdk.out"))
    by_path = {f.construct_path: f for f in assembly.functions}
    assert sorted(by_path) == ["Prod/Api/Folder/Resource", "Prod/Api/Good/Resource", "Prod/Api/Native/Resource"]
    good = by_path["Prod/Api/Good/Resource"]
    assert good.asset is not None and good.asset.name == "asset.good.zip"  # by S3 key
    assert [layer.name for layer in good.layers] == ["asset.layer.zip"]
    assert [f.code for f in good.findings] == ["CDK_LAYER_UNCHECKED"]  # the ARN
    assert by_path["Prod/Api/Folder/Resource"].arch == "arm64"
    assert [(t, f.code) for t, f in assembly.stack_findings] == [
        ("assembly-Prod/ProdApi.template.json", "CDK_API_EDGE_DEFAULT")]


def test_verify_cdk_out_reports_each_function_by_construct_path(tmp_path: Path) -> None:
    root = make_assembly(tmp_path / "cdk.out")
    run = run_lpkg("verify", "--cdk-out", root, "--probe", "none", "--json")
    assert run.returncode == 1, run.stdout + run.stderr
    reports = {r["artifact"].split(" ")[0]: r for r in json.loads(run.stdout)["artifacts"]}
    good = reports["Prod/Api/Good/Resource"]
    assert good["ok"] and good["handler"] == "app.handler" and good["runtime"] == "python3.11"
    folder = reports["Prod/Api/Folder/Resource"]
    mismatch = next(f for f in folder["findings"] if f["code"] == "CDK_HANDLER_MISMATCH")
    assert mismatch["member"] == "index.py" and "'index.handler'" in mismatch["message"]
    assert "(it defines main)" in mismatch["message"]
    native = reports["Prod/Api/Native/Resource"]
    codes = {f["code"] for f in native["findings"]}
    assert "CDK_RUNTIME_MISMATCH" in codes and "python3.12" in next(
        f["message"] for f in native["findings"] if f["code"] == "CDK_RUNTIME_MISMATCH")
    assert [f["code"] for f in reports["assembly-Prod/ProdApi.template.json"]["findings"]] == ["CDK_API_EDGE_DEFAULT"]


def test_not_an_assembly_is_a_usage_error(tmp_path: Path) -> None:
    run = run_lpkg("verify", "--cdk-out", tmp_path)
    assert run.returncode == 2 and "manifest.json" in run.stderr
    both = run_lpkg("verify", "x.zip", "--cdk-out", tmp_path)
    assert both.returncode == 2 and "--cdk-out" in both.stderr


def test_template_values_become_text_or_placeholders() -> None:
    assert template_value("orders") == ("orders", True)
    assert template_value(3) == ("3", True) and template_value(True) == ("true", True)
    assert template_value({"Ref": "OrdersTable"}) == ("<!Ref OrdersTable>", False)
    assert template_value({"Fn::GetAtt": ["OrdersTable", "Arn"]}) == ("<!GetAtt OrdersTable.Arn>", False)
    joined = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::bucket"]]}
    assert template_value(joined) == ("arn:<!Ref AWS::Partition>:s3:::bucket", False)
    assert template_value({"Fn::Join": ["-", ["a", "b"]]}) == ("a-b", True)


READS_AT_IMPORT = ('import os\n\nTABLE = os.environ["TABLE"]\nSTAGE = os.environ["STAGE"]\n\n'
                   'def handler(event, context):\n    return {"table": TABLE, "stage": STAGE}\n')


def environment_assembly(root: Path) -> Path:
    """One stack: a function whose module reads two variables at import, both declared in the template (one a
    literal, one a Ref), and one that reads a variable nothing declares."""
    root.mkdir(parents=True)
    write_zip(root / "asset.orders.zip", {"app.py": READS_AT_IMPORT})
    write_zip(root / "asset.bare.zip", {"app.py": READS_AT_IMPORT})
    orders = function("app.handler", "python3.11", "orders", "Api/Orders/Resource")
    orders["Properties"]["Environment"] = {"Variables": {"TABLE": {"Ref": "OrdersTable"}, "STAGE": "prod"}}
    resources = {"Orders": orders, "Bare": function("app.handler", "python3.11", "bare", "Api/Bare/Resource"),
                 "OrdersTable": {"Type": "AWS::DynamoDB::Table", "Properties": {}}}
    write_stage(root, "Api", resources, {"orders": "asset.orders.zip", "bare": "asset.bare.zip"})
    (root / "manifest.json").write_text(json.dumps({"version": "36.0.0", "artifacts": {
        "Api": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "Api.template.json"}}}}))
    return root


def test_declared_environment_reaches_the_import_test(tmp_path: Path) -> None:
    root = environment_assembly(tmp_path / "cdk.out")
    orders = next(f for f in read_assembly(root).functions if f.construct_path == "Api/Orders/Resource")
    assert orders.environment == (("STAGE", "prod"), ("TABLE", "<!Ref OrdersTable>"))
    assert orders.placeholders == ("TABLE",)

    run = run_lpkg("verify", "--cdk-out", root, "--probe", "local", "--json")
    assert run.returncode == 1, run.stdout + run.stderr
    reports = {r["artifact"].split(" ")[0]: r for r in json.loads(run.stdout)["artifacts"]}
    declared = reports["Api/Orders/Resource"]
    assert declared["ok"], declared
    placeholder = next(f for f in declared["findings"] if f["code"] == "ENV_PLACEHOLDER")
    assert "TABLE=<!Ref OrdersTable>" in placeholder["message"]
    bare = reports["Api/Bare/Resource"]
    init = next(f for f in bare["findings"] if f["code"] == "INIT_EXCEPTION")
    assert "KeyError" in init["message"] and "--env TABLE=VALUE" in init["message"]

    typed = run_lpkg("verify", "--cdk-out", root, "--probe", "local", "--env", "TABLE=t", "--env", "STAGE=s",
                     "--json")
    assert typed.returncode == 0, typed.stdout + typed.stderr


@pytest.mark.docker
def test_declared_environment_reaches_the_container_probe(tmp_path: Path, standin_image: str) -> None:
    root = environment_assembly(tmp_path / "cdk.out")
    run = run_lpkg("verify", "--cdk-out", root, "--image", standin_image, "--json")
    reports = {r["artifact"].split(" ")[0]: r for r in json.loads(run.stdout)["artifacts"]}
    assert reports["Api/Orders/Resource"]["ok"], reports["Api/Orders/Resource"]
    assert not reports["Api/Bare/Resource"]["ok"]
