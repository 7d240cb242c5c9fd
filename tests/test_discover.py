"""lpkg.plan.discover on the rds-dashboard fixture project and on small projects written to tmp_path."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from lpkg.config import Overrides, resolve_settings
from lpkg.errors import UsageError
from lpkg.plan.discover import BuildPlan, discover
from lpkg.report import Finding, Severity

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "projects" / "rds-dashboard"


def run(function_dir: Path, overrides: Overrides | None = None) -> tuple[BuildPlan, tuple[Finding, ...]]:
    # cwd is the function's project, so the built-in output folder (dist) is outside the function folder.
    return discover(resolve_settings(function_dir, overrides, cwd=function_dir.parent.parent))


def copy_fixture(tmp_path: Path) -> Path:
    root = tmp_path / "rds-dashboard"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".git").mkdir()  # the project's root: no config file above it is picked up
    return root


def make(tmp_path: Path, files: dict[str, str]) -> Path:
    """A project written from {path under lambda/: text}; returns the lambda/ folder."""
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    for rel, text in files.items():
        path = root / "lambda" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "lambda"


def members(plan: BuildPlan) -> list[str]:
    return [member for member, _ in plan.files]


def by_code(findings: tuple[Finding, ...], code: str) -> list[Finding]:
    return [f for f in findings if f.code == code]


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


HANDLER = "def handler(event, context):\n    return {}\n"


# --- the post-mortem's project ---


def test_compliance_checker_includes_shared_at_its_package_path() -> None:
    plan, findings = run(FIXTURE / "lambda" / "compliance-checker")
    assert [f for f in findings if f.severity is Severity.ERROR] == []
    assert plan.handler.string == "handler.handler"
    assert members(plan) == [
        "handler.py", "shared/__init__.py", "shared/aws_clients.py", "shared/config.py", "shared/logger.py",
    ]
    sources = dict(plan.files)
    assert sources["shared/aws_clients.py"] == FIXTURE / "lambda" / "shared" / "aws_clients.py"
    assert sources["handler.py"] == FIXTURE / "lambda" / "compliance-checker" / "handler.py"
    assert plan.first_party == ("shared",)
    assert plan.external_imports == ("boto3",)  # not first-party, not stdlib: the runtime or requirements
    assert plan.requirement_files == () and plan.dependencies == ()


def test_query_handler_function_style_import_of_a_class_method_fails() -> None:
    handler_py = FIXTURE / "lambda" / "query-handler" / "handler.py"
    line = line_of(handler_py, "from shared.aws_clients import get_rds_client")
    _, findings = run(handler_py.parent)
    [finding] = by_code(findings, "FIRST_PARTY_MISSING")
    assert finding.severity is Severity.ERROR
    assert (finding.member, finding.line) == ("handler.py", line)
    assert "`from shared.aws_clients import get_rds_client`" in finding.message  # the statement, quoted
    assert "get_rds_client" in finding.message
    assert "`from shared.aws_clients import AWSClients` and `AWSClients.get_rds_client()`" in finding.message
    assert "Runtime.ImportModuleError" in finding.message
    assert finding.chain == ("handler",)


def test_syntax_error_in_a_shared_module_names_file_and_line(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    config_py = root / "lambda" / "shared" / "config.py"
    text = config_py.read_text().replace("    def load(cls) -> Config:", "    def load(cls) -> Config")
    config_py.write_text(text)
    line = line_of(config_py, "def load(cls) -> Config")
    _, findings = run(root / "lambda" / "compliance-checker")
    [finding] = by_code(findings, "FIRST_PARTY_SYNTAX")
    assert finding.severity is Severity.ERROR
    assert (finding.member, finding.line) == ("shared/config.py", line)
    assert finding.message.startswith("does not parse")
    assert "config.py" in finding.message and "Runtime.UserCodeSyntaxError" in finding.message
    assert finding.chain == ("handler", "shared.config")


def test_requirements_of_the_function_and_of_first_party_packages(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    fn = root / "lambda" / "compliance-checker"
    (fn / "requirements.txt").write_text("requests==2.32.3  # http\n-r extra.txt\n")
    (fn / "extra.txt").write_text("Boto3>=1.34\n")
    (root / "lambda" / "shared" / "requirements.txt").write_text("pydantic>=2\n")
    plan, _ = run(fn)
    assert plan.requirement_files == (fn / "requirements.txt", root / "lambda" / "shared" / "requirements.txt")
    assert plan.declared == {"requests", "boto3", "pydantic"}
    assert "shared/requirements.txt" not in members(plan) and "requirements.txt" not in members(plan)


def test_dependencies_from_the_function_pyproject(tmp_path: Path) -> None:
    lam = make(tmp_path, {
        "fn/handler.py": HANDLER,
        "fn/pyproject.toml": '[project]\nname = "fn"\ndependencies = ["numpy>=2", "Pydantic_Core"]\n',
    })
    plan, findings = run(lam / "fn")
    assert findings == ()
    assert plan.dependencies == ("numpy>=2", "Pydantic_Core")
    assert plan.declared == {"numpy", "pydantic-core"}
    assert members(plan) == ["handler.py"]


# --- what goes into the zip ---


def test_excluded_files_and_folders(tmp_path: Path) -> None:
    lam = make(tmp_path, {
        "fn/handler.py": "import helpers\n" + HANDLER,
        "fn/helpers.py": "",
        "fn/data/rules.json": "{}",
        "fn/README.md": "",
        "fn/tests/test_handler.py": "",
        "fn/test_local.py": "",
        "fn/local_test.py": "",
        "fn/conftest.py": "",
        "fn/__pycache__/helpers.cpython-312.pyc": "",
        "fn/.venv/lib/x.py": "",
        "fn/venv/x.py": "",
        "fn/.git/HEAD": "",
        "fn/.idea/x.xml": "",
        "fn/.vscode/settings.json": "",
        "fn/.DS_Store": "",
        "fn/handler.py.swp": "",
        "fn/handler.py~": "",
        "fn/requirements.txt": "",
        "fn/requirements-dev.txt": "",
        "fn/fixtures/big.bin": "",
        "fn/dist/fn.zip": "",
    })
    fn = lam / "fn"
    plan, findings = discover(resolve_settings(
        fn, Overrides(exclude=("*.md", "fixtures"), out=fn / "dist"), cwd=fn))
    assert findings == ()
    assert members(plan) == ["data/rules.json", "handler.py", "helpers.py"]


def test_imported_module_in_a_test_like_place_is_included(tmp_path: Path) -> None:
    lam = make(tmp_path, {"fn/handler.py": "from test_support import x\n" + HANDLER, "fn/test_support.py": "x = 1\n"})
    plan, findings = run(lam / "fn")
    assert findings == ()
    assert "test_support.py" in members(plan)


def test_user_exclude_of_an_imported_module_warns(tmp_path: Path) -> None:
    lam = make(tmp_path, {"fn/handler.py": "import common.util\n" + HANDLER,
                          "common/__init__.py": "", "common/util.py": ""})
    plan, findings = run(lam / "fn", Overrides(exclude=("common",)))
    assert [f.code for f in findings] == ["FIRST_PARTY_EXCLUDED", "FIRST_PARTY_EXCLUDED"]
    assert all(f.severity is Severity.WARNING for f in findings)
    assert "'common'" in findings[0].message
    assert members(plan) == ["handler.py"]


def test_first_party_package_is_included_whole_and_walked_further(tmp_path: Path) -> None:
    lam = make(tmp_path, {
        "fn/handler.py": "from shared import clients\n" + HANDLER,
        "shared/__init__.py": "",
        "shared/clients.py": "from common.retry import retry\nfrom .unused import nothing_checked_here\n",
        "shared/unused.py": "nothing_checked_here = 1\n",
        "shared/tests/test_clients.py": "",
        "shared/requirements.txt": "requests\n",
        "common/__init__.py": "",
        "common/retry.py": "def retry(): ...\n",
        "unrelated/__init__.py": "",
    })
    plan, findings = run(lam / "fn")
    assert findings == ()
    assert plan.first_party == ("common", "shared")
    assert members(plan) == [
        "common/__init__.py", "common/retry.py", "handler.py",
        "shared/__init__.py", "shared/clients.py", "shared/unused.py",
    ]
    assert plan.requirement_files == (lam / "shared" / "requirements.txt",)


def test_stdlib_names_are_not_taken_from_source_roots(tmp_path: Path) -> None:
    lam = make(tmp_path, {"fn/handler.py": "import json\nimport requests\n" + HANDLER, "json.py": "broken = (\n"})
    plan, findings = run(lam / "fn")
    assert findings == ()
    assert members(plan) == ["handler.py"]
    assert plan.external_imports == ("requests",)


def test_extra_source_root(tmp_path: Path) -> None:
    lam = make(tmp_path, {"fn/handler.py": "import lib.core\n" + HANDLER})
    src = lam.parent / "src"
    (src / "lib").mkdir(parents=True)
    (src / "lib" / "__init__.py").write_text("")
    (src / "lib" / "core.py").write_text("")
    plan, findings = run(lam / "fn", Overrides(source_roots=(src, lam)))
    assert findings == ()
    assert members(plan) == ["handler.py", "lib/__init__.py", "lib/core.py"]


# --- what is wrong ---


def test_missing_submodule_of_a_first_party_package(tmp_path: Path) -> None:
    lam = make(tmp_path, {"fn/handler.py": "from shared.nothing import x\n" + HANDLER, "shared/__init__.py": ""})
    _, findings = run(lam / "fn")
    [finding] = findings
    assert (finding.code, finding.severity, finding.member, finding.line) == (
        "FIRST_PARTY_MISSING", Severity.ERROR, "handler.py", 1)
    assert "no module shared.nothing" in finding.message
    assert "shared/nothing.py" in finding.message


def test_missing_name_in_a_shared_module_carries_the_import_chain(tmp_path: Path) -> None:
    lam = make(tmp_path, {
        "fn/handler.py": "import shared.a\n" + HANDLER,
        "shared/__init__.py": "",
        "shared/a.py": "from .b import get_clinet\n",
        "shared/b.py": "def get_client(): ...\n",
    })
    _, findings = run(lam / "fn")
    [finding] = findings
    assert (finding.member, finding.line, finding.chain) == ("shared/a.py", 1, ("handler", "shared.a"))
    assert "shared.b" in finding.message and "did you mean get_client?" in finding.message
    assert "source: " in finding.message  # first-party files name where they come from


def test_optional_imports_are_included_but_only_warned_about(tmp_path: Path) -> None:
    lam = make(tmp_path, {
        "fn/handler.py": (
            "from typing import TYPE_CHECKING\n"
            "try:\n    from shared.fast import speedup\nexcept ImportError:\n    speedup = None\n"
            "if TYPE_CHECKING:\n    from shared.types import Event\n"
            "def handler(event, context):\n    from shared.lazy import later\n    return later()\n"
        ),
        "shared/__init__.py": "",
        "shared/lazy.py": "def sooner(): ...\n",
    })
    plan, findings = run(lam / "fn")
    assert [(f.code, f.severity, f.line) for f in findings] == [
        ("FIRST_PARTY_MISSING", Severity.WARNING, 3),
        ("FIRST_PARTY_MISSING", Severity.WARNING, 7),
        ("FIRST_PARTY_MISSING", Severity.WARNING, 9),
    ]
    assert "only when that code runs" in findings[0].message
    assert "shared/lazy.py" in members(plan)


def test_names_the_parser_cannot_know_are_not_reported(tmp_path: Path) -> None:
    lam = make(tmp_path, {
        "fn/handler.py": "from shared.lazy import anything\nfrom shared.star import other\n"
                         "from shared.cond import fast, slow, value\n" + HANDLER,
        "shared/__init__.py": "",
        "shared/lazy.py": "def __getattr__(name):\n    return name\n",
        "shared/star.py": "from os.path import *\n",
        "shared/cond.py": "try:\n    import ujson as fast\nexcept ImportError:\n    fast = None\n"
                          "if fast:\n    def slow(): ...\nelse:\n    slow = None\n"
                          "def init():\n    global value\n    value = 1\n",
    })
    _, findings = run(lam / "fn")
    assert findings == ()


def test_relative_imports_inside_a_function_package(tmp_path: Path) -> None:
    lam = make(tmp_path, {
        "fn/app/__init__.py": "",
        "fn/app/main.py": "from .db import connect\nfrom . import util\n" + HANDLER,
        "fn/app/db.py": "def connect(): ...\n",
        "fn/app/util.py": "",
    })
    plan, findings = run(lam / "fn", Overrides(handler="app/main.handler"))
    assert findings == ()
    assert members(plan) == ["app/__init__.py", "app/db.py", "app/main.py", "app/util.py"]


def test_relative_import_in_a_top_level_module_fails(tmp_path: Path) -> None:
    lam = make(tmp_path, {"fn/handler.py": "from . import helpers\n" + HANDLER, "fn/helpers.py": ""})
    _, findings = run(lam / "fn")
    [finding] = findings
    assert (finding.code, finding.severity, finding.line) == ("FIRST_PARTY_MISSING", Severity.ERROR, 1)
    assert "no known parent package" in finding.message


def test_unimported_broken_file_is_a_warning(tmp_path: Path) -> None:
    lam = make(tmp_path, {"fn/handler.py": "import shared\n" + HANDLER, "shared/__init__.py": "",
                          "shared/old.py": "print 'python 2'\n"})
    _, findings = run(lam / "fn")
    [finding] = findings
    assert (finding.code, finding.severity, finding.member, finding.line) == (
        "FIRST_PARTY_SYNTAX", Severity.WARNING, "shared/old.py", 1)


def test_handler_module_or_function_missing(tmp_path: Path) -> None:
    lam = make(tmp_path, {"fn/handler.py": HANDLER})
    _, findings = run(lam / "fn", Overrides(handler="handler.lambda_handler"))
    [finding] = findings
    assert (finding.code, finding.severity, finding.member) == ("HANDLER_MISSING", Severity.ERROR, "handler.py")
    assert "lambda_handler" in finding.message
    _, findings = run(lam / "fn", Overrides(handler="elsewhere.handler"))
    [finding] = findings
    assert (finding.code, finding.severity) == ("HANDLER_MISSING", Severity.WARNING)  # a layer may hold it


def test_handler_cannot_be_inferred(tmp_path: Path) -> None:
    lam = make(tmp_path, {"fn/handler.py": HANDLER, "fn/app.py": HANDLER})
    with pytest.raises(UsageError):
        run(lam / "fn")


def test_namespace_package_in_a_source_root_is_first_party(tmp_path: Path) -> None:
    lam = make(tmp_path, {
        "fn/handler.py": "from utils import helpers\nimport tools.fmt\n" + HANDLER,
        "utils/helpers.py": "",  # folders without __init__.py: PEP 420 namespace packages
        "utils/more.py": "",
        "tools/fmt.py": "",
        "fn/requests/samples.json": "{}",  # a data folder named like a dependency does not capture it
    })
    (lam / "fn" / "handler.py").write_text("from requests import get\n" + (lam / "fn" / "handler.py").read_text())
    plan, findings = run(lam / "fn")
    assert findings == ()
    assert plan.first_party == ("tools", "utils")
    assert members(plan) == ["handler.py", "requests/samples.json", "tools/fmt.py", "utils/helpers.py", "utils/more.py"]
    assert plan.external_imports == ("requests",)


def test_a_repository_root_as_the_asset_takes_only_what_the_handler_reaches(tmp_path: Path) -> None:
    """Issue 15, the code root: `service.handlers.create_order.lambda_handler` with the repository root as the
    asset builds with the package at its import path and a top-level module it imports, nothing else."""
    repo = tmp_path / "repo"
    files = {
        "service/__init__.py": "",
        "service/handlers/__init__.py": "",
        "service/handlers/create_order.py": "import settings\nfrom service.models import Order\n\n"
                                            "def lambda_handler(event, context):\n    return Order()\n",
        "service/models.py": "class Order:\n    pass\n",
        "service/schema.json": "{}",
        "settings.py": "TABLE = 'orders'\n",
        "unrelated.py": "import nothing_here\n",
        "infra/app.py": "import aws_cdk\n",
        "cdk.out/asset.1234/index.py": "",
        "tests/test_orders.py": "def test(): pass\n",
        "README.md": "# repo\n",
    }
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text, encoding="utf-8")
    (repo / ".git").mkdir()
    overrides = Overrides(handler="service.handlers.create_order.lambda_handler", code_root=True)
    plan, findings = discover(resolve_settings(repo, overrides, cwd=tmp_path))
    assert [f for f in findings if f.severity.name == "ERROR"] == []
    assert [member for member, _ in plan.files] == [
        "service/__init__.py", "service/handlers/__init__.py", "service/handlers/create_order.py",
        "service/models.py", "service/schema.json", "settings.py"]
    whole, _ = discover(resolve_settings(repo, dataclasses.replace(overrides, code_root=False), cwd=tmp_path))
    assert "README.md" in dict(whole.files) and "unrelated.py" in dict(whole.files)
