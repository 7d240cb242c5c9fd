"""The runtime table (python3.9-3.14, both architectures), the deprecation warning, and the emulation check."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from helpers import FIXTURES, run_lpkg

from lpkg.checks.elf import read_native_facts
from lpkg.checks.runtime import check_runtime
from lpkg.containers.emulation import binfmt_problem, elf_header
from lpkg.report import Severity
from lpkg.runtimes import ARCHITECTURES, RUNTIMES, get_runtime

AL2 = ("python3.9", "python3.10", "python3.11")
AL2023 = ("python3.12", "python3.13", "python3.14")


def test_every_python_runtime_from_3_9_to_3_14_is_in_the_table() -> None:
    assert list(RUNTIMES) == [*AL2, *AL2023]
    for name in AL2:
        assert (RUNTIMES[name].os_name, RUNTIMES[name].glibc) == ("Amazon Linux 2", (2, 26))
        assert "libssl.so.10" in RUNTIMES[name].system_libraries
    for name in AL2023:
        assert (RUNTIMES[name].os_name, RUNTIMES[name].glibc) == ("Amazon Linux 2023", (2, 34))
        assert "libssl.so.3" in RUNTIMES[name].system_libraries


@pytest.mark.parametrize("name", [*AL2, *AL2023])
def test_images_differ_per_architecture(name: str) -> None:
    runtime = get_runtime(name)
    minor = runtime.minor
    assert runtime.runtime_image("x86_64") == f"public.ecr.aws/lambda/python:{minor}-x86_64"
    assert runtime.runtime_image("arm64") == f"public.ecr.aws/lambda/python:{minor}-arm64"
    assert runtime.build_image("arm64") == f"public.ecr.aws/sam/build-python{minor}:latest-arm64"


def test_wheel_platforms_follow_glibc_and_cpu() -> None:
    al2_arm = get_runtime("python3.11").wheel_platforms("arm64")
    assert al2_arm[0] == "manylinux_2_26_aarch64"
    assert al2_arm[-1] == "manylinux2014_aarch64"  # no manylinux1/2010 for aarch64: those tags never existed
    assert "manylinux_2_27_aarch64" not in al2_arm
    al2023_x86 = get_runtime("python3.13").wheel_platforms("x86_64")
    assert al2023_x86[0] == "manylinux_2_34_x86_64"
    assert "manylinux_2_17_x86_64" in al2023_x86
    assert al2023_x86[-2:] == ("manylinux2010_x86_64", "manylinux1_x86_64")
    assert all(tag.endswith("_x86_64") for tag in al2023_x86)


def test_sys_path_has_the_image_site_packages_from_3_11_on() -> None:
    assert get_runtime("python3.10").sys_path() == (
        "/var/task", "/opt/python/lib/python3.10/site-packages", "/opt/python", "/var/runtime",
    )
    assert get_runtime("python3.12").sys_path() == (
        "/var/task", "/opt/python/lib/python3.12/site-packages", "/opt/python",
        "/var/lang/lib/python3.12/site-packages", "/var/runtime",
    )
    local = get_runtime("python3.13").sys_path("/tmp/x/var/task", "/tmp/x/opt", "/tmp/x/var/runtime")
    assert local[:3] == ("/tmp/x/var/task", "/tmp/x/opt/python/lib/python3.13/site-packages", "/tmp/x/opt/python")
    assert local[-1] == "/tmp/x/var/runtime"


# --- deprecation ----------------------------------------------------------------------------------------


def test_a_deprecated_runtime_is_a_warning_with_its_dates() -> None:
    findings = check_runtime(get_runtime("python3.9"), datetime.date(2026, 11, 30))
    assert [(f.code, f.severity) for f in findings] == [("RUNTIME_DEPRECATED", Severity.WARNING)]
    message = findings[0].message
    assert "2025-12-15" in message and "2027-02-01" in message and "2027-03-03" in message
    assert "python3.14" in message  # where to go


def test_deprecation_starts_on_its_date() -> None:
    python310 = get_runtime("python3.10")
    assert check_runtime(python310, datetime.date(2026, 10, 30)) == []
    assert [f.code for f in check_runtime(python310, datetime.date(2026, 10, 31))] == ["RUNTIME_DEPRECATED"]
    late = check_runtime(python310, datetime.date(2027, 3, 3))[0].message
    assert "can be neither created nor updated" in late


def test_supported_runtimes_have_no_finding() -> None:
    today = datetime.date(2026, 11, 30)
    assert [rt.name for rt in RUNTIMES.values() if check_runtime(rt, today)] == ["python3.9", "python3.10"]


def test_verify_warns_about_a_deprecated_runtime_and_still_passes() -> None:
    run = run_lpkg("verify", FIXTURES / "findings" / "import-missing-good.zip", "--runtime", "python3.9",
                   "--probe", "none", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    assert '"code": "RUNTIME_DEPRECATED"' in run.stdout


# --- emulation: binfmt_misc as the kernel shows it ------------------------------------------------------------

# What the kernel prints for qemu-user-static's aarch64 entry (Debian's binfmt.d line, flags OPF).
QEMU_AARCH64 = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: {flags}
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""


def binfmt_dir(tmp_path: Path, entries: dict[str, str], status: str = "enabled") -> Path:
    folder = tmp_path / "binfmt_misc"
    folder.mkdir(parents=True)
    (folder / "status").write_text(status + "\n")
    (folder / "register").write_text("")
    for name, text in entries.items():
        (folder / name).write_text(text)
    return folder


def test_registered_qemu_with_fix_flag_runs_arm64(tmp_path: Path) -> None:
    folder = binfmt_dir(tmp_path, {"qemu-aarch64": QEMU_AARCH64.format(flags="POF")})
    assert binfmt_problem("arm64", folder) is None


def test_qemu_without_fix_flag_cannot_serve_containers(tmp_path: Path) -> None:
    folder = binfmt_dir(tmp_path, {"qemu-aarch64": QEMU_AARCH64.format(flags="OC")})
    problem = binfmt_problem("arm64", folder)
    assert problem is not None and "F flag" in problem and "qemu-aarch64" in problem


def test_disabled_or_missing_entries_say_so(tmp_path: Path) -> None:
    disabled_entry = QEMU_AARCH64.format(flags="F").replace("enabled", "disabled", 1)
    disabled = binfmt_dir(tmp_path / "a", {"qemu-aarch64": disabled_entry})
    assert "no aarch64 emulator" in (binfmt_problem("arm64", disabled) or "")
    other_cpu = binfmt_dir(tmp_path / "b", {"qemu-aarch64": QEMU_AARCH64.format(flags="F")})
    assert "no x86_64 emulator" in (binfmt_problem("x86_64", other_cpu) or "")  # an aarch64 entry is not x86_64's
    assert "not mounted" in (binfmt_problem("arm64", tmp_path / "nowhere") or "")


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_the_header_binfmt_is_matched_against_is_an_elf_of_that_cpu(arch: str) -> None:
    facts = read_native_facts(elf_header(arch) + bytes(44))  # padded to a full (empty) ELF64 header
    assert facts.machine == ARCHITECTURES[arch].elf_machine  # type: ignore[index]


def test_the_durable_sdk_is_provided_from_python313_on() -> None:
    assert "aws_durable_execution_sdk_python" in get_runtime("python3.13").provided_modules
    assert "aws_durable_execution_sdk_python" in get_runtime("python3.14").provided_modules
    assert "aws_durable_execution_sdk_python" not in get_runtime("python3.12").provided_modules
    assert set(get_runtime("python3.9").provided_modules) == {"boto3", "botocore", "s3transfer", "jmespath"}
