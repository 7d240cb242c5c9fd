"""Host-side checks. Each check reads facts from the archive and returns findings; none runs code."""

from __future__ import annotations

from dataclasses import dataclass

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
    """A native-code member (.so/.pyd/.dylib) with its bytes, as read once during the payload pass."""

    member: str  # the member name in its zip
    data: bytes
    distribution: str | None  # "numpy 2.2.6", when a RECORD lists it
    in_layer: bool = False  # True when it comes from a layer (its path under /opt is "member")
