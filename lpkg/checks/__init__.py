"""Host-side checks. Each check reads facts from the archive and returns findings; none runs code."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from lpkg.archive.dists import DistributionIndex
from lpkg.archive.reader import ZipArchive
from lpkg.runtimes import Arch, Runtime


@dataclass(frozen=True)
class Layer:
    """A layer zip: unpacked under /opt at run time."""

    archive: ZipArchive
    dists: DistributionIndex


@dataclass(frozen=True)
class CheckContext:
    archive: ZipArchive
    dists: DistributionIndex
    runtime: Runtime
    arch: Arch
    layers: tuple[Layer, ...] = ()


@dataclass(frozen=True)
class NativeFile:
    """A native-code member (.so/.pyd/.dylib): its bytes, or the file verify unpacked them to (read when needed)."""

    member: str  # the member name in its zip
    content: bytes | Path
    distribution: str | None  # "numpy 2.2.6", when a RECORD lists it
    in_layer: bool = False  # True when it comes from a layer (its path under /opt is "member")
    key: str | None = None  # the member store's key of these bytes (lpkg.archive.members): their facts are kept by it

    @functools.cached_property
    def data(self) -> bytes:
        return self.content if isinstance(self.content, bytes) else self.content.read_bytes()
