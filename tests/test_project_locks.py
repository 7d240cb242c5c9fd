"""lpkg.install.project_locks: uv.lock and poetry.lock read as the pinned set for one Lambda target. The
poetry fixture's lock was made by `poetry lock`; the uv one is made here by `uv lock` (network); small
inline locks cover the platform errors."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.markers import Marker

from lpkg.config import read_toml
from lpkg.errors import UsageError
from lpkg.install.project_locks import Target, find_lock, read_project_lock
from lpkg.runtimes import get_runtime

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "projects"
POETRY_APP = FIXTURES / "poetry-app"
UV_APP = FIXTURES / "uv-app"
PY311_X86 = Target(get_runtime("python3.11"), "x86_64")
PY313_ARM = Target(get_runtime("python3.13"), "arm64")


def files_by_hash(lock: Path) -> dict[str, str]:
    """hash -> file name, for every file a lock lists (poetry's `files`, uv's wheels and sdist)."""
    found: dict[str, str] = {}
    for package in read_toml(lock).get("package", []):
        for entry in [*package.get("files", []), *package.get("wheels", []), package.get("sdist") or {}]:
            if entry.get("hash"):
                found[entry["hash"]] = (entry.get("file") or entry.get("url", "")).rsplit("/", 1)[-1]
    return found


def test_poetry_lock_runtime_dependencies_only() -> None:
    lock = read_project_lock(POETRY_APP / "poetry.lock", PY311_X86)
    versions = {d.name: d.version for d in lock.distributions}
    # the same set `poetry export --only main` writes for this lock
    assert versions == {
        "annotated-types": "0.8.0", "certifi": "2026.10.19.post1", "charset-normalizer": "3.5.3", "idna": "3.21",
        "pydantic": "2.14.4", "pydantic-core": "2.50.5", "pysocks": "1.7.1", "python-dateutil": "4.0.0",
        "requests": "2.34.2", "typing-extensions": "4.16.0", "typing-inspection": "0.4.5", "tzdata": "2026.6",
        "urllib3": "2.8.0",
    }
    assert "pytest" not in versions and "colorama" not in versions  # the dev group, and its Windows-only dep
    assert [(p.name, p.folder, p.editable) for p in lock.local] == [("common", POETRY_APP / "libs" / "common", True)]


def test_poetry_hashes_are_the_files_that_install_on_the_target() -> None:
    names = files_by_hash(POETRY_APP / "poetry.lock")
    for target, machine, abi in ((PY311_X86, "x86_64", "cp311"), (PY313_ARM, "aarch64", "cp313")):
        lock = read_project_lock(POETRY_APP / "poetry.lock", target)
        (core,) = [d for d in lock.distributions if d.name == "pydantic-core"]
        chosen = sorted(names[h] for h in core.hashes)
        platform = f"manylinux2014_{machine}.manylinux_2_17_{machine}"
        assert chosen == sorted([f"pydantic_core-2.50.5-{abi}-{abi}-{platform}.whl", "pydantic_core-2.50.5.tar.gz"])
        (requests,) = [d for d in lock.distributions if d.name == "requests"]
        assert requests.requirement_line.startswith("requests==2.34.2 --hash=sha256:")
        assert requests.requirement_line.count("--hash=") == 2  # the wheel and the sdist
    text = read_project_lock(POETRY_APP / "poetry.lock", PY311_X86).requirements_text()
    assert text.count("\n") == 13 and "pytest" not in text


def test_find_lock_beside_the_project() -> None:
    assert find_lock(POETRY_APP / "reports") == ("poetry", POETRY_APP / "poetry.lock")


@pytest.mark.network
def test_uv_lock_made_by_uv_matches_uv_export(tmp_path: Path) -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is a dependency of lpkg"
    project = tmp_path / "uv-app"
    shutil.copytree(UV_APP, project)
    subprocess.run([uv, "lock", "--quiet"], cwd=project, check=True, capture_output=True)
    for target in (PY311_X86, PY313_ARM):
        lock = read_project_lock(project / "uv.lock", target)
        exported = subprocess.run(
            [uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "--no-header",
             "--no-annotate"], cwd=project, check=True, capture_output=True, text=True).stdout
        # uv export keeps the markers (uv's own, simplified); evaluated here for the target
        lines = [line.partition(";") for line in exported.splitlines()
                 if line and not line.startswith((" ", "#", ".", "-e"))]
        expected = {pin.strip() for pin, _, marker in lines
                    if not marker.strip() or Marker(marker.strip()).evaluate(target.markers())}
        assert {f"{d.name}=={d.version}" for d in lock.distributions} == expected
        assert "colorama" not in {d.name for d in lock.distributions}  # click needs it on Windows only
        assert [p.name for p in lock.local] == ["greeting"]
        names = files_by_hash(project / "uv.lock")
        for distribution in lock.distributions:
            for digest in distribution.hashes:
                name = names[digest]
                assert name.endswith(".tar.gz") or "-none-any" in name or target.runtime.wheel_abi in name \
                    or "abi3" in name, name


def uv_lock(folder: Path, packages: str) -> Path:
    (folder / "pyproject.toml").write_text('[project]\nname = "fn"\nversion = "0"\ndependencies = ["lib"]\n')
    root = '[[package]]\nname = "fn"\nversion = "0"\nsource = { virtual = "." }\n' \
           'dependencies = [{ name = "lib" }, { name = "winonly", marker = "sys_platform == \'win32\'" }]\n' \
           '[package.dev-dependencies]\ndev = [{ name = "devtool" }]\n\n'
    path = folder / "uv.lock"
    path.write_text("version = 1\n\n" + root + textwrap.dedent(packages))
    return path


def wheel(name: str) -> str:
    return f'{{ url = "https://index.invalid/{name}", hash = "sha256:{hashlib.sha256(name.encode()).hexdigest()}" }}'


def test_uv_lock_with_no_file_for_the_target_is_an_error_naming_the_package(tmp_path: Path) -> None:
    lock = uv_lock(tmp_path, f"""
        [[package]]
        name = "lib"
        version = "1.0"
        source = {{ registry = "https://index.invalid/simple" }}
        wheels = [{wheel("lib-1.0-cp311-cp311-win_amd64.whl")}, {wheel("lib-1.0-cp311-cp311-macosx_11_0_arm64.whl")}]
        """)
    with pytest.raises(UsageError, match=r"lib 1\.0 has no wheel for python3\.11 on x86_64 \(glibc 2\.26\)"):
        read_project_lock(lock, PY311_X86)


def test_a_wheel_for_a_newer_glibc_installs_only_on_the_runtimes_that_have_it(tmp_path: Path) -> None:
    lock = uv_lock(tmp_path, f"""
        [[package]]
        name = "lib"
        version = "1.0"
        source = {{ registry = "https://index.invalid/simple" }}
        wheels = [{wheel("lib-1.0-cp312-abi3-manylinux_2_28_x86_64.whl")}]
        """)
    with pytest.raises(UsageError, match=r"lib 1\.0 has no wheel"):
        read_project_lock(lock, PY311_X86)  # Amazon Linux 2: glibc 2.26
    (locked,) = read_project_lock(lock, Target(get_runtime("python3.12"), "x86_64")).distributions
    assert locked.name == "lib" and len(locked.hashes) == 1  # AL2023: glibc 2.34
    # The root's Windows-only dependency and its dev group name packages the lock does not hold: walking
    # either would have been "required but not locked".


def test_uv_lock_several_versions_and_an_unpinnable_source(tmp_path: Path) -> None:
    lock = uv_lock(tmp_path, f"""
        [[package]]
        name = "lib"
        version = "1.0"
        source = {{ registry = "https://index.invalid/simple" }}
        dependencies = [{{ name = "dep", version = "2.0", marker = "python_version >= '3.12'" }},
                        {{ name = "dep", version = "1.0", marker = "python_version < '3.12'" }}]
        sdist = {{ url = "https://index.invalid/lib-1.0.tar.gz", hash = "sha256:{'1' * 64}" }}

        [[package]]
        name = "dep"
        version = "1.0"
        source = {{ registry = "https://index.invalid/simple" }}
        wheels = [{wheel("dep-1.0-py3-none-any.whl")}]

        [[package]]
        name = "dep"
        version = "2.0"
        source = {{ git = "https://code.invalid/dep?rev=abc#abc" }}
        """)
    versions = {d.name: d.version for d in read_project_lock(lock, PY311_X86).distributions}
    assert versions == {"lib": "1.0", "dep": "1.0"}
    with pytest.raises(UsageError, match="dep comes from git"):
        read_project_lock(lock, PY313_ARM)


def test_poetry_lock_out_of_date_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.poetry]\nname = "fn"\n[tool.poetry.dependencies]\n'
                                             'python = "^3.11"\nmissing = "^1"\n')
    (tmp_path / "poetry.lock").write_text('[metadata]\nlock-version = "2.1"\n')
    with pytest.raises(UsageError, match="missing is required but not locked"):
        read_project_lock(tmp_path / "poetry.lock", PY311_X86)
