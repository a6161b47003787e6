"""A task's states at one site, as data: the states, the moves between them, who makes each move, and which states
end a task there. The site's agent moves its own record (`site_tasks`) and reports each move; the coordinator checks
every report against the same table (`federated_task_sites`) before it records it, so a site cannot jump from
`queued` to `released` or report on a task that has ended."""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    QUEUED = "queued"  # signed and waiting for the site to pull it
    FETCHED = "fetched"  # the site pulled and verified it
    AWAITING_APPROVAL = "awaiting-approval"  # the site's policy wants a custodian to approve running the code
    RUNNING = "running"  # papermill in the site's sandbox, on the site's own view
    IN_AIRLOCK = "in-airlock"  # the declared outputs are a release request of the site's airlock
    RELEASED = "released"  # the site's checkers released them; the sealed bundle is at the coordinator
    REFUSED = "refused"  # the site's verification, policy, custodian or checkers said no
    FAILED = "failed"  # the run failed; the site says the category, never the traceback
    EXPIRED = "expired"  # its manifest expired before it ended


class Mover(StrEnum):
    SITE = "site"  # the site's agent (reports what happened there)
    COORDINATOR = "coordinator"  # the coordinator itself (expiry)


TERMINAL = frozenset({TaskState.RELEASED, TaskState.REFUSED, TaskState.FAILED, TaskState.EXPIRED})

# (from, to) -> who may make that move
TRANSITIONS: dict[tuple[TaskState, TaskState], Mover] = {
    (TaskState.QUEUED, TaskState.FETCHED): Mover.SITE,
    (TaskState.QUEUED, TaskState.REFUSED): Mover.SITE,  # verification failed before the site kept it
    (TaskState.FETCHED, TaskState.AWAITING_APPROVAL): Mover.SITE,
    (TaskState.FETCHED, TaskState.RUNNING): Mover.SITE,
    (TaskState.FETCHED, TaskState.REFUSED): Mover.SITE,
    (TaskState.AWAITING_APPROVAL, TaskState.RUNNING): Mover.SITE,
    (TaskState.AWAITING_APPROVAL, TaskState.REFUSED): Mover.SITE,
    (TaskState.RUNNING, TaskState.IN_AIRLOCK): Mover.SITE,
    (TaskState.RUNNING, TaskState.FAILED): Mover.SITE,
    (TaskState.IN_AIRLOCK, TaskState.RELEASED): Mover.SITE,
    (TaskState.IN_AIRLOCK, TaskState.REFUSED): Mover.SITE,
    **{(state, TaskState.EXPIRED): Mover.COORDINATOR for state in TaskState if state not in TERMINAL},
}

# What a researcher reads beside each state.
DESCRIPTIONS: dict[TaskState, str] = {
    TaskState.QUEUED: "waiting for the site to pull it",
    TaskState.FETCHED: "pulled and verified by the site",
    TaskState.AWAITING_APPROVAL: "waiting for the site's custodian to approve running the code",
    TaskState.RUNNING: "running in the site's sandbox",
    TaskState.IN_AIRLOCK: "outputs in the site's airlock, waiting for its output checkers",
    TaskState.RELEASED: "released by the site's output checkers and returned sealed",
    TaskState.REFUSED: "refused at the site",
    TaskState.FAILED: "failed at the site",
    TaskState.EXPIRED: "expired before the site finished",
}


class InvalidMove(ValueError):
    pass


def check_move(current: str, new: str, mover: Mover) -> TaskState:
    """The new state, if `mover` may move a task from `current` to it; InvalidMove otherwise."""
    try:
        source, target = TaskState(current), TaskState(new)
    except ValueError:
        raise InvalidMove(f"unknown state {new!r}") from None
    allowed = TRANSITIONS.get((source, target))
    if allowed is None:
        raise InvalidMove(f"a task cannot move from {source} to {target}")
    if allowed is not mover:
        raise InvalidMove(f"only the {allowed} moves a task from {source} to {target}")
    return target
