"""The probe keeps the compiled form of a cached dependency install between builds (lpkg/bytecode.py): a real
dependency from the package index, the stand-in runtime image in a real container, a store in a temp folder."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import write_zip

from lpkg.commands.verify import DependencyPart, VerifyOptions, verify_zip
from lpkg.probing.docker import DockerProber
from lpkg.report import ArtifactReport
from lpkg.runtimes import get_runtime

pytestmark = [pytest.mark.docker, pytest.mark.network]

RUNTIME = get_runtime("python3.11")
TAG = "cpython-311"
HANDLER = (
    "import requests\n"
    "from shared import util\n\n"
    "def handler(event, context):\n"
    "    return {'ua': requests.utils.default_user_agent(), 'n': util.VALUE}\n"
)
FIRST_PARTY = {"handler.py": HANDLER, "shared/__init__.py": "", "shared/util.py": "VALUE = 3\n"}


@pytest.fixture(scope="session")
def requests_site() -> dict[str, bytes]:
    """requests and its dependencies for CPython 3.11 on manylinux x86_64, as {member: bytes}."""
    site = Path(tempfile.gettempdir()) / "lpkg-test-bytecode-requests-cp311"
    if not (site / "requests").is_dir():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site), "--no-compile",
             "--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--only-binary=:all:",
             "requests==2.32.3"],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            pytest.fail(f"pip could not download requests: {proc.stderr[-2000:]}")
    return {f.relative_to(site).as_posix(): f.read_bytes() for f in sorted(site.rglob("*"))
            if f.is_file() and "__pycache__" not in f.parts and not f.relative_to(site).as_posix().startswith("bin/")}


@pytest.fixture(scope="module")
def prober(standin_image: str) -> DockerProber:
    return DockerProber(standin_image, RUNTIME, "x86_64")


def verify(zip_path: Path, prober: DockerProber, store: Path | None, members: frozenset[str]) -> ArtifactReport:
    part = DependencyPart(store, members) if store is not None else None
    options = VerifyOptions(RUNTIME, "x86_64", handler="handler.handler", dependencies=part)
    return verify_zip(zip_path, options, prober)


def stored(store: Path) -> dict[str, bytes]:
    return {f.relative_to(store).as_posix(): f.read_bytes() for f in sorted(store.rglob("*")) if f.is_file()}


def pyc_of(member: str) -> str:
    folder, _, name = member.rpartition("/")
    return f"var/task/{folder + '/' if folder else ''}{name[:-3]}.{TAG}.pyc"


@pytest.fixture
def function(tmp_path: Path, requests_site: dict[str, bytes]) -> tuple[Path, frozenset[str], Path]:
    """The function's zip (requests and first-party code), the dependency members, where to keep the store."""
    return write_zip(tmp_path / "fn.zip", {**requests_site, **FIRST_PARTY}), frozenset(requests_site), tmp_path / "s"


def test_dependency_bytecode_is_kept_and_reused_with_the_same_findings(
    function: tuple[Path, frozenset[str], Path], prober: DockerProber
) -> None:
    zip_path, members, store = function
    without = verify(zip_path, prober, None, members)
    assert without.ok, without.findings

    first = verify(zip_path, prober, store, members)
    kept = stored(store)
    assert pyc_of("requests/__init__.py") in kept and pyc_of("urllib3/connectionpool.py") in kept
    assert not any(name.startswith(("var/task/handler", "var/task/shared")) for name in kept)
    assert all(data[4:8] == b"\0\0\0\0" for data in kept.values())  # timestamp pycs, checked against the source
    assert len({data[:4] for data in kept.values()}) == 1  # one interpreter's magic number
    assert f"dependency bytecode: {len(kept)} compiled and kept" in first.probe

    second = verify(zip_path, prober, store, members)
    assert "reused" in second.probe and "compiled" not in second.probe.split("dependency bytecode:")[1]
    assert stored(store) == kept  # nothing compiled again, nothing rewritten
    assert first.findings == second.findings == without.findings
    assert second.ok


def test_planted_and_garbage_files_in_the_store_are_not_used(
    function: tuple[Path, frozenset[str], Path], prober: DockerProber
) -> None:
    zip_path, members, store = function
    reference = verify(zip_path, prober, store, members)
    kept = stored(store)
    # Bytecode of another module under the first-party handler's name, with a header that matches the
    # handler's source (mtime and size): were it used, the handler module would lack `handler`.
    donor = kept[pyc_of("requests/__version__.py")]
    header = donor[:12] + len(HANDLER).to_bytes(4, "little")
    (store / pyc_of("handler.py")).write_bytes(header + donor[16:])
    (store / pyc_of("shared/util.py")).parent.mkdir(parents=True)
    (store / pyc_of("shared/util.py")).write_bytes(header + donor[16:])
    # An unchecked-hash pyc (never compared with its source) for a dependency, with another module's code.
    (store / pyc_of("requests/api.py")).write_bytes(donor[:4] + b"\x01\0\0\0" + b"\0" * 8 + donor[16:])
    (store / pyc_of("requests/models.py")).write_bytes(b"not a pyc at all")
    (store / "var/task/requests/notes.txt").write_bytes(b"garbage")

    planted = verify(zip_path, prober, store, members)
    assert planted.findings == reference.findings
    assert planted.ok
    after = stored(store)
    assert pyc_of("handler.py") not in after and pyc_of("shared/util.py") not in after
    assert "var/task/requests/notes.txt" not in after
    # The dependency modules' bytecode is whole again: compiled by the probe and kept.
    assert after[pyc_of("requests/api.py")] == kept[pyc_of("requests/api.py")]
    assert after[pyc_of("requests/models.py")] == kept[pyc_of("requests/models.py")]
    assert "2 compiled and kept" in planted.probe


def test_the_sandbox_cannot_change_the_dependency_store_it_reads(
    tmp_path: Path, requests_site: dict[str, bytes], prober: DockerProber
) -> None:
    """The store is mounted read-only into the probe as the kept bytecode: a handler going at it changes nothing."""
    tampering = (
        "import os\n"
        "for folder, _, names in os.walk('/lpkg-pyc-kept'):\n"
        "    for name in names:\n"
        "        path = os.path.join(folder, name)\n"
        "        for attempt in (lambda: open(path, 'ab').write(b'x'), lambda: os.unlink(path),\n"
        "                        lambda: open(path + '.new', 'wb').write(b'x'), lambda: os.chmod(path, 0o666)):\n"
        "            try:\n"
        "                attempt()\n"
        "            except OSError:\n"
        "                pass\n"
    )
    zip_path = write_zip(tmp_path / "fn.zip", {**requests_site, **FIRST_PARTY, "handler.py": HANDLER + tampering})
    members, store = frozenset(requests_site), tmp_path / "s"
    first = verify(zip_path, prober, store, members)
    kept = stored(store)
    assert kept
    second = verify(zip_path, prober, store, members)
    assert "reused" in second.probe, second.probe
    assert stored(store) == kept
    assert second.findings == first.findings


@pytest.mark.parametrize(("package", "init", "code", "line"), [
    # An import error in a dependency.
    ("brokendep", "import requests\n\nfrom requests import no_such_name\n", "Runtime.ImportModuleError", 3),
    # A write beside its source, which is read-only on Lambda and in the probe, store or not.
    ("writer", "import os\nimport requests\nopen(os.path.dirname(__file__) + '/state', 'w')\n",
     "INIT_WRITES_OUTSIDE_TMP", 3),
])
def test_a_failing_dependency_is_found_the_same_with_the_store(
    tmp_path: Path, requests_site: dict[str, bytes], prober: DockerProber, package: str, init: str, code: str,
    line: int,
) -> None:
    """The handler first imports `package`, a dependency: verified without the store, with an empty one and with
    the one that filled, the findings are the same each time."""
    dependency = {f"{package}/__init__.py": init}
    zip_path = write_zip(tmp_path / "fn.zip", {**requests_site, **dependency, **FIRST_PARTY,
                                              "handler.py": f"import {package}\n" + HANDLER})
    members = frozenset(requests_site) | frozenset(dependency)
    store = tmp_path / "store"
    reports = [verify(zip_path, prober, None, members)] + [verify(zip_path, prober, store, members) for _ in "12"]
    assert all(report.findings == reports[0].findings for report in reports)
    failure = next(f for f in reports[0].findings if f.code == code)
    assert (failure.member, failure.line) == (f"{package}/__init__.py", line)
    assert pyc_of(f"{package}/__init__.py") in stored(store)
    assert "reused" in reports[2].probe
