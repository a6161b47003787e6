"""Test helpers: reach any release-request state through the real workflow (no shortcuts into the tables).

Roles on the project used by these tests: alice (researcher, the author), bob (researcher), carol and dave (output
checkers), erin (researcher and output checker), mallory (no role)."""

from __future__ import annotations

from pathlib import Path

from fabric.projects import add_member
from output_checks.release import workflow
from output_checks.release.service import Airlock
from output_checks.release.states import RequestState

PROJECT = "cvd-risk"
AUTHOR, OTHER_RESEARCHER, CHECKERS, BOTH, STRANGER = "alice", "bob", ("carol", "dave"), "erin", "mallory"


def ensure_people(app: Airlock) -> None:
    def run(session):
        roles = workflow.project_roles
        for user, role in (("bob", "researcher"), ("dave", "output_checker"), ("erin", "researcher"),
                           ("erin", "output_checker")):  # fmt: skip
            if role not in roles(session, PROJECT, user):
                add_member(session, PROJECT, user, role, actor="test-admin")

    app.tx(run)


def write_output(app: Airlock, name: str, content: str | bytes) -> str:
    folder = app.paths.project_outputs(PROJECT)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return name


def request_at(app: Airlock, state: RequestState, *, author: str = AUTHOR, files: dict[str, str] | None = None) -> str:
    """A request in `state`, made through the workflow. Files default to one clean count table."""
    files = files or {"counts.csv": "site,n\nA,120\nB,45\n"}
    for name, content in files.items():
        write_output(app, name, content)
    if state is RequestState.PREPARING:  # recorded, its copies not yet taken (Airlock.prepare takes them)
        return app.tx(
            lambda s: workflow.begin_request(s, app.paths, project=PROJECT, author=author, title="LDL by site",
                                             files=[(name, "aggregate counts") for name in files])
        )  # fmt: skip

    def create(session):
        request_id = workflow.create_request(session, project=PROJECT, author=author, title="LDL by site")
        for name in files:
            workflow.add_file(session, app.paths, app.store, request_id, author, name, "aggregate counts")
        return request_id

    request_id = app.tx(create)
    if state is RequestState.DRAFT:
        return request_id
    if state is RequestState.WITHDRAWN:
        app.tx(lambda s: workflow.withdraw(s, request_id, author))
        return request_id
    app.tx(lambda s: workflow.submit(s, request_id, author))
    if state is RequestState.CHECKING:
        return request_id
    app.check_request(request_id)
    if state is RequestState.IN_REVIEW:
        return request_id
    decision = {RequestState.RETURNED: "needs_changes", RequestState.REJECTED: "reject"}.get(state, "approve")
    review_all(app, request_id, decision)
    if state is RequestState.RELEASED:
        app.release(request_id, CHECKERS[0])
    assert app.tx(lambda s: workflow.get_request(s, request_id, author).state) == state.value
    return request_id


def review_all(app: Airlock, request_id: str, decision: str, reason: str = "") -> None:
    for checker in CHECKERS:

        def run(session, checker=checker):
            request = workflow.get_request(session, request_id, checker)
            for f in workflow.current_files(request):
                workflow.vote(session, request_id, checker, f.path, decision, "ok", reason)
            workflow.submit_review(session, request_id, checker)

        app.tx(run)


def outputs(app: Airlock) -> Path:
    return app.paths.project_outputs(PROJECT)
