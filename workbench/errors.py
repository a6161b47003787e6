"""Errors the researcher's library raises: each names the file, the view or the argument and the problem, never an
identifier. Its own, because a workspace installs no other Enclave package; the admin's command line turns them into
one line on stderr as it does the fabric's (provisioning/cli/base.py)."""

from __future__ import annotations

from pathlib import Path


class WorkbenchError(Exception):
    """A problem the researcher can act on: a view that is missing or incomplete, an argument past a project's
    limits, a workspace setting that is not there."""


class InvalidInputError(WorkbenchError):
    """A file of a view could not be read as what it claims to be."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # raised in worker processes: must survive pickling back to the parent
        return (type(self), (self.path, self.problem))
