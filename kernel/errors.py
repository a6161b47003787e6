"""Errors a user can act on, raised by every package: each names the file or object and the problem, never an
identifier."""

from __future__ import annotations

from pathlib import Path


class EnclaveError(Exception):
    """A problem the user can act on; the CLI prints its message and exits non-zero, without a traceback."""


class InvalidInputError(EnclaveError):
    """A file could not be read as what it claims to be."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # raised in worker processes: must survive pickling back to the parent
        return (type(self), (self.path, self.problem))


class NotFoundError(EnclaveError):
    """A site, dataset, project or patient that the registry does not hold."""


class SpecError(EnclaveError):
    """A project spec or site manifest that fails validation."""
