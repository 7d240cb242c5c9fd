"""lpkg.config on real files in tmp_path: finding the file, precedence, relative paths, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from lpkg.config import FunctionSettings, Overrides, find_config, resolve_settings
from lpkg.errors import UsageError
from lpkg.handler import Handler


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    """A project with lambda/fn-a and lambda/fn-b function folders, a .git root, and the given files."""
    root = (tmp_path / "proj").resolve()
    (root / ".git").mkdir(parents=True)
    for fn in ("fn-a", "fn-b"):
        (root / "lambda" / fn).mkdir(parents=True)
        (root / "lambda" / fn / "handler.py").write_text("def handler(event, context):\n    return 1\n")
    (root / "layers").mkdir()
    (root / "src").mkdir()
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def settings(
    root: Path, fn: str = "fn-a", overrides: Overrides | None = None, cwd: Path | None = None
) -> FunctionSettings:
    return resolve_settings(root / "lambda" / fn, overrides, cwd=cwd or root)


def test_built_in_defaults_without_a_config_file(tmp_path: Path) -> None:
    root = project(tmp_path, {})
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    s = settings(root, cwd=elsewhere)
    assert s.config_file is None
    assert s.name == "fn-a"
    assert s.function_dir == (root / "lambda" / "fn-a").resolve()
    assert s.runtime.name == "python3.12"
    assert s.arch == "x86_64"
    assert s.handler is None
    assert s.out == elsewhere / "dist"  # the built-in output folder is relative to where lpkg runs
    assert s.artifact == elsewhere / "dist" / "fn-a.zip"
    assert s.source_roots == ((root / "lambda").resolve(),)  # the function folder's parent
    assert s.exclude == ()
    assert s.layers == ()
    assert s.build_image == "public.ecr.aws/sam/build-python3.12:latest-x86_64"
    assert s.image == "public.ecr.aws/lambda/python:3.12-x86_64"


PYPROJECT = """\
[project]
name = "dashboard"

[tool.lpkg]
runtime = "python3.11"
arch = "arm64"
out = "build/zips"
build-image = "example/build:3.11"
image = "example/run:3.11"
layers = ["layers/common.zip"]
source-roots = ["src", "lambda"]
exclude = ["*.md"]

[tool.lpkg.functions.fn-a]
handler = "app/main.entry"
runtime = "python3.13"
arch = "x86_64"
exclude = ["fixtures"]
source-roots = ["lambda"]
"""


def test_precedence_function_table_over_defaults_over_built_ins(tmp_path: Path) -> None:
    root = project(tmp_path, {"pyproject.toml": PYPROJECT})
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    a = settings(root, "fn-a", cwd=cwd)
    assert a.config_file == root / "pyproject.toml"
    assert a.handler == Handler("app.main", "entry")
    assert a.runtime.name == "python3.13"
    assert a.arch == "x86_64"
    assert a.exclude == ("fixtures",)
    assert a.source_roots == ((root / "lambda").resolve(),)
    # Paths in the file are relative to the file's folder, wherever lpkg runs.
    assert a.out == root / "build" / "zips"
    assert a.layers == (root / "layers" / "common.zip",)
    assert a.build_image == "example/build:3.11"
    assert a.image == "example/run:3.11"

    b = settings(root, "fn-b", cwd=cwd)
    assert b.handler is None
    assert b.runtime.name == "python3.11"
    assert b.arch == "arm64"
    assert b.exclude == ("*.md",)
    assert b.source_roots == ((root / "src").resolve(), (root / "lambda").resolve())


def test_flags_win_and_their_paths_are_relative_to_cwd(tmp_path: Path) -> None:
    root = project(tmp_path, {"pyproject.toml": PYPROJECT})
    cwd = tmp_path / "cwd"
    (cwd / "roots").mkdir(parents=True)
    flags = Overrides(
        runtime="python3.10", arch="aarch64", handler="other.fn", out=Path("out"), build_image="b", image="i",
        layers=(Path("l.zip"),), source_roots=(Path("roots"),), exclude=("*.txt",),
    )
    s = resolve_settings(root / "lambda" / "fn-a", flags, cwd=cwd)
    assert s.runtime.name == "python3.10"
    assert s.arch == "arm64"
    assert s.handler == Handler("other", "fn")
    assert s.out == cwd / "out"
    assert (s.build_image, s.image) == ("b", "i")
    assert s.layers == (cwd / "l.zip",)
    assert s.source_roots == ((cwd / "roots").resolve(),)
    assert s.exclude == ("*.txt",)


def test_default_images_follow_the_resolved_runtime_and_arch(tmp_path: Path) -> None:
    root = project(tmp_path, {"lpkg.toml": 'runtime = "python3.11"\narch = "arm64"\n'})
    s = settings(root)
    assert s.build_image == "public.ecr.aws/sam/build-python3.11:latest-arm64"
    assert s.image == "public.ecr.aws/lambda/python:3.11-arm64"


def test_lpkg_toml_found_walking_up_and_a_pyproject_without_tool_lpkg_is_skipped(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "lpkg.toml": 'runtime = "python3.11"\n\n[functions.fn-a]\nhandler = "handler.handler"\n',
        # The function's own pyproject.toml holds its dependencies, not settings: the search goes on.
        "lambda/fn-a/pyproject.toml": '[project]\nname = "fn-a"\ndependencies = ["requests"]\n',
    })
    assert find_config((root / "lambda" / "fn-a").resolve()) == (root / "lpkg.toml").resolve()
    s = settings(root)
    assert s.runtime.name == "python3.11"
    assert s.handler == Handler("handler", "handler")


def test_lpkg_toml_beats_pyproject_in_the_same_folder(tmp_path: Path) -> None:
    root = project(tmp_path, {"lpkg.toml": 'arch = "arm64"\n', "pyproject.toml": '[tool.lpkg]\narch = "x86_64"\n'})
    s = settings(root)
    assert s.config_file == root / "lpkg.toml"
    assert s.arch == "arm64"


def test_search_stops_at_the_repository_root(tmp_path: Path) -> None:
    (tmp_path / "lpkg.toml").write_text('arch = "arm64"\n')  # outside the project: never used
    root = project(tmp_path, {})
    s = settings(root)
    assert s.config_file is None
    assert s.arch == "x86_64"


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    root = project(tmp_path, {"pyproject.toml": '[tool.lpkg]\nbuild_image = "x"\n'})
    with pytest.raises(UsageError) as info:
        settings(root)
    assert "tool.lpkg.build_image" in info.value.message
    assert str(root / "pyproject.toml") in info.value.message
    assert info.value.hint is not None and "build-image" in info.value.hint


def test_unknown_key_in_a_function_table(tmp_path: Path) -> None:
    root = project(tmp_path, {"lpkg.toml": '[functions.fn-a]\nout = "x"\n'})
    with pytest.raises(UsageError) as info:
        settings(root)
    assert "functions.fn-a.out" in info.value.message
    assert "lpkg.toml" in info.value.message


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    root = project(tmp_path, {"pyproject.toml": '[tool.lpkg]\nruntime = "python3.12"\narch = arm64\n'})
    with pytest.raises(UsageError) as info:
        settings(root)
    assert f"{root / 'pyproject.toml'}:3:" in info.value.message
    assert "invalid TOML" in info.value.message


@pytest.mark.parametrize(("text", "expect"), [
    ('runtime = "python2.7"\n', "runtime"),
    ('arch = "sparc"\n', "arch"),
    ('layers = "one.zip"\n', "layers must be a list of strings"),
    ("exclude = [1]\n", "exclude must be a list of strings"),
    ('[functions.fn-a]\nhandler = "no-dot"\n', "functions.fn-a.handler"),
    ('source-roots = ["missing"]\n', "not a folder"),
])
def test_bad_values_name_the_file(tmp_path: Path, text: str, expect: str) -> None:
    root = project(tmp_path, {"lpkg.toml": text})
    with pytest.raises(UsageError) as info:
        settings(root)
    assert expect in info.value.message
    assert "lpkg.toml" in info.value.message


def test_function_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        resolve_settings(tmp_path / "nope", cwd=tmp_path)


def test_event_and_timeout_per_function_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "lpkg.toml": 'timeout = 10\nevent = "apigw:GET:/health"\n\n'
                     '[functions.fn-b]\ntimeout = 3\nevent = "events/fn-b.json"\n',
    })
    a = settings(root, "fn-a")
    assert (a.timeout, a.event) == (10.0, "apigw:GET:/health")
    b = settings(root, "fn-b")
    assert (b.timeout, b.event) == (3.0, str(root / "events" / "fn-b.json"))
    flagged = settings(root, "fn-b", Overrides(timeout=7.0, event="mine.json"), cwd=tmp_path)
    assert (flagged.timeout, flagged.event) == (7.0, str(tmp_path / "mine.json"))
    assert settings(root, "fn-b", Overrides(event="sqs")).event == "sqs"


@pytest.mark.parametrize("value", ["0", "901", '"30"', "true"])
def test_timeout_must_be_lambdas_range(tmp_path: Path, value: str) -> None:
    root = project(tmp_path, {"lpkg.toml": f"timeout = {value}\n"})
    with pytest.raises(UsageError, match="timeout must be a number of seconds from 1 to 900"):
        settings(root)
