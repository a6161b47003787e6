"""What one person may do to a request now, for pages to show only the forms that would be accepted: read from the
same tables that refuse the verbs (TRANSITIONS for moves, PERMISSIONS for the rest), so no template decides a
rule."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from output_checks.release.models import ReleaseRequest, Review
from output_checks.release.states import Action, Activity, RequestState, allowed, permitted
from output_checks.release.workflow.access import actor_for

# The moves a person takes themselves (the others are the airlock's: the copy, the checks and the tally).
PERSONAL_MOVES = (Action.SUBMIT, Action.RESUBMIT, Action.WITHDRAW, Action.RELEASE)


def reviewed(session: Session, request: ReleaseRequest, user: str) -> bool:
    """Whether `user` has submitted their review of the request's current round."""
    return (
        session.scalars(
            select(Review.id).where(
                Review.request_id == request.id, Review.round == request.round, Review.reviewer == user,
                Review.submitted_at.is_not(None),
            )
        ).first()
        is not None
    )  # fmt: skip


def abilities(session: Session, request: ReleaseRequest, user: str) -> dict[str, bool]:
    """Each personal move and each activity (states.py), by its name: whether `user` may do it to `request` now.
    A checker whose review of this round is submitted has nothing left to decide in it."""
    actor = actor_for(session, request, user)
    state = RequestState(request.state)
    can = {action.value: actor is not None and allowed(state, action, actor) for action in PERSONAL_MOVES}
    can.update({activity.value: permitted(state, activity, actor) for activity in Activity})
    if can[Activity.VOTE.value] and reviewed(session, request, user):
        can[Activity.VOTE.value] = can[Activity.SUBMIT_REVIEW.value] = False
    return can
