"""Independent reviews: each output checker decides every file of the round (a blocked file approved only with a
written reason), submits their review, and the tally of all of them decides the request's next state. Votes stay
hidden from other reviewers until the round is complete. Also the review queue, the author's own list and a
project's release history."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from fabric.models import ProjectMember
from fabric.projects import ProjectRole
from kernel import audit
from output_checks.release.models import ReleaseRequest, Review, Vote
from output_checks.release.states import Action, Activity, Actor, Decision, RequestState
from output_checks.release.workflow.access import (
    SYSTEM,
    InvalidRequest,
    current_files,
    file_named,
    get_request,
    move,
    now,
    permit,
)


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
    permit(session, request, reviewer, Activity.VOTE)
    try:
        decision = Decision(decision)
    except ValueError:
        raise InvalidRequest(f"a decision is one of {', '.join(d.value for d in Decision)}") from None
    record = file_named(request, path)
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
    permit(session, request, reviewer, Activity.SUBMIT_REVIEW)
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
    move(session, request, action, Actor.SYSTEM, SYSTEM, outcome=dict(counts), round=request.round)


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


def checked_projects_query(checker: str) -> Select[tuple[str]]:
    """The names of the projects `checker` is an output checker on (a subquery of the lists below)."""
    return select(ProjectMember.project_name).where(
        ProjectMember.username == checker, ProjectMember.role == ProjectRole.OUTPUT_CHECKER.value
    )


def review_queue_query(reviewer: str) -> Select[tuple[ReleaseRequest]]:
    """The query behind `review_queue`, newest first (the web app pages through it)."""
    projects = checked_projects_query(reviewer)
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


CLOSED_STATES = (RequestState.RELEASED.value, RequestState.REJECTED.value)  # the outcomes a release history shows


def checked_projects(session: Session, checker: str) -> list[str]:
    """The projects `checker` is an output checker on, by name."""
    return list(session.scalars(checked_projects_query(checker).order_by(ProjectMember.project_name)))


def release_history_query(checker: str, project: str | None = None) -> Select[tuple[ReleaseRequest]]:
    """Released and rejected requests of the projects `checker` checks (or of one of them), most recent first: what
    a project let out before, for differencing a new request against it. Their own requests too, read-only."""
    projects = checked_projects_query(checker)
    query = select(ReleaseRequest).where(ReleaseRequest.project.in_(projects), ReleaseRequest.state.in_(CLOSED_STATES))
    if project is not None:
        query = query.where(ReleaseRequest.project == project)
    return query.order_by(ReleaseRequest.updated_at.desc(), ReleaseRequest.id)


UNDER_WAY = (RequestState.PREPARING.value, RequestState.CHECKING.value, RequestState.IN_REVIEW.value,
             RequestState.APPROVED.value)  # fmt: skip


def requests_under_way(session: Session, project: str) -> list[str]:
    """The project's requests being copied, checked, reviewed or waiting for release: closing the project waits for
    them (a draft or returned request is its author's, inert once the author's access ends)."""
    query = select(ReleaseRequest.id).where(ReleaseRequest.project == project, ReleaseRequest.state.in_(UNDER_WAY))
    return list(session.scalars(query.order_by(ReleaseRequest.id)))


def release_history(session: Session, checker: str, project: str | None = None) -> list[ReleaseRequest]:
    return list(session.scalars(release_history_query(checker, project)))


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
