"""The author's verbs: create a request, add, justify, revise and withdraw its files (each one snapshotted and
hashed), submit it for the checks, withdraw it. Each takes the caller's session and writes its audit event in it."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.orm import Session

from fabric.projects import ProjectRole, get_project, project_spec
from kernel import audit
from kernel.config import Paths
from output_checks.release.models import ReleaseRequest, RequestFile
from output_checks.release.states import Action, Activity, Actor, RequestState
from output_checks.release.storage import AirlockStore, Snapshot
from output_checks.release.workflow.access import (
    InvalidRequest,
    NotAllowed,
    current_files,
    file_named,
    get_request,
    move,
    now,
    permit,
    previously_released,
    project_roles,
    require,
)
from output_checks.release.workflow.limits import measure_request, output_path, room

DEFAULT_REVIEWS = 2


def create_request(session: Session, *, project: str, author: str, title: str, reviews: int | None = None) -> str:
    get_project(session, project)
    if ProjectRole.RESEARCHER not in project_roles(session, project, author):
        raise NotAllowed(f"{author} is not a researcher on project {project}")
    if not title.strip():
        raise InvalidRequest("a request needs a title")
    spec = project_spec(get_project(session, project))
    required = reviews or (spec.airlock.reviews_required if spec.airlock else None) or DEFAULT_REVIEWS
    request_id = f"r-{now():%Y%m%d}-{secrets.token_hex(4)}"
    at = now()
    session.add(
        ReleaseRequest(
            id=request_id, project=project, author=author, title=title.strip()[:200], state=RequestState.DRAFT.value,
            round=1, reviews_required=required, check_attempts=0, created_at=at, updated_at=at,
        )
    )  # fmt: skip
    session.flush()
    audit.record(session, actor=author, action="airlock.create", target=f"request:{request_id}", project=project)
    return request_id


def add_file(
    session: Session, paths: Paths, store: AirlockStore, request_id: str, user: str, path: str, justification: str = ""
) -> RequestFile:
    request = get_request(session, request_id, user, lock=True)
    permit(session, request, user, Activity.ADD_FILE)
    full, relative = output_path(paths, request.project, path)
    if any(f.path == relative for f in current_files(request, include_withdrawn=True)):
        raise InvalidRequest(f"{relative} is already in the request (revise it instead)")
    limit = room(session, paths, request, full, relative, exclude=None)
    return _snapshot(session, store, request, user, full, relative, 1, justification, limit)


def _snapshot(
    session: Session, store: AirlockStore, request: ReleaseRequest, user: str, full: Path, relative: str,
    version: int, justification: str, limit: int | None = None,
) -> RequestFile:  # fmt: skip
    record = RequestFile(
        request_id=request.id, path=relative, version=version, current=True, withdrawn=False, sha256="", size=0,
        snapshot="", justification=justification, released=False,
    )  # fmt: skip
    session.add(record)
    session.flush()
    outputs = full.parents[len(Path(relative).parts) - 1]  # the resolved outputs folder
    snap = store.snapshot(request.id, record.id, version, full, beneath=outputs, limit=limit, shown=relative)
    record.sha256, record.size, record.snapshot = snap.sha256, snap.size, snap.relative
    if record not in request.files:
        request.files.append(record)
    audit_snapshot(session, request, user, record, snap)
    return record


def audit_snapshot(session: Session, request: ReleaseRequest, user: str, record: RequestFile, snap: Snapshot) -> None:
    relative, version = record.path, record.version
    audit.record(
        session, actor=user, action="airlock.add_file", target=f"request:{request.id}", project=request.project,
        path=relative, version=version, sha256=snap.sha256, size=snap.size,
        previously_released=previously_released(session, request.project, snap.sha256),
    )  # fmt: skip


def justify(session: Session, request_id: str, user: str, path: str, text: str) -> None:
    request = get_request(session, request_id, user, lock=True)
    permit(session, request, user, Activity.JUSTIFY)
    record = file_named(request, path)
    record.justification = text
    audit.record(session, actor=user, action="airlock.justify", target=f"request:{request.id}", path=path)


def revise_file(
    session: Session, paths: Paths, store: AirlockStore, request_id: str, user: str, path: str
) -> RequestFile:
    """A new version of a file from the outputs folder; its earlier reviews no longer count (a new round starts)."""
    request = get_request(session, request_id, user, lock=True)
    permit(session, request, user, Activity.REVISE)
    old = file_named(request, path)
    full, relative = output_path(paths, request.project, path)
    limit = room(session, paths, request, full, relative, exclude=old.id)
    old.current = False
    session.flush()
    return _snapshot(session, store, request, user, full, relative, old.version + 1, old.justification, limit)


def withdraw_file(session: Session, request_id: str, user: str, path: str) -> None:
    request = get_request(session, request_id, user, lock=True)
    permit(session, request, user, Activity.WITHDRAW_FILE)
    record = file_named(request, path)
    record.withdrawn = True
    audit.record(session, actor=user, action="airlock.withdraw_file", target=f"request:{request.id}", path=path)


def submit(session: Session, request_id: str, user: str) -> None:
    """Draft or returned -> checking: the snapshots are what will be checked and reviewed."""
    request = get_request(session, request_id, user, lock=True)
    require(session, request, user, Actor.AUTHOR)
    files = current_files(request)
    if not files:
        raise InvalidRequest("a request needs at least one file")
    state = RequestState(request.state)
    action = Action.RESUBMIT if state is RequestState.RETURNED else Action.SUBMIT
    if action is Action.RESUBMIT:
        request.round += 1
    for f in files:
        f.verdict, f.findings, f.kind = None, None, None
    request.check_attempts = 0
    move(session, request, action, Actor.AUTHOR, user, round=request.round,
         files=[{"path": f.path, "version": f.version, "sha256": f.sha256} for f in files])  # fmt: skip


def withdraw(session: Session, request_id: str, user: str) -> None:
    request = get_request(session, request_id, user, lock=True)
    require(session, request, user, Actor.AUTHOR)
    move(session, request, Action.WITHDRAW, Actor.AUTHOR, user)


def request_release(
    session: Session, paths: Paths, store: AirlockStore, *, project: str, author: str, title: str,
    files: Iterable[tuple[str, str]], draft: bool = False,
) -> str:  # fmt: skip
    """A new request for `files` ((path in the project's outputs folder, justification) pairs): measured against
    the policy's limits, created, each file snapshotted and hashed, then submitted for the automated checks unless
    `draft`, all in the caller's transaction. For small requests (`Airlock.new_request` decides); larger ones are
    prepared in the background (`begin_request`). The caller starts the checks once the transaction commits."""
    files = list(files)
    measure_request(session, paths, project, author, [path for path, _ in files])  # every limit before any copy
    request_id = create_request(session, project=project, author=author, title=title)
    try:
        for path, justification in files:
            add_file(session, paths, store, request_id, author, path, justification)
        if not draft:
            submit(session, request_id, author)
    except Exception:
        store.remove_request(request_id)  # the transaction rolls back: leave no snapshots behind either
        raise
    return request_id
