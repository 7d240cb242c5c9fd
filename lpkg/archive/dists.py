"""Which installed distribution each zip member came from, read from `*.dist-info/RECORD`."""

from __future__ import annotations

import csv
import io
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

from lpkg.archive.reader import ZipArchive, normalized_name


@dataclass(frozen=True)
class Distribution:
    name: str
    version: str
    dist_info: str  # the folder, e.g. "numpy-2.2.6.dist-info"
    files: frozenset[str]
    top_level: frozenset[str]  # importable top-level names it installs

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class DistributionIndex:
    distributions: tuple[Distribution, ...]
    owner: dict[str, Distribution]  # member name -> distribution that installed it

    def of(self, member: str) -> str | None:
        dist = self.owner.get(normalized_name(member))
        return dist.label if dist else None



_DIST_INFO = re.compile(r"(?:^|/)(?P<name>[^/]+?)-(?P<version>[^-/]+)\.dist-info/RECORD$")


def _top_level(files: Iterable[str]) -> frozenset[str]:
    names: set[str] = set()
    for path in files:
        head = path.split("/", 1)[0]
        if head.endswith((".dist-info", ".data")) or head in ("..", "") or head.startswith("__pycache__"):
            continue
        if "/" in path:
            names.add(head)
        elif head.endswith(".py"):
            names.add(head[:-3])
        elif ".so" in head or head.endswith(".pyd"):
            names.add(head.split(".", 1)[0])
    return frozenset(names)


def index_distributions(archive: ZipArchive) -> DistributionIndex:
    """Read every RECORD in the zip; its paths are relative to the folder holding the .dist-info."""
    dists: list[Distribution] = []
    owner: dict[str, Distribution] = {}
    for member in archive.members:
        name = member.path
        match = _DIST_INFO.search(name)
        if not match:
            continue
        dist_info_dir = posixpath.dirname(name)
        parent = posixpath.dirname(dist_info_dir)
        prefix = parent + "/" if parent else ""
        text = archive.read_text(member.name)
        if text is None:
            continue
        files = []
        for row in csv.reader(io.StringIO(text)):
            if row and row[0]:
                files.append(posixpath.normpath(row[0]))
        dist = Distribution(
            name=match["name"],
            version=match["version"],
            dist_info=dist_info_dir,
            files=frozenset(prefix + f for f in files),
            top_level=_top_level(files),
        )
        dists.append(dist)
        for f in dist.files:
            owner[f] = dist
    return DistributionIndex(tuple(dists), owner)
