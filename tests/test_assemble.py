"""lpkg.archive.writer: deterministic zips from real files, the runtime SDK rule, temporary files and publishing."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

import pytest

from lpkg.archive.reader import ZIP_EPOCH, ZipArchive
from lpkg.archive.writer import (
    COMPRESSLEVEL,
    Assembled,
    DependencyZip,
    assemble,
    dependency_zip,
    discard_unless_published,
    publish,
)
from lpkg.checks.permissions import check_permissions
from lpkg.config import resolve_settings
from lpkg.errors import LpkgError
from lpkg.plan.discover import discover

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "projects" / "rds-dashboard"

SOURCES = {
    "fn/handler.py": "from shared import util\n\ndef handler(event, context):\n    return util.VALUE\n",
    "fn/data/rules.json": '{"max": 3}\n',
    "shared/__init__.py": "",
    "shared/util.py": "VALUE = 42\n",
    "deps/requests/__init__.py": "__version__ = '2.32.3'\n",
    "deps/requests/__pycache__/__init__.cpython-312.pyc": "bytecode",
    "deps/requests-2.32.3.dist-info/RECORD": "requests/__init__.py,,\n",
    "deps/bin/normalizer": "#!/bin/sh\necho hi\n",
    "deps/boto3/__init__.py": "",
    "deps/boto3/session.py": "",
    "deps/boto3-1.35.0.dist-info/METADATA": "Name: boto3\n",
    "deps/boto3-1.35.0.dist-info/RECORD": "boto3/__init__.py,,\nboto3/session.py,,\nboto3-1.35.0.dist-info/RECORD,,\n",
    "deps/botocore/__init__.py": "",
    "deps/botocore-1.35.0.dist-info/RECORD": "botocore/__init__.py,,\n",
    "deps/s3transfer/__init__.py": "",
    "deps/requests/data/model.json.gz": "not really gzip, but named so",
}


def write_tree(root: Path) -> Path:
    for rel, text in SOURCES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "deps" / "bin" / "normalizer").chmod(0o700)
    return root


def inputs(root: Path) -> list[tuple[str, Path]]:
    return [
        ("handler.py", root / "fn" / "handler.py"),
        ("data/rules.json", root / "fn" / "data" / "rules.json"),
        ("shared/util.py", root / "shared" / "util.py"),
        ("shared/__init__.py", root / "shared" / "__init__.py"),
    ]


def deps_part(root: Path, pinned: tuple[str, ...] = (), keep_in: Path | None = None) -> DependencyZip | None:
    scratch = Path(tempfile.mkdtemp(dir=root.parent))
    return dependency_zip([root / "deps"], scratch, pinned=pinned, keep_in=keep_in)


def build(root: Path, out: Path, pinned: tuple[str, ...] = (), keep_in: Path | None = None) -> Assembled:
    return assemble(out, "fn", inputs(root), deps_part(root, pinned, keep_in))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_inputs_give_the_same_bytes_whatever_mtimes_and_umask(tmp_path: Path) -> None:
    first = write_tree(tmp_path / "a")
    one = build(first, tmp_path / "out1")
    # The same tree again, copied under umask 077 (files 0600, folders 0700), then every mtime touched.
    old = os.umask(0o077)
    try:
        second = write_tree(tmp_path / "b")
    finally:
        os.umask(old)
    assert stat.S_IMODE((second / "fn" / "handler.py").stat().st_mode) == 0o600
    for n, path in enumerate(sorted(second.rglob("*"))):
        os.utime(path, (1_700_000_000 + n * 7777, 1_700_000_000 + n * 7777))
    two = build(second, tmp_path / "out2")
    assert one.sha256 == two.sha256 == sha256(one.path) == sha256(two.path)
    # And twice from the very same files.
    again = build(first, tmp_path / "out3")
    assert again.sha256 == one.sha256


def test_members_are_sorted_normalised_and_plain(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src")
    result = build(root, tmp_path / "out")
    with zipfile.ZipFile(result.path) as zf:
        infos = zf.infolist()
        assert zf.comment == b""
    names = [i.filename for i in infos]
    # The dependency part first, then the function's own files: each sorted, with its folders.
    assert names == [
        "bin/", "bin/normalizer", "requests-2.32.3.dist-info/", "requests-2.32.3.dist-info/RECORD", "requests/",
        "requests/__init__.py", "requests/data/", "requests/data/model.json.gz",
        "data/", "data/rules.json", "handler.py", "shared/", "shared/__init__.py", "shared/util.py",
    ]
    assert result.dependency_members == {"bin/normalizer", "requests-2.32.3.dist-info/RECORD", "requests/__init__.py",
                                         "requests/data/model.json.gz"}
    for info in infos:
        mode = info.external_attr >> 16
        assert info.create_system == 3
        assert info.date_time == ZIP_EPOCH
        assert info.extra == b""
        if info.is_dir():
            assert mode == stat.S_IFDIR | 0o755
        elif info.filename.endswith(".gz"):
            assert info.compress_type == zipfile.ZIP_STORED  # compressed already
        else:
            assert info.compress_type == zipfile.ZIP_DEFLATED
            expected = 0o755 if info.filename == "bin/normalizer" else 0o644
            assert mode == stat.S_IFREG | expected, info.filename
    assert COMPRESSLEVEL == 6
    assert result.files == 8
    assert result.unzipped_bytes == sum(i.file_size for i in infos)
    with ZipArchive(result.path) as archive:
        assert check_permissions(archive) == []


def test_source_date_epoch_sets_the_timestamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_tree(tmp_path / "src")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # 2023-11-14 22:13:20 UTC
    result = build(root, tmp_path / "out")
    with zipfile.ZipFile(result.path) as zf:
        assert {i.date_time for i in zf.infolist()} == {(2023, 11, 14, 22, 13, 20)}


def test_runtime_sdk_is_left_out_unless_pinned(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src")
    result = build(root, tmp_path / "out")
    assert result.left_out == ("boto3 1.35.0", "botocore 1.35.0", "s3transfer")
    with zipfile.ZipFile(result.path) as zf:
        assert not [n for n in zf.namelist() if n.startswith(("boto3", "botocore", "s3transfer"))]
    pinned = build(root, tmp_path / "out", pinned=("Boto3",))
    assert pinned.left_out == ()
    with zipfile.ZipFile(pinned.path) as zf:
        names = set(zf.namelist())
    # Pinning boto3 keeps botocore and s3transfer too: pip installed them as a set that works together.
    assert {"boto3/session.py", "boto3-1.35.0.dist-info/RECORD", "botocore/__init__.py",
            "s3transfer/__init__.py"} <= names


def test_bytecode_is_left_out_everywhere(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src")
    pyc = root / "fn" / "__pycache__" / "handler.cpython-311.pyc"
    pyc.parent.mkdir()
    pyc.write_text("x")
    files = [*inputs(root), ("__pycache__/handler.cpython-311.pyc", pyc), ("stale.pyc", pyc)]
    result = assemble(tmp_path / "out", "fn", files, deps_part(root))
    with zipfile.ZipFile(result.path) as zf:
        assert not [n for n in zf.namelist() if n.endswith(".pyc") or "__pycache__" in n]


def test_clashing_zip_paths_with_different_content_are_an_error(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src")
    vendored = root / "fn" / "requests.py"
    vendored.write_text("# vendored\n")
    out = tmp_path / "out"
    with pytest.raises(LpkgError, match=r"requests/__init__\.py would come from both"):
        assemble(out, "fn", [("requests/__init__.py", vendored)], deps_part(root))
    assert not out.exists()  # the folder made for the temporary file is gone again
    # The same content twice is no clash.
    same = root / "fn" / "copy.py"
    shutil.copyfile(root / "deps" / "requests" / "__init__.py", same)
    with zipfile.ZipFile(assemble(out, "fn", [("requests/__init__.py", same)], deps_part(root)).path) as zf:
        assert zf.namelist().count("requests/__init__.py") == 1


def test_unsafe_zip_path_is_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src")
    with pytest.raises(LpkgError):
        assemble(tmp_path / "out", "fn", [("../escape.py", root / "fn" / "handler.py")])


def test_temporary_zip_then_atomic_publish(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src")
    out = tmp_path / "dist"
    result = build(root, out)
    assert result.path.parent == out and result.path.name.startswith(".fn.") and result.path.suffix == ".tmp"
    final = out / "fn.zip"
    with discard_unless_published(result):
        publish(result.path, final)
    assert final.is_file() and not result.path.exists()
    assert sha256(final) == result.sha256
    assert sorted(p.name for p in out.iterdir()) == ["fn.zip"]


def test_failed_build_leaves_the_previous_artifact_and_no_temporary_file(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src")
    out = tmp_path / "dist"
    out.mkdir()
    previous = out / "fn.zip"
    previous.write_bytes(b"previous artifact")
    result = build(root, out)
    with pytest.raises(RuntimeError), discard_unless_published(result):
        raise RuntimeError("verification failed")
    assert sorted(p.name for p in out.iterdir()) == ["fn.zip"]
    assert previous.read_bytes() == b"previous artifact"


def test_unpublished_zip_in_a_new_output_folder_leaves_nothing(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src")
    out = tmp_path / "new" / "dist"
    result = build(root, out)
    assert result.created_dirs == (out, tmp_path / "new")
    with discard_unless_published(result):
        pass  # verification said no: nothing published
    assert not (tmp_path / "new").exists()


def test_compliance_checker_end_to_end(tmp_path: Path) -> None:
    """discover -> assemble -> publish on the fixture: shared/ is at its package path in the zip."""
    settings = resolve_settings(FIXTURE / "lambda" / "compliance-checker", cwd=tmp_path)
    plan, findings = discover(settings)
    assert not [f for f in findings if f.severity.label == "error"]
    result = assemble(settings.out, settings.name, plan.files)
    with discard_unless_published(result):
        publish(result.path, settings.artifact)
    with zipfile.ZipFile(tmp_path / "dist" / "compliance-checker.zip") as zf:
        assert zf.namelist() == [
            "handler.py", "shared/", "shared/__init__.py", "shared/aws_clients.py", "shared/config.py",
            "shared/logger.py",
        ]
        assert zf.read("shared/aws_clients.py") == (FIXTURE / "lambda" / "shared" / "aws_clients.py").read_bytes()


def test_dependency_part_is_written_once_and_gives_the_same_zip(tmp_path: Path) -> None:
    """Kept beside the install, the dependency part is reused as it is; a zip made with it is byte for byte
    the zip made without keeping anything, and a kept part whose facts do not match is written again."""
    root = write_tree(tmp_path / "src")
    keep = tmp_path / "entry" / "zip"
    first = deps_part(root, keep_in=keep)
    assert first is not None and first.path.parent == keep
    identity = (first.path.stat().st_ino, first.path.stat().st_mtime_ns)
    (root / "deps" / "requests" / "__init__.py").write_text("changed, but the kept part is for the install as it was\n")
    again = deps_part(root, keep_in=keep)
    assert again == first and (again.path.stat().st_ino, again.path.stat().st_mtime_ns) == identity
    (root / "deps" / "requests" / "__init__.py").write_text(SOURCES["deps/requests/__init__.py"])
    kept_zip = build(root, tmp_path / "out1", keep_in=keep)
    fresh_zip = build(root, tmp_path / "out2")
    assert kept_zip.sha256 == fresh_zip.sha256
    assert (kept_zip.files, kept_zip.unzipped_bytes, kept_zip.left_out) == (
        fresh_zip.files, fresh_zip.unzipped_bytes, fresh_zip.left_out)
    # Other options are another part; a part whose size disagrees with its facts is not trusted.
    pinned = deps_part(root, pinned=("boto3",), keep_in=keep)
    assert pinned is not None and pinned.path != first.path and pinned.left_out == ()
    with open(first.path, "ab") as f:
        f.write(b"junk")
    rewritten = deps_part(root, keep_in=keep)
    assert rewritten is not None and rewritten.path == first.path
    assert build(root, tmp_path / "out3", keep_in=keep).sha256 == fresh_zip.sha256
    assert sorted(p.name for p in keep.iterdir() if p.name.startswith(".")) == []  # no temporary files left
