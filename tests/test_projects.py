"""lpkg.plan.projects on the fixture projects and on small project files written to tmp_path: the declared
functions, handlers, runtimes, architectures, merged Globals, environment placeholders, layers, skipped
functions, autodetection, and malformed input as one UsageError naming file and line."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lpkg.errors import UsageError
from lpkg.plan.projects import DeclaredFunction, Project, detect_project, read_project

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "projects"
SAM_APP = FIXTURES / "sam-app"
SERVERLESS_APP = FIXTURES / "serverless-app"
TERRAFORM_APP = FIXTURES / "terraform-app"


def by_name(project: Project) -> dict[str, DeclaredFunction]:
    return {f.name: f for f in project.functions}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


# --- SAM ---------------------------------------------------------------------------------------------


def test_sam_fixture_functions_with_globals_merged() -> None:
    project = read_project("sam", SAM_APP / "template.yaml")
    functions = by_name(project)
    assert project.kind == "sam"
    assert sorted(functions) == ["CreateOrderFunction", "DailyReportFunction"]
    create, report = functions["CreateOrderFunction"], functions["DailyReportFunction"]
    assert create.code_dir == SAM_APP / "src"
    assert create.handler == "orders.create.lambda_handler"
    assert (create.runtime, create.arch) == ("python3.11", "x86_64")  # both from Globals.Function
    assert (report.runtime, report.arch) == ("python3.11", "arm64")  # the function's Architectures replace
    assert report.build_method == "python3.11" and create.build_method is None
    assert create.declared_at == "template.yaml:55"


def test_sam_environment_merged_key_by_key_with_placeholders() -> None:
    functions = by_name(read_project("sam", SAM_APP / "template.yaml"))
    create = dict(functions["CreateOrderFunction"].environment)
    assert create == {"ENVIRONMENT": "dev", "LOG_LEVEL": "DEBUG", "POWERTOOLS_SERVICE_NAME": "orders",
                      "TABLE_NAME": "<!Ref OrdersTable>"}
    assert functions["CreateOrderFunction"].placeholders == ("TABLE_NAME",)
    assert functions["CreateOrderFunction"].defaulted == ("ENVIRONMENT",)  # !Ref Environment, Default dev
    report = functions["DailyReportFunction"]
    env = dict(report.environment)
    assert env["TABLE_ARN"] == "<!GetAtt OrdersTable.Arn>"  # the long form, Fn::GetAtt [OrdersTable, Arn]
    assert env["REPORT_BUCKET"] == "<!Sub ${AWS::StackName}-reports-${Environment}>"
    assert env["ALERT_TOPIC"] == "<!Ref AlertTopicArn>"  # a parameter without a Default
    assert env["RETENTION_DAYS"] == "30"
    assert report.placeholders == ("ALERT_TOPIC", "REPORT_BUCKET", "TABLE_ARN")


def test_sam_layer_of_the_template_is_built_from_its_content_uri() -> None:
    functions = by_name(read_project("sam", SAM_APP / "template.yaml"))
    for function in functions.values():
        (layer,) = function.layers
        assert layer.name == "AuditTrailLayer"
        assert layer.content_dir == SAM_APP / "layers" / "shared"
        assert layer.arn is None and layer.build_method == "python3.11"
        assert not layer.zip_root  # BuildMethod python3.11: the folder's code goes under python/


def test_sam_node_function_is_skipped_with_its_runtime() -> None:
    project = read_project("sam", SAM_APP / "template.yaml")
    assert project.skipped == (("NotifyFunction", "runtime nodejs20.x is not Python"),)


def test_sam_inline_template(tmp_path: Path) -> None:
    (tmp_path / "fn").mkdir()
    (tmp_path / "base").mkdir()
    template = write(tmp_path, "template.yml", """
        Parameters:
          Stage: {Type: String, Default: prod}
          LayerArn: {Type: String, Default: "arn:aws:lambda:eu-west-1:123456789012:layer:x:3"}
          Secret: {Type: "AWS::SSM::Parameter::Value<String>", Default: /app/secret}
        Globals:
          Function:
            Handler: app.handler
            Runtime: python3.13
            CodeUri: base/
            Layers: [arn:aws:lambda:eu-west-1:123456789012:layer:global:1]
            Environment:
              Variables: {A: "1", B: global}
        Resources:
          Plain:
            Type: AWS::Serverless::Function
            Properties:
              Layers: [!Ref LayerArn, !ImportValue shared-layer]
              Environment:
                Variables:
                  B: !Sub "name-${Stage}"
                  C: !Ref Secret
                  D: {"Fn::ImportValue": exported}
                  E: true
          Own:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: fn, Handler: other.main}
          Image:
            Type: AWS::Serverless::Function
            Properties: {PackageType: Image, ImageUri: repo:tag}
          Inline:
            Type: AWS::Serverless::Function
            Properties: {InlineCode: "def handler(e, c): pass"}
          InS3:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: "s3://bucket/key.zip"}
          Classic:
            Type: AWS::Lambda::Function
            Properties:
              Code: fn/
              Handler: index.handler
              Runtime: python3.12
              Architectures: [arm64]
          ClassicZipFile:
            Type: AWS::Lambda::Function
            Properties: {Code: {ZipFile: "x = 1"}, Handler: index.handler, Runtime: python3.12}
        """)
    project = read_project(None, template)
    functions = by_name(project)
    plain, own, classic = functions["Plain"], functions["Own"], functions["Classic"]
    assert plain.code_dir == (tmp_path / "base").resolve() and plain.handler == "app.handler"
    assert dict(plain.environment) == {"A": "1", "B": "name-prod", "C": "<!Ref Secret>",
                                       "D": "<!ImportValue exported>", "E": "true"}
    assert plain.defaulted == ("B",) and plain.placeholders == ("C", "D")
    assert [layer.arn for layer in plain.layers] == [
        "arn:aws:lambda:eu-west-1:123456789012:layer:global:1",  # Globals first, then the function's
        "arn:aws:lambda:eu-west-1:123456789012:layer:x:3",
        "<!ImportValue shared-layer>",
    ]
    assert own.code_dir == (tmp_path / "fn").resolve() and own.handler == "other.main"
    assert own.runtime == "python3.13"
    assert (classic.code_dir, classic.runtime, classic.arch) == ((tmp_path / "fn").resolve(), "python3.12", "arm64")
    assert classic.environment == ()  # AWS::Lambda::Function does not take SAM's Globals
    assert dict(project.skipped) == {
        "Image": "a container image function (PackageType: Image)",
        "Inline": "inline code in the template",
        "InS3": "CodeUri is in S3 (s3://bucket/key.zip)",
        "ClassicZipFile": "inline code in the template",
    }


def test_sam_json_template_and_no_code_uri_is_the_template_folder(tmp_path: Path) -> None:
    write(tmp_path, "template.json", """
        {"Resources": {"Fn": {"Type": "AWS::Serverless::Function",
                              "Properties": {"Handler": "app.handler", "Runtime": "python3.11"}}}}
        """)
    (function,) = read_project(None, tmp_path).functions
    assert function.code_dir == tmp_path.resolve() and function.declared_at == "template.json:1"


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("Resources:\n  Fn:\n    Type: [unclosed\n", ":4:", "invalid YAML"),
        ("Resources:\n  A: 1\n  A: 2\n", ":3:", "duplicate key 'A'"),
        ("Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Runtime: python3.12\n",
         ":2:", "declares no Handler"),
        ("Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: missing/\n"
         "      Handler: app.handler\n      Runtime: python3.12\n", ":2:", "no such folder"),
        ("Description: no resources\n", ":1:", "no Resources"),
    ],
)
def test_sam_malformed_input_is_a_usage_error_with_file_and_line(tmp_path: Path, text: str, where: str,
                                                                 words: str) -> None:
    template = write(tmp_path, "template.yaml", text)
    with pytest.raises(UsageError) as caught:
        read_project("sam", template)
    assert f"{template}{where}" in caught.value.message
    assert words in caught.value.message


def test_sam_nested_application_functions_with_the_parameters_the_parent_passes() -> None:
    nested = FIXTURES / "sam-nested"
    project = read_project("sam", nested / "template.yaml")
    (function,) = project.functions
    assert function.name == "BillingApp.InvoiceFunction"
    assert function.code_dir == nested / "apps" / "billing" / "src"
    assert function.handler == "invoices.lambda_handler" and function.runtime == "python3.11"
    assert function.declared_at.startswith("apps/billing/template.yaml:")
    env = dict(function.environment)
    assert env["CURRENCY"] == "EUR"  # passed as a literal: not the child's own Default, USD
    assert env["STAGE"] == "staging" and function.defaulted == ("STAGE",)  # the parent's Parameter Default
    assert env["INVOICE_BUCKET"] == "<!Ref InvoiceBucket>" and function.placeholders == ("INVOICE_BUCKET",)
    (layer,) = function.layers  # the parent's own layer, passed down as a Parameter
    assert layer.name == "MoneyLayer" and layer.content_dir == nested / "layers" / "shared"
    assert layer.declared_at.startswith("template.yaml:") and not layer.zip_root
    (skipped,) = project.skipped
    assert skipped[0] == "AuthorizerApp" and "Serverless Application Repository" in skipped[1]


def test_sam_nested_function_is_picked_by_either_name() -> None:
    from lpkg.commands.project import load_project

    template = FIXTURES / "sam-nested" / "template.yaml"
    for name in ("BillingApp.InvoiceFunction", "BillingApp/InvoiceFunction"):  # lpkg's name, sam build's
        (function,) = load_project("sam", template, [name]).functions
        assert function.name == "BillingApp.InvoiceFunction"


def test_sam_nested_applications_nest_and_say_what_they_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "inner" / "code").mkdir(parents=True)
    write(tmp_path, "template.yaml", """
        Resources:
          Outer:
            Type: AWS::Serverless::Application
            Properties: {Location: middle.yaml, Parameters: {Name: top}}
          Remote:
            Type: AWS::CloudFormation::Stack
            Properties: {TemplateURL: "https://s3.amazonaws.com/bucket/child.yaml"}
          FromRepository:
            Type: AWS::Serverless::Application
            Properties: {Location: "arn:aws:serverlessrepo:eu-west-1:123456789012:applications/tool"}
        """)
    write(tmp_path, "middle.yaml", """
        Parameters:
          Name: {Type: String}
        Resources:
          Inner:
            Type: AWS::CloudFormation::Stack
            Properties:
              TemplateURL: inner/template.yaml
              Parameters: {Label: !Sub "${Name}-inner"}
        """)
    write(tmp_path, "inner/template.yaml", """
        Parameters:
          Label: {Type: String}
        Resources:
          Fn:
            Type: AWS::Lambda::Function
            Properties:
              Code: code/
              Handler: app.handler
              Runtime: python3.12
              Environment: {Variables: {LABEL: !Ref Label}}
          Other:
            Type: AWS::Lambda::Function
            Properties: {Code: code/, Handler: index.handler, Runtime: nodejs20.x}
        """)
    project = read_project("sam", tmp_path / "template.yaml")
    (function,) = project.functions
    assert function.name == "Outer.Inner.Fn" and dict(function.environment) == {"LABEL": "top-inner"}
    assert function.declared_at.startswith("inner/template.yaml:")
    assert dict(project.skipped)["Outer.Inner.Other"] == "runtime nodejs20.x is not Python"
    assert "not a local template (https://s3.amazonaws.com/bucket/child.yaml)" in dict(project.skipped)["Remote"]
    assert "Serverless Application Repository" in dict(project.skipped)["FromRepository"]


@pytest.mark.parametrize(("child", "words"), [
    ("missing.yaml", "missing.yaml: no such file"),
    ("template.yaml", "which includes it"),
])
def test_sam_nested_application_errors_name_the_parent_line(tmp_path: Path, child: str, words: str) -> None:
    template = write(tmp_path, "template.yaml", f"""
        Resources:
          App:
            Type: AWS::Serverless::Application
            Properties: {{Location: {child}}}
        """)
    with pytest.raises(UsageError) as caught:
        read_project("sam", template)
    assert f"{template}:2: nested application App" in caught.value.message and words in caught.value.message


# --- serverless.yml ----------------------------------------------------------------------------------


def test_serverless_fixture_functions() -> None:
    project = read_project("serverless", SERVERLESS_APP / "serverless.yml")
    functions = by_name(project)
    assert sorted(functions) == ["createOrder", "dailyReport"]
    create, report = functions["createOrder"], functions["dailyReport"]
    assert create.code_dir == report.code_dir == SERVERLESS_APP  # the service folder is the code root
    assert create.handler == "handlers/orders.create" and report.handler == "handlers.reports.nightly"
    assert create.runtime == report.runtime == "python3.11"  # provider.runtime
    assert (create.arch, report.arch) == (None, "arm64")
    assert create.declared_at == "serverless.yml:37"
    assert project.skipped == (("webhook", "runtime nodejs20.x is not Python"),)


def test_serverless_environment_variables_resolved_in_the_file() -> None:
    functions = by_name(read_project("serverless", SERVERLESS_APP / "serverless.yml"))
    create = functions["createOrder"]
    assert dict(create.environment) == {
        "API_KEY": "<${ssm:/orders/${sls:stage}/api-key}>",
        "LOG_LEVEL": "DEBUG",  # the function's value over the provider's
        "ORDERS_TABLE": "orders-api-dev-orders",  # ${self:service}-${sls:stage}-orders, stage from its default
        "STAGE": "dev",
    }
    assert create.placeholders == ("API_KEY",)
    assert create.defaulted == ("ORDERS_TABLE", "STAGE")
    report = dict(functions["dailyReport"].environment)
    assert report["REPORT_BUCKET"] == "<!Ref ReportsBucket>"
    assert report["SENDER"] == "reports@example.com"  # ${env:REPORT_SENDER, '...'}: the host's env is not read


def test_serverless_layers_and_patterns() -> None:
    functions = by_name(read_project("serverless", SERVERLESS_APP / "serverless.yml"))
    (layer,) = functions["createOrder"].layers
    assert (layer.name, layer.content_dir, layer.zip_root) == ("common", SERVERLESS_APP / "layers" / "common", True)
    assert functions["dailyReport"].layers == ()
    assert functions["createOrder"].exclude == ("tests/**", "node_modules/**", ".venv/**")
    assert functions["dailyReport"].include == ("templates/**",)


def test_serverless_inline(tmp_path: Path) -> None:
    (tmp_path / "my-libs").mkdir()
    write(tmp_path, "serverless.yaml", """
        service: svc
        custom:
          stages: {dev: {table: dev-table}}
          port: 8080
        provider:
          name: aws
          runtime: python3.12
          architecture: arm64
          layers: [arn:aws:lambda:us-east-1:123456789012:layer:provider:2]
          environment:
            TABLE: ${self:custom.stages.${sls:stage}.table}
            PORT: ${self:custom.port}
            REGION: ${aws:region}
        layers:
          my-libs: {path: my-libs}
        functions:
          a:
            handler: a.handler
            layers: [{Ref: MyDashlibsLambdaLayer}, "${cf:other-stack.LayerArn}"]
            environment: {STAGE: "${opt:stage}", FROM_ENV: "${env:HOME}"}
          b:
            handler: b.handler
            runtime: python3.11
            architecture: x86_64
            package: {include: [data/**], exclude: [docs/**]}
          c: {handler: c.handler, package: {artifact: dist/c.zip}}
          d: {image: {name: appimage}}
        """)
    project = read_project(None, tmp_path)
    functions = by_name(project)
    a, b = functions["a"], functions["b"]
    assert (a.runtime, a.arch, b.runtime, b.arch) == ("python3.12", "arm64", "python3.11", "x86_64")
    assert dict(a.environment) == {"FROM_ENV": "<${env:HOME}>", "PORT": "8080", "REGION": "<${aws:region}>",
                                   "STAGE": "<${opt:stage}>", "TABLE": "dev-table"}
    assert a.placeholders == ("FROM_ENV", "REGION", "STAGE") and a.defaulted == ("TABLE",)
    assert [(layer.name, layer.content_dir) for layer in a.layers] == [
        ("my-libs", (tmp_path / "my-libs").resolve()),
        ("<${cf:other-stack.LayerArn}>", None),
    ]
    assert [layer.arn for layer in b.layers] == ["arn:aws:lambda:us-east-1:123456789012:layer:provider:2"]
    assert (b.include, b.exclude) == (("data/**",), ("docs/**",))
    assert dict(project.skipped) == {"c": "a prebuilt artifact (dist/c.zip): verify it with lpkg verify",
                                     "d": "a container image function (image:)"}


def test_serverless_no_runtime_is_node_by_the_frameworks_default(tmp_path: Path) -> None:
    write(tmp_path, "serverless.yml", "service: s\nprovider: {name: aws}\nfunctions:\n  f: {handler: f.main}\n")
    project = read_project(None, tmp_path)
    assert project.functions == ()
    assert project.skipped == (("f", "no runtime declared (the Serverless Framework's default is Node.js)"),)


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("service: s\nprovider:\n  name: aws\n  runtime: python3.12\nfunctions:\n  f:\n    events: []\n",
         ":6:", "declares no handler"),
        ("service: s\nprovider:\n  name: google\n", ":2:", "AWS Lambda functions only"),
        ("service: s\nfunctions:\n  f: {handler: x\n", ":4:", "invalid YAML"),
        ("service: s\nlayers:\n  deps: {path: nowhere}\n", ":3:", "no such folder"),
    ],
)
def test_serverless_malformed_input_is_a_usage_error_with_file_and_line(tmp_path: Path, text: str, where: str,
                                                                       words: str) -> None:
    path = write(tmp_path, "serverless.yml", text)
    with pytest.raises(UsageError) as caught:
        read_project("serverless", path)
    assert f"{path}{where}" in caught.value.message and words in caught.value.message


# --- Terraform ---------------------------------------------------------------------------------------


def test_terraform_fixture_resource_and_module() -> None:
    project = read_project("terraform", TERRAFORM_APP)
    functions = by_name(project)
    assert sorted(functions) == ["ingest", "thumbnails"]
    ingest, thumbnails = functions["ingest"], functions["thumbnails"]
    assert ingest.code_dir == TERRAFORM_APP / "src" / "ingest"  # data.archive_file.ingest's source_dir
    assert (ingest.handler, ingest.runtime, ingest.arch) == ("handler.lambda_handler", "python3.11", "x86_64")
    assert ingest.exclude == ("tests", "tests/**", "**/__pycache__/**")  # the archive's excludes, as zip globs
    assert ingest.declared_at == "main.tf:50"
    assert thumbnails.code_dir == TERRAFORM_APP / "src" / "thumbnails"  # the module's source_path
    assert (thumbnails.handler, thumbnails.arch) == ("app.handler", "arm64")
    assert thumbnails.declared_at == "main.tf:74"
    assert project.skipped == (("edge", "runtime nodejs20.x is not Python"),)


def test_terraform_environment_and_layers() -> None:
    functions = by_name(read_project("terraform", TERRAFORM_APP / "main.tf"))
    ingest = functions["ingest"]
    assert dict(ingest.environment) == {
        "ALERTS_TOPIC": "<${var.alerts_topic_arn}>",  # a variable without a default
        "ENVIRONMENT": "staging",  # var.environment's default
        "LOG_LEVEL": "INFO",  # local.log_level
        "MAX_ITEMS": "100",
        "UPLOAD_BUCKET": "<${aws_s3_bucket.uploads.bucket}>",
    }
    assert ingest.placeholders == ("ALERTS_TOPIC", "UPLOAD_BUCKET") and ingest.defaulted == ("ENVIRONMENT",)
    for function in functions.values():
        (layer,) = function.layers
        assert (layer.name, layer.content_dir, layer.arn) == ("metrics", TERRAFORM_APP / "layer", None)
        assert layer.zip_root and layer.declared_at == "main.tf:43"


def test_terraform_inline(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "one.py").write_text("def handler(e, c):\n    return 1\n")
    (tmp_path / "layer").mkdir()
    write(tmp_path, "lambda.tf", """
        data "archive_file" "one" {
          type        = "zip"
          source_file = "src/one.py"
          output_path = "build/one.zip"
        }
        resource "aws_lambda_function" "one" {
          filename = data.archive_file.one.output_path
          handler  = "one.handler"
          runtime  = "python3.13"
          layers   = [module.deps.lambda_layer_arn, "arn:aws:lambda:eu-west-1:123456789012:layer:l:1"]
          environment {
            variables = {
              NAME  = "fn-${var.stage}-${path.module}"
              DEBUG = true
            }
          }
        }
        resource "aws_lambda_function" "prebuilt" {
          filename = "dist/prebuilt.zip"
          handler  = "app.handler"
          runtime  = "python3.12"
        }
        resource "aws_lambda_function" "image" {
          package_type = "Image"
          image_uri    = "repo:tag"
        }
        """)
    write(tmp_path, "modules.tf", """
        variable "stage" { default = "qa" }
        module "deps" {
          source       = "terraform-aws-modules/lambda/aws"
          create_layer = true
          source_path  = "${path.module}/layer"
        }
        module "elsewhere" {
          source                 = "terraform-aws-modules/lambda/aws"
          handler                = "x.handler"
          runtime                = "python3.12"
          create_package         = false
          local_existing_package = "x.zip"
        }
        """)
    project = read_project(None, tmp_path)
    (one,) = project.functions
    assert (one.code_dir, one.source_file) == (tmp_path.resolve() / "src", "one.py")
    assert dict(one.environment) == {"DEBUG": "true", "NAME": f"fn-qa-{tmp_path.resolve()}"}
    assert one.defaulted == ("NAME",) and one.placeholders == ()
    assert [(layer.name, layer.content_dir) for layer in one.layers] == [
        ("deps", tmp_path.resolve() / "layer"),
        ("arn:aws:lambda:eu-west-1:123456789012:layer:l:1", None),
    ]
    assert one.declared_at == "lambda.tf:6"
    assert dict(project.skipped) == {
        "prebuilt": "filename is a zip built elsewhere (dist/prebuilt.zip): verify it with lpkg verify",
        "image": "a container image function (package_type = Image)",
        "elsewhere": "create_package = false: a package built elsewhere",
    }


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ('resource "aws_lambda_function" "f" {\n  handler = \n}\n', "main.tf:2", "invalid HCL: unexpected '}'"),
        ('locals {\n  a = "x"\n  b = [1,\n', "main.tf:", "invalid HCL"),
        ('data "archive_file" "z" {\n  source_dir = "nowhere"\n  output_path = "z.zip"\n}\n'
         'resource "aws_lambda_function" "f" {\n  filename = data.archive_file.z.output_path\n'
         '  handler = "a.b"\n  runtime = "python3.12"\n}\n', "main.tf:1", "source_dir nowhere: not found"),
        ('data "archive_file" "z" {\n  source_dir = "."\n  output_path = "z.zip"\n}\n'
         'resource "aws_lambda_function" "f" {\n  filename = data.archive_file.z.output_path\n'
         '  runtime = "python3.12"\n}\n', "main.tf:5", "declares no handler"),
    ],
)
def test_terraform_malformed_input_is_a_usage_error_with_file_and_line(tmp_path: Path, text: str, where: str,
                                                                      words: str) -> None:
    write(tmp_path, "main.tf", text)
    with pytest.raises(UsageError) as caught:
        read_project("terraform", tmp_path)
    assert f"{tmp_path.resolve() / where}" in caught.value.message and words in caught.value.message


def test_terraform_folder_without_tf_files_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no \*\.tf files"):
        read_project("terraform", tmp_path)


# --- autodetection -----------------------------------------------------------------------------------


def test_detect_project_finds_each_format() -> None:
    assert detect_project(SAM_APP) == ("sam", SAM_APP / "template.yaml")
    assert detect_project(SERVERLESS_APP) == ("serverless", SERVERLESS_APP / "serverless.yml")
    assert detect_project(TERRAFORM_APP) == ("terraform", TERRAFORM_APP)
    assert detect_project(SAM_APP / "src") is None


def test_read_project_autodetects_from_a_folder_or_a_file() -> None:
    assert read_project(None, SAM_APP).kind == "sam"
    assert read_project(None, SERVERLESS_APP / "serverless.yml").kind == "serverless"
    assert read_project(None, TERRAFORM_APP / "main.tf").kind == "terraform"


def test_read_project_errors_for_missing_or_unknown_input(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file or folder"):
        read_project(None, tmp_path / "nothing.yaml")
    with pytest.raises(UsageError, match=r"no template\.yaml, serverless\.yml or"):
        read_project(None, tmp_path)
    with pytest.raises(UsageError, match="no sam project file here"):
        read_project("sam", tmp_path)


def test_importing_the_package_loads_no_parser() -> None:
    # lpkg's start-up must not pay for PyYAML or python-hcl2 unless a project file is read.
    code = ("import sys, lpkg.plan.projects; "
            "print(sorted(m for m in ('yaml', 'hcl2', 'lark') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_terraform_filename_linked_to_its_archive_by_hash_or_by_path(tmp_path: Path) -> None:
    # Real modules often write the zip's path twice instead of referencing output_path.
    for name in ("a", "b"):
        write(tmp_path, f"src/{name}/app.py", "def handler(e, c):\n    return 1\n")
    write(tmp_path, "main.tf", """
        variable "zip_name" { default = "b.zip" }
        data "archive_file" "a" {
          source_dir  = "${path.module}/src/a"
          output_path = "${path.module}/build/a.zip"
        }
        data "archive_file" "b" {
          source_dir  = "src/b"
          output_path = "build/${var.zip_name}"
        }
        resource "aws_lambda_function" "a" {
          filename         = "${path.module}/build/a.zip"
          source_code_hash = data.archive_file.a.output_base64sha256
          handler          = "app.handler"
          runtime          = "python3.12"
        }
        resource "aws_lambda_function" "b" {
          filename = "build/${var.zip_name}"
          handler  = "app.handler"
          runtime  = "python3.12"
        }
        """)
    functions = by_name(read_project("terraform", tmp_path))
    assert functions["a"].code_dir == tmp_path.resolve() / "src" / "a"
    assert functions["b"].code_dir == tmp_path.resolve() / "src" / "b"


def test_a_runtime_known_only_at_deploy_is_not_guessed(tmp_path: Path) -> None:
    write(tmp_path, "sam/template.yaml", """
        Parameters: {Py: {Type: String}, Arch: {Type: String}}
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {Handler: app.handler, Runtime: !Ref Py, Architectures: [!Ref Arch]}
        """)
    (function,) = read_project(None, tmp_path / "sam").functions
    assert (function.runtime, function.arch) == (None, None)  # lpkg's --runtime / --arch decide
    write(tmp_path, "sls/serverless.yml", """
        service: s
        provider: {name: aws, runtime: "${opt:runtime}"}
        functions: {f: {handler: f.main}}
        """)
    assert read_project(None, tmp_path / "sls").skipped == (("f", "runtime <${opt:runtime}>: not known before deploy"),)


def test_serverless_functions_as_a_list_and_from_another_file(tmp_path: Path) -> None:
    write(tmp_path, "list/serverless.yml", """
        service: s
        provider: {name: aws, runtime: python3.12}
        functions:
          - a: {handler: a.main}
          - b: {handler: b.main}
        """)
    functions = by_name(read_project(None, tmp_path / "list"))
    assert sorted(functions) == ["a", "b"] and functions["b"].declared_at == "serverless.yml:5"
    path = write(tmp_path, "file/serverless.yml", "service: s\nprovider: {name: aws}\nfunctions: ${file(fns.yml)}\n")
    with pytest.raises(UsageError, match=r"serverless\.yml:3: functions is '\$\{file\(fns\.yml\)\}', not a mapping"):
        read_project(None, path)


def test_terraform_layers_as_one_expression_is_a_placeholder(tmp_path: Path) -> None:
    write(tmp_path, "src/app.py", "def handler(e, c):\n    return 1\n")
    write(tmp_path, "main.tf", """
        data "archive_file" "a" {
          source_dir  = "src"
          output_path = "a.zip"
        }
        resource "aws_lambda_function" "a" {
          filename = data.archive_file.a.output_path
          handler  = "app.handler"
          runtime  = "python3.12"
          layers   = var.layer_arns
        }
        """)
    (function,) = read_project(None, tmp_path).functions
    assert [(layer.arn, layer.content_dir) for layer in function.layers] == [("<${var.layer_arns}>", None)]


SHAPES = {"yaml": ("[1, 2]", "{a: 1}", "!Ref X", "null", "${self:nothing}"),
          "tf": ("{ a = 1 }", '"${var.nothing}"')}  # fewer: each read of main.tf takes ~30 ms


@pytest.mark.parametrize(("fixture", "name"), [(SAM_APP, "template.yaml"), (SERVERLESS_APP, "serverless.yml"),
                                              (TERRAFORM_APP, "main.tf"), (FIXTURES / "sam-nested", "template.yaml"),
                                              (FIXTURES / "sam-nested", "apps/billing/template.yaml")])
def test_any_line_changed_reads_or_is_a_usage_error(tmp_path: Path, fixture: Path, name: str) -> None:
    """Each line of a fixture's project file deleted, or its value replaced by one of another shape: the
    reader reads the result or raises a UsageError; nothing else escapes (no traceback for the user)."""
    project = tmp_path / fixture.name
    shutil.copytree(fixture, project)
    lines = (fixture / name).read_text().splitlines()
    separator, shapes = ("=", SHAPES["tf"]) if name.endswith(".tf") else (":", SHAPES["yaml"])
    outcomes = {"read": 0, "usage error": 0}
    for index, line in enumerate(lines):
        variants: list[str | None] = [None]
        if separator in line:
            variants += [line[: line.index(separator) + 1] + " " + shape for shape in shapes]
        for variant in variants:
            changed = lines[:index] + ([] if variant is None else [variant]) + lines[index + 1:]
            (project / name).write_text("\n".join(changed) + "\n")
            try:
                read_project(None, project)
                outcomes["read"] += 1
            except UsageError:
                outcomes["usage error"] += 1
    assert outcomes["read"] and outcomes["usage error"]  # both happened: the changes were not all harmless


def test_overrides_for_a_declared_function() -> None:
    from lpkg.config import Overrides, resolve_settings
    from lpkg.plan.projects.overrides import overrides_for, unattached_layers

    project = read_project(None, SAM_APP)
    create = by_name(project)["CreateOrderFunction"]
    layer_zip = SAM_APP / "dist" / "AuditTrailLayer.zip"  # where the lead's `lpkg layer` step would put it
    overrides = overrides_for(project, create, Overrides(arch="arm64", env=("LOG_LEVEL=WARNING",)),
                              {SAM_APP / "layers" / "shared": layer_zip})
    assert (overrides.runtime, overrides.arch, overrides.handler) == ("python3.11", "arm64", create.handler)
    assert overrides.name == "CreateOrderFunction" and overrides.layers == (layer_zip,)
    assert not overrides.code_root  # CodeUri src/ is a function folder
    settings = resolve_settings(create.code_dir, overrides, cwd=SAM_APP)
    environment = dict(settings.environment)
    assert environment["TABLE_NAME"] == "<!Ref OrdersTable>"  # declared: the import-time read finds it
    assert environment["LOG_LEVEL"] == "WARNING"  # --env wins over the declaration
    assert settings.artifact.name == "CreateOrderFunction.zip"
    assert unattached_layers(create) == create.layers  # nothing built yet

    serverless = read_project(None, SERVERLESS_APP)
    report = by_name(serverless)["dailyReport"]
    assert overrides_for(serverless, report, Overrides()).code_root  # the service folder holds serverless.yml


def test_serverless_package_patterns_add_files_no_import_reaches(tmp_path: Path) -> None:
    """A code root holds only what the handler's imports reach, plus what the project's package.patterns add;
    its `!` patterns still leave files out."""
    from lpkg.config import Overrides, resolve_settings
    from lpkg.plan.discover import discover
    from lpkg.plan.projects.overrides import overrides_for

    serverless = read_project(None, SERVERLESS_APP)
    functions = by_name(serverless)
    flags = Overrides(out=tmp_path / "out", image="unused", build_image="unused")
    report_plan, _ = discover(resolve_settings(SERVERLESS_APP, overrides_for(serverless, functions["dailyReport"],
                                                                            flags), cwd=SERVERLESS_APP))
    report_files = {zip_path for zip_path, _ in report_plan.files}
    assert {"handlers/reports.py", "billing/totals.py", "templates/report.html"} <= report_files
    assert not any(p.startswith(("tests/", "web/", "layers/")) for p in report_files), sorted(report_files)
    create_plan, _ = discover(resolve_settings(SERVERLESS_APP, overrides_for(serverless, functions["createOrder"],
                                                                            flags), cwd=SERVERLESS_APP))
    assert not any(p.startswith("templates/") for p, _ in create_plan.files)  # the pattern is dailyReport's own

    with_tests = dataclasses.replace(functions["dailyReport"], include=("templates/**", "tests/**"),
                                     exclude=("tests/**",))
    excluded, _ = discover(resolve_settings(SERVERLESS_APP, overrides_for(serverless, with_tests, flags),
                                            cwd=SERVERLESS_APP))
    assert not any(p.startswith("tests/") for p, _ in excluded.files)


def test_terraform_local_child_modules_are_followed(tmp_path: Path) -> None:
    """module "api" { source = "./modules/api" }: its functions are read, named api.<name>, with the module
    block's arguments as the child's variables; a registry module other than the lambda one is said, not read."""
    (tmp_path / "main.tf").write_text(textwrap.dedent('''
        variable "stage" {
          default = "prod"
        }
        module "api" {
          source = "./modules/api"
          stage  = var.stage
        }
        module "vpc" {
          source = "terraform-aws-modules/vpc/aws"
        }
    '''), encoding="utf-8")
    child = tmp_path / "modules" / "api"
    (child / "src").mkdir(parents=True)
    (child / "src" / "app.py").write_text("def handler(event, context):\n    return 1\n", encoding="utf-8")
    (child / "main.tf").write_text(textwrap.dedent('''
        variable "stage" {
          type = string
        }
        data "archive_file" "orders" {
          type        = "zip"
          source_dir  = "${path.module}/src"
          output_path = "${path.module}/build/orders.zip"
        }
        resource "aws_lambda_function" "orders" {
          function_name = "orders-${var.stage}"
          filename      = data.archive_file.orders.output_path
          handler       = "app.handler"
          runtime       = "python3.12"
          environment {
            variables = {
              STAGE = var.stage
            }
          }
        }
    '''), encoding="utf-8")
    project = read_project("terraform", tmp_path)
    (orders,) = project.functions
    assert orders.name == "api.orders" and orders.code_dir == child / "src"
    assert orders.declared_at.startswith("modules/api/main.tf:")
    assert dict(orders.environment)["STAGE"] == "prod"
    assert [name for name, _ in project.skipped] == ["module.vpc"]


def test_terraform_for_each_instances_are_one_function_each(tmp_path: Path) -> None:
    """aws-samples/serverless-samples' python-rest-terraform shape: one lambda module block with
    for_each = local.names (toset([...])) and handler = "${each.key}.lambda_handler"; a map's each.value
    reaches the instance's settings; a for_each only Terraform can know is skipped with the reason."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("locations", "bookings", "nightly"):
        (src / f"{name}.py").write_text("def lambda_handler(event, context):\n    return 1\n", encoding="utf-8")
    (tmp_path / "main.tf").write_text(textwrap.dedent('''
        locals {
          api_functions = toset(["locations", "bookings"])
          jobs = {
            nightly = { memory = 512, schedule = "cron(0 3 * * ? *)" }
          }
        }
        module "api" {
          source      = "terraform-aws-modules/lambda/aws"
          for_each    = local.api_functions
          handler     = "${each.key}.lambda_handler"
          runtime     = "python3.12"
          source_path = "${path.module}/src"
          environment_variables = {
            ROUTE = "/${each.value}"
          }
        }
        module "jobs" {
          source      = "terraform-aws-modules/lambda/aws"
          for_each    = local.jobs
          handler     = "${each.key}.lambda_handler"
          runtime     = "python3.12"
          source_path = "${path.module}/src"
          environment_variables = {
            SCHEDULE = each.value.schedule
          }
        }
        module "dynamic" {
          source      = "terraform-aws-modules/lambda/aws"
          for_each    = data.aws_ssm_parameter.names.value
          handler     = "${each.key}.lambda_handler"
          runtime     = "python3.12"
          source_path = "${path.module}/src"
        }
    '''), encoding="utf-8")
    project = read_project("terraform", tmp_path)
    functions = by_name(project)
    assert sorted(functions) == ["api.bookings", "api.locations", "jobs.nightly"]
    assert functions["api.locations"].handler == "locations.lambda_handler"
    assert dict(functions["api.bookings"].environment)["ROUTE"] == "/bookings"
    assert dict(functions["jobs.nightly"].environment)["SCHEDULE"] == "cron(0 3 * * ? *)"
    assert all(f.code_dir == src for f in functions.values())
    (skipped,) = project.skipped
    assert skipped[0] == "dynamic" and "known only to Terraform" in skipped[1]


def test_terraform_relative_paths_in_a_child_module_are_the_root_modules(tmp_path: Path) -> None:
    """Terraform runs in the root module's folder, and a relative path means the same there in any module: a
    child module's archive_file of `var.lambda_file`, which the root gives as "./assets/lambda/app.py"
    (aws-samples/serverless-patterns' fifo-sns-sqs-lambda-firehose-s3), is the root's file."""
    (tmp_path / "assets" / "lambda").mkdir(parents=True)
    (tmp_path / "assets" / "lambda" / "app.py").write_text("def handler(event, context):\n    return 1\n")
    (tmp_path / "main.tf").write_text(textwrap.dedent('''
        module "logger" {
          source      = "./modules/lambda"
          lambda_file = "./assets/lambda/app.py"
        }
    '''), encoding="utf-8")
    child = tmp_path / "modules" / "lambda"
    child.mkdir(parents=True)
    (child / "main.tf").write_text(textwrap.dedent('''
        variable "lambda_file" {}
        data "archive_file" "zip" {
          type        = "zip"
          source_file = var.lambda_file
          output_path = "${path.module}/build/app.zip"
        }
        resource "aws_lambda_function" "lambda" {
          filename = data.archive_file.zip.output_path
          handler  = "app.handler"
          runtime  = "python3.12"
        }
    '''), encoding="utf-8")
    (function,) = read_project("terraform", tmp_path).functions
    assert function.name == "logger.lambda"
    assert (function.code_dir, function.source_file) == (tmp_path / "assets" / "lambda", "app.py")


def test_a_layer_folder_that_commits_python_is_zipped_as_it_stands(tmp_path: Path) -> None:
    """A SAM layer without a BuildMethod whose ContentUri holds python/ with installed packages and a
    python/requirements.txt (aws-samples/serverless-patterns' lambda-esm-rabbitmq-filters-sam): SAM zips the
    folder as it is, so lpkg installs nothing from it; with BuildMethod python3.x it installs the requirements."""
    from lpkg.commands.layer import plan_layer
    from lpkg.commands.project import LayerBuild
    from lpkg.plan.projects import DeclaredLayer

    content = tmp_path / "dependencies"
    (content / "python" / "pika").mkdir(parents=True)
    (content / "python" / "pika" / "__init__.py").write_text("")
    (content / "python" / "requirements.txt").write_text("pika\n")
    layer = DeclaredLayer(name="RabbitLayer", content_dir=content, arn=None, declared_at="template.yaml:38")
    committed = LayerBuild(layer, "python3.12", "x86_64")
    assert committed.as_it_stands and committed.source == content / "python"
    plan = plan_layer(committed.source, install=False)
    assert plan.requirement_files == () and plan.dependencies == ()
    assert "python/pika/__init__.py" in {member for member, _ in plan.files}
    built = LayerBuild(dataclasses.replace(layer, zip_root=False, build_method="python3.12"), "python3.12", "x86_64")
    assert not built.as_it_stands and built.source == content
    assert plan_layer(content / "python").requirement_files == ((content / "python" / "requirements.txt").resolve(),)


def test_sam_layer_built_by_a_makefile_is_one_lpkg_has_not_got(tmp_path: Path) -> None:
    """BuildMethod: makefile (aws-samples/serverless-patterns' apigw-cognito-certificate-bound-access-token pip
    installs its layer's packages in a Makefile): lpkg does not run it, so the layer is not built here and what
    the function imports from it is checked as from a layer lpkg has not got (warnings), not as missing."""
    (tmp_path / "handlers").mkdir()
    handler = "import jose\n\n\ndef lambda_handler(event, context):\n    return 1\n"
    (tmp_path / "handlers" / "auth.py").write_text(handler)
    write(tmp_path, "template.yaml", """
        Transform: AWS::Serverless-2016-10-31
        Resources:
          CombinedLayer:
            Type: AWS::Serverless::LayerVersion
            Properties:
              ContentUri: ./
            Metadata:
              BuildMethod: makefile
          Authorizer:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: ./
              Handler: handlers.auth.lambda_handler
              Runtime: python3.13
              Layers:
                - !Ref CombinedLayer
        """)
    (function,) = read_project("sam", tmp_path / "template.yaml").functions
    (layer,) = function.layers
    assert layer.content_dir is None and layer.build_method == "makefile"
    assert layer.arn == "<!Ref CombinedLayer> (BuildMethod makefile)"


def test_a_sam_python_layer_folder_goes_straight_under_python(tmp_path: Path) -> None:
    """SAM's python builder copies a layer's ContentUri into python/ as it is, __init__.py or not
    (aws-samples/serverless-patterns' apigw-lambda-opensearch-serverless-nextgen: layers/opensearch_client/ holds
    __init__.py and opensearch_client.py, and the functions import opensearch_client.get_client from the
    module). `lpkg layer FOLDER` nests a package folder under its name; a project's layer does not."""
    from lpkg.commands.layer import plan_layer

    content = tmp_path / "layers" / "opensearch_client"
    content.mkdir(parents=True)
    (content / "__init__.py").write_text("")
    (content / "opensearch_client.py").write_text("def get_client():\n    return 1\n")
    flat = {member for member, _ in plan_layer(content, flat=True).files}
    assert {"python/__init__.py", "python/opensearch_client.py"} <= flat
    nested = {member for member, _ in plan_layer(content).files}
    assert "python/opensearch_client/opensearch_client.py" in nested


def test_terraform_function_whose_code_is_an_uploaded_archive(tmp_path: Path) -> None:
    """HashiCorp's Lambda tutorial shape (aws-samples/serverless-patterns' apigw-http-api-lambda-terraform): the
    archive_file is uploaded by an aws_s3_object, and the function names that object's key. Its code is the
    archive's source, whether or not source_code_hash names the archive too."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def lambda_handler(event, context):\n    return 1\n")
    (tmp_path / "main.tf").write_text(textwrap.dedent('''
        data "archive_file" "lambda_zip" {
          type        = "zip"
          source_dir  = "${path.module}/src"
          output_path = "${path.module}/src.zip"
        }
        resource "aws_s3_object" "lambda_app" {
          bucket = aws_s3_bucket.lambda_bucket.id
          key    = "source.zip"
          source = data.archive_file.lambda_zip.output_path
        }
        resource "aws_lambda_function" "app" {
          s3_bucket = aws_s3_bucket.lambda_bucket.id
          s3_key    = aws_s3_object.lambda_app.key
          runtime   = "python3.12"
          handler   = "app.lambda_handler"
        }
        resource "aws_lambda_function" "elsewhere" {
          s3_bucket = "artifacts"
          s3_key    = "builds/other.zip"
          runtime   = "python3.12"
          handler   = "other.handler"
        }
    '''), encoding="utf-8")
    project = read_project("terraform", tmp_path)
    (app,) = project.functions
    assert (app.name, app.code_dir, app.handler) == ("app", tmp_path / "src", "app.lambda_handler")
    assert project.skipped == (("elsewhere", "code in S3 (s3_bucket) or not declared"),)
