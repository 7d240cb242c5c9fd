"""The runtime itself: a deprecated runtime still runs, but gets no patches and soon no deploys."""

from __future__ import annotations

import datetime

from lpkg.report import Finding, Severity
from lpkg.runtimes import RUNTIMES, Runtime

DEPRECATED = "RUNTIME_DEPRECATED"


def check_runtime(runtime: Runtime, today: datetime.date) -> list[Finding]:
    if not runtime.is_deprecated(today):
        return []
    schedule = runtime.deprecation
    newest = max(RUNTIMES.values(), key=lambda rt: rt.version)
    if today >= schedule.block_update:
        blocked = f"since {schedule.block_update} functions on it can be neither created nor updated"
    elif today >= schedule.block_create:
        blocked = (f"since {schedule.block_create} no new functions can use it, and from {schedule.block_update} "
                   "existing ones cannot be updated")
    else:
        blocked = (f"from {schedule.block_create} no new functions can use it, and from {schedule.block_update} "
                   "existing ones cannot be updated")
    return [Finding(
        DEPRECATED, Severity.WARNING,
        f"{runtime.name} is deprecated since {schedule.deprecated} (no more security patches); {blocked}: "
        f"move the function to {newest.name}",
    )]
