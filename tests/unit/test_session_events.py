"""What a workspace server reports about its kernel and terminal sessions is checked strictly and rate-limited before
it reaches the audit log (hub/session_events.py); the table of kinds matches what the server sends."""

import pytest
from sqlalchemy import select

from hub import session_events
from hub.session_events import SessionAudit, parse
from kernel import audit
from kernel.db import Registry
from kernel.models import AuditEvent
from tests.workspace_env import REPO, requires_workspace_env, run_workspace_python

pytestmark = pytest.mark.unit

KERNEL = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@pytest.fixture
def registry(tmp_path):
    reg = Registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    yield reg
    reg.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def logged(reg) -> list[AuditEvent]:
    with reg.session() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def sessions(reg, clock, limit=3) -> SessionAudit:
    return SessionAudit(reg, "ws1", "cardio-risk", actor="bob", target="workspace:cardio-risk/bob", limit=limit,
                        clock=clock)  # fmt: skip


@requires_workspace_env
def test_the_table_has_every_kind_the_workspace_server_sends(tmp_path):
    code = "from enclave_workspace import sessions; print(' '.join(sorted(sessions.KINDS)))"
    done = run_workspace_python(["-c", code], cwd=tmp_path, env={"PYTHONPATH": str(REPO / "images")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == sorted(session_events.KINDS)


@pytest.mark.parametrize(
    "report",
    [
        {"event": "kernel_start", "kernel_id": KERNEL, "kernel_name": "python3"},
        {"event": "kernel_shutdown", "kernel_id": KERNEL, "kernel_name": "ir"},
        {"event": "terminal_open", "terminal": "1"},
        {"event": "terminal_close", "terminal": "12"},
    ],
)
def test_well_formed_reports_parse(report):
    kind, fields = parse(report)
    assert kind == report["event"] and fields == {k: v for k, v in report.items() if k != "event"}


@pytest.mark.parametrize(
    "report",
    [
        {"event": "kernel_exec", "kernel_id": KERNEL, "kernel_name": "python3"},  # unknown kind
        {"event": "kernel_start", "kernel_id": KERNEL},  # a field missing
        {"event": "kernel_start", "kernel_id": KERNEL, "kernel_name": "python3", "code": "print(1)"},  # extra field
        {"event": "kernel_start", "kernel_id": "not-a-uuid", "kernel_name": "python3"},
        {"event": "kernel_start", "kernel_id": KERNEL, "kernel_name": "x" * 65},
        {"event": "kernel_start", "kernel_id": KERNEL, "kernel_name": "python3\nforged line"},
        {"event": "terminal_open", "terminal": "../../etc"},
        {"event": "terminal_open", "terminal": 1},
        {"event": ["terminal_open"], "terminal": "1"},
        ["event", "terminal_open"],
        "terminal_open",
    ],
)
def test_anything_else_is_refused(report):
    assert parse(report) is None


def test_events_are_audited_with_the_workspace_owner_and_target(registry):
    audit_of = sessions(registry, Clock())
    audit_of.handle({"event": "kernel_start", "kernel_id": KERNEL, "kernel_name": "python3"})
    (event,) = logged(registry)
    assert (event.actor, event.action, event.target) == ("bob", "workspace.kernel_start", "workspace:cardio-risk/bob")
    assert event.detail == {"project": "cardio-risk", "workspace": "ws1", "kernel_id": KERNEL, "kernel_name": "python3"}


def test_a_flood_is_cut_to_the_limit_and_summarised_once_per_window(registry):
    clock = Clock()
    audit_of = sessions(registry, clock, limit=3)
    for n in range(50):
        audit_of.handle({"event": "terminal_open", "terminal": str(n)})
    audit_of.handle({"event": "nonsense"})
    audit_of.refuse()
    assert [e.action for e in logged(registry)] == ["workspace.terminal_open"] * 3
    assert audit_of.pending()
    clock.now += 30
    audit_of.flush()  # the minute is not over: nothing yet
    assert len(logged(registry)) == 3
    clock.now += 31
    audit_of.flush()
    summary = logged(registry)[-1]
    assert summary.action == "workspace.events_suppressed"
    assert summary.detail["suppressed"] == 47 and summary.detail["refused"] == 2
    assert summary.detail["limit_per_minute"] == 3
    # the next minute starts afresh
    audit_of.handle({"event": "terminal_close", "terminal": "1"})
    assert logged(registry)[-1].action == "workspace.terminal_close"
    assert len(logged(registry)) == 5


def test_a_flood_of_garbage_writes_one_summary(registry):
    clock = Clock()
    audit_of = sessions(registry, clock)
    for _ in range(1000):
        audit_of.refuse()
    assert logged(registry) == []
    audit_of.flush(force=True)  # the workspace stopped
    (summary,) = logged(registry)
    assert summary.detail["refused"] == 1000 and summary.detail["suppressed"] == 0


def test_a_window_with_nothing_suppressed_writes_no_summary(registry):
    clock = Clock()
    audit_of = sessions(registry, clock)
    audit_of.handle({"event": "terminal_open", "terminal": "1"})
    clock.now += 120
    audit_of.flush(force=True)
    assert [e.action for e in logged(registry)] == ["workspace.terminal_open"]
    with registry.session() as session:
        assert audit.verify(session) == []
