"""Release and download: an approved request's approved files copied to the egress store byte for byte as
reviewed (their tables joining the project's release ledger), a released file for its requester only, and the
audited views of a request by its checkers."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from kernel import audit
from kernel.digests import sha256_file
from kernel.errors import NotFoundError
from output_checks.release import ledger as release_ledger
from output_checks.release.ledger import Cell
from output_checks.release.models import Release
from output_checks.release.states import Action, Activity, Actor, Decision, RequestState
from output_checks.release.storage import AirlockStore, IntegrityError
from output_checks.release.workflow.access import (
    InvalidRequest,
    current_files,
    file_named,
    get_request,
    move,
    now,
    permit,
    require,
)
from output_checks.release.workflow.reviews import outcomes


def release(
    session: Session, store: AirlockStore, request_id: str, user: str, ledger: dict[int, list[Cell]] | None = None
) -> list[str]:
    """Copy every approved file to the egress store; each copy must hash to the reviewed snapshot's SHA-256, or
    nothing is released (the abort is audited by the caller in its own transaction: see `release_aborted`).
    `ledger` holds the keyed cells of the request's tables (by file id): those of approved files join the
    project's release ledger, each with its audit event."""
    request = get_request(session, request_id, user, lock=True)
    require(session, request, user, Actor.CHECKER)
    result = outcomes(session, request)
    if request.state != RequestState.APPROVED.value or result is None:
        raise InvalidRequest(f"only an approved request can be released ({request.state})")
    approved = [f for f in current_files(request) if result.get(f.id) is Decision.APPROVE]
    copied: list[str] = []
    for f in approved:
        target = store.release(request.project, request.id, f.path, f.snapshot, f.sha256)  # raises IntegrityError
        f.released = True
        session.add(Release(project=request.project, request_id=request.id, file_id=f.id, sha256=f.sha256,
                            egress=str(target.relative_to(store.egress)), released_by=user, at=now()))  # fmt: skip
        copied.append(f.path)
        if cells := (ledger or {}).get(f.id):
            release_ledger.record(session, project=request.project, request_id=request.id, file=f, cells=cells,
                                  actor=user)  # fmt: skip
    move(session, request, Action.RELEASE, Actor.CHECKER, user,
         files=[{"path": f.path, "sha256": f.sha256} for f in approved])  # fmt: skip
    return copied


def release_aborted(session: Session, request_id: str, user: str, problem: str) -> None:
    audit.record(session, actor=user, action="airlock.release_aborted", target=f"request:{request_id}", problem=problem)


def download(session: Session, store: AirlockStore, request_id: str, user: str, path: str) -> Path:
    """The released file for its requester, verified against the reviewed hash; audited."""
    request = get_request(session, request_id, user)
    permit(session, request, user, Activity.DOWNLOAD)
    record = file_named(request, path)
    if not record.released:
        raise NotFoundError(f"{path} was not released")
    target = store.egress_path(request.project, request.id, record.path)
    if not target.is_file() or sha256_file(target) != record.sha256:
        raise IntegrityError(f"the released copy of {path} does not match what was reviewed")
    audit.record(session, actor=user, action="airlock.download", target=f"request:{request.id}",
                 project=request.project, path=path, sha256=record.sha256)  # fmt: skip
    return target


def record_view(session: Session, request_id: str, user: str, what: str) -> None:
    request = get_request(session, request_id, user)
    audit.record(session, actor=user, action="airlock.view", target=f"request:{request.id}", project=request.project,
                 what=what)  # fmt: skip
