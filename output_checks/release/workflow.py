"""The release workflow's rules, in one layer: who may do what to a request, in which state, and what each step
records. The CLI and the web app call these functions and turn their exceptions into exit codes or HTTP errors.

Every function takes the caller's session (one transaction) and writes its audit event in it, so a change and its
audit entry commit together or not at all. Moves between states go through `_move`, which checks the transition
table (states.py) before any side effect.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from fabric import audit
from fabric.config import Paths
from fabric.errors import FabricError, NotFoundError
from fabric.models import AuditEvent, ProjectMember
from fabric.projects import ProjectRole, get_project, project_spec
from output_checks.release import ledger as release_ledger
from output_checks.release.ledger import Cell
from output_checks.release.models import Release, ReleaseRequest, RequestFile, Review, Vote
from output_checks.release.states import (
    EDITABLE,
    TRANSITIONS,
    Action,
    Actor,
    Decision,
    RequestState,
    allowed,
)
from output_checks.release.storage import AirlockStore, IntegrityError, Snapshot, TooLarge, megabytes, output_size

SYSTEM = "airlock-checks"
DEFAULT_REVIEWS = 2
MAX_CHECK_ATTEMPTS = 3


class NotAllowed(FabricError):
    """The actor may not do this (HTTP 403)."""


class InvalidRequest(FabricError):
    """The request is not in a state, or the input not in a shape, for this (HTTP 409/400)."""


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


# ------------------------------------------------------------------------------------------------ who is who


def project_roles(session: Session, project: str, user: str) -> set[str]:
    rows = session.scalars(
        select(ProjectMember.role).where(ProjectMember.project_name == project, ProjectMember.username == user)
    )
    return set(rows)


def actor_for(session: Session, request: ReleaseRequest, user: str) -> Actor | None:
    """The author is always the author, even if also a checker on the project: never their own reviewer."""
    if user == request.author:
        return Actor.AUTHOR
    if ProjectRole.OUTPUT_CHECKER in project_roles(session, request.project, user):
        return Actor.CHECKER
    return None


def can_view(session: Session, request: ReleaseRequest, user: str) -> bool:
    return actor_for(session, request, user) is not None


def get_request(session: Session, request_id: str, user: str, *, lock: bool = False) -> ReleaseRequest:
    """The request, if `user` may see it; a request of another project is 'not found', not 'forbidden'.
    `lock` takes a row lock for the transaction (PostgreSQL; SQLite serialises writers itself), so that two
    reviewers submitting at once are tallied once."""
    request = session.get(ReleaseRequest, request_id, with_for_update=lock)
    if request is None or not can_view(session, request, user):
        raise NotFoundError(f"no release request {request_id!r} that you can see")
    return request


def _move(session: Session, request: ReleaseRequest, action: Action, actor: Actor, user: str, **detail: Any) -> None:
    state = RequestState(request.state)
    if not allowed(state, action, actor):
        raise NotAllowed(f"{actor.value} cannot {action.value} a request that is {state.value}")
    target = TRANSITIONS[(state, action)]
    request.state = target.value
    request.updated_at = now()
    audit.record(
        session,
        actor=user,
        action=f"airlock.{action.value}",
        target=f"request:{request.id}",
        project=request.project,
        state_from=state.value,
        state_to=target.value,
        **detail,
    )


def _require(session: Session, request: ReleaseRequest, user: str, wanted: Actor) -> None:
    actor = actor_for(session, request, user)
    if actor is not wanted:
        if wanted is Actor.CHECKER and user == request.author:
            raise NotAllowed("authors can never review or release their own request")
        raise NotAllowed(f"only the request's {wanted.value} may do this")


# ------------------------------------------------------------------------------------------------ files


def current_files(request: ReleaseRequest, *, include_withdrawn: bool = False) -> list[RequestFile]:
    return [f for f in request.files if f.current and (include_withdrawn or not f.withdrawn)]


def _file(request: ReleaseRequest, path: str) -> RequestFile:
    for f in current_files(request, include_withdrawn=True):
        if f.path == path:
            return f
    raise NotFoundError(f"request {request.id} has no file {path!r}")


def _output_path(paths: Paths, project: str, path: str) -> tuple[Path, str]:
    """A file inside the project's outputs folder (resolved: no link or '..' may lead out of it)."""
    outputs = paths.project_outputs(project).resolve()
    candidate = Path(path)
    full = (candidate if candidate.is_absolute() else outputs / candidate).resolve()
    if not full.is_relative_to(outputs):
        raise NotAllowed(f"{path}: only files in the project's outputs folder can be requested")
    if not full.is_file():
        raise InvalidRequest(f"{path}: no such file in the project's outputs folder")
    return full, full.relative_to(outputs).as_posix()


def previously_released(session: Session, project: str, sha256: str) -> list[str]:
    return list(session.scalars(select(Release.request_id).where(Release.project == project, Release.sha256 == sha256)))


# ------------------------------------------------------------------------------------------------ size limits


@dataclass(frozen=True)
class Limits:
    """The policy's byte limits on what one submission may copy (`submit_max_file_mb`, `submit_max_request_mb`)."""

    per_file: int
    per_request: int


def limits(session: Session, paths: Paths, project: str) -> Limits:
    from output_checks.release.site_policy import project_overrides, resolve_policy

    policy = resolve_policy(paths, project_overrides(session, project))
    return Limits(policy.submit_max_file_bytes, policy.submit_max_request_bytes)


def _measure(full: Path, relative: str, per_file: int) -> int:
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


def _over_request(total: int, per_request: int) -> TooLarge:
    return TooLarge(
        f"the chosen files come to {megabytes(total)}, over the airlock's limit of {megabytes(per_request)} per "
        "request; nothing was submitted. Choose fewer or smaller files, or split them across requests"
    )


def _room(
    session: Session, paths: Paths, request: ReleaseRequest, full: Path, relative: str, exclude: int | None
) -> int:
    """How many bytes a file added to (or revised in) `request` may have: refused now when it is already over a
    limit; the copy refuses it too if it grows past the returned figure."""
    bound = limits(session, paths, request.project)
    size = _measure(full, relative, bound.per_file)
    others = sum(f.size for f in current_files(request) if f.id != exclude)
    if others + size > bound.per_request:
        raise _over_request(others + size, bound.per_request)
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
        full, relative = _output_path(paths, project, path)
        if any(relative == seen for seen, _ in measured):
            raise InvalidRequest(f"{relative} is chosen twice")
        measured.append((relative, _measure(full, relative, bound.per_file)))
    total = sum(size for _, size in measured)
    if total > bound.per_request:
        raise _over_request(total, bound.per_request)
    return measured


def refused_submission(session: Session, project: str, author: str, problem: str) -> None:
    """A submission refused over a size limit before anything was recorded: audited all the same."""
    audit.record(session, actor=author, action="airlock.submit_refused", target=f"project:{project}",
                 project=project, problem=problem)  # fmt: skip


# ------------------------------------------------------------------------------------------------ author


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
    _require(session, request, user, Actor.AUTHOR)
    if RequestState(request.state) not in EDITABLE:
        raise InvalidRequest(f"files can be added only while the request is a draft or returned ({request.state})")
    full, relative = _output_path(paths, request.project, path)
    if any(f.path == relative for f in current_files(request, include_withdrawn=True)):
        raise InvalidRequest(f"{relative} is already in the request (revise it instead)")
    limit = _room(session, paths, request, full, relative, exclude=None)
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
    _audit_snapshot(session, request, user, record, snap)
    return record


def _audit_snapshot(session: Session, request: ReleaseRequest, user: str, record: RequestFile, snap: Snapshot) -> None:
    relative, version = record.path, record.version
    audit.record(
        session, actor=user, action="airlock.add_file", target=f"request:{request.id}", project=request.project,
        path=relative, version=version, sha256=snap.sha256, size=snap.size,
        previously_released=previously_released(session, request.project, snap.sha256),
    )  # fmt: skip


def justify(session: Session, request_id: str, user: str, path: str, text: str) -> None:
    request = get_request(session, request_id, user, lock=True)
    _require(session, request, user, Actor.AUTHOR)
    if RequestState(request.state) not in EDITABLE:
        raise InvalidRequest(
            f"justifications can be changed only while the request is a draft or returned ({request.state})"
        )
    record = _file(request, path)
    record.justification = text
    audit.record(session, actor=user, action="airlock.justify", target=f"request:{request.id}", path=path)


def revise_file(
    session: Session, paths: Paths, store: AirlockStore, request_id: str, user: str, path: str
) -> RequestFile:
    """A new version of a file from the outputs folder; its earlier reviews no longer count (a new round starts)."""
    request = get_request(session, request_id, user, lock=True)
    _require(session, request, user, Actor.AUTHOR)
    if RequestState(request.state) not in EDITABLE:
        raise InvalidRequest(f"files can be revised only while the request is a draft or returned ({request.state})")
    old = _file(request, path)
    full, relative = _output_path(paths, request.project, path)
    limit = _room(session, paths, request, full, relative, exclude=old.id)
    old.current = False
    session.flush()
    return _snapshot(session, store, request, user, full, relative, old.version + 1, old.justification, limit)


def withdraw_file(session: Session, request_id: str, user: str, path: str) -> None:
    request = get_request(session, request_id, user, lock=True)
    _require(session, request, user, Actor.AUTHOR)
    if RequestState(request.state) not in (*EDITABLE, RequestState.CHECKING, RequestState.IN_REVIEW):
        raise InvalidRequest(f"a file cannot be withdrawn from a request that is {request.state}")
    record = _file(request, path)
    record.withdrawn = True
    audit.record(session, actor=user, action="airlock.withdraw_file", target=f"request:{request.id}", path=path)


def submit(session: Session, request_id: str, user: str) -> None:
    """Draft or returned -> checking: the snapshots are what will be checked and reviewed."""
    request = get_request(session, request_id, user, lock=True)
    _require(session, request, user, Actor.AUTHOR)
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
    _move(session, request, action, Actor.AUTHOR, user, round=request.round,
          files=[{"path": f.path, "version": f.version, "sha256": f.sha256} for f in files])  # fmt: skip


def withdraw(session: Session, request_id: str, user: str) -> None:
    request = get_request(session, request_id, user, lock=True)
    _require(session, request, user, Actor.AUTHOR)
    _move(session, request, Action.WITHDRAW, Actor.AUTHOR, user)


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


# ------------------------------------------------------------------------------------------------ preparing
# A large request is taken in two steps, so no one waits on its copy and no transaction is held open across it:
# `begin_request` records the request and its chosen files (sizes measured, limits checked) in `preparing`; the
# airlock copies the files outside any transaction and records each snapshot (`snapshot_taken`); `prepared` makes
# it a draft and, when the author chose so, submits it. A copy that fails (grew past the limit, replaced by a
# link, vanished) is `refuse`d: the request is withdrawn by the airlock with the reason, and its copies removed.


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
    _move(session, request, Action.PREPARE, Actor.AUTHOR, author, then="draft" if draft else "submit",
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
    _audit_snapshot(session, request, request.author, record, snap)
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
    _move(session, request, Action.PREPARED, Actor.SYSTEM, SYSTEM,
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
    _move(session, request, Action.REFUSE, Actor.SYSTEM, SYSTEM, problem=problem)


def refusal(session: Session, request_id: str) -> str | None:
    """Why the airlock refused the request's files, if it did."""
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.target == f"request:{request_id}",
                                 AuditEvent.action == f"airlock.{Action.REFUSE.value}").limit(1)
    ).first()  # fmt: skip
    return (event.detail or {}).get("problem") if event else None


# ------------------------------------------------------------------------------------------------ retention


def purgeable(session: Session, closed_before: datetime) -> list[str]:
    """Withdrawn and rejected requests closed before `closed_before` (their snapshots may be removed)."""
    return list(
        session.scalars(
            select(ReleaseRequest.id).where(
                ReleaseRequest.state.in_([RequestState.WITHDRAWN.value, RequestState.REJECTED.value]),
                ReleaseRequest.updated_at < closed_before,
            )
        )
    )


def purge_snapshot(session: Session, store: AirlockStore, request_id: str, retention_days: float) -> bool:
    """Remove a closed request's snapshot bytes, audited in the same transaction (the record and its hashes stay).
    False when there is nothing to remove."""
    request = session.get(ReleaseRequest, request_id, with_for_update=True)
    if request is None or request.state not in (RequestState.WITHDRAWN.value, RequestState.REJECTED.value):
        return False
    if not store.has_snapshots(request_id):
        return False
    audit.record(session, actor=SYSTEM, action="airlock.snapshot_purged", target=f"request:{request_id}",
                 project=request.project, state=request.state, retention_days=retention_days,
                 files=[{"path": f.path, "version": f.version, "sha256": f.sha256} for f in request.files
                        if f.snapshot])  # fmt: skip
    session.flush()
    store.remove_request(request_id)  # last: a failure here rolls the audit event back with it
    return True


# ------------------------------------------------------------------------------------------------ checks (system)


def pending_checks(session: Session) -> list[str]:
    return list(session.scalars(select(ReleaseRequest.id).where(ReleaseRequest.state == RequestState.CHECKING.value)))


def record_checks(session: Session, request_id: str, results: dict[int, dict[str, Any]]) -> None:
    """Store each file's verdict and findings (the engine's FileReport JSON) and open the request for review."""
    request = session.get(ReleaseRequest, request_id, with_for_update=True)
    if request is None or request.state != RequestState.CHECKING.value:
        return  # withdrawn meanwhile, or already recorded by another runner
    for f in current_files(request):
        report = results.get(f.id)
        if report is None:
            f.verdict, f.kind = "review", "unchecked"
            f.findings = [{"check": "engine", "verdict": "review", "message": "the automated checks gave no result"}]
        else:
            f.verdict, f.kind, f.findings = report["verdict"], report["type"], report["findings"]
    files = current_files(request)
    verdicts = Counter(f.verdict for f in files)
    summary = [{"path": f.path, "sha256": f.sha256, "verdict": f.verdict} for f in files]
    _move(session, request, Action.CHECKS_DONE, Actor.SYSTEM, SYSTEM, verdicts=dict(verdicts), files=summary)


def checks_failed(session: Session, request_id: str, problem: str) -> bool:
    """Count a crashed check run; after MAX_CHECK_ATTEMPTS the files go to review with the reason (never stuck).
    True when the run should be retried."""
    request = session.get(ReleaseRequest, request_id, with_for_update=True)
    if request is None or request.state != RequestState.CHECKING.value:
        return False
    request.check_attempts += 1
    audit.record(session, actor=SYSTEM, action="airlock.checks_failed", target=f"request:{request_id}",
                 attempt=request.check_attempts, problem=problem)  # fmt: skip
    if request.check_attempts < MAX_CHECK_ATTEMPTS:
        return True
    failed = {
        "check": "engine",
        "verdict": "review",
        "message": f"the automated checks failed {request.check_attempts} times",
    }
    record_checks(session, request_id, {f.id: {"verdict": "review", "type": "unchecked", "findings": [failed]}
                                        for f in current_files(request)})  # fmt: skip
    return False


# ------------------------------------------------------------------------------------------------ reviews


def _review(session: Session, request: ReleaseRequest, reviewer: str) -> Review:
    review = session.scalars(
        select(Review).where(
            Review.request_id == request.id, Review.round == request.round, Review.reviewer == reviewer
        )
    ).first()
    if review is None:
        done = submitted_reviews(session, request)
        if len(done) >= request.reviews_required:
            raise InvalidRequest("this round already has all its reviews")
        review = Review(request_id=request.id, round=request.round, reviewer=reviewer)
        session.add(review)
        session.flush()
    return review


def submitted_reviews(session: Session, request: ReleaseRequest) -> list[Review]:
    return list(
        session.scalars(
            select(Review).where(
                Review.request_id == request.id, Review.round == request.round, Review.submitted_at.is_not(None)
            )
        )
    )


def vote(
    session: Session, request_id: str, reviewer: str, path: str, decision: Decision | str, comment: str = "",
    override_reason: str = "",
) -> None:  # fmt: skip
    request = get_request(session, request_id, reviewer, lock=True)
    _require(session, request, reviewer, Actor.CHECKER)
    if request.state != RequestState.IN_REVIEW.value:
        raise InvalidRequest(f"only a request in review can be reviewed ({request.state})")
    try:
        decision = Decision(decision)
    except ValueError:
        raise InvalidRequest(f"a decision is one of {', '.join(d.value for d in Decision)}") from None
    record = _file(request, path)
    if record.withdrawn:
        raise InvalidRequest(f"{path} was withdrawn")
    override = decision is Decision.APPROVE and record.verdict == "block"
    if override and not override_reason.strip():
        raise InvalidRequest(f"{path}: the checks blocked this file; approving it needs a written reason")
    review = _review(session, request, reviewer)
    if review.submitted_at is not None:
        raise InvalidRequest("your review of this round is already submitted")
    existing = next((v for v in review.votes if v.file_id == record.id), None)
    if existing is None:
        existing = Vote(review_id=review.id, file_id=record.id, decision=decision.value, at=now())
        session.add(existing)
        review.votes.append(existing)
    existing.decision, existing.comment, existing.at = decision.value, comment, now()
    existing.override_reason = override_reason.strip() if override else ""
    audit.record(
        session, actor=reviewer, action="airlock.override" if override else "airlock.vote",
        target=f"request:{request.id}", project=request.project, path=path, sha256=record.sha256,
        round=request.round, decision=decision.value, **({"reason": override_reason.strip()} if override else {}),
    )  # fmt: skip


def submit_review(session: Session, request_id: str, reviewer: str) -> None:
    request = get_request(session, request_id, reviewer, lock=True)
    _require(session, request, reviewer, Actor.CHECKER)
    if request.state != RequestState.IN_REVIEW.value:
        raise InvalidRequest(f"only a request in review can be reviewed ({request.state})")
    review = _review(session, request, reviewer)
    voted = {v.file_id for v in review.votes}
    missing = [f.path for f in current_files(request) if f.id not in voted]
    if missing:
        raise InvalidRequest(f"decide every file first: {', '.join(missing[:5])}")
    review.submitted_at = now()
    audit.record(session, actor=reviewer, action="airlock.review", target=f"request:{request.id}",
                 project=request.project, round=request.round)  # fmt: skip
    session.flush()
    if len(submitted_reviews(session, request)) >= request.reviews_required:
        _tally(session, request)


def outcomes(session: Session, request: ReleaseRequest) -> dict[int, Decision] | None:
    """Each current file's outcome once the round has all its reviews (None before): any reject rejects, else any
    needs-changes returns it, else approved."""
    reviews = submitted_reviews(session, request)
    if len(reviews) < request.reviews_required:
        return None
    out: dict[int, Decision] = {}
    for f in current_files(request):
        decisions = {Decision(v.decision) for r in reviews for v in r.votes if v.file_id == f.id}
        if Decision.REJECT in decisions:
            out[f.id] = Decision.REJECT
        elif Decision.NEEDS_CHANGES in decisions:
            out[f.id] = Decision.NEEDS_CHANGES
        else:
            out[f.id] = Decision.APPROVE
    return out


def _tally(session: Session, request: ReleaseRequest) -> None:
    result = outcomes(session, request)
    assert result is not None
    counts = Counter(d.value for d in result.values())
    if counts[Decision.NEEDS_CHANGES.value]:
        action = Action.RETURN
    elif counts[Decision.APPROVE.value]:
        action = Action.APPROVE
    else:
        action = Action.REJECT
    _move(session, request, action, Actor.SYSTEM, SYSTEM, outcome=dict(counts), round=request.round)


@dataclass(frozen=True)
class VoteView:
    reviewer: str
    path: str
    decision: str
    comment: str
    override_reason: str
    submitted: bool


def visible_votes(session: Session, request: ReleaseRequest, viewer: str) -> list[VoteView]:
    """Votes `viewer` may see: their own always; everyone's once the round has all its reviews (independence)."""
    complete = outcomes(session, request) is not None
    paths = {f.id: f.path for f in request.files}
    out = []
    for review in session.scalars(select(Review).where(Review.request_id == request.id, Review.round == request.round)):
        if review.reviewer != viewer and not complete:
            continue
        for v in review.votes:
            out.append(VoteView(review.reviewer, paths.get(v.file_id, "?"), v.decision, v.comment,
                                v.override_reason, review.submitted_at is not None))  # fmt: skip
    return out


def review_queue_query(reviewer: str) -> Select[tuple[ReleaseRequest]]:
    """The query behind `review_queue`, newest first (the web app pages through it)."""
    projects = select(ProjectMember.project_name).where(
        ProjectMember.username == reviewer, ProjectMember.role == ProjectRole.OUTPUT_CHECKER.value
    )
    return (
        select(ReleaseRequest)
        .where(ReleaseRequest.project.in_(projects), ReleaseRequest.author != reviewer,
               ReleaseRequest.state.in_([RequestState.IN_REVIEW.value, RequestState.APPROVED.value]))
        .order_by(ReleaseRequest.updated_at.desc(), ReleaseRequest.id)
    )  # fmt: skip


def review_queue(session: Session, reviewer: str) -> list[ReleaseRequest]:
    """Requests on projects `reviewer` checks, not their own, that are in review or approved (to release); the
    page shows whether their own review of the round is started or submitted."""
    return list(session.scalars(review_queue_query(reviewer)))


def my_requests_query(author: str) -> Select[tuple[ReleaseRequest]]:
    """The query behind `my_requests`, newest first (the web app pages through it)."""
    return (
        select(ReleaseRequest)
        .where(ReleaseRequest.author == author)
        .order_by(ReleaseRequest.updated_at.desc(), ReleaseRequest.id)
    )


def my_requests(session: Session, author: str) -> list[ReleaseRequest]:
    return list(session.scalars(my_requests_query(author)))


def count_requests(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ReleaseRequest)) or 0


# ------------------------------------------------------------------------------------------------ release


def release(
    session: Session, store: AirlockStore, request_id: str, user: str, ledger: dict[int, list[Cell]] | None = None
) -> list[str]:
    """Copy every approved file to the egress store; each copy must hash to the reviewed snapshot's SHA-256, or
    nothing is released (the abort is audited by the caller in its own transaction: see `release_aborted`).
    `ledger` holds the keyed cells of the request's tables (by file id): those of approved files join the
    project's release ledger, each with its audit event."""
    request = get_request(session, request_id, user, lock=True)
    _require(session, request, user, Actor.CHECKER)
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
    _move(session, request, Action.RELEASE, Actor.CHECKER, user,
          files=[{"path": f.path, "sha256": f.sha256} for f in approved])  # fmt: skip
    return copied


def release_aborted(session: Session, request_id: str, user: str, problem: str) -> None:
    audit.record(session, actor=user, action="airlock.release_aborted", target=f"request:{request_id}", problem=problem)


def download(session: Session, store: AirlockStore, request_id: str, user: str, path: str) -> Path:
    """The released file for its requester, verified against the reviewed hash; audited."""
    request = get_request(session, request_id, user)
    if user != request.author:
        raise NotAllowed("only the requester can download a released file")
    if request.state != RequestState.RELEASED.value:
        raise InvalidRequest(f"nothing is released from a request that is {request.state}")
    record = _file(request, path)
    if not record.released:
        raise NotFoundError(f"{path} was not released")
    target = store.egress_path(request.project, request.id, record.path)
    from output_checks.release.storage import sha256_file

    if not target.is_file() or sha256_file(target) != record.sha256:
        raise IntegrityError(f"the released copy of {path} does not match what was reviewed")
    audit.record(session, actor=user, action="airlock.download", target=f"request:{request.id}",
                 project=request.project, path=path, sha256=record.sha256)  # fmt: skip
    return target


def record_view(session: Session, request_id: str, user: str, what: str) -> None:
    request = get_request(session, request_id, user)
    audit.record(session, actor=user, action="airlock.view", target=f"request:{request.id}", project=request.project,
                 what=what)  # fmt: skip


__all__ = ["IntegrityError", "InvalidRequest", "NotAllowed"]
