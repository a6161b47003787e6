"""Every writer changes the registry through `Registry.transaction` (issue 12): one helper that commits the change
and its audit events together and runs the change again when a concurrent writer got there first."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from kernel import audit
from kernel.db import RETRIES, Registry, is_conflict, make_engine
from kernel.models import AuditEvent

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kernel", "fabric", "hub", "output_checks", "provisioning")


def _session_blocks_that_audit() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts or "node_modules" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.With):
                    continue
                opens = [i.context_expr for i in node.items if isinstance(i.context_expr, ast.Call)]
                if not any(isinstance(c.func, ast.Attribute) and c.func.attr == "session" for c in opens):
                    continue
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Call) and ast.unparse(inner.func) == "audit.record":
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                        break
    return found


def test_no_writer_appends_to_the_audit_log_in_a_plain_session():
    assert _session_blocks_that_audit() == []


def test_the_rule_finds_a_plain_session_that_audits(tmp_path, monkeypatch):
    package = tmp_path / "kernel"
    package.mkdir()
    (package / "writer.py").write_text(
        "def change(registry):\n    with registry.session() as session:\n"
        "        audit.record(session, actor='a', action='b', target='c')\n"
    )
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert _session_blocks_that_audit() == ["kernel/writer.py:2"]


@pytest.fixture
def registry(database_url):
    """A registry on SQLite and on PostgreSQL (tests/postgres.py)."""
    registry = Registry(database_url)
    yield registry
    registry.close()


def test_a_change_that_met_a_concurrent_writer_runs_again_and_commits_once(registry):
    attempts = []

    def change(session):
        attempts.append(1)
        audit.record(session, actor="test", action="test.changed", target="x")
        if len(attempts) < 3:
            raise OperationalError("UPDATE", {}, Exception("database is locked"))
        return "done"

    assert registry.transaction(change) == "done"
    assert len(attempts) == 3
    with registry.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 1  # the failed tries rolled back


def test_a_broken_rule_is_raised_at_once_and_a_conflict_after_the_last_try(registry):
    calls = []

    def broken(session):
        calls.append(1)
        raise IntegrityError("INSERT", {}, Exception("NOT NULL constraint failed: sites.name"))

    with pytest.raises(IntegrityError):
        registry.transaction(broken)
    assert len(calls) == 1

    def always_locked(session):
        calls.append(1)
        raise OperationalError("UPDATE", {}, Exception("database is locked"))

    calls.clear()
    with pytest.raises(OperationalError):
        registry.transaction(always_locked)
    assert len(calls) == RETRIES


def test_conflicts_are_told_from_broken_rules():
    assert is_conflict(IntegrityError("x", {}, Exception("UNIQUE constraint failed: audit_events.seq")))
    assert is_conflict(OperationalError("x", {}, Exception("database is locked")))
    assert not is_conflict(IntegrityError("x", {}, Exception("FOREIGN KEY constraint failed")))


def test_writers_in_threads_each_append_one_event_in_an_unbroken_chain(registry):
    """Eight writers at once through `transaction`: every change lands, the chain verifies."""

    def write(n: int) -> None:
        def change(session):
            session.scalar(select(func.count()).select_from(AuditEvent))  # read first: the case SQLite refuses
            audit.record(session, actor="test", action="test.concurrent", target=f"writer:{n}")

        registry.transaction(change)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with registry.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 8
        assert audit.verify(session) == []


def test_a_postgresql_deadlock_is_a_conflict_to_retry(postgres):
    """Two transactions that lock in opposite orders (an airlock verb locks its request's row, then the audit log's
    head; another, the head, then a second request's row): the server breaks the deadlock by rolling one back, and
    that one is run again, not reported as a broken rule. A real deadlock on the session's PostgreSQL."""
    errors: list[Exception] = []
    barrier = threading.Barrier(2)
    with postgres.database() as url:
        engine = make_engine(url)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE first_t (n int); CREATE TABLE second_t (n int)"))

        def lock(one: str, other: str) -> None:
            try:
                with engine.begin() as connection:
                    connection.execute(text(f"LOCK TABLE {one}"))
                    barrier.wait()
                    connection.execute(text(f"LOCK TABLE {other}"))
            except OperationalError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=lock, args=pair) for pair in (("first_t", "second_t"),
                                                                         ("second_t", "first_t"))]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        engine.dispose()
    (deadlock,) = errors
    assert "deadlock detected" in str(deadlock)
    assert is_conflict(deadlock)


def test_a_postgresql_serialisation_failure_is_a_conflict_to_retry(postgres):
    """A server whose administrator made transactions REPEATABLE READ or SERIALIZABLE (default_transaction_isolation)
    refuses the second of two writers to one row with "could not serialize access" (SQLSTATE 40001): run it again."""
    with postgres.database() as url:
        engine = make_engine(url)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE counter (n int); INSERT INTO counter VALUES (0)"))
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as first:
            first.begin()
            first.execute(text("SELECT n FROM counter")).scalar()  # its snapshot is taken here
            with engine.begin() as second:
                second.execute(text("UPDATE counter SET n = n + 1"))
            with pytest.raises(OperationalError) as refused:
                first.execute(text("UPDATE counter SET n = n + 1"))
            first.rollback()
        engine.dispose()
    assert "could not serialize access" in str(refused.value)
    assert is_conflict(refused.value)
