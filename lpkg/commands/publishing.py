"""The tail of a build (a function's zip or a layer's): verify the candidate, then publish it, and say what was
published."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lpkg.report import Finding, Severity, Stopwatch

if TYPE_CHECKING:
    from lpkg.archive.writer import Assembled
    from lpkg.commands.verify import VerifyOptions
    from lpkg.probing.request import NoProbe, Prober
    from lpkg.report import ArtifactReport



def left_out_findings(assembled: Assembled) -> list[Finding]:
    return [
        Finding("BUILD_RUNTIME_SDK", Severity.INFO,
                f"{left_out} left out: the runtime's copy will be used (pin it in requirements to ship it)")
        for left_out in assembled.left_out
    ]


def verify_then_publish(
    assembled: Assembled, candidate: Path, options: VerifyOptions, prober: Prober | NoProbe | None, watch: Stopwatch,
    artifact: Path,
) -> tuple[ArtifactReport, Path | None]:
    """Verify `candidate` (the assembled zip, or a function standing in for it) and publish the assembled zip
    to `artifact` only if that passed; None when nothing was published."""
    from lpkg.archive.writer import publish
    from lpkg.commands.verify import verify_zip

    with watch.lap("verify"):
        verify_report = verify_zip(candidate, options, prober)
    if not verify_report.ok:
        return verify_report, None
    with watch.lap("publish"):
        return verify_report, publish(assembled.path, artifact)


def published_facts(final: Path, assembled: Assembled) -> dict[str, str]:
    from lpkg.checks.sizes import mb

    return {"zipped": mb(final.stat().st_size), "unzipped": mb(assembled.unzipped_bytes),
            "files": str(assembled.files), "sha256": assembled.sha256}

