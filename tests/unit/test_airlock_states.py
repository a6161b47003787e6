"""The state machine and the permissions beside it are data and complete; the committed diagram is generated
from them."""

from __future__ import annotations

import pytest

from output_checks.release import diagram
from output_checks.release.states import (
    ACTION_ACTORS,
    OWNERS,
    PERMISSIONS,
    REFUSED_IN_STATE,
    TERMINAL,
    TRANSITIONS,
    Action,
    Activity,
    Actor,
    RequestState,
    permitted,
)

pytestmark = pytest.mark.unit


def test_every_state_has_an_owner_entry_and_only_terminal_states_have_none():
    assert set(OWNERS) == set(RequestState)
    assert {s for s, owners in OWNERS.items() if not owners} == set(TERMINAL)


def test_every_state_is_reachable_and_every_non_terminal_state_has_a_way_out():
    reachable = {RequestState.DRAFT} | set(TRANSITIONS.values())
    assert reachable == set(RequestState)
    exits = {source for source, _ in TRANSITIONS}
    assert exits == set(RequestState) - TERMINAL - {RequestState.RELEASED}


def test_every_action_has_actors_and_reviews_are_decided_by_the_tally():
    assert set(ACTION_ACTORS) == set(Action)
    for action in (Action.APPROVE, Action.REJECT, Action.RETURN, Action.CHECKS_DONE):
        assert ACTION_ACTORS[action] == {Actor.SYSTEM}
    assert Actor.AUTHOR not in ACTION_ACTORS[Action.RELEASE]


def test_the_committed_state_diagram_is_current():
    assert diagram.main() == 0, "run: python -m output_checks.release.diagram --write"


# ------------------------------------------------------------------------------------------------ permissions
# The actions that are not moves: who may do each in which state. Every activity has a row for every state, and
# the parametrised matrix below states the expected answer for each (activity, state, role) on its own, so that a
# change to the table shows up here as a named case.

ROLES = (Actor.AUTHOR, Actor.CHECKER, None)  # None: another researcher, a stranger (they cannot even see it)
S = RequestState
EXPECTED_ALLOWED: dict[Activity, set[tuple[RequestState, Actor]]] = {
    Activity.VIEW: {(s, a) for s in RequestState for a in (Actor.AUTHOR, Actor.CHECKER)},
    Activity.ADD_FILE: {(S.DRAFT, Actor.AUTHOR), (S.RETURNED, Actor.AUTHOR)},
    Activity.JUSTIFY: {(S.DRAFT, Actor.AUTHOR), (S.RETURNED, Actor.AUTHOR)},
    Activity.REVISE: {(S.DRAFT, Actor.AUTHOR), (S.RETURNED, Actor.AUTHOR)},
    Activity.WITHDRAW_FILE: {(s, Actor.AUTHOR) for s in (S.DRAFT, S.RETURNED, S.CHECKING, S.IN_REVIEW)},
    Activity.VOTE: {(S.IN_REVIEW, Actor.CHECKER)},
    Activity.SUBMIT_REVIEW: {(S.IN_REVIEW, Actor.CHECKER)},
    Activity.DOWNLOAD: {(S.RELEASED, Actor.AUTHOR)},
}


def test_the_permissions_table_covers_every_activity_in_every_state():
    assert set(PERMISSIONS) == set(Activity) == set(EXPECTED_ALLOWED) == set(REFUSED_IN_STATE)
    for activity, by_state in PERMISSIONS.items():
        assert set(by_state) == set(RequestState), activity
        assert all(who <= {Actor.AUTHOR, Actor.CHECKER} for who in by_state.values()), activity  # people only


def test_no_one_changes_or_decides_a_closed_request():
    for activity in set(Activity) - {Activity.VIEW, Activity.DOWNLOAD}:
        for state in TERMINAL | {RequestState.RELEASED, RequestState.APPROVED}:
            assert not PERMISSIONS[activity][state], (activity, state)


def test_an_author_never_reviews_and_a_checker_never_changes_files():
    for state in RequestState:
        for activity in (Activity.VOTE, Activity.SUBMIT_REVIEW):
            assert Actor.AUTHOR not in PERMISSIONS[activity][state]
        for activity in (Activity.ADD_FILE, Activity.JUSTIFY, Activity.REVISE, Activity.WITHDRAW_FILE):
            assert Actor.CHECKER not in PERMISSIONS[activity][state]


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value if r else "other")
@pytest.mark.parametrize("state", list(RequestState), ids=str)
@pytest.mark.parametrize("activity", list(Activity), ids=str)
def test_permission_matrix(activity, state, role):
    assert permitted(state, activity, role) is ((state, role) in EXPECTED_ALLOWED[activity])
