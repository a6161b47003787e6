"""The audit log's head is anchored outside the database: a cut or rewritten tail and a forged anchor line are found,
a rolled-back event is never anchored, a log from before anchors still verifies, and `enclave audit verify` exits 1
on each problem."""

import multiprocessing
import os

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from kernel import audit
from kernel.audit_anchors import Anchors
from kernel.db import Registry, default_anchors
from kernel.models import AuditEvent
from provisioning.cli import main

pytestmark = pytest.mark.unit


@pytest.fixture
def home(tmp_path):
    return tmp_path


@pytest.fixture
def registry(home):
    reg = Registry(f"sqlite:///{home / 'registry.sqlite'}")
    for n in range(5):
        with reg.session() as session:
            audit.record(session, actor="admin", action="site.add", target=f"site-{n}", datasets=n)
    yield reg
    reg.close()


def check(reg) -> audit.Verification:
    with reg.session() as session:
        return audit.verify_log(session)


def anchor_lines(home) -> list[str]:
    return (home / "audit" / "anchors.log").read_text().splitlines()


def without_anchoring(reg) -> Session:
    """A session straight on the database, as someone who can write it (but not root's files) would have."""
    return Session(reg.engine)


def test_each_commit_that_appends_anchors_the_head(registry, home):
    lines = anchor_lines(home)
    assert [line.split()[0] for line in lines] == ["1", "2", "3", "4", "5"]
    with registry.session() as session:
        head = session.scalars(select(AuditEvent).where(AuditEvent.seq == 5)).one()
    assert lines[-1].split()[1] == head.hash
    assert check(registry) == audit.Verification([], None)


def test_anchor_file_and_key_are_root_only(registry, home):
    assert (home / "audit").stat().st_mode & 0o777 == 0o700
    assert (home / "audit" / "anchors.log").stat().st_mode & 0o777 == 0o600
    assert (home / "secrets").stat().st_mode & 0o777 == 0o700
    assert (home / "secrets" / "audit-anchor.key").stat().st_mode & 0o777 == 0o600


def test_a_commit_without_audit_events_writes_no_anchor(registry, home):
    before = anchor_lines(home)
    with registry.session() as session:
        session.execute(select(func.count()).select_from(AuditEvent))
    assert anchor_lines(home) == before


def test_a_cut_tail_is_found(registry):
    with without_anchoring(registry) as session, session.begin():
        session.execute(delete(AuditEvent).where(AuditEvent.seq >= 4))
    found = check(registry).problems
    assert len(found) == 1
    assert found[0].seq == 4 and "tail was cut after entry 3" in found[0].problem


def test_a_rewritten_tail_is_found(registry):
    # delete the last two entries and chain two new ones on: the chain itself is whole again
    with without_anchoring(registry) as session, session.begin():
        session.execute(delete(AuditEvent).where(AuditEvent.seq >= 4))
        audit.record(session, actor="mallory", action="site.add", target="site-x")
        audit.record(session, actor="mallory", action="site.add", target="site-y")
    with without_anchoring(registry) as session:
        assert audit.verify(session) == []  # by the chain alone, the rewritten log looks whole
    found = check(registry).problems
    assert [p.seq for p in found] == [4, 5]
    assert all("differs from its anchor" in p.problem for p in found)


def test_a_forged_anchor_line_is_found(registry, home):
    lines = anchor_lines(home)
    seq, head, at, _signature = lines[-1].split()
    forged = f"{seq} {head} {at} {'0' * 64}\n"
    with (home / "audit" / "anchors.log").open("a") as out:
        out.write(forged)
        out.write("not an anchor\n")
    found = check(registry).problems
    assert [(p.anchor_line, p.problem) for p in found] == [
        (6, "signature does not match (forged or altered)"),
        (7, "is not an anchor line"),
    ]


def test_an_anchor_signed_with_another_key_is_found(registry, home):
    other = Anchors(home / "elsewhere.log", home / "other.key")
    other.write(99, "a" * 64)
    with (home / "audit" / "anchors.log").open("a") as out:
        out.write((home / "elsewhere.log").read_text())
    found = check(registry).problems
    assert [p.anchor_line for p in found] == [6]


def test_a_line_cut_short_by_a_crash_is_skipped_and_the_next_starts_afresh(registry, home):
    with (home / "audit" / "anchors.log").open("a") as out:
        out.write("6 " + "d" * 30)  # a write torn by a crash: no newline
    result = check(registry)
    assert result.problems == [] and "incomplete" in result.note
    with registry.session() as session:
        audit.record(session, actor="admin", action="site.add", target="site-6")
    assert anchor_lines(home)[-1].split()[0] == "6"
    result = check(registry)
    assert result.problems == [] and "incomplete" in result.note
    # a line that is not an anchor, in the middle with no empty line after it, is still a problem
    with (home / "audit" / "anchors.log").open("a") as out:
        out.write("garbage\n")
    with registry.session() as session:
        audit.record(session, actor="admin", action="site.add", target="site-7")
    assert [p.anchor_line for p in check(registry).problems] == [9]


def test_a_removed_anchor_file_is_found(registry, home):
    (home / "audit" / "anchors.log").unlink()
    found = check(registry).problems
    assert len(found) == 1 and "anchor file is missing" in found[0].problem


def test_a_rolled_back_event_is_never_anchored(registry, home):
    before = anchor_lines(home)
    with pytest.raises(RuntimeError), registry.session() as session:
        audit.record(session, actor="admin", action="site.add", target="rolled-back")
        raise RuntimeError("the change failed")
    assert anchor_lines(home) == before
    # and a later commit anchors the head as committed, not the rolled-back entry's seq
    with registry.session() as session:
        event = audit.record(session, actor="admin", action="site.add", target="site-6")
    assert anchor_lines(home)[-1].split()[:2] == ["6", event.hash]
    assert check(registry).problems == []


def test_a_rolled_back_savepoint_is_not_anchored(registry, home):
    with registry.session() as session:
        nested = session.begin_nested()
        audit.record(session, actor="admin", action="site.add", target="undone")
        nested.rollback()
        session.execute(text("SELECT 1"))
    # the commit is anchored at the head as committed: entry 5, never the undone entry 6
    assert anchor_lines(home)[-1].split()[0] == "5"
    assert check(registry).problems == []


def test_a_log_from_before_anchors_verifies_with_a_note(home):
    reg = Registry(f"sqlite:///{home / 'registry.sqlite'}")
    with without_anchoring(reg) as session, session.begin():
        for n in range(3):
            audit.record(session, actor="admin", action="site.add", target=f"site-{n}")
    result = check(reg)
    assert result.problems == []
    assert "not anchored yet" in result.note
    # the next audited change starts anchoring: the whole log is then covered
    with reg.session() as session:
        audit.record(session, actor="admin", action="site.add", target="site-3")
    assert check(reg) == audit.Verification([], None)
    reg.close()


def test_an_empty_log_verifies_without_a_note(home):
    reg = Registry(f"sqlite:///{home / 'registry.sqlite'}")
    assert check(reg) == audit.Verification([], None)
    assert not (home / "secrets" / "audit-anchor.key").exists()  # verifying creates nothing
    reg.close()


def _append_many(url: str, worker: int) -> None:
    reg = Registry(url)
    for n in range(25):
        with reg.session() as session:
            audit.record(session, actor=f"worker-{worker}", action="site.add", target=f"site-{n}")
    reg.close()


def test_processes_appending_at_once_write_whole_lines(home):
    url = f"sqlite:///{home / 'registry.sqlite'}"
    Registry(url).close()
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(url, w)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert all(w.exitcode == 0 for w in workers)
    lines = anchor_lines(home)
    assert len(lines) == 100
    reg = Registry(url)
    assert check(reg) == audit.Verification([], None)
    reg.close()


def _cli(home, *args):
    return CliRunner().invoke(main, ["--home", str(home), "audit", "verify", *args], env={"ENCLAVE_DATABASE_URL": ""})


def test_cli_verify_exit_status(registry, home):
    result = _cli(home)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "audit log intact"
    with without_anchoring(registry) as session, session.begin():
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 5))
    result = _cli(home)
    assert result.exit_code == 1
    assert "entry 5:" in result.output and "tail was cut" in result.output
    with (home / "audit" / "anchors.log").open("a") as out:
        out.write("1 " + "b" * 64 + " 2026-01-01T00:00:00Z " + "c" * 64 + "\n")
    result = _cli(home)
    assert result.exit_code == 1 and "anchor line 6: signature does not match" in result.output


def test_cli_verify_of_a_log_from_before_anchors(home):
    reg = Registry(f"sqlite:///{home / 'registry.sqlite'}")
    with without_anchoring(reg) as session, session.begin():
        audit.record(session, actor="admin", action="site.add", target="site-0")
    reg.close()
    result = _cli(home)
    assert result.exit_code == 0, result.output
    assert "audit log intact (not anchored yet" in result.output


def test_the_key_is_never_in_the_anchor_file(registry, home):
    key = (home / "secrets" / "audit-anchor.key").read_text().strip()
    assert key not in (home / "audit" / "anchors.log").read_text()
    assert os.path.getsize(home / "secrets" / "audit-anchor.key") == 65


def test_a_server_databases_anchors_live_in_the_named_installations_home(tmp_path, monkeypatch):
    # `enclave --home OTHER` on PostgreSQL: its anchors are OTHER's, not ENCLAVE_HOME's (nothing connects here)
    monkeypatch.setenv("ENCLAVE_HOME", str(tmp_path / "env-home"))
    url = "postgresql+psycopg://enclave@/enclave?host=/run/postgresql"
    assert default_anchors(url, tmp_path / "other").log_path == Anchors.for_home(tmp_path / "other").log_path
    assert default_anchors(url).log_path == Anchors.for_home(tmp_path / "env-home").log_path
    # SQLite keeps its anchors beside its file, wherever the home argument points
    sqlite = f"sqlite:///{tmp_path / 'site' / 'registry.sqlite'}"
    assert default_anchors(sqlite, tmp_path / "other").log_path == Anchors.for_home(tmp_path / "site").log_path
    assert default_anchors("sqlite://") is None
