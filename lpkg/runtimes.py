"""Facts about the Lambda Python runtimes, kept as one table of data.

Sources: AWS Lambda runtime docs, aws-lambda-base-images, aws-lambda-builders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lpkg.errors import UsageError

Arch = Literal["x86_64", "arm64"]
ARCHES: tuple[Arch, ...] = ("x86_64", "arm64")

# ELF e_machine names (as pyelftools spells them) per Lambda architecture.
ELF_MACHINE: dict[Arch, str] = {"x86_64": "EM_X86_64", "arm64": "EM_AARCH64"}
# The platform part of CPython extension suffixes (".cpython-311-x86_64-linux-gnu.so").
EXTENSION_PLATFORM: dict[Arch, str] = {"x86_64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
# The machine part of wheel platform tags ("manylinux_2_26_x86_64").
WHEEL_MACHINE: dict[Arch, str] = {"x86_64": "x86_64", "arm64": "aarch64"}
# manylinux policies named before PEP 600, oldest first: they load wherever manylinux_2_17 does.
# (manylinux1 and manylinux2010 were never defined for aarch64.)
LEGACY_MANYLINUX: dict[Arch, tuple[str, ...]] = {
    "x86_64": ("manylinux1", "manylinux2010", "manylinux2014"),
    "arm64": ("manylinux2014",),
}
OLDEST_PEP600_GLIBC = (2, 17)  # manylinux2014 == manylinux_2_17

UNZIPPED_LIMIT_BYTES = 262_144_000  # function + all layers, unzipped
RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024  # a synchronous invocation's response payload
MAX_TIMEOUT_SECONDS = 900.0  # the longest function timeout Lambda allows
DEFAULT_TIMEOUT_SECONDS = 30.0  # lpkg's, for the import test and the smoke invoke when none is configured
ZIPPED_DIRECT_UPLOAD_BYTES = 50 * 1024 * 1024  # above: upload through S3
MAX_LAYERS = 5

# Python packages every Lambda Python runtime ships (in /var/runtime): importable without being in
# the zip, at a version that changes by region and date.
RUNTIME_PROVIDED_MODULES = ("boto3", "botocore", "s3transfer", "jmespath")

TASK_ROOT = "/var/task"
RUNTIME_DIR = "/var/runtime"
LAYER_ROOT = "/opt"
SANDBOX_USER = "sbx_user1051"
# The probe's sandbox, as Lambda's execution environment: memory (the function's configured size; the probe
# assumes 1,024 MB), writable /tmp of 512 MB and nothing else writable, a bound on processes.
PROBE_MEMORY_MB = 1024
TMP_ROOT = "/tmp"
TMP_SIZE_MB = 512
PROBE_MAX_PROCESSES = 256

# Libraries every Lambda Python image provides in its library path (glibc and friends,
# plus what the base OS ships); a DT_NEEDED outside this set must come with the zip or a layer.
_GLIBC_LIBS = frozenset(
    {
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "libpthread.so.0",
        "librt.so.1",
        "libutil.so.1",
        "libresolv.so.2",
        "libnsl.so.1",
        "libcrypt.so.1",
        "libanl.so.1",
    }
)
# Shipped by both Amazon Linux images (the runtime's own Python needs them).
_BASE_OS_LIBS = _GLIBC_LIBS | frozenset(
    {
        "libgcc_s.so.1",
        "libstdc++.so.6",
        "libz.so.1",
        "libexpat.so.1",
        "libsqlite3.so.0",
        "libbz2.so.1",
        "liblzma.so.5",
        "libcom_err.so.2",
        "libkeyutils.so.1",
        "libkrb5.so.3",
        "libk5crypto.so.3",
        "libgssapi_krb5.so.2",
        "libkrb5support.so.0",
        "libtinfo.so.6",
        "libncursesw.so.6",
        "libuuid.so.1",
    }
)
# What differs: OpenSSL 1.0 and libffi 6 on Amazon Linux 2, OpenSSL 3 and libffi 8 on AL2023.
_AL2_LIBS = _BASE_OS_LIBS | {"libffi.so.6", "libssl.so.10", "libcrypto.so.10", "libselinux.so.1",
                             "libpcre.so.1", "libreadline.so.6"}
_AL2023_LIBS = _BASE_OS_LIBS | {"libffi.so.8", "libssl.so.3", "libcrypto.so.3"}


@dataclass(frozen=True)
class Runtime:
    """One Lambda Python runtime: what is true of it whatever the architecture."""

    name: str  # "python3.12"
    version: tuple[int, int]
    os_name: str
    glibc: tuple[int, int]
    system_libraries: frozenset[str]
    # sys.path between the layer entries and the runtime dir (3.11+ has the image's site-packages).
    has_lang_site_packages: bool

    @property
    def minor(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def abi_tag(self) -> str:
        """The CPython ABI tag in extension file names: cpython-312."""
        return f"cpython-{self.version[0]}{self.version[1]}"

    @property
    def interpreter(self) -> str:
        return f"/var/lang/bin/python{self.minor}"

    def wheel_platforms(self, arch: Arch) -> tuple[str, ...]:
        """Every wheel platform tag that loads on this runtime's glibc, newest first: manylinux_2_26 down to
        manylinux2014 (and the older policies) on Amazon Linux 2, up to manylinux_2_34 on AL2023."""
        machine = WHEEL_MACHINE[arch]
        major, newest = self.glibc
        pep600 = [f"manylinux_{major}_{minor}_{machine}" for minor in range(newest, OLDEST_PEP600_GLIBC[1] - 1, -1)]
        legacy = [f"{policy}_{machine}" for policy in reversed(LEGACY_MANYLINUX[arch])]
        return (*pep600, *legacy)

    def runtime_image(self, arch: Arch) -> str:
        return f"public.ecr.aws/lambda/python:{self.minor}-{arch}"

    def build_image(self, arch: Arch) -> str:
        return f"public.ecr.aws/sam/build-{self.name}:latest-{arch}"

    def sys_path(self) -> tuple[str, ...]:
        """sys.path as the runtime sets it, before the stdlib entries."""
        minor = self.minor
        entries = [
            TASK_ROOT,
            f"{LAYER_ROOT}/python/lib/python{minor}/site-packages",
            f"{LAYER_ROOT}/python",
        ]
        if self.has_lang_site_packages:
            entries.append(f"/var/lang/lib/python{minor}/site-packages")
        entries.append(RUNTIME_DIR)
        return tuple(entries)


def _runtime(minor: int) -> Runtime:
    al2023 = minor >= 12
    return Runtime(
        name=f"python3.{minor}",
        version=(3, minor),
        os_name="Amazon Linux 2023" if al2023 else "Amazon Linux 2",
        glibc=(2, 34) if al2023 else (2, 26),
        system_libraries=_AL2023_LIBS if al2023 else _AL2_LIBS,
        has_lang_site_packages=minor >= 11,
    )


RUNTIMES: dict[str, Runtime] = {rt.name: rt for rt in (_runtime(m) for m in range(9, 15))}
DEFAULT_RUNTIME = "python3.12"


def get_runtime(name: str) -> Runtime:
    try:
        return RUNTIMES[name]
    except KeyError:
        known = ", ".join(RUNTIMES)
        raise UsageError(f"unknown runtime {name!r}", hint=f"use one of: {known}") from None


def parse_arch(name: str) -> Arch:
    aliases: dict[str, Arch] = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}
    try:
        return aliases[name]
    except KeyError:
        raise UsageError(f"unknown architecture {name!r}", hint="use x86_64 or arm64") from None
