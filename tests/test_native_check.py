"""check_native on real sample files (fixtures/elf) packed into small zips, and on real manylinux wheels."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path

import pytest

from lpkg.archive.dists import DistributionIndex, index_distributions
from lpkg.archive.reader import ZipArchive
from lpkg.checks import CheckContext, Layer, NativeFile
from lpkg.checks.native import check_native, is_native_name
from lpkg.report import Finding, Severity
from lpkg.runtimes import Arch, get_runtime

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "elf"
DIST = "example 1.0"


def sample(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


PLAIN = sample("plain_x86_64.so")
PLAIN_ARM = sample("plain_aarch64.so")
GLIBC_234 = sample("glibc234_x86_64.so")
NEEDS_PQ = sample("needs_libpq_x86_64.so")
LIBPQ = sample("libpq_stub.so.5")

# Runs check_native: (members of the function zip, names of the native files to check, ...) -> findings.
Check = Callable[..., list[Finding]]


@pytest.fixture
def check(tmp_path: Path) -> Iterator[Check]:
    stack = ExitStack()
    counter = iter(range(1_000_000))

    def open_zip(members: Mapping[str, bytes]) -> ZipArchive:
        path = tmp_path / f"z{next(counter)}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return stack.enter_context(ZipArchive(path))

    def run(
        members: Mapping[str, bytes],
        native: tuple[str, ...] | None = None,
        runtime: str = "python3.11",
        arch: Arch = "x86_64",
        layers: tuple[Mapping[str, bytes], ...] = (),
        layer_native: tuple[str, ...] = (),
    ) -> list[Finding]:
        archive = open_zip(members)
        layer_archives = tuple(open_zip(layer) for layer in layers)
        ctx = CheckContext(
            archive=archive,
            dists=DistributionIndex((), {}),
            runtime=get_runtime(runtime),
            arch=arch,
            layers=tuple(Layer(a, DistributionIndex((), {})) for a in layer_archives),
        )
        names = tuple(members) if native is None else native
        files = [NativeFile(name, members[name], DIST) for name in names]
        for name in layer_native:
            data = next(layer[name] for layer in layers if name in layer)
            files.append(NativeFile(name, data, DIST, in_layer=True))
        findings = check_native(files, ctx)
        for finding in findings:  # every finding says where and from which distribution
            assert finding.member in names + layer_native
            assert finding.distribution == DIST
        return findings

    with stack:
        yield run


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def only(findings: list[Finding], code: str) -> Finding:
    assert codes(findings) == [code], findings
    return findings[0]


# NATIVE_NOT_LINUX


@pytest.mark.parametrize("fixture", ["macho_x86_64.so", "macho_universal.so"])
def test_macos_build(check: Check, fixture: str) -> None:
    finding = only(check({"pkg/_speedups.cpython-311-darwin.so": sample(fixture)}), "NATIVE_NOT_LINUX")
    assert finding.severity is Severity.ERROR
    assert finding.member == "pkg/_speedups.cpython-311-darwin.so"
    assert "macOS" in finding.message
    assert "--platform manylinux2014_x86_64" in finding.message
    assert "lpkg build" in finding.message


def test_windows_build(check: Check) -> None:
    finding = only(check({"pkg/_speedups.cp311-win_amd64.pyd": sample("pe_amd64.pyd")}), "NATIVE_NOT_LINUX")
    assert finding.severity is Severity.ERROR
    assert "Windows" in finding.message


def test_linux_build_of_the_same_module(check: Check) -> None:
    assert check({"pkg/_speedups.cpython-311-x86_64-linux-gnu.so": PLAIN}) == []


def test_macos_dylib_is_only_a_warning(check: Check) -> None:
    finding = only(check({"pkg/_data/libportaudio.dylib": sample("macho_universal.so")}), "NATIVE_NOT_LINUX")
    assert finding.severity is Severity.WARNING


def test_arm64_install_hint(check: Check) -> None:
    finding = only(check({"pkg/_x.so": sample("macho_x86_64.so")}, arch="arm64"), "NATIVE_NOT_LINUX")
    assert "manylinux2014_aarch64" in finding.message


# NATIVE_WRONG_ARCH


def test_aarch64_file_on_x86_64_is_one_finding(check: Check) -> None:
    findings = check({"pkg/_ext.cpython-311-aarch64-linux-gnu.so": PLAIN_ARM})
    finding = only(findings, "NATIVE_WRONG_ARCH")  # the ELF and the file name say it once, not twice
    assert "arm64" in finding.message and "EM_AARCH64" in finding.message
    assert "x86_64" in finding.message and "EM_X86_64" in finding.message


def test_aarch64_file_on_arm64(check: Check) -> None:
    assert check({"pkg/_ext.cpython-311-aarch64-linux-gnu.so": PLAIN_ARM}, arch="arm64") == []


def test_x86_64_file_on_arm64(check: Check) -> None:
    findings = check({"pkg/_ext.cpython-311-x86_64-linux-gnu.so": PLAIN}, arch="arm64")
    finding = only(findings, "NATIVE_WRONG_ARCH")
    assert "EM_X86_64" in finding.message and "arm64" in finding.message


def test_file_name_for_another_cpu(check: Check) -> None:
    # The code is right but the name is for aarch64: Python on x86_64 never looks for that name.
    finding = only(check({"pkg/_ext.cpython-311-aarch64-linux-gnu.so": PLAIN}), "NATIVE_WRONG_ARCH")
    assert "aarch64-linux-gnu" in finding.message and "x86_64-linux-gnu" in finding.message


def test_elf_wins_over_file_name(check: Check) -> None:
    finding = only(check({"pkg/_ext.cpython-311-x86_64-linux-gnu.so": PLAIN_ARM}), "NATIVE_WRONG_ARCH")
    assert "EM_AARCH64" in finding.message


def test_versioned_library_name_is_checked(check: Check) -> None:
    only(check({"pkg/lib/libfoo.so.1.2": PLAIN_ARM}), "NATIVE_WRONG_ARCH")
    assert check({"pkg/lib/libfoo.so.1.2": PLAIN}) == []


def test_other_names_are_not_native(check: Check) -> None:
    assert check({"pkg/data.bin": PLAIN_ARM, "pkg/notes.so.txt": sample("macho_x86_64.so")}) == []
    assert is_native_name("a/libfoo.so.1.2") and is_native_name("x.pyd") and is_native_name("x.dylib")
    assert not is_native_name("a/libfoo.so.txt")


# NATIVE_GLIBC_TOO_NEW


def test_glibc_2_34_on_amazon_linux_2(check: Check) -> None:
    finding = only(check({"pkg/_thread.cpython-311-x86_64-linux-gnu.so": GLIBC_234}), "NATIVE_GLIBC_TOO_NEW")
    assert "GLIBC_2.34" in finding.message
    assert "2.26" in finding.message and "python3.11" in finding.message
    assert "manylinux_2_26" in finding.message
    assert "an older release of example" in finding.message
    assert "python3.12" in finding.message  # the first runtime whose glibc is new enough


def test_glibc_2_34_on_amazon_linux_2023(check: Check) -> None:
    assert check({"pkg/_thread.cpython-312-x86_64-linux-gnu.so": GLIBC_234}, runtime="python3.12") == []


def test_old_glibc_on_amazon_linux_2(check: Check) -> None:
    assert check({"pkg/_thread.cpython-311-x86_64-linux-gnu.so": PLAIN}) == []


# NATIVE_WRONG_PYTHON


@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("pkg/_ext.cpython-312-x86_64-linux-gnu.so", "cpython-312"),
        ("pkg/_ext.cpython-39-x86_64-linux-gnu.so", "cpython-39"),
        ("pkg/_ext.cpython-311d-x86_64-linux-gnu.so", "cpython-311d"),
        ("pkg/_ext.pypy39-pp73-x86_64-linux-gnu.so", "pypy39"),
    ],
)
def test_extension_for_another_python(check: Check, name: str, found: str) -> None:
    finding = only(check({name: PLAIN}), "NATIVE_WRONG_PYTHON")
    assert found in finding.message and "cpython-311" in finding.message


@pytest.mark.parametrize(
    "name",
    ["pkg/_ext.cpython-311-x86_64-linux-gnu.so", "pkg/_ext.abi3.so", "pkg/_ext.so"],
)
def test_extension_for_this_python(check: Check, name: str) -> None:
    assert check({name: PLAIN}) == []


def test_free_threaded_build_on_python3_13(check: Check) -> None:
    findings = check({"pkg/_ext.cpython-313t-x86_64-linux-gnu.so": PLAIN}, runtime="python3.13")
    assert "cpython-313t" in only(findings, "NATIVE_WRONG_PYTHON").message
    assert check({"pkg/_ext.cpython-313-x86_64-linux-gnu.so": PLAIN}, runtime="python3.13") == []


def test_wrong_python_and_wrong_arch_are_two_problems(check: Check) -> None:
    findings = check({"pkg/_ext.cpython-312-aarch64-linux-gnu.so": PLAIN_ARM})
    assert sorted(codes(findings)) == ["NATIVE_WRONG_ARCH", "NATIVE_WRONG_PYTHON"]


# NATIVE_MISSING_LIBRARY

EXT = "pkg/_pq.cpython-311-x86_64-linux-gnu.so"


def test_libpq_missing(check: Check) -> None:
    finding = only(check({EXT: NEEDS_PQ}), "NATIVE_MISSING_LIBRARY")
    assert finding.member == EXT
    assert "libpq.so.5" in finding.message
    assert "not in the python3.11 runtime image" in finding.message
    assert "psycopg2-binary" in finding.message and "lib/" in finding.message


@pytest.mark.parametrize(
    "where",
    [
        "lib/libpq.so.5",  # /var/task/lib on LD_LIBRARY_PATH
        "libpq.so.5",  # /var/task on LD_LIBRARY_PATH
        "pkg/libpq.so.5",  # next to the extension
        "psycopg2_binary.libs/libpq.so.5",  # auditwheel's top-level *.libs folder
    ],
)
def test_libpq_shipped_in_the_zip(check: Check, where: str) -> None:
    assert check({EXT: NEEDS_PQ, where: LIBPQ}, native=(EXT,)) == []


def test_libs_folder_below_top_level_does_not_count(check: Check) -> None:
    only(check({EXT: NEEDS_PQ, "vendor/pq.libs/libpq.so.5": LIBPQ}, native=(EXT,)), "NATIVE_MISSING_LIBRARY")


def test_shipped_library_is_checked_too(check: Check) -> None:
    assert check({EXT: NEEDS_PQ, "lib/libpq.so.5": LIBPQ}) == []
    findings = check({EXT: NEEDS_PQ, "lib/libpq.so.5": PLAIN_ARM})
    assert only(findings, "NATIVE_WRONG_ARCH").member == "lib/libpq.so.5"


def test_libpq_in_a_layer(check: Check) -> None:
    assert check({EXT: NEEDS_PQ}, layers=({"lib/libpq.so.5": LIBPQ},)) == []
    # python/ of a layer is not on the library path
    only(check({EXT: NEEDS_PQ}, layers=({"python/libpq.so.5": LIBPQ},)), "NATIVE_MISSING_LIBRARY")


def test_runpath_relative_to_origin(check: Check) -> None:
    runpath = sample("needs_libpq_runpath_x86_64.so")
    assert check({EXT: runpath, "pkg/_vendor/libpq.so.5": LIBPQ}, native=(EXT,)) == []
    only(check({EXT: runpath, "other/_vendor/libpq.so.5": LIBPQ}, native=(EXT,)), "NATIVE_MISSING_LIBRARY")


def test_absolute_rpath_into_a_layer(check: Check) -> None:
    rpath = sample("needs_libpq_rpath_x86_64.so")
    assert check({EXT: rpath}, layers=({"pq/lib/libpq.so.5": LIBPQ},)) == []
    only(check({EXT: rpath}, layers=({"pq/libpq.so.5": LIBPQ},)), "NATIVE_MISSING_LIBRARY")


def test_layer_file_resolves_origin_under_opt(check: Check) -> None:
    name = "python/pkg/_pq.cpython-311-x86_64-linux-gnu.so"
    layer = {name: NEEDS_PQ, "python/pkg/libpq.so.5": LIBPQ}
    assert check({}, layers=(layer,), layer_native=(name,)) == []
    # The same folder in the function zip is /var/task/python/pkg, not /opt/python/pkg.
    function = {"python/pkg/libpq.so.5": LIBPQ}
    findings = check(function, native=(), layers=({name: NEEDS_PQ},), layer_native=(name,))
    assert only(findings, "NATIVE_MISSING_LIBRARY").member == name


def test_a_library_an_extension_loads_is_checked_as_the_extension(check: Check) -> None:
    """What the extension's DT_NEEDED finds in the zip is loaded with it: what that needs in turn must be there."""
    members = {"pkg/__init__.py": b"", "pkg/_pq.so": NEEDS_PQ, "lib/libpq.so.5": sample("needs_libpython_x86_64.so")}
    findings = check(members, native=("pkg/_pq.so", "lib/libpq.so.5"), runtime="python3.12")
    finding = only(findings, "NATIVE_MISSING_LIBRARY")
    assert (finding.member, finding.severity) == ("lib/libpq.so.5", Severity.ERROR)
    assert "no extension module loads it" not in finding.message


PLUGIN = "mysql/vendor/plugin/authentication_webauthn_client.so"


def test_a_plugin_no_extension_loads_is_a_warning(check: Check) -> None:
    """mysql-connector-python's authentication plugins: loaded with dlopen for one login method, and the
    webauthn one needs libudev, which Lambda's images lack. Not an error: nothing an import loads needs it."""
    finding = only(check({"mysql/__init__.py": b"", PLUGIN: NEEDS_PQ}, native=(PLUGIN,)), "NATIVE_MISSING_LIBRARY")
    assert finding.severity is Severity.WARNING
    assert "libpq.so.5" in finding.message and "no extension module loads it" in finding.message
    # The same file named as an extension module of a package, or with an ABI tag anywhere, is an error.
    for name in ("mysql/_auth.so", "mysql/vendor/plugin/_auth.cpython-311-x86_64-linux-gnu.so", "_auth.abi3.so"):
        finding = only(check({"mysql/__init__.py": b"", name: NEEDS_PQ}, native=(name,)), "NATIVE_MISSING_LIBRARY")
        assert finding.severity is Severity.ERROR, name


def test_libpython_of_the_runtime(check: Check) -> None:
    needs_python = sample("needs_libpython_x86_64.so")
    assert check({"pkg/_embed.so": needs_python}) == []
    finding = only(check({"pkg/_embed.so": needs_python}, runtime="python3.12"), "NATIVE_MISSING_LIBRARY")
    assert "libpython3.11.so.1.0" in finding.message and "Python 3.12" in finding.message


def test_system_libraries_differ_per_runtime(check: Check) -> None:
    # libc is in every image; the stub's SONAME libpq.so.5 is in none.
    assert check({"pkg/_x.so": PLAIN}, runtime="python3.9") == []
    only(check({"pkg/_x.so": NEEDS_PQ}, runtime="python3.13"), "NATIVE_MISSING_LIBRARY")


# NATIVE_UNREADABLE


def test_truncated_elf_is_a_warning(check: Check) -> None:
    finding = only(check({"pkg/_x.so": PLAIN[:1000]}), "NATIVE_UNREADABLE")
    assert finding.severity is Severity.WARNING


def test_not_a_binary(check: Check) -> None:
    assert only(check({"pkg/_x.so": b"hello"}), "NATIVE_UNREADABLE").severity is Severity.WARNING
    assert check({"lib/libfoo.so": b"/* GNU ld script */\nGROUP ( libfoo.so.1 )\n"}) == []


# Real wheels: no false alarms

WHEELS = ("numpy", "pydantic-core", "cryptography")


@pytest.fixture(scope="session")
def manylinux_wheels() -> list[Path]:
    """cp312 manylinux2014 x86_64 wheels, downloaded once and kept in the system temp dir across runs."""
    cache = Path(tempfile.gettempdir()) / "lpkg-test-wheels" / "cp312-manylinux2014_x86_64"
    cache.mkdir(parents=True, exist_ok=True)

    def cached() -> list[Path]:
        found = [next(iter(sorted(cache.glob(f"{w.replace('-', '_')}-*.whl"))), None) for w in WHEELS]
        return [p for p in found if p is not None]

    if len(cached()) < len(WHEELS):
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", "--platform", "manylinux2014_x86_64", "--python-version", "3.12",
            "--no-deps", "-d", str(cache), *WHEELS,
        ]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            pytest.skip(f"cannot download wheels: {proc.stderr.strip()[-500:]}")
    wheels = cached()
    assert len(wheels) == len(WHEELS)
    return wheels


@pytest.mark.network
def test_mysql_connectors_plugins_are_warnings_not_errors(tmp_path_factory: pytest.TempPathFactory) -> None:
    """mysql-connector-python 9.1.0 (aws-samples/serverless-patterns' terraform-lambda-layer): its extension
    module loads the vendored OpenSSL; its webauthn plugin needs libudev.so.1, which no Lambda image has, and
    loads only for that login method. lpkg refused the layer for it; now it is a warning, and no error."""
    cache = Path(tempfile.gettempdir()) / "lpkg-test-wheels" / "cp312-manylinux_2_28_x86_64"
    cache.mkdir(parents=True, exist_ok=True)
    if not list(cache.glob("mysql_connector_python-9.1.0-*.whl")):
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.12",
                   "--no-deps", "-d", str(cache), "mysql-connector-python==9.1.0"]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            pytest.skip(f"cannot download the wheel: {proc.stderr.strip()[-500:]}")
    (wheel,) = cache.glob("mysql_connector_python-9.1.0-*.whl")
    with ZipArchive(wheel) as archive:
        dists = index_distributions(archive)
        files = [NativeFile(m.name, archive.read(m.name), dists.of(m.name))
                 for m in archive.safe_files() if is_native_name(m.name)]
        findings = check_native(files, CheckContext(archive, dists, get_runtime("python3.12"), "x86_64"))
    assert [f for f in findings if f.severity is Severity.ERROR] == []
    warned = {f.member for f in findings if f.code == "NATIVE_MISSING_LIBRARY"}
    assert "mysql/vendor/plugin/authentication_webauthn_client.so" in warned
    assert not any(name.startswith("_mysql_connector") for name in warned)


@pytest.mark.network
def test_real_manylinux_wheels_have_no_false_alarms(manylinux_wheels: list[Path]) -> None:
    runtime = get_runtime("python3.12")
    total = 0
    for wheel in manylinux_wheels:
        with ZipArchive(wheel) as archive:
            dists = index_distributions(archive)
            files = [
                NativeFile(m.name, archive.read(m.name), dists.of(m.name))
                for m in archive.safe_files()
                if is_native_name(m.name)
            ]
            assert files, wheel.name
            total += len(files)
            ctx = CheckContext(archive, dists, runtime, "x86_64")
            errors = [f for f in check_native(files, ctx) if f.severity is Severity.ERROR]
            assert errors == [], wheel.name
            # The other direction, so the test cannot pass by looking at nothing: all are wrong for arm64.
            arm = check_native(files, CheckContext(archive, dists, runtime, "arm64"))
            assert {f.member for f in arm if f.code == "NATIVE_WRONG_ARCH"} == {f.member for f in files}
    assert total >= 3


def test_an_extension_for_another_platform_beside_its_python_module_is_a_warning(check: Check) -> None:
    """charset_normalizer installed on a Mac (aws-samples/serverless-patterns' lambda-esm-rabbitmq-filters-sam
    commits such a layer): md.cpython-39-darwin.so beside md.py. Linux's Python 3.11 never looks for that name and
    imports md.py, so the function works; without md.py the import would fail, and it stays an error."""
    darwin = "charset_normalizer/md.cpython-39-darwin.so"
    package = {"charset_normalizer/__init__.py": b"", "charset_normalizer/md.py": b""}
    members = {**package, darwin: sample("macho_x86_64.so")}
    finding = only(check(members, native=(darwin,)), "NATIVE_NOT_LINUX")
    assert finding.severity is Severity.WARNING and "imports the pure-Python md beside it" in finding.message
    mypyc = "charset_normalizer/md__mypyc.cpython-39-darwin.so"  # what md's compiled form imports, and only it
    finding = only(check({**members, mypyc: sample("macho_x86_64.so")}, native=(mypyc,)), "NATIVE_NOT_LINUX")
    assert finding.severity is Severity.WARNING and "only the compiled modules beside it import it" in finding.message
    del members["charset_normalizer/md.py"]
    assert only(check(members, native=(darwin,)), "NATIVE_NOT_LINUX").severity is Severity.ERROR
    # The Linux build for another Python, beside its module: the same.
    old = "charset_normalizer/md.cpython-39-x86_64-linux-gnu.so"
    members = {**package, old: PLAIN}
    assert only(check(members, native=(old,)), "NATIVE_WRONG_PYTHON").severity is Severity.WARNING
    # A macOS file under a name this runtime does load is loaded, and fails: an error even beside md.py.
    loaded = "charset_normalizer/md.cpython-311-x86_64-linux-gnu.so"
    members = {**package, loaded: sample("macho_x86_64.so")}
    assert only(check(members, native=(loaded,)), "NATIVE_NOT_LINUX").severity is Severity.ERROR
