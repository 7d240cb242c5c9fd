"""Properties over generated input (hypothesis): any file tree zips deterministically and reads back equal;
handler strings parse as the runtime splits them or are refused; mutated real zips never make the reader
raise anything but lpkg's own errors.

Example counts suit CI (the whole file runs in well under a minute); LPKG_FUZZ_EXAMPLES raises the fuzz
run's count for a longer session, e.g. LPKG_FUZZ_EXAMPLES=20000 pytest tests/test_properties.py -k fuzz.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import pytest
from helpers import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpkg.archive.reader import BudgetExceeded, MemberCorrupt, SizeBudget, ZipArchive
from lpkg.archive.writer import DIR_MODE, EXEC_MODE, FILE_MODE, write_zip
from lpkg.checks.structure import check_structure
from lpkg.commands.verify import VerifyOptions, verify_zip
from lpkg.errors import UsageError
from lpkg.handler import Handler, parse_handler
from lpkg.runtimes import get_runtime

FUZZ_EXAMPLES = int(os.environ.get("LPKG_FUZZ_EXAMPLES", "150"))

# --- any file tree -> zip -> the same tree, and the same bytes again -----------------------------------------

# Folder names start with "d" and file names with "f", so a file never has a folder's name. Letters beyond
# ASCII are in: zip names are UTF-8.
_WORD = st.text(alphabet=st.characters(categories=("Ll", "Lu", "Nd"), max_codepoint=0x2FF) | st.sampled_from("_-"),
                min_size=0, max_size=12)
_SUFFIX = st.sampled_from(["", ".py", ".txt", ".so", ".json", ".cfg"])
_FOLDER = st.lists(_WORD.map(lambda w: "d" + w), max_size=4)
_FILE = st.tuples(_FOLDER, _WORD.map(lambda w: "f" + w), _SUFFIX).map(lambda t: "/".join([*t[0], t[1] + t[2]]))


def _case_distinct(tree: dict[str, tuple[bytes, bool]]) -> bool:
    """No two names, files or their folders, differ only in case (ZIP_CASE_CONFLICT's story, not this one's)."""
    names = {"/".join(name.split("/")[:depth]) for name in tree for depth in range(1, name.count("/") + 2)}
    return len({name.lower() for name in names}) == len(names)


_TREE = st.dictionaries(_FILE, st.tuples(st.binary(max_size=3000), st.booleans()), min_size=1,
                        max_size=25).filter(_case_distinct)


def _materialize(root: Path, tree: dict[str, tuple[bytes, bool]], mtime: int, file_mode: int) -> dict[str, Path]:
    entries = {}
    for name, (content, executable) in tree.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(file_mode | (0o111 if executable else 0))
        os.utime(path, (mtime, mtime))
        entries[name] = path
    return entries


def _zip_bytes(entries: dict[str, Path]) -> bytes:
    buffer = io.BytesIO()
    write_zip(buffer, entries)
    return buffer.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=_TREE, mtimes=st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1)))
def test_any_tree_zips_to_the_same_bytes_and_reads_back_equal(
    tree: dict[str, tuple[bytes, bool]], mtimes: tuple[int, int]
) -> None:
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        first = _zip_bytes(_materialize(Path(one), tree, mtimes[0], 0o600))
        # Another checkout: other mtimes, other permission bits, entries in another order.
        second_entries = _materialize(Path(two), tree, mtimes[1], 0o644)
        second = _zip_bytes(dict(reversed(list(second_entries.items()))))
        assert first == second
        zip_path = Path(one) / "out.zip"
        zip_path.write_bytes(first)
        with ZipArchive(zip_path) as archive:
            files = {m.name: m for m in archive.members if m.is_file}
            folders = {m.name for m in archive.members if m.is_dir}
            assert set(files) == set(tree)
            for name, (content, executable) in tree.items():
                assert archive.read(name) == content
                assert files[name].mode == (EXEC_MODE if executable else FILE_MODE)
            expected_folders = {"/".join(name.split("/")[:i]) + "/" for name in tree
                                for i in range(1, name.count("/") + 1)}
            assert folders == expected_folders
            assert all(m.mode == DIR_MODE for m in archive.members if m.is_dir)
            assert check_structure(archive) == []
            assert {m.name for m in archive.safe_files()} == set(tree)


# --- handler strings ----------------------------------------------------------------------------------------

_IDENTIFIER = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(_IDENTIFIER, min_size=1, max_size=4), function=_IDENTIFIER,
       slashes=st.lists(st.booleans(), min_size=3, max_size=3), pad=st.sampled_from(["", " ", "\t", "\n "]))
def test_handler_strings_split_on_the_last_dot_with_slashes_as_dots(
    parts: list[str], function: str, slashes: list[bool], pad: str
) -> None:
    separators = ["/" if slash else "." for slash in slashes[: len(parts) - 1]]
    module = parts[0] + "".join(sep + part for sep, part in zip(separators, parts[1:], strict=True))
    handler = parse_handler(f"{pad}{module}.{function}{pad}")
    assert handler == Handler(".".join(parts), function)
    assert parse_handler(handler.string) == handler


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=40) | st.text(alphabet="ab./_ 1\x00é", max_size=20))
def test_any_handler_string_parses_to_names_or_is_refused(text: str) -> None:
    try:
        handler = parse_handler(text)
    except UsageError as exc:
        assert exc.exit_code == 2
        assert "Runtime.MalformedHandlerName" in exc.message
        return
    # What importlib.import_module can take: non-empty parts, nothing blank or unprintable anywhere.
    assert all(handler.module.split(".")) and handler.function
    assert all(c.isprintable() and not c.isspace() for c in handler.string)
    module, _, function = text.strip().rpartition(".")
    assert (module.replace("/", "."), function) == (handler.module, handler.function)


# --- fuzzing the reader with mutated real zips ------------------------------------------------------------------

_SEEDS = sorted(
    p for p in [*FIXTURES.glob("zips/*-good.zip"), *FIXTURES.glob("findings/*-good.zip")]
    if p.stat().st_size < 64 << 10
)
_MUTATION = st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255))


@st.composite
def _mutated_zip(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)).read_bytes())
    for where, value in draw(st.lists(_MUTATION, min_size=1, max_size=8)):
        data[int(where * len(data))] = value
    if draw(st.booleans()):  # the end: where the directory and the end record are
        for where, value in draw(st.lists(_MUTATION, max_size=4)):
            data[len(data) - 1 - int(where * min(len(data), 200))] = value
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@pytest.mark.skipif(not _SEEDS, reason="no seed zips")
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_mutated_zip())
def test_mutated_zips_raise_only_lpkgs_own_errors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mutated.zip"
        path.write_bytes(data)
        # The reader alone: each member read, under a budget.
        try:
            archive = ZipArchive(path)
        except UsageError:
            return
        with archive:
            for member in archive.members:
                try:
                    archive.read(member.name, SizeBudget(16 << 20))
                except (MemberCorrupt, BudgetExceeded):
                    pass
        # The whole host side, as `lpkg verify --probe none` runs it: findings, or a UsageError (exit 2).
        options = VerifyOptions(runtime=get_runtime("python3.11"), arch="x86_64")
        try:
            verify_zip(path, options, None)
        except UsageError:
            pass
