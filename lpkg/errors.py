"""One exception hierarchy; each class carries the exit status the CLI ends with."""

from __future__ import annotations


class LpkgError(Exception):
    """A failure lpkg can explain to its user; never shown as a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n  hint: {self.hint}"


class FindingsFailed(LpkgError):
    """Verification found errors: the artifact is not good (exit 1)."""

    exit_code = 1


class UsageError(LpkgError):
    """Bad arguments or unreadable input (exit 2)."""

    exit_code = 2


class UnreadableInput(UsageError):
    """An input file that cannot be read as what it should be: not a zip, missing, corrupt."""


class EnvironmentProblem(LpkgError):
    """The machine cannot do what was asked: no Docker daemon, image missing (exit 3)."""

    exit_code = 3


class Interrupted(LpkgError):
    """Ctrl-C or SIGTERM: cleaned up, nothing written (exit 130)."""

    exit_code = 130


class BuildFailed(LpkgError):
    """Dependencies could not be installed (pip failed: no such release, no wheel, network) (exit 1)."""

    exit_code = 1
