"""The state machine is data and complete; the committed diagram is generated from it."""

from __future__ import annotations

import pytest

from output_checks.release import diagram
from output_checks.release.states import ACTION_ACTORS, OWNERS, TERMINAL, TRANSITIONS, Action, Actor, RequestState

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
