"""`lpkg cache`: what verify's member store holds, emptying it and shrinking it (the dependency cache's own
lines come from lpkg.install.cache)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from lpkg.archive import members
from lpkg.commands.stores import scratch_parent


def member_store_usage() -> tuple[Path | None, Any]:
    """The store's folder (None: turned off) and its usage (None: nothing stored yet)."""
    folder = members.store_folder(scratch_parent())
    if folder is None or not folder.is_dir():
        return folder, None
    return folder, members.usage_of(folder, members.store_limit())


def member_store_line() -> str:
    folder, usage = member_store_usage()
    if folder is None:
        return "verify's member store: off (LPKG_MEMBER_STORE=off)"
    if usage is None:
        return f"verify's member store: {folder} (empty; LPKG_MEMBER_STORE sets it)"
    return (f"verify's member store: {folder} (LPKG_MEMBER_STORE sets it): {usage.size / 1e6:.1f} MB in "
            f"{usage.files} files (unpacked members and bytecode), at most about {usage.limit >> 20} MB "
            "(LPKG_MEMBER_STORE_MB); lpkg cache prune shrinks it")


def clear_member_store() -> str | None:
    """Empty the store: what was removed, or None when there was nothing."""
    folder, usage = member_store_usage()
    if folder is None or usage is None:
        return None
    shutil.rmtree(folder, ignore_errors=True)
    return f"removed {usage.size / 1e6:.1f} MB of unpacked members and bytecode from {folder}"


def prune_member_store(to_mb: int | None) -> str:
    """Shrink the store to `to_mb` MB (default: a share of its limit), least recently used first."""
    folder, usage = member_store_usage()
    if folder is None or usage is None:
        return member_store_line()
    keep = (to_mb << 20) if to_mb is not None else int(members.store_limit() * members.PRUNE_TO)
    after = members.prune(folder, keep)
    return (f"member store {folder}: {usage.size / 1e6:.1f} MB in {usage.files} files -> "
            f"{after.size / 1e6:.1f} MB in {after.files} files")
