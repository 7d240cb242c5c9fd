"""Every input at its smallest (issue 17): an empty zip, a zero-byte file, an empty function folder, a
requirements file of comments only, an empty config, a symlink loop, files the user cannot read, an --out
that cannot be written... Each ends in one readable message and its documented exit code on `build`,
`verify`, `layer` and `lock`, never a traceback, and a zip is published only when the build passed.

lpkg runs as users run it (a subprocess). Without Docker on purpose: DOCKER_HOST names a socket that is not
there, so a command that wrongly starts an install or a container ends in exit 3, which the tests see.
Unreadable files: the tests run as root, who reads everything, so lpkg runs as `nobody` (setpriv) there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import IN_CI
from helpers import LpkgRun, write_zip

HANDLER = "def handler(event, context):\n    return 1\n"
NO_DAEMON = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
NOBODY = 65534


def lpkg(*args: str | Path, cwd: Path | None = None, as_user: int | None = None,
         env: dict[str, str] | None = None) -> LpkgRun:
    """`python -m lpkg ARGS` without a Docker daemon, optionally as another user; never a traceback."""
    full_env = {**os.environ, **NO_DAEMON, **(env or {})}
    command = [sys.executable, "-m", "lpkg", *map(str, args)]
    if as_user is not None:
        command = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups", *command]
    proc = subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=300, cwd=cwd)
    run = LpkgRun(proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in run.stderr, run.stderr
    return run


def function(root: Path, name: str = "fn", files: dict[str, str | bytes] | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for member, content in (files if files is not None else {"handler.py": HANDLER}).items():
        path = folder / member
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return folder


def build(folder: Path, out: Path, *more: str, cwd: Path | None = None, as_user: int | None = None,
          env: dict[str, str] | None = None) -> LpkgRun:
    return lpkg("build", folder, "--out", out, "--no-test", *more, cwd=cwd, as_user=as_user, env=env)


def error_line(run: LpkgRun) -> str:
    """The one message: the `lpkg: error:` line and its hint (or click's `Error:` line for an argument that
    click itself checks, such as a path it cannot read)."""
    lines = [line for line in run.stderr.splitlines() if line.startswith(("lpkg: error:", "  hint:", "Error: "))]
    assert lines and lines[0].startswith(("lpkg: error:", "Error: ")), run.stderr
    return "\n".join(lines)


def no_zips(out: Path) -> None:
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == [], "a failed build left files in --out"


# --- verify: the emptiest zips ----------------------------------------------------------------------------


def test_verify_a_zip_with_no_members(tmp_path: Path) -> None:
    path = tmp_path / "empty.zip"
    zipfile.ZipFile(path, "w").close()
    run = lpkg("verify", "--probe", "none", path)
    assert run.returncode == 1, run.stderr
    assert "ZIP_EMPTY" in run.stdout


def test_verify_a_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "zero.zip"
    path.write_bytes(b"")
    run = lpkg("verify", "--probe", "none", path)
    assert run.returncode == 2
    assert "empty file (0 bytes)" in error_line(run)


def test_verify_a_zip_of_folders_only(tmp_path: Path) -> None:
    path = tmp_path / "folders.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a/", b"")
        zf.writestr("a/b/", b"")
    run = lpkg("verify", "--probe", "none", path)
    assert run.returncode == 1
    assert "ZIP_EMPTY" in run.stdout


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n", b"\xef\xbb\xbf\n# nothing\n"],
                         ids=["empty", "bom", "newline", "bom-comment"])
def test_verify_a_zip_whose_only_member_is_an_empty_handler(tmp_path: Path, content: bytes) -> None:
    path = write_zip(tmp_path / "fn.zip", {"handler.py": content})
    inferred = lpkg("verify", "--probe", "none", path)
    assert inferred.returncode == 2
    assert "handler.py (empty)" in error_line(inferred)
    if shutil.which("python3.11") is None:
        pytest.skip("the import test of a named handler needs a local python3.11 (or Docker)")
    named = lpkg("verify", "--probe", "local", "--runtime", "python3.11", "--handler", "handler.handler", path)
    assert named.returncode == 1
    assert "Runtime.HandlerNotFound" in named.stdout
    assert "SyntaxError" not in named.stdout  # a BOM is not a syntax error: Python skips it


@pytest.mark.parametrize("text", ["", ".", "...", " ", "a b.handler", "handler. handler", "handler.handler x"])
def test_verify_refuses_an_empty_dotted_or_spaced_handler(tmp_path: Path, text: str) -> None:
    path = write_zip(tmp_path / "fn.zip", {"handler.py": HANDLER})
    run = lpkg("verify", "--probe", "none", "--handler", text, path)
    assert run.returncode == 2
    assert "bad handler" in error_line(run)


# --- build: the emptiest function folders ---------------------------------------------------------------


def test_build_an_empty_function_folder(tmp_path: Path) -> None:
    run = build(function(tmp_path, files={}), tmp_path / "dist")
    assert run.returncode == 2
    assert "cannot tell the handler" in error_line(run)
    no_zips(tmp_path / "dist")


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n"], ids=["empty", "bom", "bom-newline"])
def test_build_an_empty_or_bom_only_handler(tmp_path: Path, content: bytes) -> None:
    folder = function(tmp_path, files={"handler.py": content})
    inferred = build(folder, tmp_path / "dist")
    assert inferred.returncode == 2
    assert "handler.py (empty)" in error_line(inferred)
    named = build(folder, tmp_path / "dist", "--handler", "handler.handler")
    assert named.returncode == 1
    assert "HANDLER_MISSING" in named.stdout and "SYNTAX" not in named.stdout
    no_zips(tmp_path / "dist")


@pytest.mark.parametrize("text", ["", ".", "...", " ", "a b.handler", "handler. handler"])
def test_build_refuses_an_empty_dotted_or_spaced_handler(tmp_path: Path, text: str) -> None:
    run = build(function(tmp_path), tmp_path / "dist", "--handler", text)
    assert run.returncode == 2
    assert "bad handler" in error_line(run)
    no_zips(tmp_path / "dist")


@pytest.mark.parametrize("requirements", ["", "# nothing yet\n", "\n  # indented\n\n", "\ufeff# bom\n"],
                         ids=["zero-bytes", "comment", "blank-and-comment", "bom-comment"])
def test_build_with_a_requirements_file_of_comments_only_installs_nothing(tmp_path: Path, requirements: str) -> None:
    folder = function(tmp_path, files={"handler.py": HANDLER, "requirements.txt": requirements})
    # --backend docker with no daemon: an install that was attempted would end in exit 3.
    run = build(folder, tmp_path / "dist", "--backend", "docker")
    assert run.returncode == 0, run.stderr
    with zipfile.ZipFile(tmp_path / "dist" / "fn.zip") as zf:
        assert zf.namelist() == ["handler.py"]


@pytest.mark.parametrize(("config_name", "text"), [
    ("lpkg.toml", ""), ("lpkg.toml", "\n# only a comment\n"), ("pyproject.toml", "[tool.lpkg]\n"),
    ("pyproject.toml", "[tool]\n"), ("pyproject.toml", ""), ("pyproject.toml", "tool = 1\n"),
], ids=["empty-lpkg-toml", "comment-lpkg-toml", "empty-tool-lpkg", "empty-tool", "empty-pyproject", "tool-not-a-table"])
def test_build_with_an_empty_config_uses_the_defaults(tmp_path: Path, config_name: str, text: str) -> None:
    (tmp_path / config_name).write_text(text)
    folder = function(tmp_path)
    named = build(folder, tmp_path / "dist", cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    assert (tmp_path / "dist" / "fn.zip").is_file()
    everything = lpkg("build", "--no-test", cwd=tmp_path)  # no folder: found under the current folder
    assert everything.returncode == 0, everything.stderr


@pytest.mark.parametrize(("config_name", "text", "expect"), [
    ("lpkg.toml", "runtime = 3.12\n", "runtime must be"),
    ("lpkg.toml", "arch = 1\n", "arch must be"),
    ("lpkg.toml", "timeout = \"30\"\n", "timeout must be"),
    ("lpkg.toml", "timeout = true\n", "timeout must be"),
    ("lpkg.toml", "layers = \"a.zip\"\n", "layers must be"),
    ("lpkg.toml", "source-roots = 5\n", "source-roots must be"),
    ("lpkg.toml", "exclude = [1]\n", "exclude must be"),
    ("lpkg.toml", "out = []\n", "out must be"),
    ("lpkg.toml", "out = \"\"\n", "out must be"),
    ("lpkg.toml", "functions = 1\n", "functions must be"),
    ("lpkg.toml", "[functions]\nfn = 1\n", "functions.fn must be"),
    ("lpkg.toml", "[functions.fn]\nhandler = 3\n", "handler"),
    ("lpkg.toml", "[functions.fn]\nhandler = \"\"\n", "handler"),
    ("pyproject.toml", "[tool]\nlpkg = 1\n", "tool.lpkg must be a table"),
    ("pyproject.toml", "[project]\ndependencies = \"requests\"\n", "dependencies must be"),
    ("lpkg.toml", "\ufeffruntime = \"python3.12\"\n", "lpkg.toml"),
    ("lpkg.toml", "runtime = \n", "lpkg.toml"),
], ids=lambda v: v if len(v) < 20 else None)
def test_a_config_value_of_the_wrong_type(tmp_path: Path, config_name: str, text: str, expect: str) -> None:
    (tmp_path / config_name).write_text(text, encoding="utf-8")
    folder = function(tmp_path)
    if config_name == "pyproject.toml" and "dependencies" in text:
        (folder / "pyproject.toml").write_text(text)
        (tmp_path / config_name).unlink()
    run = build(folder, tmp_path / "dist", cwd=tmp_path)
    assert run.returncode == 2
    assert expect in error_line(run)
    no_zips(tmp_path / "dist")


def _symlink_loops(root: Path) -> dict[str, Path]:
    (root / "self").symlink_to("self")
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    return {"self": root / "self", "pair": root / "a"}


@pytest.mark.parametrize("which", ["self", "pair"])
@pytest.mark.parametrize("command", ["build", "lock", "lock-check", "layer"])
def test_a_function_folder_that_is_a_symlink_loop(tmp_path: Path, which: str, command: str) -> None:
    folder = _symlink_loops(tmp_path)[which]
    args: list[str | Path] = {
        "build": ["build", folder, "--no-test", "--out", tmp_path / "dist"],
        "lock": ["lock", folder], "lock-check": ["lock", "--check", folder],
        "layer": ["layer", folder, "--no-test", "--out", tmp_path / "dist"],
    }[command]
    run = lpkg(*args)
    assert run.returncode == 2
    assert "symlink loop" in error_line(run)


def test_a_symlink_loop_inside_the_function_folder_is_walked_once(tmp_path: Path) -> None:
    folder = function(tmp_path, files={"handler.py": HANDLER, "shared/__init__.py": ""})
    (folder / "shared" / "again").symlink_to("..")
    (folder / "dangling").symlink_to("nowhere")
    (folder / "self").symlink_to("self")
    run = build(folder, tmp_path / "dist")
    assert run.returncode == 0, run.stderr
    with zipfile.ZipFile(tmp_path / "dist" / "fn.zip") as zf:
        names = zf.namelist()
    assert "handler.py" in names and not any("again/again" in n for n in names)


# --- layer and lock at their smallest ---------------------------------------------------------------------


@pytest.mark.parametrize("requirements", ["", "# nothing\n", "\ufeff\n"], ids=["zero-bytes", "comment", "bom"])
def test_layer_from_a_requirements_file_with_no_requirement(tmp_path: Path, requirements: str) -> None:
    source = tmp_path / "requirements.txt"
    source.write_text(requirements, encoding="utf-8")
    run = lpkg("layer", source, "--no-test", "--out", tmp_path / "dist")
    assert run.returncode == 2
    assert "nothing to put in a layer" in error_line(run)
    no_zips(tmp_path / "dist")


@pytest.mark.parametrize("files", [{}, {"requirements.txt": "# c\n"}, {"pyproject.toml": "[project]\nname='x'\n"}],
                         ids=["empty-folder", "comment-requirements", "no-dependencies"])
def test_layer_from_a_folder_with_nothing_in_it(tmp_path: Path, files: dict[str, str | bytes]) -> None:
    run = lpkg("layer", function(tmp_path, "deps", files), "--no-test", "--out", tmp_path / "dist")
    assert run.returncode == 2
    assert "nothing to put in a layer" in error_line(run)


@pytest.mark.parametrize("check", [True, False], ids=["check", "lock"])
def test_lock_with_a_requirements_file_of_comments_only(tmp_path: Path, check: bool) -> None:
    folder = function(tmp_path, files={"handler.py": HANDLER, "requirements.txt": "# later\n"})
    run = lpkg("lock", *(["--check"] if check else []), folder)
    assert run.returncode == 0, run.stderr
    assert "nothing to lock" in run.stdout
    assert not (folder / "requirements.lock").exists()


@pytest.mark.parametrize("check", [True, False], ids=["check", "lock"])
def test_lock_an_empty_function_folder(tmp_path: Path, check: bool) -> None:
    run = lpkg("lock", *(["--check"] if check else []), function(tmp_path, files={}))
    assert run.returncode == 2
    assert "cannot tell the handler" in error_line(run)


# --- --out that cannot be written ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["build", "layer"])
@pytest.mark.parametrize("where", ["is-a-file", "under-a-file"])
def test_out_that_is_a_file(tmp_path: Path, command: str, where: str) -> None:
    blocker = tmp_path / "dist"
    blocker.write_bytes(b"not a folder")
    out = blocker if where == "is-a-file" else blocker / "sub"
    source = function(tmp_path, files={"handler.py": HANDLER}) if command == "build" else \
        function(tmp_path, "deps", {"mod.py": "X = 1\n"})
    run = lpkg(command, source, "--no-test", "--out", out)
    assert run.returncode == 2
    assert "is a file, not a folder" in error_line(run)
    assert blocker.read_bytes() == b"not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["deps" if command == "layer" else "fn", "dist"])


@pytest.fixture
def read_only_out() -> Iterator[Path]:
    """A folder on a read-only file system (a tmpfs mounted ro: needs root)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        if IN_CI:
            pytest.fail("CI runs these tests as root, which can mount a read-only tmpfs")
        pytest.skip("mounting a read-only tmpfs needs root")
    mount_point = Path(tempfile.mkdtemp(prefix="lpkg-ro-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        mount_point.rmdir()
        if IN_CI:
            pytest.fail(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
        mount_point.rmdir()


@pytest.mark.parametrize("command", ["build", "layer"])
@pytest.mark.parametrize("below", [False, True], ids=["out-itself", "folder-below"])
def test_out_on_a_read_only_file_system(tmp_path: Path, read_only_out: Path, command: str, below: bool) -> None:
    source = function(tmp_path, files={"handler.py": HANDLER}) if command == "build" else \
        function(tmp_path, "deps", {"mod.py": "X = 1\n"})
    out = read_only_out / "dist" if below else read_only_out
    run = lpkg(command, source, "--no-test", "--out", out)
    assert run.returncode == 3
    assert "Read-only file system" in error_line(run)
    assert list(read_only_out.iterdir()) == []


# --- files the user cannot read (lpkg runs as nobody) -------------------------------------------------------


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder `nobody` can enter (pytest's tmp_path is root's alone), and nobody's home and cache in it."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        if IN_CI:
            pytest.fail("CI runs these tests as root, with setpriv")
        pytest.skip("running lpkg as another user needs root and setpriv")
    root = Path(tempfile.mkdtemp(prefix="lpkg-unreadable-"))
    root.chmod(0o755)
    home = root / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def as_nobody(*args: str | Path, root: Path, cwd: Path | None = None) -> LpkgRun:
    home = root / "home"
    return lpkg(*args, cwd=cwd, as_user=NOBODY,
                env={"HOME": str(home), "LPKG_CACHE_DIR": str(home / "cache"), "TMPDIR": str(home)})


def _nobodys_out(root: Path) -> Path:
    out = root / "dist"
    out.mkdir()
    os.chown(out, NOBODY, NOBODY)
    return out


@pytest.mark.parametrize("what", ["handler", "module", "requirements", "folder", "subfolder", "config"])
def test_build_with_a_file_the_user_cannot_read(shared_tmp: Path, what: str) -> None:
    folder = function(shared_tmp, files={"handler.py": "import helper\n" + HANDLER, "helper.py": "X = 1\n",
                                         "requirements.txt": "# none\n", "data/info.txt": "x"})
    (shared_tmp / "lpkg.toml").write_text("")
    unreadable = {"handler": folder / "handler.py", "module": folder / "helper.py",
                  "requirements": folder / "requirements.txt", "folder": folder, "subfolder": folder / "data",
                  "config": shared_tmp / "lpkg.toml"}[what]
    unreadable.chmod(0)
    out = _nobodys_out(shared_tmp)
    run = as_nobody("build", folder, "--no-test", "--out", out, root=shared_tmp, cwd=shared_tmp)
    assert run.returncode == 2, run.stderr
    assert any(words in error_line(run) for words in ("cannot read", "is not readable"))
    assert list(out.iterdir()) == []


def test_verify_a_zip_the_user_cannot_read(shared_tmp: Path) -> None:
    path = write_zip(shared_tmp / "fn.zip", {"handler.py": HANDLER})
    path.chmod(0)
    run = as_nobody("verify", "--probe", "none", path, root=shared_tmp)
    assert run.returncode == 2
    assert "is not readable" in error_line(run)


def test_lock_and_layer_with_requirements_the_user_cannot_read(shared_tmp: Path) -> None:
    folder = function(shared_tmp, files={"handler.py": HANDLER, "requirements.txt": "requests==2.32.3\n"})
    (folder / "requirements.txt").chmod(0)
    checked = as_nobody("lock", "--check", folder, root=shared_tmp)
    assert checked.returncode == 2
    assert "cannot read" in error_line(checked)
    layered = as_nobody("layer", folder / "requirements.txt", "--no-test", "--out", _nobodys_out(shared_tmp),
                        root=shared_tmp)
    assert layered.returncode == 2
    assert "is not readable" in error_line(layered)  # click checks SOURCE


def test_out_the_user_cannot_write(shared_tmp: Path) -> None:
    folder = function(shared_tmp)
    out = shared_tmp / "dist"
    out.mkdir()  # root's, 0755: nobody cannot write there
    run = as_nobody("build", folder, "--no-test", "--out", out, root=shared_tmp)
    assert run.returncode == 3
    assert "Permission denied" in error_line(run)
    assert list(out.iterdir()) == []


def test_layer_from_a_folder_with_a_subfolder_the_user_cannot_read(shared_tmp: Path) -> None:
    source = function(shared_tmp, "deps", {"mod.py": "X = 1\n", "pkg/__init__.py": "", "pkg/inner.py": "Y = 2\n"})
    (source / "pkg").chmod(0)
    run = as_nobody("layer", source, "--no-test", "--out", _nobodys_out(shared_tmp), root=shared_tmp)
    assert run.returncode == 2
    assert "cannot read the folder" in error_line(run)


@pytest.mark.parametrize("command", ["verify", "build"])
@pytest.mark.parametrize("layer", ["zero-bytes", "no-members"])
def test_a_layer_at_its_smallest(tmp_path: Path, command: str, layer: str) -> None:
    path = tmp_path / f"{layer}.zip"
    if layer == "zero-bytes":
        path.write_bytes(b"")
    else:
        zipfile.ZipFile(path, "w").close()
    if command == "verify":
        zipped = write_zip(tmp_path / "fn.zip", {"handler.py": HANDLER})
        run = lpkg("verify", "--probe", "none", "--layer", path, zipped)
    else:
        run = build(function(tmp_path), tmp_path / "dist", "--layer", str(path))
        no_zips(tmp_path / "dist")
    if layer == "zero-bytes":
        assert run.returncode == 2
        assert "empty file (0 bytes)" in error_line(run)
    else:
        assert run.returncode == 1
        assert "ZIP_EMPTY" in run.stdout


def test_a_handler_an_exec_wrapper_starts_is_not_a_missing_module(tmp_path: Path) -> None:
    """The Lambda Web Adapter (aws-samples/serverless-patterns' apigw-rest-api-lambda-python-response-streaming):
    AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap, and Handler: run.sh, a script that serves the app. The runtime
    imports no handler module, so there is none to test: a warning. Without the wrapper it is Lambda's
    ImportModuleError, an error."""
    path = write_zip(tmp_path / "fn.zip", {"run.sh": "#!/bin/sh\nexec python -m uvicorn app:app\n",
                                           "app.py": "app = None\n"})
    wrapped = lpkg("verify", "--probe", "none", "--handler", "run.sh", "--env",
                   "AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap", "--json", path)
    assert wrapped.returncode == 0, wrapped.stdout + wrapped.stderr
    artifact = json.loads(wrapped.stdout)["artifacts"][0]
    assert [(f["code"], f["severity"]) for f in artifact["findings"] if f["code"].startswith("HANDLER")] == [
        ("HANDLER_RUN_BY_WRAPPER", "warning")]
    bare = lpkg("verify", "--probe", "none", "--handler", "run.sh", "--json", path)
    assert bare.returncode == 1
    assert "HANDLER_MISSING" in {f["code"] for f in json.loads(bare.stdout)["artifacts"][0]["findings"]}
