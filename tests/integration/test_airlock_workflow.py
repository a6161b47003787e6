"""The release workflow through its real business logic: the transition × role matrix, reviews that are
independent and hidden until complete, overrides, release with hash verification, downloads, and the audit trail.

Requests reach each state through tests/airlock_factories.py (the workflow itself, checks included)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kernel import audit
from kernel.errors import EnclaveError, NotFoundError
from output_checks.release import workflow
from output_checks.release.service import Airlock
from output_checks.release.states import ACTION_ACTORS, TRANSITIONS, Action, Actor, RequestState
from tests.airlock_factories import (
    AUTHOR,
    BOTH,
    CHECKERS,
    OTHER_RESEARCHER,
    PROJECT,
    STRANGER,
    ensure_people,
    request_at,
    review_all,
    write_output,
)
from tests.postgres import DATABASES
from tests.provisioned import provision

pytestmark = pytest.mark.integration


def _airlock(home, cohort, database_url: str | None = None) -> Iterator[Airlock]:
    env = provision(home, cohort, {"cvd-risk": "DS-CVD"}, database_url=database_url)
    airlock = Airlock(env.registry, env.paths)
    ensure_people(airlock)
    yield airlock
    env.registry.close()


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory, cohort) -> Iterator[Airlock]:
    yield from _airlock(tmp_path_factory.mktemp("airlock-home"), cohort)


@pytest.fixture(scope="module")
def postgresql_app(tmp_path_factory, cohort, module_postgres_url) -> Iterator[Airlock]:
    yield from _airlock(tmp_path_factory.mktemp("airlock-home-pg"), cohort, module_postgres_url)


@pytest.fixture(scope="module")
def app(request) -> Airlock:
    """The airlock over one provisioned project, its registry on SQLite; on PostgreSQL too (tests/postgres.py) for
    the tests marked ON_EACH_DATABASE: the workflow's core, from draft to download, and its concurrency."""
    return request.getfixturevalue(f"{getattr(request, 'param', 'sqlite')}_app")


ON_EACH_DATABASE = pytest.mark.parametrize("app", DATABASES, indirect=True)


def state_of(app: Airlock, request_id: str) -> str:
    return app.tx(lambda s: s.get(workflow.ReleaseRequest, request_id).state)


# ------------------------------------------------------------------------------------------------ the matrix

PEOPLE = {"author": AUTHOR, "checker": CHECKERS[0], "researcher": OTHER_RESEARCHER, "stranger": STRANGER}
PERSON_ACTIONS = [Action.SUBMIT, Action.RESUBMIT, Action.WITHDRAW, Action.RELEASE]


def attempt(app: Airlock, action: Action, request_id: str, user: str) -> None:
    if action in (Action.SUBMIT, Action.RESUBMIT):
        app.submit(request_id, user)
    elif action is Action.WITHDRAW:
        app.withdraw(request_id, user)
    elif action is Action.RELEASE:
        app.release(request_id, user)


def expected(state: RequestState, action: Action, role: str) -> bool:
    actor = {"author": Actor.AUTHOR, "checker": Actor.CHECKER}.get(role)
    if action is Action.SUBMIT and state is RequestState.RETURNED:
        action = Action.RESUBMIT  # one verb, the state decides which move it is
    if action is Action.RESUBMIT and state is RequestState.DRAFT:
        action = Action.SUBMIT
    return actor is not None and (state, action) in TRANSITIONS and actor in ACTION_ACTORS[action]


@pytest.fixture(scope="module")
def shared(app) -> dict[RequestState, str]:
    """One request per state for the refused attempts (which must change nothing)."""
    return {state: request_at(app, state) for state in RequestState}


@pytest.mark.parametrize("role", list(PEOPLE))
@pytest.mark.parametrize("action", PERSON_ACTIONS)
@pytest.mark.parametrize("state", list(RequestState))
def test_transition_matrix(app, shared, state, action, role):
    user = PEOPLE[role]
    if expected(state, action, role):
        request_id = request_at(app, state)
        attempt(app, action, request_id, user)
        key = (state, Action.RESUBMIT if state is RequestState.RETURNED and action is Action.SUBMIT else action)
        key = (state, Action.SUBMIT) if key == (RequestState.DRAFT, Action.RESUBMIT) else key
        assert state_of(app, request_id) == TRANSITIONS[key].value
    else:
        request_id = shared[state]
        with pytest.raises(EnclaveError):
            attempt(app, action, request_id, user)
        assert state_of(app, request_id) == state.value


@pytest.mark.parametrize("action", [Action.CHECKS_DONE, Action.RETURN, Action.APPROVE, Action.REJECT])
@pytest.mark.parametrize("role", ["author", "checker"])
def test_system_moves_are_never_a_persons(app, shared, action, role):
    for state, request_id in shared.items():

        def move(session, request_id=request_id):
            request = session.get(workflow.ReleaseRequest, request_id)
            workflow.move(session, request, action, workflow.actor_for(session, request, PEOPLE[role]), PEOPLE[role])

        with pytest.raises(workflow.NotAllowed):
            app.tx(move)
        assert state_of(app, request_id) == state.value


# ------------------------------------------------------------------------------------------------ reviews


@ON_EACH_DATABASE
def test_the_author_never_reviews_even_when_also_a_checker(app):
    request_id = request_at(app, RequestState.IN_REVIEW, author=BOTH)
    with pytest.raises(workflow.NotAllowed, match="authors can never review"):
        app.vote(request_id, BOTH, "counts.csv", "approve")
    assert state_of(app, request_id) == "in_review"


@ON_EACH_DATABASE
def test_votes_are_hidden_until_every_review_is_in(app):
    request_id = request_at(app, RequestState.IN_REVIEW)
    first, second = CHECKERS

    def vote_and_submit(user, decision):
        app.vote(request_id, user, "counts.csv", decision, f"{user} says {decision}")
        app.submit_review(request_id, user)

    vote_and_submit(first, "approve")
    seen = app.votes(request_id, second)
    assert seen == []
    mine = app.votes(request_id, first)
    assert [v.reviewer for v in mine] == [first]
    author_view = app.votes(request_id, AUTHOR)
    assert author_view == []
    vote_and_submit(second, "approve")
    assert state_of(app, request_id) == "approved"
    everyone = app.votes(request_id, AUTHOR)
    assert sorted(v.reviewer for v in everyone) == sorted(CHECKERS)


def test_a_third_review_is_refused(app):
    request_id = request_at(app, RequestState.APPROVED)
    with pytest.raises(EnclaveError):
        app.vote(request_id, BOTH, "counts.csv", "reject")


def test_approving_a_blocked_file_needs_a_written_reason(app):
    request_id = request_at(app, RequestState.IN_REVIEW, files={"small.csv": "site,n\nA,120\nB,3\n"})
    verdict = app.tx(lambda s: workflow.current_files(workflow.get_request(s, request_id, AUTHOR))[0].verdict)
    assert verdict == "block"
    with pytest.raises(workflow.InvalidRequest, match="needs a written reason"):
        app.vote(request_id, CHECKERS[0], "small.csv", "approve")
    review_all(app, request_id, "approve", reason="B is a synthetic test site")
    overrides = app.tx(lambda s: [e for e in audit.events(s, request=request_id) if e.action == "airlock.override"])
    assert len(overrides) == 2 and overrides[0].detail["reason"] == "B is a synthetic test site"


def test_returned_request_is_revised_and_reviewed_again(app):
    request_id = request_at(app, RequestState.RETURNED)
    write_output(app, "counts.csv", "site,n\nA,130\nB,50\n")
    app.revise(request_id, AUTHOR, "counts.csv")
    app.submit(request_id, AUTHOR)
    app.check_request(request_id)
    request = app.tx(lambda s: workflow.get_request(s, request_id, AUTHOR))
    assert request.state == "in_review" and request.round == 2
    files = app.tx(lambda s: workflow.current_files(workflow.get_request(s, request_id, AUTHOR)))
    assert [f.version for f in files] == [2]
    assert app.tx(lambda s: workflow.outcomes(s, workflow.get_request(s, request_id, AUTHOR))) is None  # reset


def test_withdrawn_file_is_not_reviewed_or_released(app):
    request_id = request_at(app, RequestState.DRAFT, files={"a.csv": "site,n\nA,120\n", "b.csv": "site,n\nB,200\n"})
    app.withdraw_file(request_id, AUTHOR, "b.csv")
    app.submit(request_id, AUTHOR)
    app.check_request(request_id)
    review_all(app, request_id, "approve")
    assert app.release(request_id, CHECKERS[0]) == ["a.csv"]


# ------------------------------------------------------------------------------------------------ checks


def test_checks_run_on_the_snapshot_not_the_live_file(app):
    write_output(app, "late.csv", "site,n\nA,120\n")
    request_id = app.create_request(project="cvd-risk", author=AUTHOR, title="t")
    app.add_file(request_id, AUTHOR, "late.csv")
    app.submit(request_id, AUTHOR)
    write_output(app, "late.csv", "site,n\nA,3\n")  # edited after submission: not what is reviewed
    app.check_request(request_id)
    files = app.tx(lambda s: workflow.current_files(workflow.get_request(s, request_id, AUTHOR)))
    assert files[0].verdict == "pass"


def test_a_crashing_check_run_is_retried_then_goes_to_review(app, monkeypatch):
    import output_checks.release.checks as checks

    calls = []

    def crash(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("engine down")

    monkeypatch.setattr(checks, "check_snapshots", crash)
    request_id = request_at(app, RequestState.CHECKING)
    app.check_request(request_id)
    assert len(calls) == workflow.MAX_CHECK_ATTEMPTS
    files = app.tx(lambda s: workflow.current_files(workflow.get_request(s, request_id, AUTHOR)))
    assert state_of(app, request_id) == "in_review" and files[0].verdict == "review"


def test_resume_picks_up_requests_left_checking(app):
    request_id = request_at(app, RequestState.CHECKING)
    assert request_id in app.resume()
    assert state_of(app, request_id) == "in_review"


# ------------------------------------------------------------------------------------------------ release


@ON_EACH_DATABASE
def test_release_and_download_are_byte_identical(app, tmp_path):
    content = "site,n\nA,120\nB,45\n"
    request_id = request_at(app, RequestState.RELEASED, files={"final.csv": content})
    path = app.download(request_id, AUTHOR, "final.csv")
    assert path.read_text() == content
    with pytest.raises(workflow.NotAllowed):
        app.download(request_id, CHECKERS[0], "final.csv")
    with pytest.raises(NotFoundError):
        app.download(request_id, STRANGER, "final.csv")


def test_re_requesting_released_bytes_is_visible(app):
    content = "site,n\nA,999\n"
    request_at(app, RequestState.RELEASED, files={"again.csv": content})
    second = request_at(app, RequestState.DRAFT, files={"again.csv": content})
    from output_checks.release.views import request_view

    view = app.tx(lambda s: request_view(s, second, CHECKERS[0]))
    assert view["files"][0]["previously_released"]


def test_files_outside_the_outputs_folder_are_refused(app, tmp_path):
    request_id = request_at(app, RequestState.DRAFT)
    secret = tmp_path / "secret.csv"
    secret.write_text("x")
    for path in (str(secret), "../data/clinical/patients.parquet", "../../../etc/passwd"):
        with pytest.raises(EnclaveError):
            app.add_file(request_id, AUTHOR, path)


@ON_EACH_DATABASE
def test_every_step_is_audited_and_the_chain_holds(app):
    request_id = request_at(app, RequestState.RELEASED)
    app.download(request_id, AUTHOR, "counts.csv")
    actions = app.tx(lambda s: [e.action for e in audit.events(s, request=request_id)])
    for expected_action in ("airlock.create", "airlock.add_file", "airlock.submit", "airlock.checks_done",
                            "airlock.vote", "airlock.review", "airlock.approve", "airlock.release",
                            "airlock.download"):  # fmt: skip
        assert expected_action in actions
    assert app.tx(audit.verify) == []


@ON_EACH_DATABASE
def test_concurrent_reviewers_lose_nothing(app):
    import threading

    request_id = request_at(app, RequestState.IN_REVIEW)
    errors: list[Exception] = []
    barrier = threading.Barrier(len(CHECKERS))

    def review(checker: str) -> None:
        def run(session):
            workflow.vote(session, request_id, checker, "counts.csv", "approve", f"from {checker}")
            workflow.submit_review(session, request_id, checker)

        try:
            barrier.wait()
            app.tx(run)
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=review, args=(c,)) for c in CHECKERS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert state_of(app, request_id) == "approved"
    votes = app.votes(request_id, AUTHOR)
    assert sorted(v.reviewer for v in votes) == sorted(CHECKERS)
    tallies = app.tx(lambda s: [e for e in audit.events(s, request=request_id) if e.action == "airlock.approve"])
    assert len(tallies) == 1
    assert app.tx(audit.verify) == []


def test_an_author_taken_off_the_project_can_no_longer_act_on_their_requests(app):
    """Membership ends access to the airlock too: a researcher removed from the project (or made only a checker)
    cannot see their returned request, revise it (which would snapshot the project's outputs afresh for them),
    submit or withdraw it. Found in review of `enclave project remove-member` (issue 16)."""
    from fabric.projects import add_member, remove_member, set_role

    for leaver, leave in (("frank", "remove"), ("grace", "set-role")):
        app.tx(lambda s, who=leaver: add_member(s, PROJECT, who, "researcher", actor="test-admin"))
        request_id = request_at(app, RequestState.RETURNED, author=leaver)
        assert app.state(request_id, leaver) == "returned"  # the control: while a member, the author acts
        versions = app.tx(lambda s, r=request_id: len(workflow.get_request(s, r, CHECKERS[0]).files))
        if leave == "remove":
            app.tx(lambda s, who=leaver: remove_member(s, PROJECT, who, actor="test-admin", default_reviews=2))
        else:
            app.tx(lambda s, who=leaver: set_role(s, PROJECT, who, "output_checker", actor="test-admin",
                                                  default_reviews=2))  # fmt: skip
        write_output(app, "counts.csv", "site,n\nA,131\nB,52\n")
        for act in (
            lambda r=request_id, who=leaver: app.state(r, who),
            lambda r=request_id, who=leaver: app.open_request(r, who),
            lambda r=request_id, who=leaver: app.revise(r, who, "counts.csv"),
            lambda r=request_id, who=leaver: app.submit(r, who),
            lambda r=request_id, who=leaver: app.withdraw(r, who),
        ):
            with pytest.raises(NotFoundError):
                act()
        assert app.tx(lambda s, r=request_id: len(workflow.get_request(s, r, CHECKERS[0]).files)) == versions
        assert app.state(request_id, CHECKERS[0]) == "returned"  # the project's checkers still see it


def test_a_draft_is_checked_for_its_author_without_a_change_of_state(app):
    """Issue 16: a draft's verdicts before any reviewer is involved. Its files are checked where they wait (state and
    reviewers untouched, audited), a revised file of a returned request is checked on its own, and submitting checks
    every file again: the draft's verdicts are never the ones reviewers decide on."""
    write_output(app, "small.csv", "site,n\nA,120\nB,4\n")
    write_output(app, "counts.csv", "site,n\nA,131\nB,52\n")
    request_id = app.create_request(project=PROJECT, author=AUTHOR, title="draft")
    app.add_file(request_id, AUTHOR, "small.csv", "group sizes")
    app.add_file(request_id, AUTHOR, "counts.csv", "group sizes")
    assert request_id in app.pending_draft_checks()
    before = app.tx(lambda s: len(audit.events(s, request=request_id)))
    assert app.check_draft(request_id) == 2
    view = app.request(request_id, AUTHOR)
    assert view["state"] == "draft" and not view["draft_checks_running"] and view["draft_checks"]
    assert {f["path"]: f["verdict"] for f in view["files"]} == {"small.csv": "block", "counts.csv": "pass"}
    actions = app.tx(lambda s: [e.action for e in audit.events(s, request=request_id)])
    assert len(actions) == before + 1 and actions.count("airlock.draft_checked") == 1
    assert request_id not in app.pending_draft_checks() and app.check_draft(request_id) == 0
    assert request_id not in {r.id for r in app.review_queue(CHECKERS[0])}

    app.submit(request_id, AUTHOR)  # submitted: every file checked again for the reviewers
    app.check_request(request_id)
    assert app.state(request_id, AUTHOR) == "in_review"
    assert app.check_draft(request_id) == 0, "a submitted request is not a draft"

    returned = request_at(app, RequestState.RETURNED)
    app.revise(returned, AUTHOR, "counts.csv")
    files = {f["path"]: f for f in app.request(returned, AUTHOR)["files"]}
    assert files["counts.csv"]["verdict"] is None and app.request(returned, AUTHOR)["draft_checks_running"]
    assert app.check_draft(returned) == 1
    assert app.request(returned, AUTHOR)["files"][0]["verdict"] == "pass"
    assert app.state(returned, AUTHOR) == "returned"
