"""A workspace's start and stop and its kernel and terminal sessions reach the hash-chained audit log, against a real
hub and a real sandboxed workspace (issue 17, finding 8): with the workspace's owner as actor and
`workspace:<project>/<user>` as target, a kernel's name and id but nothing that ran in it; a flood of session events
from one workspace is cut to the per-minute limit and summarised; and the log's anchored head makes a cut tail of
the real hub's log fail `enclave audit verify`.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from hub.authorisation import REFUSED
from hub.session_events import EVENTS_PER_MINUTE
from kernel import audit
from kernel.db import Registry
from kernel.models import AuditEvent
from tests.workspace_hub import DEMO, SECOND_PROJECT, needs_enclave

pytestmark = [pytest.mark.integration, needs_enclave]

TARGET = f"workspace:{DEMO}/bob"


def events_after(registry: Registry, seq: int) -> list[AuditEvent]:
    with registry.session() as session:
        query = select(AuditEvent).where(AuditEvent.seq > seq, AuditEvent.target == TARGET)
        return list(session.scalars(query.order_by(AuditEvent.seq)))


def head(registry: Registry) -> int:
    with registry.session() as session:
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).first()
        return last.seq if last else 0


def wait_for(registry: Registry, seq: int, action: str, timeout: float = 60) -> list[AuditEvent]:
    deadline = time.monotonic() + timeout
    while True:
        found = events_after(registry, seq)
        if any(e.action == action for e in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.fixture
def registry(running_enclave):
    reg = Registry(running_enclave.paths.database_url)
    yield reg
    reg.close()


def test_start_stop_kernels_and_terminals_are_in_the_audit_log(running_enclave, registry):
    bob = running_enclave.person("bob")
    before = head(registry)
    bob.spawn(DEMO)
    try:
        bob.open_workspace(DEMO)
        started = bob.workspace("POST", DEMO, "/api/kernels", json={"name": "python3"})
        assert started.status_code == 201, started.text
        kernel = started.json()["id"]
        assert bob.workspace("POST", DEMO, f"/api/kernels/{kernel}/restart").status_code == 200
        assert bob.workspace("DELETE", DEMO, f"/api/kernels/{kernel}").status_code == 204
        opened = bob.workspace("POST", DEMO, "/api/terminals")
        assert opened.status_code == 200, opened.text
        terminal = opened.json()["name"]
        assert bob.workspace("DELETE", DEMO, f"/api/terminals/{terminal}").status_code == 204
        wait_for(registry, before, "workspace.terminal_close")
    finally:
        bob.stop(DEMO)
    found = [e for e in wait_for(registry, before, "workspace.stop") if e.action != "workspace.browser_bytes"]
    actions = [e.action for e in found]
    assert actions == [
        "workspace.start",
        "workspace.kernel_start",
        "workspace.kernel_restart",
        "workspace.kernel_shutdown",
        "workspace.terminal_open",
        "workspace.terminal_close",
        "workspace.stop",
    ], actions
    assert all(e.actor == "bob" and e.target == TARGET for e in found)
    start, kernel_start, *_, terminal_open, _close, stop = found
    assert start.detail["project"] == DEMO and start.detail["confined"] is True
    assert start.detail["memory"] and start.detail["pids"] and start.detail["browser_bytes_per_hour"]
    assert kernel_start.detail == {
        "project": DEMO,
        "workspace": start.detail["workspace"],
        "kernel_id": kernel,
        "kernel_name": "python3",
    }
    assert terminal_open.detail["terminal"] == terminal
    assert stop.detail["reason"] == "user"  # bob stopped it himself, through the hub's API
    with registry.session() as session:
        assert audit.verify_log(session) == audit.Verification([], None)  # intact, and anchored to its head


def test_a_refused_start_is_in_the_audit_log(running_enclave, registry):
    bob = running_enclave.person("bob")  # a researcher in the demo project only
    before = head(registry)
    bob.api("POST", f"/users/bob/servers/{SECOND_PROJECT}")
    deadline = time.monotonic() + 60
    while not (found := failed_starts(registry, before)) and time.monotonic() < deadline:
        time.sleep(0.2)
    (failed,) = found
    assert failed.actor == "bob" and failed.target == f"workspace:{SECOND_PROJECT}/bob"
    assert failed.detail == {"project": SECOND_PROJECT, "reason": REFUSED}
    assert bob.api("GET", "/users/bob").json().get("servers", {}).get(SECOND_PROJECT) is None


def failed_starts(registry: Registry, seq: int) -> list[AuditEvent]:
    with registry.session() as session:
        query = select(AuditEvent).where(AuditEvent.seq > seq, AuditEvent.action == "workspace.start_failed")
        return list(session.scalars(query))


def test_a_stop_by_revocation_says_so(running_enclave, registry):
    revocation = pytest.importorskip("hub.revocation", reason="revocation (hub/revocation.py) is not in this tree")
    bob = running_enclave.person("bob")
    before = head(registry)
    bob.spawn(DEMO)
    revocation.HubAPI.of(running_enclave.paths).stop_servers("bob", [DEMO])  # as `enclave revoke` stops it
    (stop,) = [e for e in wait_for(registry, before, "workspace.stop") if e.action == "workspace.stop"]
    assert stop.detail["reason"] == "revocation" and stop.actor == "bob"


def test_a_flood_of_session_events_is_cut_to_the_limit(running_enclave, registry):
    bob = running_enclave.person("bob")
    before = head(registry)
    bob.spawn(DEMO)
    try:
        bob.open_workspace(DEMO)
        started = bob.workspace("POST", DEMO, "/api/kernels", json={"name": "python3"})
        kernel = started.json()["id"]
        flood = EVENTS_PER_MINUTE + 20
        for _ in range(flood):  # each interrupt is a kernel action the server reports
            assert bob.workspace("POST", DEMO, f"/api/kernels/{kernel}/interrupt").status_code == 204
    finally:
        bob.stop(DEMO)  # the stop writes the minute's summary at once
    found = wait_for(registry, before, "workspace.events_suppressed")
    audited = [e for e in found if e.action.startswith("workspace.kernel_")]
    (summary,) = [e for e in found if e.action == "workspace.events_suppressed"]
    # the start is the hub's own event; the kernel's start and its interrupts share the per-minute limit
    assert len(audited) == EVENTS_PER_MINUTE
    assert summary.detail["suppressed"] >= flood + 1 - EVENTS_PER_MINUTE  # and its shutdown, unless the stop beat it
    assert summary.detail["refused"] == 0 and summary.actor == "bob" and summary.target == TARGET


def _verify(home) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "provisioning.cli", "--home", str(home), "audit", "verify"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "ENCLAVE_DATABASE_URL": ""},
    )


def test_a_cut_tail_of_the_real_hubs_log_fails_verify(running_enclave, registry, tmp_path):
    home = running_enclave.paths.home
    intact = _verify(home)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert intact.stdout.strip() == "audit log intact"
    # a copy of the installation's log and anchors (the running hub's own stays untouched), its last entries cut
    copy = tmp_path / "home"
    (copy / "secrets").mkdir(parents=True, mode=0o700)
    with sqlite3.connect(home / "registry.sqlite") as source, sqlite3.connect(copy / "registry.sqlite") as target:
        source.backup(target)
    shutil.copytree(home / "audit", copy / "audit")
    shutil.copy2(home / "secrets" / "audit-anchor.key", copy / "secrets")
    assert _verify(copy).returncode == 0
    with sqlite3.connect(copy / "registry.sqlite") as db:
        (last,) = db.execute("SELECT max(seq) FROM audit_events").fetchone()
        db.execute("DELETE FROM audit_events WHERE seq > ?", (last - 3,))
    cut = _verify(copy)
    assert cut.returncode == 1
    assert f"tail was cut after entry {last - 3}" in cut.stdout


def test_a_stop_at_hub_shutdown_says_so(tmp_path_factory, cohort, workspace_env):
    from tests.workspace_hub import running_enclave as start

    with start(tmp_path_factory.mktemp("shutdown-hub") / "home", cohort) as enclave:
        enclave.person("bob").spawn(DEMO)
        paths = enclave.paths
    # leaving the block stopped the hub (SIGTERM): JupyterHub's cleanup stops every workspace
    registry = Registry(paths.database_url)
    try:
        with registry.session() as session:
            stops = [e for e in audit.events(session, actor="bob") if e.action == "workspace.stop"]
            assert audit.verify_log(session).problems == []
    finally:
        registry.close()
    assert [e.detail["reason"] for e in stops] == ["hub shutdown"]
