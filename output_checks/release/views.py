"""What a person may see of a request, as plain data for the CLI, the web app and their tests (read-only): what
they `can` do to it now comes from the workflow's tables (workflow/abilities.py), and the words for its state and
its people are chosen here, so that no template decides a rule."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from fabric.models import ProjectMember
from kernel.errors import NotFoundError
from kernel.models import AuditEvent
from output_checks.release import workflow
from output_checks.release.models import ReleaseRequest, RequestFile, Review
from output_checks.release.states import OWNERS, Actor, RequestState

# How a page names each party of a request (`{author}` is the request's author).
PARTY = {Actor.AUTHOR: "the author ({author})", Actor.CHECKER: "output checkers", Actor.SYSTEM: "the automated checks"}
YOU_ARE = {Actor.AUTHOR: "the author", Actor.CHECKER: "an output checker"}


def request_view(session: Session, request_id: str, user: str) -> dict[str, Any]:
    request = workflow.get_request(session, request_id, user)
    actor = workflow.actor_for(session, request, user)
    outcome = workflow.outcomes(session, request)
    files = []
    for f in workflow.current_files(request, include_withdrawn=True):
        files.append(
            {
                "id": f.id, "path": f.path, "version": f.version, "sha256": f.sha256, "size": f.size,
                "kind": f.kind, "verdict": f.verdict, "findings": f.findings or [], "justification": f.justification,
                "withdrawn": f.withdrawn, "released": f.released, "snapshot": bool(f.snapshot),
                "outcome": outcome.get(f.id).value if outcome and f.id in outcome else None,
                "blocked": f.verdict == "block",  # approving it needs a written reason
                "previously_released": [r for r in workflow.previously_released(session, request.project, f.sha256)
                                        if r != request.id],
            }
        )  # fmt: skip
    votes = [v.__dict__ for v in workflow.visible_votes(session, request, user)]
    state = RequestState(request.state)
    waiting = sorted(OWNERS[state], key=list(Actor).index)
    return {
        "id": request.id, "project": request.project, "author": request.author, "title": request.title,
        "state": request.state, "round": request.round, "reviews_required": request.reviews_required,
        "reviews_submitted": len(workflow.submitted_reviews(session, request)),
        "you": actor.value if actor else None, "you_are": YOU_ARE.get(actor, "") if actor else "",
        "waiting_for": sorted(a.value for a in waiting),
        "whose_turn": [PARTY[a].format(author=request.author) for a in waiting],
        "copying": state is RequestState.PREPARING, "checks_running": state is RequestState.CHECKING,
        "draft_checks": request.state in workflow.DRAFT_STATES,
        "draft_checks_running": bool(workflow.unchecked_draft_files(request)),
        "can": workflow.abilities(session, request, user),
        "files": files, "votes": votes,
        "refused": workflow.refusal(session, request.id) if request.state == RequestState.WITHDRAWN else None,
        "created_at": request.created_at, "updated_at": request.updated_at,
    }  # fmt: skip


# ------------------------------------------------------------------------------------------------ web app pages
# Read-only queries for the web app's lists: a constant number of queries per page, whatever the page size.


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    page: int
    pages: int
    total: int


def user_projects(session: Session, user: str) -> dict[str, set[str]]:
    """The projects `user` belongs to, with their roles on each."""
    out: dict[str, set[str]] = {}
    for project, role in session.execute(
        select(ProjectMember.project_name, ProjectMember.role).where(ProjectMember.username == user)
    ):
        out.setdefault(project, set()).add(role)
    return out


def _page(session: Session, query: Select, page: int, per_page: int) -> tuple[list[ReleaseRequest], int, int]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    return list(session.scalars(query.limit(per_page).offset((page - 1) * per_page))), page, total


def _summaries(session: Session, requests: list[ReleaseRequest], user: str) -> list[dict[str, Any]]:
    """One row per request: its current files' verdicts, the round's submitted reviews and `user`'s own review."""
    ids = [r.id for r in requests]
    verdicts: dict[str, Counter] = {i: Counter() for i in ids}
    for request_id, verdict, n in session.execute(
        select(RequestFile.request_id, RequestFile.verdict, func.count())
        .where(RequestFile.request_id.in_(ids), RequestFile.current.is_(True), RequestFile.withdrawn.is_(False))
        .group_by(RequestFile.request_id, RequestFile.verdict)
    ):
        verdicts[request_id][verdict or "unchecked"] += n
    reviews: dict[tuple[str, int], list[tuple[str, bool]]] = {}
    for request_id, round_, reviewer, submitted in session.execute(
        select(Review.request_id, Review.round, Review.reviewer, Review.submitted_at.is_not(None)).where(
            Review.request_id.in_(ids)
        )
    ):
        reviews.setdefault((request_id, round_), []).append((reviewer, bool(submitted)))
    rows = []
    for r in requests:
        this_round = reviews.get((r.id, r.round), [])
        mine = next((done for who, done in this_round if who == user), None)
        rows.append(
            {
                "id": r.id, "project": r.project, "author": r.author, "title": r.title, "state": r.state,
                "round": r.round, "updated_at": r.updated_at, "created_at": r.created_at,
                "files": sum(verdicts[r.id].values()), "verdicts": dict(verdicts[r.id]),
                "reviews_submitted": sum(1 for _, done in this_round if done),
                "reviews_required": r.reviews_required,
                "your_review": None if mine is None else ("submitted" if mine else "started"),
            }
        )  # fmt: skip
    return rows


def review_page(session: Session, reviewer: str, page: int = 1, per_page: int = 50) -> Page:
    """One page of `workflow.review_queue`, summarised."""
    requests, page, total = _page(session, workflow.review_queue_query(reviewer), page, per_page)
    return Page(_summaries(session, requests, reviewer), page, max(1, -(-total // per_page)), total)


def my_requests_page(session: Session, author: str, page: int = 1, per_page: int = 50) -> Page:
    """One page of `workflow.my_requests`, summarised."""
    requests, page, total = _page(session, workflow.my_requests_query(author), page, per_page)
    return Page(_summaries(session, requests, author), page, max(1, -(-total // per_page)), total)


def history_page(session: Session, checker: str, page: int = 1, per_page: int = 50, project: str | None = None) -> Page:
    """One page of `workflow.release_history`, summarised."""
    requests, page, total = _page(session, workflow.release_history_query(checker, project), page, per_page)
    return Page(_summaries(session, requests, checker), page, max(1, -(-total // per_page)), total)


def request_file(session: Session, request_id: str, user: str, file_id: int) -> RequestFile:
    """A file (any version) of a request `user` may see."""
    request = workflow.get_request(session, request_id, user)
    for f in request.files:
        if f.id == file_id:
            return f
    raise NotFoundError(f"request {request_id} has no file {file_id}")


# Audit details safe to show to anyone who may see the request: never a vote's decision, comment or override reason
# (reviews are independent until the round is complete), nor a failure's text.
HISTORY_DETAILS = ("path", "version", "round", "state_from", "state_to", "what")


def history(session: Session, request_id: str, user: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The request's audit trail for anyone who may see it: every event but views, oldest first, reduced to
    HISTORY_DETAILS; and the views summarised per person (views would otherwise drown the rest)."""
    workflow.get_request(session, request_id, user)
    target, view = f"request:{request_id}", "airlock.view"
    events = [
        {"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action.removeprefix("airlock."),
         "detail": {k: e.detail[k] for k in HISTORY_DETAILS if k in (e.detail or {})}}
        for e in session.scalars(
            select(AuditEvent).where(AuditEvent.target == target, AuditEvent.action != view).order_by(AuditEvent.seq)
        )
    ]  # fmt: skip
    viewed = [
        {"actor": actor, "times": n, "first": first, "last": last}
        for actor, n, first, last in session.execute(
            select(AuditEvent.actor, func.count(), func.min(AuditEvent.at), func.max(AuditEvent.at))
            .where(AuditEvent.target == target, AuditEvent.action == view)
            .group_by(AuditEvent.actor)
            .order_by(func.min(AuditEvent.seq))
        )
    ]
    return events, viewed
