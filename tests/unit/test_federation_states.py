"""The task state machine at a site is data: every state is reachable, every non-terminal state can end, terminal
states have no way out, and each move belongs to exactly one party."""

from __future__ import annotations

import pytest

from federation.states import DESCRIPTIONS, TERMINAL, TRANSITIONS, InvalidMove, Mover, TaskState, check_move

pytestmark = pytest.mark.unit


def test_every_state_is_described_and_reachable_from_queued() -> None:
    assert set(DESCRIPTIONS) == set(TaskState)
    reached, frontier = {TaskState.QUEUED}, [TaskState.QUEUED]
    while frontier:
        state = frontier.pop()
        for source, target in TRANSITIONS:
            if source is state and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(TaskState)


def test_terminal_states_have_no_way_out_and_every_other_state_can_expire() -> None:
    assert not [move for move in TRANSITIONS if move[0] in TERMINAL]
    for state in set(TaskState) - TERMINAL:
        assert TRANSITIONS[(state, TaskState.EXPIRED)] is Mover.COORDINATOR


@pytest.mark.parametrize(("source", "target"), sorted(TRANSITIONS, key=str))
def test_each_move_is_allowed_to_its_mover_only(source: TaskState, target: TaskState) -> None:
    mover = TRANSITIONS[(source, target)]
    assert check_move(source, target, mover) is target
    other = Mover.SITE if mover is Mover.COORDINATOR else Mover.COORDINATOR
    with pytest.raises(InvalidMove, match=f"only the {mover}"):
        check_move(source, target, other)


@pytest.mark.parametrize(
    ("source", "target"),
    [(s, t) for s in TaskState for t in TaskState if (s, t) not in TRANSITIONS],
)
def test_every_other_move_is_refused(source: TaskState, target: TaskState) -> None:
    for mover in Mover:
        with pytest.raises(InvalidMove):
            check_move(source, target, mover)


def test_an_unknown_state_is_refused() -> None:
    with pytest.raises(InvalidMove, match="unknown state"):
        check_move("queued", "exfiltrated", Mover.SITE)
