"""Test helpers: reach any release-request state through the airlock's real business layer (its verbs, no shortcuts
into the tables).

Roles on the project used by these tests: alice (researcher, the author), bob (researcher), carol and dave (output
checkers), erin (researcher and output checker), mallory (no role)."""

from __future__ import annotations

from pathlib import Path

from fabric.projects import add_member
from output_checks.release import workflow
from output_checks.release.airlock import Airlock
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
    """A request in `state`, made through the business layer. Files default to one clean count table."""
    files = files or {"counts.csv": "site,n\nA,120\nB,45\n"}
    for name, content in files.items():
        write_output(app, name, content)
    if state is RequestState.PREPARING:  # recorded, its copies not yet taken (Airlock.prepare takes them)
        request_id, pending = app.new_request(
            project=PROJECT,
            author=author,
            title="LDL by site",
            files=[(name, "aggregate counts") for name in files],
            inline_bytes=0,
        )
        assert pending
        return request_id

    request_id = app.create_request(project=PROJECT, author=author, title="LDL by site")
    for name in files:
        app.add_file(request_id, author, name, "aggregate counts")
    if state is RequestState.DRAFT:
        return request_id
    if state is RequestState.WITHDRAWN:
        app.withdraw(request_id, author)
        return request_id
    app.submit(request_id, author)
    if state is RequestState.CHECKING:
        return request_id
    app.check_request(request_id)
    if state is RequestState.IN_REVIEW:
        return request_id
    decision = {RequestState.RETURNED: "needs_changes", RequestState.REJECTED: "reject"}.get(state, "approve")
    review_all(app, request_id, decision)
    if state is RequestState.RELEASED:
        app.release(request_id, CHECKERS[0])
    assert app.state(request_id, author) == state.value
    return request_id


def review_all(app: Airlock, request_id: str, decision: str, reason: str = "") -> None:
    for checker in CHECKERS:
        for f in app.request(request_id, checker)["files"]:
            if not f["withdrawn"]:
                app.vote(request_id, checker, f["path"], decision, "ok", reason)
        app.submit_review(request_id, checker)


def outputs(app: Airlock) -> Path:
    return app.paths.project_outputs(PROJECT)
