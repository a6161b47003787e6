"""The request state machine as data: states, the moves between them, and who may act in each state.

`TRANSITIONS` is the only list of allowed moves; `workflow.move` checks it before any side effect. `PERMISSIONS`
says who may do each thing that is not a move (add, justify, revise or withdraw a file, vote, download, ...) in
each state; `workflow.permit` checks it the same way. `OWNERS` says whose turn it is in each state (tests check
that every table covers every state). The state diagram in docs/explanation/airlock-workflow.md is generated
from these tables (`diagram()`), and a test fails if the committed one differs.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class RequestState(StrEnum):
    DRAFT = "draft"  # the author is adding files and justifications
    PREPARING = "preparing"  # the chosen files are being copied into the request's snapshot (in the background)
    CHECKING = "checking"  # the automated checks run on the snapshot
    IN_REVIEW = "in_review"  # checks done; independent reviews under way
    RETURNED = "returned"  # a reviewer asked for changes; the author may revise files and resubmit
    APPROVED = "approved"  # every review in, at least one file approved
    REJECTED = "rejected"  # every review in, no file approved
    RELEASED = "released"  # approved files copied to the egress store
    WITHDRAWN = "withdrawn"  # the author withdrew the request


class Action(StrEnum):
    PREPARE = "prepare"
    PREPARED = "prepared"
    REFUSE = "refuse"
    SUBMIT = "submit"
    CHECKS_DONE = "checks_done"
    RETURN = "return"
    APPROVE = "approve"
    REJECT = "reject"
    RESUBMIT = "resubmit"
    RELEASE = "release"
    WITHDRAW = "withdraw"


class Actor(StrEnum):
    AUTHOR = "author"  # the researcher who made the request
    CHECKER = "checker"  # an output checker of the project who is not the author
    SYSTEM = "system"  # the check runner and the vote tally


S, A = RequestState, Action
# (from state, action) -> to state
TRANSITIONS: dict[tuple[RequestState, Action], RequestState] = {
    (S.DRAFT, A.PREPARE): S.PREPARING,
    (S.PREPARING, A.PREPARED): S.DRAFT,
    (S.PREPARING, A.REFUSE): S.WITHDRAWN,
    (S.PREPARING, A.WITHDRAW): S.WITHDRAWN,
    (S.DRAFT, A.SUBMIT): S.CHECKING,
    (S.DRAFT, A.WITHDRAW): S.WITHDRAWN,
    (S.CHECKING, A.CHECKS_DONE): S.IN_REVIEW,
    (S.CHECKING, A.WITHDRAW): S.WITHDRAWN,
    (S.IN_REVIEW, A.RETURN): S.RETURNED,
    (S.IN_REVIEW, A.APPROVE): S.APPROVED,
    (S.IN_REVIEW, A.REJECT): S.REJECTED,
    (S.IN_REVIEW, A.WITHDRAW): S.WITHDRAWN,
    (S.RETURNED, A.RESUBMIT): S.CHECKING,
    (S.RETURNED, A.WITHDRAW): S.WITHDRAWN,
    (S.APPROVED, A.RELEASE): S.RELEASED,
    (S.APPROVED, A.WITHDRAW): S.WITHDRAWN,
}

# Who may take each action (the state decides which actions exist).
ACTION_ACTORS: dict[Action, frozenset[Actor]] = {
    A.PREPARE: frozenset({Actor.AUTHOR}),
    # The copy finishing, or being refused (over the size limit, changed under the copy), is the airlock's to say.
    A.PREPARED: frozenset({Actor.SYSTEM}),
    A.REFUSE: frozenset({Actor.SYSTEM}),
    A.SUBMIT: frozenset({Actor.AUTHOR}),
    A.RESUBMIT: frozenset({Actor.AUTHOR}),
    A.WITHDRAW: frozenset({Actor.AUTHOR}),
    A.CHECKS_DONE: frozenset({Actor.SYSTEM}),
    # The outcome of the reviews is decided by the tally of independent votes, never by one person.
    A.RETURN: frozenset({Actor.SYSTEM}),
    A.APPROVE: frozenset({Actor.SYSTEM}),
    A.REJECT: frozenset({Actor.SYSTEM}),
    A.RELEASE: frozenset({Actor.CHECKER}),
}

# Whose turn it is in each state: who is expected to act next (reviewing is the checkers' turn in IN_REVIEW).
OWNERS: dict[RequestState, frozenset[Actor]] = {
    S.DRAFT: frozenset({Actor.AUTHOR}),
    S.PREPARING: frozenset({Actor.SYSTEM}),
    S.CHECKING: frozenset({Actor.SYSTEM}),
    S.IN_REVIEW: frozenset({Actor.CHECKER}),
    S.RETURNED: frozenset({Actor.AUTHOR}),
    S.APPROVED: frozenset({Actor.CHECKER}),
    S.REJECTED: frozenset(),
    S.RELEASED: frozenset({Actor.AUTHOR}),  # downloads
    S.WITHDRAWN: frozenset(),
}
TERMINAL = frozenset({S.REJECTED, S.WITHDRAWN})
# States in which the author may still change the request's files.
EDITABLE = frozenset({S.DRAFT, S.RETURNED})


class Decision(StrEnum):
    """A reviewer's decision on one file."""

    APPROVE = "approve"
    REJECT = "reject"
    NEEDS_CHANGES = "needs_changes"


def allowed(state: RequestState, action: Action, actor: Actor) -> bool:
    return (state, action) in TRANSITIONS and actor in ACTION_ACTORS[action]


class Activity(StrEnum):
    """What a person does to a request that is not a move between states."""

    VIEW = "view"  # see the request, its files' previews and its history
    ADD_FILE = "add_file"
    JUSTIFY = "justify"
    REVISE = "revise"  # take a new version of a file from the outputs folder
    WITHDRAW_FILE = "withdraw_file"
    VOTE = "vote"  # decide one file
    SUBMIT_REVIEW = "submit_review"
    DOWNLOAD = "download"


_AUTHOR, _CHECKER, _BOTH, _NOBODY = (
    frozenset({Actor.AUTHOR}), frozenset({Actor.CHECKER}), frozenset({Actor.AUTHOR, Actor.CHECKER}), frozenset(),
)  # fmt: skip


def _only(who: frozenset[Actor], states: Iterable[RequestState]) -> dict[RequestState, frozenset[Actor]]:
    chosen = set(states)
    return {state: who if state in chosen else _NOBODY for state in RequestState}


# activity -> state -> who may do it there; anyone else (another researcher, a stranger, the airlock itself) may not.
# Written out for every state, so that a new state must be placed here (a test checks the table is complete).
PERMISSIONS: dict[Activity, dict[RequestState, frozenset[Actor]]] = {
    Activity.VIEW: _only(_BOTH, RequestState),
    Activity.ADD_FILE: _only(_AUTHOR, EDITABLE),
    Activity.JUSTIFY: _only(_AUTHOR, EDITABLE),
    Activity.REVISE: _only(_AUTHOR, EDITABLE),
    # A file may leave a request until its reviews are complete.
    Activity.WITHDRAW_FILE: _only(_AUTHOR, (*EDITABLE, S.CHECKING, S.IN_REVIEW)),
    Activity.VOTE: _only(_CHECKER, (S.IN_REVIEW,)),
    Activity.SUBMIT_REVIEW: _only(_CHECKER, (S.IN_REVIEW,)),
    Activity.DOWNLOAD: _only(_AUTHOR, (S.RELEASED,)),
}

# Why an activity is refused in a state its actor may do it in other states ({state} is the request's).
REFUSED_IN_STATE: dict[Activity, str] = {
    Activity.VIEW: "this request cannot be seen ({state})",
    Activity.ADD_FILE: "files can be added only while the request is a draft or returned ({state})",
    Activity.JUSTIFY: "justifications can be changed only while the request is a draft or returned ({state})",
    Activity.REVISE: "files can be revised only while the request is a draft or returned ({state})",
    Activity.WITHDRAW_FILE: "a file cannot be withdrawn from a request that is {state}",
    Activity.VOTE: "only a request in review can be reviewed ({state})",
    Activity.SUBMIT_REVIEW: "only a request in review can be reviewed ({state})",
    Activity.DOWNLOAD: "nothing is released from a request that is {state}",
}


def permitted(state: RequestState, activity: Activity, actor: Actor | None) -> bool:
    return actor is not None and actor in PERMISSIONS[activity][state]


def ever_permitted(activity: Activity, actor: Actor | None) -> bool:
    """Whether `actor` may do `activity` in some state (if not, a refusal is about who they are, not the state)."""
    return any(actor in who for who in PERMISSIONS[activity].values())


def diagram() -> str:
    """The state diagram as Mermaid, generated from TRANSITIONS (docs embed it; a test checks for drift)."""
    lines = ["stateDiagram-v2", f"    [*] --> {S.DRAFT.value}"]
    for (source, action), target in TRANSITIONS.items():
        who = "/".join(sorted(a.value for a in ACTION_ACTORS[action]))
        lines.append(f"    {source.value} --> {target.value}: {action.value} ({who})")
    for state in sorted(TERMINAL | {S.RELEASED}, key=list(S).index):
        lines.append(f"    {state.value} --> [*]")
    return "\n".join(lines) + "\n"
