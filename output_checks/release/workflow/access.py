"""Who is who on a request, and the one place their permissions are checked: the author, an output checker of the
project, or no one who may see it; moves between states (`move`, against `TRANSITIONS`) and everything else
(`permit`, against `PERMISSIONS`), both before any side effect."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric.models import ProjectMember
from fabric.projects import ProjectRole
from kernel import audit
from kernel.clock import utcnow
from kernel.errors import EnclaveError, NotFoundError
from output_checks.release.models import Release, ReleaseRequest, RequestFile
from output_checks.release.states import (
    PERMISSIONS,
    REFUSED_IN_STATE,
    TRANSITIONS,
    Action,
    Activity,
    Actor,
    RequestState,
    allowed,
    ever_permitted,
    permitted,
)

SYSTEM = "airlock-checks"


class NotAllowed(EnclaveError):
    """The actor may not do this (HTTP 403)."""


class InvalidRequest(EnclaveError):
    """The request is not in a state, or the input not in a shape, for this (HTTP 409/400)."""


def now() -> datetime:
    return utcnow(whole_seconds=True)


def project_roles(session: Session, project: str, user: str) -> set[str]:
    rows = session.scalars(
        select(ProjectMember.role).where(ProjectMember.project_name == project, ProjectMember.username == user)
    )
    return set(rows)


def actor_for(session: Session, request: ReleaseRequest, user: str) -> Actor | None:
    """The author is always the author, even if also a checker on the project: never their own reviewer. And the
    author only while still a researcher of the request's project: taken off it (`enclave project remove-member`,
    `set-role`, a replaced spec), they can no longer see, revise, submit or download their requests, whose files
    would otherwise be snapshotted afresh from the project's outputs for someone whose access has ended."""
    roles = project_roles(session, request.project, user)
    if user == request.author:
        return Actor.AUTHOR if ProjectRole.RESEARCHER in roles else None
    if ProjectRole.OUTPUT_CHECKER in roles:
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


def move(session: Session, request: ReleaseRequest, action: Action, actor: Actor, user: str, **detail: Any) -> None:
    """Take `request` from its state along `action` (TRANSITIONS), audited; refused before any change otherwise."""
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


def require(session: Session, request: ReleaseRequest, user: str, wanted: Actor) -> None:
    """`user` is the request's `wanted` actor (for moves, which `move` then checks against the state)."""
    actor = actor_for(session, request, user)
    if actor is not wanted:
        if wanted is Actor.CHECKER and user == request.author:
            raise NotAllowed("authors can never review or release their own request")
        raise NotAllowed(f"only the request's {wanted.value} may do this")


# Who is refused, when the refusal is about who they are rather than the request's state.
NOT_YOURS = {Activity.DOWNLOAD: "only the requester can download a released file"}


def permit(session: Session, request: ReleaseRequest, user: str, activity: Activity) -> Actor:
    """`user`'s part in `request` when PERMISSIONS lets them do `activity` in its state; NotAllowed when they may not
    do it in any state, InvalidRequest when not in this one."""
    actor = actor_for(session, request, user)
    state = RequestState(request.state)
    if permitted(state, activity, actor):
        return actor  # type: ignore[return-value]  (permitted means not None)
    if not ever_permitted(activity, actor):
        if activity in NOT_YOURS:
            raise NotAllowed(NOT_YOURS[activity])
        wanted = sorted({a for who in PERMISSIONS[activity].values() for a in who})
        if wanted == [Actor.CHECKER] and user == request.author:
            raise NotAllowed("authors can never review or release their own request")
        raise NotAllowed(f"only the request's {' or '.join(a.value for a in wanted)} may do this")
    raise InvalidRequest(REFUSED_IN_STATE[activity].format(state=state.value))


def current_files(request: ReleaseRequest, *, include_withdrawn: bool = False) -> list[RequestFile]:
    return [f for f in request.files if f.current and (include_withdrawn or not f.withdrawn)]


def file_named(request: ReleaseRequest, path: str) -> RequestFile:
    for f in current_files(request, include_withdrawn=True):
        if f.path == path:
            return f
    raise NotFoundError(f"request {request.id} has no file {path!r}")


def previously_released(session: Session, project: str, sha256: str) -> list[str]:
    return list(session.scalars(select(Release.request_id).where(Release.project == project, Release.sha256 == sha256)))
