"""Red-team tests of the release workflow: separation of duties, project isolation, immutable submissions,
snapshot tampering, and audit-log tampering caught by `enclave audit verify`."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kernel import audit
from kernel.errors import EnclaveError, NotFoundError
from output_checks.release import workflow
from output_checks.release.service import Airlock
from output_checks.release.states import RequestState
from output_checks.release.storage import IntegrityError
from tests.airlock_factories import AUTHOR, BOTH, CHECKERS, ensure_people, request_at, write_output
from tests.provisioned import provision

pytestmark = pytest.mark.security
ENCLAVE = shutil.which("enclave", path=str(Path(sys.executable).parent)) or "enclave"


@pytest.fixture(scope="module")
def app(tmp_path_factory, cohort) -> Airlock:
    env = provision(tmp_path_factory.mktemp("airlock-sec"), cohort, {"cvd-risk": "DS-CVD", "biomed": "HMB"})
    airlock = Airlock(env.registry, env.paths)
    ensure_people(airlock)
    from fabric.projects import add_member

    airlock.tx(lambda s: add_member(s, "biomed", "zoe", "output_checker", actor="test-admin"))
    yield airlock
    env.registry.close()


def test_author_cannot_review_or_release_their_own_request_even_as_a_checker(app):
    request_id = request_at(app, RequestState.IN_REVIEW, author=BOTH)
    with pytest.raises(workflow.NotAllowed):
        app.vote(request_id, BOTH, "counts.csv", "approve")
    with pytest.raises(workflow.NotAllowed):
        app.submit_review(request_id, BOTH)
    approved = request_at(app, RequestState.APPROVED, author=BOTH)
    with pytest.raises(workflow.NotAllowed):
        app.release(approved, BOTH)


def test_a_checker_of_another_project_sees_nothing(app):
    request_id = request_at(app, RequestState.IN_REVIEW)
    with pytest.raises(NotFoundError):
        app.tx(lambda s: workflow.get_request(s, request_id, "zoe"))
    assert request_id not in [r.id for r in app.review_queue("zoe")]
    with pytest.raises(NotFoundError):
        app.vote(request_id, "zoe", "counts.csv", "approve")


def test_no_one_but_the_requester_downloads_and_not_another_projects_release(app):
    request_id = request_at(app, RequestState.RELEASED)
    for user in (*CHECKERS, "zoe", "bob", "mallory"):
        with pytest.raises(EnclaveError):
            app.download(request_id, user, "counts.csv")


def test_a_submitted_file_cannot_be_edited(app):
    request_id = request_at(app, RequestState.IN_REVIEW)
    write_output(app, "extra.csv", "site,n\nA,120\n")
    with pytest.raises(workflow.InvalidRequest):
        app.add_file(request_id, AUTHOR, "extra.csv")
    with pytest.raises(workflow.InvalidRequest):
        app.revise(request_id, AUTHOR, "counts.csv")
    with pytest.raises(workflow.InvalidRequest):
        app.justify(request_id, AUTHOR, "counts.csv", "changed my mind")
    record = app.tx(lambda s: workflow.current_files(workflow.get_request(s, request_id, AUTHOR))[0])
    snapshot = app.store.snapshot_path(record.snapshot)
    assert snapshot.stat().st_mode & 0o222 == 0  # read-only on disk


def test_a_swapped_snapshot_is_detected_before_release(app):
    request_id = request_at(app, RequestState.APPROVED)
    record = app.tx(lambda s: workflow.current_files(workflow.get_request(s, request_id, AUTHOR))[0])
    snapshot = app.store.snapshot_path(record.snapshot)
    snapshot.chmod(0o640)
    snapshot.write_bytes(snapshot.read_bytes().replace(b"120", b"3"))
    with pytest.raises(IntegrityError):
        app.release(request_id, CHECKERS[0])
    assert app.state(request_id, AUTHOR) == "approved"
    egress = app.store.egress / "cvd-risk" / request_id
    assert not egress.exists() or not any(egress.iterdir())
    actions = app.tx(lambda s: [e.action for e in audit.events(s, request=request_id)])
    assert actions[-1] == "airlock.release_aborted"


def _verify(app: Airlock) -> subprocess.CompletedProcess:
    return subprocess.run([ENCLAVE, "--home", str(app.paths.home), "audit", "verify"], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder", "insert"])
def test_audit_tampering_is_detected(app, tamper, tmp_path):
    request_at(app, RequestState.RELEASED)
    assert _verify(app).returncode == 0
    database = Path(app.paths.database_url.removeprefix("sqlite:///"))
    backup = tmp_path / "registry.sqlite"
    app.registry.engine.dispose()
    with sqlite3.connect(database) as live, sqlite3.connect(backup) as copy:
        live.backup(copy)  # the backup API copies the WAL's content too
    with sqlite3.connect(database) as db:
        seqs = [row[0] for row in db.execute("SELECT seq FROM audit_events WHERE action LIKE 'airlock.%' ORDER BY seq")]
        middle = seqs[len(seqs) // 2]
        if tamper == "edit":
            db.execute("UPDATE audit_events SET actor = 'someone-else' WHERE seq = ?", (middle,))
        elif tamper == "delete":
            db.execute("DELETE FROM audit_events WHERE seq = ?", (middle,))
        elif tamper == "reorder":
            db.execute("UPDATE audit_events SET seq = -1 WHERE seq = ?", (middle,))
            db.execute("UPDATE audit_events SET seq = ? WHERE seq = ?", (middle, middle + 1))
            db.execute("UPDATE audit_events SET seq = ? WHERE seq = -1", (middle + 1,))
        else:
            db.execute(
                "INSERT INTO audit_events (seq, at, actor, action, target, detail, prev_hash, hash) "
                "SELECT seq + 100000, at, actor, action, target, detail, prev_hash, "
                "CASE substr(hash, 1, 1) WHEN 'f' THEN 'e' ELSE 'f' END || substr(hash, 2) "
                "FROM audit_events WHERE seq = ?",
                (middle,),
            )
    result = _verify(app)
    with sqlite3.connect(backup) as copy, sqlite3.connect(database) as live:
        copy.backup(live)
    assert result.returncode == 1, result.stdout
    assert "entry" in result.stdout
