"""What a submission may copy: files inside the project's outputs folder only, within the policy's byte limits per
file and per request, each checked before a byte is copied (and again by the copy itself)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from fabric.projects import ProjectRole, get_project
from kernel import audit
from kernel.config import Paths
from output_checks.release.models import ReleaseRequest
from output_checks.release.site_policy import project_overrides, resolve_policy
from output_checks.release.storage import TooLarge, megabytes, output_size
from output_checks.release.workflow.access import InvalidRequest, NotAllowed, current_files, project_roles


@dataclass(frozen=True)
class Limits:
    """The policy's byte limits on what one submission may copy (`submit_max_file_mb`, `submit_max_request_mb`)."""

    per_file: int
    per_request: int


def limits(session: Session, paths: Paths, project: str) -> Limits:
    policy = resolve_policy(paths, project_overrides(session, project))
    return Limits(policy.submit_max_file_bytes, policy.submit_max_request_bytes)


def output_path(paths: Paths, project: str, path: str) -> tuple[Path, str]:
    """A file inside the project's outputs folder (resolved: no link or '..' may lead out of it)."""
    outputs = paths.project_outputs(project).resolve()
    candidate = Path(path)
    full = (candidate if candidate.is_absolute() else outputs / candidate).resolve()
    if not full.is_relative_to(outputs):
        raise NotAllowed(f"{path}: only files in the project's outputs folder can be requested")
    if not full.is_file():
        raise InvalidRequest(f"{path}: no such file in the project's outputs folder")
    return full, full.relative_to(outputs).as_posix()


def measure(full: Path, relative: str, per_file: int) -> int:
    """The file's size, read without following a link (as the copy will open it), refused over the limit before
    a byte is copied."""
    outputs = full.parents[len(Path(relative).parts) - 1]
    size = output_size(outputs, Path(relative))
    if size > per_file:
        raise TooLarge(
            f"{relative}: {megabytes(size)} is over the airlock's limit of {megabytes(per_file)} per file; nothing "
            "was submitted. Release a smaller output (aggregate it, or split it across requests), or ask the "
            "output checkers about the limit"
        )
    return size


def over_request(total: int, per_request: int) -> TooLarge:
    return TooLarge(
        f"the chosen files come to {megabytes(total)}, over the airlock's limit of {megabytes(per_request)} per "
        "request; nothing was submitted. Choose fewer or smaller files, or split them across requests"
    )


def room(
    session: Session, paths: Paths, request: ReleaseRequest, full: Path, relative: str, exclude: int | None
) -> int:
    """How many bytes a file added to (or revised in) `request` may have: refused now when it is already over a
    limit; the copy refuses it too if it grows past the returned figure."""
    bound = limits(session, paths, request.project)
    size = measure(full, relative, bound.per_file)
    others = sum(f.size for f in current_files(request) if f.id != exclude)
    if others + size > bound.per_request:
        raise over_request(others + size, bound.per_request)
    return min(bound.per_file, bound.per_request - others)


def measure_request(
    session: Session, paths: Paths, project: str, author: str, files: Iterable[str]
) -> list[tuple[str, int]]:
    """Each chosen file's path in the outputs folder and size, or TooLarge/InvalidRequest/NotAllowed saying why the
    request cannot be taken: every limit is checked before anything is created or copied. Only the project's
    researchers are answered (no one else learns anything of its outputs folder)."""
    get_project(session, project)
    if ProjectRole.RESEARCHER not in project_roles(session, project, author):
        raise NotAllowed(f"{author} is not a researcher on project {project}")
    bound = limits(session, paths, project)
    measured: list[tuple[str, int]] = []
    for path in files:
        full, relative = output_path(paths, project, path)
        if any(relative == seen for seen, _ in measured):
            raise InvalidRequest(f"{relative} is chosen twice")
        measured.append((relative, measure(full, relative, bound.per_file)))
    total = sum(size for _, size in measured)
    if total > bound.per_request:
        raise over_request(total, bound.per_request)
    return measured


def refused_submission(session: Session, project: str, author: str, problem: str) -> None:
    """A submission refused over a size limit before anything was recorded: audited all the same."""
    audit.record(session, actor=author, action="airlock.submit_refused", target=f"project:{project}",
                 project=project, problem=problem)  # fmt: skip
