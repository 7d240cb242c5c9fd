"""Deflate64 (method 9, written by Windows Explorer for large zips) for zipfile, through `inflate64`:
zipfile-deflate64 ships no wheels past Python 3.10 and needs a C compiler elsewhere."""

from __future__ import annotations

import zipfile

ZIP_DEFLATED64 = 9


class _Deflate64Decompressor:
    """The interface ZipExtFile expects of a decompressor other than zlib's (as for bz2 and lzma)."""

    def __init__(self) -> None:
        import inflate64  # here: few zips need it, and every run would pay for its import

        self._inflater = inflate64.Inflater()

    def decompress(self, data: bytes) -> bytes:
        return bytes(self._inflater.inflate(data))

    @property
    def eof(self) -> bool:
        return bool(self._inflater.eof)


def register_deflate64() -> None:
    # zipfile has no registry of methods: ZipExtFile asks zipfile._get_decompressor for each member.
    original = zipfile._get_decompressor  # type: ignore[attr-defined]
    if getattr(original, "lpkg_deflate64", False):
        return

    def get_decompressor(compress_type: int) -> object:
        if compress_type == ZIP_DEFLATED64:
            return _Deflate64Decompressor()
        return original(compress_type)

    get_decompressor.lpkg_deflate64 = True  # type: ignore[attr-defined]
    zipfile._get_decompressor = get_decompressor  # type: ignore[attr-defined]
