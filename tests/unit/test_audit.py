"""The hash-chained audit log finds edits, deletions, insertions and reorderings, and says where."""

import pytest
from sqlalchemy import delete, text, update

from kernel import audit
from kernel.db import Registry
from kernel.models import AuditEvent

pytestmark = pytest.mark.unit


@pytest.fixture
def registry(database_url):
    """Five events in a registry on SQLite and on PostgreSQL (tests/postgres.py)."""
    reg = Registry(database_url)
    with reg.session() as session:
        for n in range(5):
            audit.record(session, actor="admin", action="site.add", target=f"site-{n}", datasets=n)
    yield reg
    reg.close()


def problems(reg):
    with reg.session() as session:
        return audit.verify(session)


def test_intact_log_verifies(registry):
    assert problems(registry) == []


def test_edited_entry_is_found(registry):
    with registry.session() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(actor="mallory"))
    assert [(p.seq, "edited" in p.problem) for p in problems(registry)] == [(3, True)]


def test_edited_detail_is_found(registry):
    with registry.session() as session:
        session.execute(text("UPDATE audit_events SET detail = '{\"datasets\": 99}' WHERE seq = 2"))
    assert [p.seq for p in problems(registry)] == [2]


def test_deleted_entry_is_found(registry):
    with registry.session() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
    found = problems(registry)
    assert found and found[0].seq == 3


def test_reordered_entries_are_found(registry):
    with registry.session() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(seq=100))
        session.execute(update(AuditEvent).where(AuditEvent.seq == 4).values(seq=2))
        session.execute(update(AuditEvent).where(AuditEvent.seq == 100).values(seq=4))
    assert {p.seq for p in problems(registry)} >= {2, 4}


def test_forged_entry_is_found(registry):
    with registry.session() as session:
        last = session.get(AuditEvent, 5)
        session.add(
            AuditEvent(
                seq=6, at=last.at, actor="x", action="y", target="z", detail={}, prev_hash=last.hash, hash="f" * 64
            )
        )
    assert [p.seq for p in problems(registry)] == [6]
