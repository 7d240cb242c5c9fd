"""Facts about the Lambda Python runtimes, kept as one table of data.

Sources: AWS Lambda runtime docs (supported runtimes and their deprecation dates, as announced in 2026),
aws-lambda-base-images, aws-lambda-builders.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

from lpkg.errors import UsageError

Arch = Literal["x86_64", "arm64"]
ARCHES: tuple[Arch, ...] = ("x86_64", "arm64")


@dataclass(frozen=True)
class Architecture:
    """One Lambda architecture, as each outside world spells it."""

    name: Arch  # Lambda's name: "arm64"
    machine: str  # uname -m, wheel tags and extension suffixes: "aarch64"
    elf_machine: str  # e_machine as pyelftools names it: "EM_AARCH64"
    e_machine: int  # e_machine as a number, for matching binfmt_misc magic
    docker_platform: str  # "linux/arm64"
    legacy_manylinux: tuple[str, ...] = ()  # pre-PEP 600 tags older than manylinux2014

    @property
    def extension_platform(self) -> str:
        """The platform part of CPython extension suffixes (".cpython-311-aarch64-linux-gnu.so")."""
        return f"{self.machine}-linux-gnu"


ARCHITECTURES: dict[Arch, Architecture] = {
    "x86_64": Architecture("x86_64", "x86_64", "EM_X86_64", 0x3E, "linux/amd64", ("manylinux2010", "manylinux1")),
    "arm64": Architecture("arm64", "aarch64", "EM_AARCH64", 0xB7, "linux/arm64"),
}
# Other spellings of the architectures (Docker's, the kernel's) that users type.
ARCH_ALIASES: dict[str, Arch] = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}
# The oldest glibc any manylinux tag names (manylinux2014 = manylinux_2_17).
MANYLINUX_OLDEST_GLIBC = (2, 17)

RUNTIME_IMAGE_REPOSITORY = "public.ecr.aws/lambda/python"  # tags 3.X-<arch>
BUILD_IMAGE_REPOSITORY = "public.ecr.aws/sam/build-python"  # build-python3.X, tags latest-<arch>

UNZIPPED_LIMIT_BYTES = 262_144_000  # function + all layers, unzipped
RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024  # a synchronous invocation's response payload
MAX_TIMEOUT_SECONDS = 900.0  # the longest function timeout Lambda allows
DEFAULT_TIMEOUT_SECONDS = 30.0  # lpkg's, for the import test and the smoke invoke when none is configured
ZIPPED_DIRECT_UPLOAD_BYTES = 50 * 1024 * 1024  # above: upload through S3
MAX_LAYERS = 5

# Python packages every Lambda Python runtime ships (in /var/runtime): importable without being in
# the zip, at a version that changes by region and date.
RUNTIME_PROVIDED_MODULES = ("boto3", "botocore", "s3transfer", "jmespath")
# The durable execution SDK: in the python3.13 and later runtimes "for testing and development" (AWS's words;
# it recommends shipping it), so a durable function that imports it without packaging it still imports.
DURABLE_SDK_MODULE = "aws_durable_execution_sdk_python"
DURABLE_SDK_FROM_MINOR = 13

TASK_ROOT = "/var/task"
# The variable naming a script the runtime runs instead of starting itself; the script starts the function.
EXEC_WRAPPER = "AWS_LAMBDA_EXEC_WRAPPER"
RUNTIME_DIR = "/var/runtime"
LAYER_ROOT = "/opt"
SANDBOX_USER = "sbx_user1051"
# The probe's sandbox, as Lambda's execution environment: memory (the function's configured size; the probe
# assumes 1,024 MB), writable /tmp of 512 MB and nothing else writable, a bound on processes.
PROBE_MEMORY_MB = 1024
TMP_ROOT = "/tmp"
TMP_SIZE_MB = 512
PROBE_MAX_PROCESSES = 256
# The probe's /etc/hosts where lpkg mounts it (the network namespace is runc's, see probing/docker.py): what
# Docker writes for network "none", so `localhost` resolves as in Lambda.
PROBE_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

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
class Deprecation:
    """AWS's schedule for a runtime: no more patches, then no new functions, then no updates."""

    deprecated: datetime.date
    block_create: datetime.date
    block_update: datetime.date


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
    deprecation: Deprecation
    provided_modules: tuple[str, ...] = RUNTIME_PROVIDED_MODULES  # top-level modules the runtime ships

    @property
    def minor(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def abi_tag(self) -> str:
        """The CPython ABI tag in extension file names: cpython-312."""
        return f"cpython-{self.version[0]}{self.version[1]}"

    @property
    def wheel_abi(self) -> str:
        """The CPython ABI tag in wheel names: cp312."""
        return f"cp{self.version[0]}{self.version[1]}"

    @property
    def interpreter(self) -> str:
        return f"/var/lang/bin/python{self.minor}"

    def runtime_image(self, arch: Arch) -> str:
        return f"{RUNTIME_IMAGE_REPOSITORY}:{self.minor}-{arch}"

    def build_image(self, arch: Arch) -> str:
        return f"{BUILD_IMAGE_REPOSITORY}{self.minor}:latest-{arch}"

    def wheel_platforms(self, arch: Arch) -> tuple[str, ...]:
        """Every wheel platform tag that loads on this runtime's glibc, newest first: manylinux_2_26 down to
        manylinux2014 (and the older policies) on Amazon Linux 2, up to manylinux_2_34 on AL2023."""
        facts = ARCHITECTURES[arch]
        major, newest = self.glibc
        oldest = MANYLINUX_OLDEST_GLIBC[1]
        tags = [f"manylinux_{major}_{minor}_{facts.machine}" for minor in range(newest, oldest - 1, -1)]
        tags.append(f"manylinux2014_{facts.machine}")
        tags += [f"{legacy}_{facts.machine}" for legacy in facts.legacy_manylinux]
        return tuple(tags)

    def extension_suffixes(self, arch: Arch) -> tuple[str, ...]:
        """What the import system adds to a module's name to find its extension module, as
        importlib.machinery.EXTENSION_SUFFIXES on this runtime: ".cpython-311-x86_64-linux-gnu.so", ...."""
        return (f".{self.abi_tag}-{ARCHITECTURES[arch].extension_platform}.so", ".abi3.so", ".so")

    def layer_paths(self) -> tuple[str, ...]:
        """The folders of a layer (relative to /opt) that are on sys.path, in sys.path order."""
        return (f"python/lib/python{self.minor}/site-packages", "python")

    def sys_path(self, task_root: str = "", opt: str = "", runtime_dir: str = "") -> tuple[str, ...]:
        """sys.path as the runtime sets it, before the stdlib entries. The roots default to Lambda's;
        a local import passes the folders that stand for them."""
        task_root, opt, runtime_dir = task_root or TASK_ROOT, opt or LAYER_ROOT, runtime_dir or RUNTIME_DIR
        entries = [task_root, *(f"{opt}/{path}" for path in self.layer_paths())]
        if self.has_lang_site_packages:
            entries.append(f"/var/lang/lib/python{self.minor}/site-packages")
        entries.append(runtime_dir)
        return tuple(entries)

    def is_deprecated(self, today: datetime.date) -> bool:
        return today >= self.deprecation.deprecated


def _date(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


# minor -> (deprecated, block function create, block function update); AWS has moved these before.
_DEPRECATIONS = {
    9: ("2025-12-15", "2027-02-01", "2027-03-03"),
    10: ("2026-10-31", "2027-02-01", "2027-03-03"),
    11: ("2027-06-30", "2027-07-31", "2027-08-31"),
    12: ("2028-10-31", "2028-11-30", "2029-01-10"),
    13: ("2029-06-30", "2029-07-31", "2029-08-31"),
    14: ("2029-06-30", "2029-07-31", "2029-08-31"),
}


def _runtime(minor: int) -> Runtime:
    al2023 = minor >= 12
    deprecated, block_create, block_update = _DEPRECATIONS[minor]
    return Runtime(
        name=f"python3.{minor}",
        version=(3, minor),
        os_name="Amazon Linux 2023" if al2023 else "Amazon Linux 2",
        glibc=(2, 34) if al2023 else (2, 26),
        system_libraries=_AL2023_LIBS if al2023 else _AL2_LIBS,
        has_lang_site_packages=minor >= 11,
        deprecation=Deprecation(_date(deprecated), _date(block_create), _date(block_update)),
        provided_modules=RUNTIME_PROVIDED_MODULES + ((DURABLE_SDK_MODULE,) if minor >= DURABLE_SDK_FROM_MINOR else ()),
    )


RUNTIMES: dict[str, Runtime] = {rt.name: rt for rt in (_runtime(m) for m in sorted(_DEPRECATIONS))}
DEFAULT_RUNTIME = "python3.12"


def get_runtime(name: str) -> Runtime:
    try:
        return RUNTIMES[name]
    except KeyError:
        known = ", ".join(RUNTIMES)
        oldest = min(rt.version for rt in RUNTIMES.values())
        parts = name.removeprefix("python").split(".")
        if len(parts) == 2 and all(p.isdigit() for p in parts) and (int(parts[0]), int(parts[1])) < oldest:
            raise UsageError(f"runtime {name!r} is older than any lpkg knows ({known}): Lambda's support for it "
                             "has ended or is ending", hint="check the function against a newer one with "
                             f"--runtime {DEFAULT_RUNTIME}") from None
        raise UsageError(f"unknown runtime {name!r}", hint=f"use one of: {known}") from None


def parse_arch(name: str) -> Arch:
    try:
        return ARCH_ALIASES[name]
    except KeyError:
        raise UsageError(f"unknown architecture {name!r}", hint="use x86_64 or arm64") from None
