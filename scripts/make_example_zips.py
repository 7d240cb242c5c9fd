"""Write fixtures/examples/*.zip: the post-mortem's functions zipped the way its incident did and the right way.

    python scripts/make_example_zips.py
"""

from __future__ import annotations

import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAMBDA = REPO / "fixtures" / "projects" / "rds-dashboard" / "lambda"
OUT = REPO / "fixtures" / "examples"

EXAMPLES = {
    # CDK's Code.fromAsset('../lambda/compliance-checker'): the function folder alone, no shared/.
    "compliance-checker-without-shared.zip": {"compliance-checker": ""},
    "compliance-checker.zip": {"compliance-checker": "", "shared": "shared/"},
    # shared/ included, but the handler imports a name shared/aws_clients.py never defined.
    "query-handler.zip": {"query-handler": "", "shared": "shared/"},
}


def write(path: Path, folders: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for folder, prefix in folders.items():
            root = LAMBDA / folder
            for file in sorted(root.rglob("*.py")):
                info = zipfile.ZipInfo(prefix + file.relative_to(root).as_posix(), date_time=(2025, 11, 20, 0, 0, 0))
                info.create_system = 3
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, file.read_bytes())


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, folders in EXAMPLES.items():
        write(OUT / name, folders)
        print(OUT.relative_to(REPO) / name)


if __name__ == "__main__":
    main()
