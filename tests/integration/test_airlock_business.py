"""The airlock's business layer (release/airlock.py) through its real verbs: every public verb is either a read or
writes its audit event (each mutating verb called on a request brought to the state it needs, the log checked for
the event), and the permissions table (states.py `PERMISSIONS`) holds in practice, activity by state by role, with
refused attempts changing nothing.

Requests reach each state through tests/airlock_factories.py (the business layer itself, checks included)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from kernel.errors import EnclaveError
from kernel.models import AuditEvent
from output_checks.release import workflow
from output_checks.release.airlock import Airlock
from output_checks.release.states import PERMISSIONS, Activity, Actor, RequestState
from tests.airlock_factories import (
    AUTHOR,
    CHECKERS,
    OTHER_RESEARCHER,
    PROJECT,
    ensure_people,
    request_at,
    write_output,
)
from tests.provisioned import provision

pytestmark = pytest.mark.integration
CHECKER = CHECKERS[0]


@pytest.fixture(scope="module")
def app(tmp_path_factory, cohort) -> Airlock:
    env = provision(tmp_path_factory.mktemp("airlock-business"), cohort, {PROJECT: "DS-CVD"})
    airlock = Airlock(env.registry, env.paths)
    ensure_people(airlock)
    yield airlock
    env.registry.close()


# ------------------------------------------------------------------------------------------------ audit events
# Each mutating verb: the state its request is brought to first (None: no request), the call, who acts, and the
# event it must write. A new public verb must be listed here or among READS, or the first test fails.

Call = Callable[[Airlock, str], Any]
R = RequestState


def _preview(app: Airlock, rid: str) -> Any:
    return app.open_preview(rid, CHECKER, app.request(rid, CHECKER)["files"][0]["id"])


def _download_file(app: Airlock, rid: str) -> Any:
    return app.download_file(rid, AUTHOR, app.request(rid, AUTHOR)["files"][0]["id"])


def _submit_review(app: Airlock, rid: str) -> None:
    app.vote(rid, CHECKER, "counts.csv", "approve")
    app.submit_review(rid, CHECKER)


def _add_file(app: Airlock, rid: str) -> Any:
    return app.add_file(rid, AUTHOR, write_output(app, "added.csv", "site,n\nA,300\n"))


def _new_request(app: Airlock, _: str) -> Any:
    write_output(app, "new.csv", "site,n\nA,200\n")
    return app.new_request(project=PROJECT, author=AUTHOR, title="new", files=[("new.csv", "counts")], draft=True)


def _prepare(app: Airlock, rid: str) -> Any:
    return app.prepare(rid)


def _purge(app: Airlock, rid: str) -> Any:
    return app.purge(now=workflow.now() + timedelta(days=3650))


MUTATING: dict[str, tuple[RequestState | None, Call, str, str]] = {
    "new_request": (None, _new_request, AUTHOR, "airlock.create"),
    "create_request": (None, lambda a, _: a.create_request(project=PROJECT, author=AUTHOR, title="t"), AUTHOR,
                       "airlock.create"),
    "add_file": (R.DRAFT, _add_file, AUTHOR, "airlock.add_file"),
    "justify": (R.DRAFT, lambda a, rid: a.justify(rid, AUTHOR, "counts.csv", "why"), AUTHOR, "airlock.justify"),
    "revise": (R.RETURNED, lambda a, rid: a.revise(rid, AUTHOR, "counts.csv"), AUTHOR, "airlock.add_file"),
    "withdraw_file": (R.IN_REVIEW, lambda a, rid: a.withdraw_file(rid, AUTHOR, "counts.csv"), AUTHOR,
                      "airlock.withdraw_file"),
    "submit": (R.DRAFT, lambda a, rid: a.submit(rid, AUTHOR), AUTHOR, "airlock.submit"),
    "withdraw": (R.DRAFT, lambda a, rid: a.withdraw(rid, AUTHOR), AUTHOR, "airlock.withdraw"),
    "open_request": (R.IN_REVIEW, lambda a, rid: a.open_request(rid, CHECKER), CHECKER, "airlock.view"),
    "open_preview": (R.IN_REVIEW, _preview, CHECKER, "airlock.view"),
    "vote": (R.IN_REVIEW, lambda a, rid: a.vote(rid, CHECKER, "counts.csv", "approve"), CHECKER, "airlock.vote"),
    "submit_review": (R.IN_REVIEW, _submit_review, CHECKER, "airlock.review"),
    "release": (R.APPROVED, lambda a, rid: a.release(rid, CHECKER), CHECKER, "airlock.release"),
    "download": (R.RELEASED, lambda a, rid: a.download(rid, AUTHOR, "counts.csv"), AUTHOR, "airlock.download"),
    "download_file": (R.RELEASED, _download_file, AUTHOR, "airlock.download"),
    "prepare": (R.PREPARING, _prepare, workflow.SYSTEM, "airlock.prepared"),
    "check_request": (R.CHECKING, lambda a, rid: a.check_request(rid), workflow.SYSTEM, "airlock.checks_done"),
    "check_draft": (R.DRAFT, lambda a, rid: a.check_draft(rid), workflow.SYSTEM, "airlock.draft_checked"),
    "resume": (R.CHECKING, lambda a, rid: a.resume(), workflow.SYSTEM, "airlock.checks_done"),
    "purge": (R.WITHDRAWN, _purge, workflow.SYSTEM, "airlock.snapshot_purged"),
}  # fmt: skip


def _verify_snapshot(app: Airlock, rid: str) -> Any:
    record = app.tx(lambda s: workflow.current_files(workflow.get_request(s, rid, AUTHOR))[0])
    return app.verified_snapshot(record.snapshot, record.sha256)


# Verbs that only read, each called on a request in review (a checker's look is audited: `open_request` and
# `open_preview` above). `tx` is the transaction every verb runs in.
READS: dict[str, Call] = {
    "user_projects": lambda a, _: a.user_projects(CHECKER),
    "researcher_projects": lambda a, _: a.researcher_projects(AUTHOR),
    "checks_outputs": lambda a, _: a.checks_outputs(CHECKER),
    "request": lambda a, rid: a.request(rid, CHECKER),
    "state": lambda a, rid: a.state(rid, CHECKER),
    "refusal": lambda a, rid: a.refusal(rid, AUTHOR),
    "votes": lambda a, rid: a.votes(rid, CHECKER),
    "my_requests": lambda a, _: a.my_requests(AUTHOR),
    "review_queue": lambda a, _: a.review_queue(CHECKER),
    "my_requests_page": lambda a, _: a.my_requests_page(AUTHOR, 1, 10),
    "review_page": lambda a, _: a.review_page(CHECKER, 1, 10),
    "history_page": lambda a, _: a.history_page(CHECKER, 1, 10),
    "pending_draft_checks": lambda a, _: a.pending_draft_checks(),
    "checked_projects": lambda a, _: a.checked_projects(CHECKER),
    "waiting": lambda a, _: a.waiting(CHECKER),
    "project_requests": lambda a, rid: a.project_requests(CHECKER, a.request(rid, CHECKER)["project"]),
    "verified_snapshot": _verify_snapshot,
    "pending_checks": lambda a, _: a.pending_checks(),
    "preparing": lambda a, _: a.preparing(),
}
TRANSACTION = {"tx"}


def public_verbs() -> set[str]:
    return {name for name, member in inspect.getmembers(Airlock, inspect.isfunction) if not name.startswith("_")}


def test_every_public_verb_is_a_read_or_a_mutation_with_its_audit_event():
    assert not set(MUTATING) & set(READS)
    assert public_verbs() == set(MUTATING) | set(READS) | TRANSACTION


def last_seq(app: Airlock) -> int:
    return app.tx(lambda s: s.scalar(select(func.max(AuditEvent.seq))) or 0)


@pytest.mark.parametrize("verb", sorted(MUTATING))
def test_every_mutating_verb_writes_its_audit_event(app, verb):
    state, call, actor, action = MUTATING[verb]
    request_id = request_at(app, state) if state else ""
    before = last_seq(app)
    call(app, request_id)
    written = app.tx(
        lambda s: [(e.actor, e.action) for e in s.scalars(select(AuditEvent).where(AuditEvent.seq > before))]
    )
    assert (actor, action) in written, written


@pytest.fixture(scope="module")
def in_review(app) -> str:
    return request_at(app, RequestState.IN_REVIEW)


@pytest.mark.parametrize("verb", sorted(READS))
def test_every_read_writes_nothing(app, in_review, verb):
    before = last_seq(app)
    READS[verb](app, in_review)
    assert last_seq(app) == before


def test_the_authors_own_look_is_not_audited_as_a_view(app, in_review):
    before = last_seq(app)
    app.open_request(in_review, AUTHOR)
    assert last_seq(app) == before


# ------------------------------------------------------------------------------------------------ permissions
# Each activity, in each state, for the author, a checker on the project and another researcher: done through the
# business layer when the table allows it, refused (and nothing changed) when it does not.

PEOPLE = {Actor.AUTHOR: AUTHOR, Actor.CHECKER: CHECKER, None: OTHER_RESEARCHER}


def attempt(app: Airlock, activity: Activity, request_id: str, user: str) -> None:
    if activity is Activity.VIEW:
        app.request(request_id, user)
    elif activity is Activity.ADD_FILE:
        app.add_file(request_id, user, write_output(app, f"more-{request_id}.csv", "site,n\nA,150\n"))
    elif activity is Activity.JUSTIFY:
        app.justify(request_id, user, "counts.csv", "aggregate, every cell over 10")
    elif activity is Activity.REVISE:
        app.revise(request_id, user, "counts.csv")
    elif activity is Activity.WITHDRAW_FILE:
        app.withdraw_file(request_id, user, "counts.csv")
    elif activity is Activity.VOTE:
        app.vote(request_id, user, "counts.csv", "approve")
    elif activity is Activity.SUBMIT_REVIEW:
        if user == CHECKER:
            app.vote(request_id, user, "counts.csv", "approve")
        app.submit_review(request_id, user)
    elif activity is Activity.DOWNLOAD:
        app.download(request_id, user, "counts.csv")
    else:
        raise AssertionError(f"no attempt for {activity}")


def snapshot_of(app: Airlock, request_id: str) -> tuple:
    view = app.request(request_id, AUTHOR)
    files = [(f["path"], f["version"], f["withdrawn"], f["justification"]) for f in view["files"]]
    return view["state"], files, len(app.votes(request_id, CHECKER))


@pytest.fixture(scope="module")
def shared(app) -> dict[RequestState, str]:
    """One request per state for the refused attempts (which must change nothing)."""
    return {state: request_at(app, state) for state in RequestState}


@pytest.mark.parametrize("role", list(PEOPLE), ids=lambda r: r.value if r else "other")
@pytest.mark.parametrize("state", list(RequestState), ids=str)
@pytest.mark.parametrize("activity", list(Activity), ids=str)
def test_permission_matrix_through_the_business_layer(app, shared, activity, state, role):
    user = PEOPLE[role]
    if role in PERMISSIONS[activity][state]:
        request_id = shared[state] if activity is Activity.VIEW else request_at(app, state)
        attempt(app, activity, request_id, user)  # done: no refusal
    else:
        request_id = shared[state]
        before = snapshot_of(app, request_id)
        with pytest.raises(EnclaveError):
            attempt(app, activity, request_id, user)
        assert snapshot_of(app, request_id) == before


@pytest.mark.parametrize("state", list(RequestState), ids=str)
def test_what_a_page_offers_is_what_the_table_allows(app, shared, state):
    for role in (Actor.AUTHOR, Actor.CHECKER):
        can = app.request(shared[state], PEOPLE[role])["can"]
        for activity in Activity:
            assert can[activity.value] is (role in PERMISSIONS[activity][state]), (activity, role)
