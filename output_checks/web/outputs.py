"""A project's outputs folder as the new-request page sees it: the regular files it offers (never following a link),
and the check that each path a form sends back names one of them, before the workflow snapshots anything.

The workflow itself refuses any path that resolves outside the folder; this stricter check is the web form's: it
offered only regular files by their relative paths, so an absolute path, a `..`, a link or anything but a regular
file is a tampered form and is refused whole."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kernel.config import Paths
from kernel.errors import EnclaveError

MAX_LISTED = 500  # more than a person picks from; the rest are counted, and the command line takes any of them
WORKSPACE_OUTPUTS = "/project/outputs"  # the same folder as mounted in the project's workspaces


class NotAnOutput(EnclaveError):
    """A chosen path is not a regular file of the project's outputs folder (HTTP 400)."""


@dataclass(frozen=True)
class OutputFile:
    path: str  # relative to the outputs folder, with '/'
    size: int
    modified: datetime  # UTC, naive (as the registry stores times)


def output_files(paths: Paths, project: str, limit: int = MAX_LISTED) -> tuple[list[OutputFile], int]:
    """Regular files under the project's outputs folder, recursively, sorted by path: at most `limit` of them, and
    how many there are in all. Links (to files or folders) and anything else that is not a regular file are left
    out, as are hidden files and folders (`.ipynb_checkpoints`)."""
    root = paths.project_outputs(project)
    found: list[OutputFile] = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            full = Path(folder) / name
            try:
                info = os.lstat(full)
            except OSError:  # gone meanwhile
                continue
            if stat.S_ISREG(info.st_mode):
                modified = datetime.fromtimestamp(info.st_mtime, UTC).replace(tzinfo=None, microsecond=0)
                found.append(OutputFile(full.relative_to(root).as_posix(), info.st_size, modified))
    found.sort(key=lambda f: f.path)
    return found[:limit], len(found)


def _shown(path: str) -> str:
    return path if len(path) <= 120 else path[:117] + "..."


def check_chosen(paths: Paths, project: str, path: str) -> str:
    """`path` if it names a regular file inside the project's outputs folder by a relative path, through real
    folders only (no link anywhere on the way, no '..'); otherwise NotAnOutput saying why."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\x00" in path or any(p in ("", ".", "..") for p in parts):
        raise NotAnOutput(f"{_shown(path)}: not a path inside the project's outputs folder")
    root = paths.project_outputs(project)
    current = root
    for depth, part in enumerate(parts, start=1):
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except (OSError, ValueError):
            raise NotAnOutput(f"{_shown(path)}: no such file in the project's outputs folder") from None
        if stat.S_ISLNK(mode):
            raise NotAnOutput(f"{_shown(path)}: a link; only regular files can be requested (links are not followed)")
        if depth < len(parts) and not stat.S_ISDIR(mode):
            raise NotAnOutput(f"{_shown(path)}: no such file in the project's outputs folder")
        if depth == len(parts) and not stat.S_ISREG(mode):
            raise NotAnOutput(f"{_shown(path)}: not a regular file")
    if not current.resolve().is_relative_to(root.resolve()):  # the folder itself replaced by a link
        raise NotAnOutput(f"{_shown(path)}: not a path inside the project's outputs folder")
    return path
