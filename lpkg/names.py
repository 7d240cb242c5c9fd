"""Distribution names as Python packaging compares them, for what discovery reads from requirements and
what assembly reads from installed .dist-info folders.

A module of its own: discovery runs on every build, the up-to-date one too, and needs none of lpkg.archive.dists'
zip reading.
"""

from __future__ import annotations

import re


def canonical_name(name: str) -> str:
    """A distribution's name as PEP 503 compares them: `Zope.Interface` and `zope-interface` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()
