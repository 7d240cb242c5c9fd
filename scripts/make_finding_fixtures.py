#!/usr/bin/env python3
"""Regenerate the zips in fixtures/findings/ (committed: the tests read them and need no tool).

One `<class>-bad.zip` per class of native-code and probe finding and, beside it, a `<class>-good.zip`
of the same shape without it (fixtures/findings/README.md has the table: class, expected code, how to
run it). Every zip holds a `handler.py` defining `handler(event, context)` unless its class is about
the handler. The native zips carry the committed samples of fixtures/elf/ (scripts/make_elf_fixtures.py)
under the names a wheel would install them with.

Deterministic and idempotent: members sorted, timestamps 1980-01-01 00:00:00, mode 0644, deflate level 9,
fixed data; a file is only rewritten when its bytes change.

Usage: python scripts/make_finding_fixtures.py
"""

from __future__ import annotations

import hashlib
import io
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ELF = ROOT / "fixtures" / "elf"
OUT = ROOT / "fixtures" / "findings"

DATE_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # regular file, rw-r--r--

Members = Mapping[str, bytes]


@dataclass(frozen=True)
class Pair:
    """A class of finding: a zip that has it and one of the same shape that does not."""

    bad: Members
    good: Members


def zip_bytes(members: Members) -> bytes:
    """A zip of `members`, sorted by name, with fixed timestamps and modes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, DATE_TIME)
            info.create_system = 3  # Unix, so the mode in external_attr counts
            info.external_attr = FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, members[name], compresslevel=9)
    return buf.getvalue()


def elf(name: str) -> bytes:
    return (ELF / name).read_bytes()


def source(text: str) -> bytes:
    return text.encode()


# --- native code: host checks only (`--probe none --runtime python3.11`) -------------------------------

NATIVE_HANDLER = source(
    "import fastlib\n"
    "\n"
    "\n"
    "def handler(event, context):\n"
    "    return fastlib.__name__\n"
)
FASTLIB_INIT = source('"""A package with an extension module, as a wheel installs it."""\n')
LINUX_311 = "fastlib/_speedups.cpython-311-x86_64-linux-gnu.so"


def native(extension: str, data: bytes, **extra: bytes) -> dict[str, bytes]:
    return {"handler.py": NATIVE_HANDLER, "fastlib/__init__.py": FASTLIB_INIT, extension: data, **extra}


def native_pairs() -> dict[str, Pair]:
    plain = elf("plain_x86_64.so")
    pq_ext = "fastlib/_pq.cpython-311-x86_64-linux-gnu.so"
    needs_pq = elf("needs_libpq_x86_64.so")
    return {
        # NATIVE_NOT_LINUX: the macOS build of the extension (a pip install on a Mac), vs the Linux build.
        "native-not-linux": Pair(
            bad=native("fastlib/_speedups.cpython-311-darwin.so", elf("macho_x86_64.so")),
            good=native(LINUX_311, plain),
        ),
        # NATIVE_WRONG_ARCH: the aarch64 build for an x86_64 function.
        "native-wrong-arch": Pair(
            bad=native("fastlib/_speedups.cpython-311-aarch64-linux-gnu.so", elf("plain_aarch64.so")),
            good=native(LINUX_311, plain),
        ),
        # NATIVE_GLIBC_TOO_NEW: needs GLIBC_2.34; python3.11 (Amazon Linux 2) has 2.26. An abi3 name, so
        # the same bad zip is fine for python3.12 (glibc 2.34).
        "native-glibc-too-new": Pair(
            bad=native("fastlib/_speedups.abi3.so", elf("glibc234_x86_64.so")),
            good=native("fastlib/_speedups.abi3.so", plain),
        ),
        # NATIVE_WRONG_PYTHON: the extension built for CPython 3.12 in a python3.11 function.
        "native-wrong-python": Pair(
            bad=native("fastlib/_speedups.cpython-312-x86_64-linux-gnu.so", plain),
            good=native(LINUX_311, plain),
        ),
        # NATIVE_MISSING_LIBRARY: DT_NEEDED libpq.so.5, which no runtime image has; good ships it in lib/.
        "native-missing-library": Pair(
            bad=native(pq_ext, needs_pq),
            good=native(pq_ext, needs_pq, **{"lib/libpq.so.5": elf("libpq_stub.so.5")}),
        ),
    }


# --- the probe: the runtime image (`--probe docker --runtime python3.11`) ----------------------------

AWS_CLIENTS = source(
    '"""Factory for AWS service clients (the post-mortem\'s shared/aws_clients.py, without boto3)."""\n'
    "\n"
    "\n"
    "class AWSClients:\n"
    "    @staticmethod\n"
    "    def get_rds_client(region=None):\n"
    "        return ('rds', region)\n"
)
SHARED = {"shared/__init__.py": b"", "shared/aws_clients.py": AWS_CLIENTS}
UTIL = source("def helper():\n    return 2\n")

WRITER_TARGETS = (
    "MARKER = 'lpkg-fixture-marker'\n"
    "# /tmp, the current directory and the package's own folder (the task root)\n"
    "TARGETS = (\n"
    "    pathlib.Path('/tmp') / MARKER,\n"
    "    pathlib.Path.cwd() / MARKER,\n"
    "    pathlib.Path(__file__).with_name(MARKER),\n"
    ")\n"
)
WRITER_BAD = source(
    '"""Writes files when imported: the sandbox must keep every one of them off the host."""\n'
    "\n"
    "import pathlib\n"
    "\n"
    + WRITER_TARGETS
    + "for target in TARGETS:\n"
    "    try:\n"
    "        target.write_text('written while lpkg verified this zip\\n')\n"
    "    except OSError:\n"
    "        pass\n"
)
WRITER_GOOD = source(
    '"""Names the same files, and writes none of them."""\n'
    "\n"
    "import pathlib\n"
    "\n"
    + WRITER_TARGETS
    + "for target in TARGETS:\n"
    "    target.name.upper()\n"
)


def handler_zip(code: str, **extra: bytes) -> dict[str, bytes]:
    return {"handler.py": source(code), **extra}


def probe_pairs() -> dict[str, Pair]:
    return {
        # IMPORT_MISSING (error): a module-level import that resolves nowhere; good: the same import guarded
        # by try/except ImportError (a warning).
        "import-missing": Pair(
            bad=handler_zip(
                "import yaml_not_here\n"
                "\n"
                "\n"
                "def handler(event, context):\n"
                "    return yaml_not_here.safe_load(event['body'])\n"
            ),
            good=handler_zip(
                "try:\n"
                "    import yaml_not_here\n"
                "except ImportError:\n"
                "    yaml_not_here = None\n"
                "\n"
                "\n"
                "def handler(event, context):\n"
                "    return yaml_not_here.safe_load(event['body']) if yaml_not_here else None\n"
            ),
        ),
        # IMPORT_MISSING naming 'shared': the function folder zipped without shared/ (the post-mortem).
        "import-missing-shared": Pair(
            bad=handler_zip(
                "from shared.util import helper\n"
                "\n"
                "\n"
                "def handler(event, context):\n"
                "    return helper()\n"
            ),
            good=handler_zip(
                "from shared.util import helper\n"
                "\n"
                "\n"
                "def handler(event, context):\n"
                "    return helper()\n",
                **{"shared/__init__.py": b"", "shared/util.py": UTIL},
            ),
        ),
        # IMPORT_NAME_MISSING at handler.py:3: a static method of AWSClients imported as a function.
        "import-name-missing": Pair(
            bad=handler_zip(
                '"""Answers the dashboard\'s queries."""\n'
                "\n"
                "from shared.aws_clients import get_rds_client\n"
                "\n"
                "\n"
                "def handler(event, context):\n"
                "    return get_rds_client()\n",
                **SHARED,
            ),
            good=handler_zip(
                '"""Answers the dashboard\'s queries."""\n'
                "\n"
                "from shared.aws_clients import AWSClients\n"
                "\n"
                "\n"
                "def handler(event, context):\n"
                "    return AWSClients.get_rds_client()\n",
                **SHARED,
            ),
        ),
        # IMPORT_MISSING (warning, exit 0): the missing import is inside the handler function.
        "import-optional": Pair(
            bad=handler_zip(
                "def handler(event, context):\n"
                "    import yaml_not_here\n"
                "\n"
                "    return yaml_not_here.safe_load(event['body'])\n"
            ),
            good=handler_zip(
                "def handler(event, context):\n"
                "    import json\n"
                "\n"
                "    return json.loads(event['body'])\n"
            ),
        ),
        # IMPORT_RUNTIME_BOTO3 (warning, exit 0): boto3 imported, not shipped: the runtime's copy is used.
        "import-runtime-boto3": Pair(
            bad=handler_zip(
                "import boto3\n"
                "\n"
                "\n"
                "def handler(event, context):\n"
                "    return boto3.__name__\n"
            ),
            good=handler_zip(
                "import json\n"
                "\n"
                "\n"
                "def handler(event, context):\n"
                "    return json.__name__\n"
            ),
        ),
        # Runtime.UserCodeSyntaxError: the colon after the def is missing.
        "syntax-error": Pair(
            bad=handler_zip(
                "def handler(event, context)\n"
                "    return {'ok': True}\n"
            ),
            good=handler_zip(
                "def handler(event, context):\n"
                "    return {'ok': True}\n"
            ),
        ),
        # Runtime.HandlerNotFound with --handler handler.handler: the module defines main, not handler.
        "handler-not-found": Pair(
            bad=handler_zip(
                "def main(event, context):\n"
                "    return {'ok': True}\n"
            ),
            good=handler_zip(
                "def handler(event, context):\n"
                "    return {'ok': True}\n"
            ),
        ),
        # INIT_EXCEPTION at handler.py:3: KeyError, TABLE_NAME is not set.
        "init-exception": Pair(
            bad=handler_zip(
                "import os\n"
                "\n"
                "TABLE = os.environ['TABLE_NAME']\n"
                "\n"
                "\n"
                "def handler(event, context):\n"
                "    return TABLE\n"
            ),
            good=handler_zip(
                "import os\n"
                "\n"
                "TABLE = os.environ.get('TABLE_NAME', 'x')\n"
                "\n"
                "\n"
                "def handler(event, context):\n"
                "    return TABLE\n"
            ),
        ),
        # INIT_TIMEOUT with --timeout 3: the import sleeps for an hour.
        "init-timeout": Pair(
            bad=handler_zip(
                "import time\n"
                "\n"
                "time.sleep(3600)\n"
                "\n"
                "\n"
                "def handler(event, context):\n"
                "    return 1\n"
            ),
            good=handler_zip(
                "import time\n"
                "\n"
                "STARTED = time.monotonic()\n"
                "\n"
                "\n"
                "def handler(event, context):\n"
                "    return STARTED\n"
            ),
        ),
        # No finding, exit 0: the package writes files while imported, and none of them reaches the host.
        "init-writes-file": Pair(
            bad=handler_zip(
                "import writer\n"
                "\n"
                "\n"
                "def handler(event, context):\n"
                "    return writer.MARKER\n",
                **{"writer/__init__.py": WRITER_BAD},
            ),
            good=handler_zip(
                "import writer\n"
                "\n"
                "\n"
                "def handler(event, context):\n"
                "    return writer.MARKER\n",
                **{"writer/__init__.py": WRITER_GOOD},
            ),
        ),
    }


def pairs() -> dict[str, Pair]:
    return {**native_pairs(), **probe_pairs()}


def fixture_bytes() -> dict[str, bytes]:
    """File name in fixtures/findings/ -> its bytes."""
    out: dict[str, bytes] = {}
    for name, pair in pairs().items():
        out[f"{name}-bad.zip"] = zip_bytes(pair.bad)
        out[f"{name}-good.zip"] = zip_bytes(pair.good)
    return out


def write_if_changed(path: Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    path.write_bytes(data)
    return True


def write_fixtures(out: Path) -> dict[str, bool]:
    """Write every fixture into `out`; file name -> whether it was (re)written."""
    out.mkdir(parents=True, exist_ok=True)
    return {name: write_if_changed(out / name, data) for name, data in sorted(fixture_bytes().items())}


def main() -> int:
    written = write_fixtures(OUT)
    for name, changed in written.items():
        data = (OUT / name).read_bytes()
        print(f"{'wrote' if changed else 'same '} {name:34} {len(data):>6,} bytes  "
              f"sha256 {hashlib.sha256(data).hexdigest()[:16]}")
    stale = sorted(p.name for p in OUT.glob("*.zip") if p.name not in written)
    if stale:
        print(f"not made by this script (remove them?): {', '.join(stale)}", file=sys.stderr)
    print(f"{sum(written.values())} of {len(written)} written in {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
