"""A large request is taken in two steps, so no one waits on its copy and no transaction is held open across it:
`begin_request` records the request and its chosen files (sizes measured, limits checked) in `preparing`; the
airlock copies the files outside any transaction and records each snapshot (`snapshot_taken`); `prepared` makes it a
draft and, when the author chose so, submits it. A copy that fails (grew past the limit, replaced by a link,
vanished) is `refuse`d: the request is withdrawn by the airlock with the reason, and its copies removed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kernel.config import Paths
from kernel.models import AuditEvent
from output_checks.release.models import ReleaseRequest, RequestFile
from output_checks.release.states import Action, Actor, RequestState
from output_checks.release.storage import IntegrityError, Snapshot
from output_checks.release.workflow.access import SYSTEM, current_files, get_request, move
from output_checks.release.workflow.authoring import audit_snapshot, create_request, submit
from output_checks.release.workflow.limits import Limits, limits, measure_request


@dataclass(frozen=True)
class PendingFile:
    id: int
    path: str
    version: int


@dataclass(frozen=True)
class Preparation:
    request_id: str
    project: str
    files: list[PendingFile]
    limits: Limits


def begin_request(
    session: Session, paths: Paths, *, project: str, author: str, title: str, files: Iterable[tuple[str, str]],
    draft: bool = False,
) -> str:  # fmt: skip
    """A new request in `preparing`, its files chosen but not yet copied (the airlock copies them in the
    background: `Airlock.prepare`); refused before anything is recorded when a file or the whole is over a limit."""
    files = list(files)
    measured = measure_request(session, paths, project, author, [path for path, _ in files])
    request_id = create_request(session, project=project, author=author, title=title)
    request = get_request(session, request_id, author, lock=True)
    for (relative, size), (_, justification) in zip(measured, files, strict=True):
        request.files.append(
            RequestFile(request_id=request_id, path=relative, version=1, current=True, withdrawn=False, sha256="",
                        size=size, snapshot="", justification=justification, released=False)
        )  # fmt: skip
    session.flush()
    move(session, request, Action.PREPARE, Actor.AUTHOR, author, then="draft" if draft else "submit",
         files=[{"path": relative, "size": size} for relative, size in measured])  # fmt: skip
    return request_id


def preparation(session: Session, paths: Paths, request_id: str) -> Preparation | None:
    """What is left to copy of a request in `preparing` (None when it is not, e.g. withdrawn meanwhile)."""
    request = session.get(ReleaseRequest, request_id)
    if request is None or request.state != RequestState.PREPARING.value:
        return None
    pending = [PendingFile(f.id, f.path, f.version) for f in current_files(request)]
    return Preparation(request_id, request.project, pending, limits(session, paths, request.project))


def preparing(session: Session) -> list[str]:
    """Requests a restart left in `preparing` (their copies are taken again)."""
    return list(session.scalars(select(ReleaseRequest.id).where(ReleaseRequest.state == RequestState.PREPARING.value)))


def snapshot_taken(session: Session, request_id: str, file_id: int, snap: Snapshot) -> bool:
    """Record one file's snapshot and hash (audited as the file added); False when the request is no longer being
    prepared (the caller discards the copy)."""
    request = session.get(ReleaseRequest, request_id, with_for_update=True)
    if request is None or request.state != RequestState.PREPARING.value:
        return False
    record = next(f for f in request.files if f.id == file_id)
    record.sha256, record.size, record.snapshot = snap.sha256, snap.size, snap.relative
    audit_snapshot(session, request, request.author, record, snap)
    return True


def _intent(session: Session, request_id: str) -> str:
    """What the author chose when they asked (submit, or keep as a draft), from the request's `prepare` event."""
    event = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.target == f"request:{request_id}", AuditEvent.action == f"airlock.{Action.PREPARE.value}")
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    ).first()
    return (event.detail or {}).get("then", "draft") if event else "draft"


def prepared(session: Session, request_id: str) -> bool:
    """Every file copied: the request becomes a draft, and is submitted for the checks when its author chose so
    (True: the caller starts the checks)."""
    request = session.get(ReleaseRequest, request_id, with_for_update=True)
    if request is None or request.state != RequestState.PREPARING.value:
        return False
    files = current_files(request)
    if any(not f.snapshot for f in files):
        raise IntegrityError(f"request {request_id} has a file without its snapshot")
    move(session, request, Action.PREPARED, Actor.SYSTEM, SYSTEM,
         files=[{"path": f.path, "sha256": f.sha256, "size": f.size} for f in files])  # fmt: skip
    if _intent(session, request_id) != "submit":
        return False
    submit(session, request_id, request.author)
    return True


def refuse(session: Session, request_id: str, problem: str) -> None:
    """A copy could not be taken: the airlock withdraws the request, with the reason its author is shown."""
    request = session.get(ReleaseRequest, request_id, with_for_update=True)
    if request is None or request.state != RequestState.PREPARING.value:
        return
    move(session, request, Action.REFUSE, Actor.SYSTEM, SYSTEM, problem=problem)


def refusal(session: Session, request_id: str) -> str | None:
    """Why the airlock refused the request's files, if it did."""
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.target == f"request:{request_id}",
                                 AuditEvent.action == f"airlock.{Action.REFUSE.value}").limit(1)
    ).first()  # fmt: skip
    return (event.detail or {}).get("problem") if event else None
