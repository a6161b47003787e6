"""Issue 17, finding 4: one large output no longer stalls the airlock for everyone. Against the real airlock web app
served on loopback over a provisioned home: a 2 GiB submission is refused by the policy's size limit with the
reason (web and `enclave airlock submit`), leaving nothing behind but its audit event; a large allowed submission
returns at once and is copied in the background while another person's review list stays responsive (the issue's
200 ms p95 bound); a file that grows past the limit after it was measured is refused by the streaming copy; and
withdrawn and rejected requests' snapshots are purged after the policy's retention, audited.

People (tests/airlock_factories.py): alice researcher and author, carol and dave output checkers of cvd-risk."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from kernel import audit
from output_checks.release import workflow
from output_checks.release.service import Airlock
from output_checks.release.states import RequestState
from output_checks.release.storage import TooLarge
from tests.airlock_factories import AUTHOR, CHECKERS, ensure_people, request_at, write_output
from tests.airlock_web import Person, dev_airlock, footprint
from tests.provisioned import provision

pytestmark = pytest.mark.integration

PROJECT = "cvd-risk"
CAROL = CHECKERS[0]
GiB, MiB = 2**30, 2**20
P95_BOUND_S = 0.200  # the bound for another person's page while a large file is submitted
ENCLAVE = shutil.which("enclave", path=str(Path(sys.executable).parent)) or "enclave"


@pytest.fixture(scope="module")
def app(tmp_path_factory, cohort) -> Airlock:
    env = provision(tmp_path_factory.mktemp("responsive-home"), cohort, {PROJECT: "DS-CVD"})
    airlock = Airlock(env.registry, env.paths)
    ensure_people(airlock)
    yield airlock
    env.registry.close()


@pytest.fixture(scope="module")
def base(app) -> str:
    with dev_airlock(app) as url:
        yield url


def created_id(response) -> str:
    assert response.status_code == 303, response.text[-2000:]
    return re.fullmatch(r"/requests/(r-[0-9]{8}-[0-9a-f]{8})\?done=[\w-]+", response.headers["Location"]).group(1)


def state_of(app: Airlock, request_id: str) -> str:
    return app.tx(lambda s: s.get(workflow.ReleaseRequest, request_id).state)


def sparse_output(app: Airlock, name: str, size: int) -> Path:
    path = app.paths.project_outputs(PROJECT) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.truncate(size)
    return path


def filled_output(app: Airlock, name: str, size: int) -> Path:
    """Real (not sparse) bytes, so the copy reads and writes every block."""
    path = app.paths.project_outputs(PROJECT) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(MiB)
    with path.open("wb") as fh:
        for _ in range(size // MiB):
            fh.write(block)
    return path


def site_policy(app: Airlock, text: str | None) -> None:
    path = app.paths.airlock / "policy.yaml"
    if text is None:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def events(app: Airlock, action: str) -> list[dict]:
    return app.tx(lambda s: [e.detail for e in audit.events(s) if e.action == action])


# ------------------------------------------------------------------------------------------------ size limits


def test_a_2_gib_submission_is_refused_by_the_policy_with_the_reason_and_leaves_nothing_behind(app, base):
    name = "big/two-gib.bin"
    sparse_output(app, name, 2 * GiB)
    alice = Person(base, AUTHOR)
    before = footprint(app)
    started = time.monotonic()
    r = alice.post("/new", {"project": PROJECT, "title": "Everything", "file": name, "then": "submit"})
    took = time.monotonic() - started
    print(f"\n2 GiB submission refused in {took * 1000:.0f} ms")
    assert r.status_code == 413, r.status_code
    assert "over the airlock&#39;s limit of 1,024 MB per file" in r.text and "nothing was submitted" in r.text
    assert 'value="Everything"' in r.text  # the form is shown again with the person's choices
    requests_, audited, snapshots = footprint(app)
    assert (requests_, snapshots) == (before[0], before[2])  # no request, not one byte copied
    assert audited == before[1] + 1  # only the refusal's own audit event
    refused = events(app, "airlock.submit_refused")[-1]
    assert refused["project"] == PROJECT and "two-gib.bin" in refused["problem"]
    assert not list(app.store.snapshots.rglob("*.part*")) if app.store.snapshots.exists() else True


def test_the_command_line_refuses_the_same_submission_with_the_same_reason(app):
    if os.geteuid() != 0:
        pytest.skip("the CLI acts as ENCLAVE_USER only for root; run the tests as root")
    name = "big/two-gib-cli.bin"
    sparse_output(app, name, 2 * GiB)
    before = footprint(app)
    result = subprocess.run(
        [ENCLAVE, "--home", str(app.paths.home), "airlock", "submit", name, "--project", PROJECT, "--title", "All"],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "ENCLAVE_USER": AUTHOR},
    )  # fmt: skip
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "over the airlock's limit of 1,024 MB per file" in result.stderr and "nothing was submitted" in result.stderr
    after = footprint(app)
    assert (after[0], after[2]) == (before[0], before[2]) and after[1] == before[1] + 1


def test_the_command_line_takes_a_large_allowed_file_through_the_same_background_copy(app):
    if os.geteuid() != 0:
        pytest.skip("the CLI acts as ENCLAVE_USER only for root; run the tests as root")
    path = filled_output(app, "big/allowed.bin", 24 * MiB)  # over the inline size: prepared, then a draft
    result = subprocess.run(
        [ENCLAVE, "--home", str(app.paths.home), "airlock", "submit", "big/allowed.bin", "--project", PROJECT,
         "--title", "Allowed", "--draft"],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "ENCLAVE_USER": AUTHOR},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    request_id = result.stdout.strip()
    assert state_of(app, request_id) == RequestState.DRAFT
    record = app.tx(lambda s: workflow.current_files(workflow.get_request(s, request_id, AUTHOR))[0])
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and record.size == 24 * MiB
    actions = [e.action for e in app.tx(lambda s: list(audit.events(s, request=request_id)))]
    assert actions == ["airlock.create", "airlock.prepare", "airlock.add_file", "airlock.prepared"]


def test_a_request_over_the_per_request_total_is_refused_before_any_copy(app):
    site_policy(app, "submit_max_file_mb: 8\nsubmit_max_request_mb: 12\n")
    try:
        names = [write_output(app, f"total/part-{i}.bin", b"\0" * (5 * MiB)) for i in range(3)]
        before = footprint(app)
        with pytest.raises(TooLarge, match="over the airlock's limit of 12 MB per request"):
            app.new_request(project=PROJECT, author=AUTHOR, title="Parts", files=[(n, "") for n in names])
        after = footprint(app)
        assert (after[0], after[2]) == (before[0], before[2])
    finally:
        site_policy(app, None)


def test_a_file_that_grows_past_the_limit_after_it_was_measured_is_refused_by_the_copy(app, base):
    """Measured within the limit, then grown before the background copy: the copy stops at the limit, the request
    is withdrawn by the airlock with the reason (shown on its page), and no byte of it is kept."""
    site_policy(app, "submit_max_file_mb: 40\n")
    try:
        path = filled_output(app, "growing/log.bin", 32 * MiB)
        request_id, pending = app.new_request(project=PROJECT, author=AUTHOR, title="Growing",
                                              files=[("growing/log.bin", "")])  # fmt: skip
        assert pending and state_of(app, request_id) == RequestState.PREPARING
        with path.open("ab") as fh:  # the workspace keeps writing to it
            fh.write(os.urandom(16 * MiB))
        assert app.prepare(request_id) is False
    finally:
        site_policy(app, None)
    assert state_of(app, request_id) == RequestState.WITHDRAWN
    assert not app.store.has_snapshots(request_id)
    refused = [e for e in app.tx(lambda s: list(audit.events(s, request=request_id))) if e.action == "airlock.refuse"]
    assert len(refused) == 1 and refused[0].actor == workflow.SYSTEM
    assert "grew past the airlock's limit of 40 MB" in refused[0].detail["problem"]
    page = Person(base, AUTHOR).get(f"/requests/{request_id}")
    assert page.status_code == 200 and "The airlock refused this request" in page.text and "grew past" in page.text
    assert app.tx(audit.verify) == []


# ------------------------------------------------------------------------------------------------ responsiveness


def test_responsiveness_a_large_submission_does_not_block_another_persons_review_list(app, base):
    """RESPONSIVENESS (the issue's bound): carol's review list keeps a p95 under 200 ms while alice submits a
    few hundred MB through the web app; the copy is then byte-identical to the output and hashed."""
    in_review = request_at(app, RequestState.IN_REVIEW)  # something on carol's list, and a page to review
    size = 384 * MiB
    path = filled_output(app, "large/cohort-extract.bin", size)
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # a cold read, as in a real submission
    os.close(fd)
    carol, alice = Person(base, CAROL), Person(base, AUTHOR)
    assert carol.get("/review").status_code == 200
    token = alice.token()
    latencies: list[float] = []
    reviewing: list[float] = []  # carol's review page of another request (it writes an audit event per view)
    submitted: dict = {}

    def submit() -> None:
        started = time.monotonic()
        submitted["response"] = alice.http.post(
            base + "/new", data={"project": PROJECT, "title": "Extract", "file": "large/cohort-extract.bin",
                                 "then": "draft", "_xsrf": token}, allow_redirects=False, timeout=600,
        )  # fmt: skip
        submitted["took"] = time.monotonic() - started

    thread = threading.Thread(target=submit)
    thread.start()
    request_id = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        started = time.monotonic()
        assert carol.get("/review").status_code == 200
        latencies.append(time.monotonic() - started)
        started = time.monotonic()
        assert carol.get(f"/requests/{in_review}").status_code == 200
        reviewing.append(time.monotonic() - started)
        if request_id is None and "response" in submitted:
            request_id = created_id(submitted["response"])
        if request_id and state_of(app, request_id) != RequestState.PREPARING:
            break
        time.sleep(0.02)
    thread.join(60)
    assert request_id and state_of(app, request_id) == RequestState.DRAFT
    p95 = statistics.quantiles(latencies, n=20, method="inclusive")[-1]
    median, worst, answered = statistics.median(latencies), max(latencies), submitted["took"]
    print(
        f"\nreview list during a {size // MiB} MiB submission: n={len(latencies)} median={median * 1000:.1f} ms "
        f"p95={p95 * 1000:.1f} ms max={worst * 1000:.1f} ms; the submission answered in {answered * 1000:.0f} ms"
    )
    page_p95 = statistics.quantiles(reviewing, n=20, method="inclusive")[-1]
    print(f"review page of another request meanwhile: median={statistics.median(reviewing) * 1000:.1f} ms "
          f"p95={page_p95 * 1000:.1f} ms")  # fmt: skip
    assert p95 < P95_BOUND_S, f"p95 {p95 * 1000:.0f} ms while a large file was submitted"
    assert page_p95 < P95_BOUND_S, f"the review page's p95 {page_p95 * 1000:.0f} ms while a large file was submitted"
    assert len(latencies) >= 10
    record = app.tx(lambda s: workflow.current_files(workflow.get_request(s, request_id, AUTHOR))[0])
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(4 * MiB):
            digest.update(block)
    assert (record.size, record.sha256) == (size, digest.hexdigest())
    assert app.store.verify(record.snapshot, record.sha256).stat().st_mode & 0o222 == 0  # read-only snapshot
    actions = [e.action for e in app.tx(lambda s: list(audit.events(s, request=request_id)))]
    assert actions == ["airlock.create", "airlock.prepare", "airlock.add_file", "airlock.prepared"]
    app.tx(lambda s: workflow.withdraw(s, request_id, AUTHOR))  # its bytes go with the retention purge


# ------------------------------------------------------------------------------------------------ retention


def test_withdrawn_and_rejected_snapshots_are_purged_after_the_retention_and_audited(app):
    withdrawn = request_at(app, RequestState.WITHDRAWN, files={"keep/w.csv": "site,n\nA,120\n"})
    rejected = request_at(app, RequestState.REJECTED, files={"keep/r.csv": "site,n\nA,130\n"})
    open_one = request_at(app, RequestState.IN_REVIEW, files={"keep/o.csv": "site,n\nA,140\n"})
    hashes = {
        rid: app.tx(lambda s, rid=rid: [(f.path, f.sha256) for f in workflow.get_request(s, rid, AUTHOR).files])
        for rid in (withdrawn, rejected)
    }
    site_policy(app, "retention_days: 30\n")
    try:
        soon = workflow.now() + timedelta(days=29)
        assert not {withdrawn, rejected} & set(app.purge(now=soon))  # within the retention: kept
        assert app.store.has_snapshots(withdrawn) and app.store.has_snapshots(rejected)
        later = workflow.now() + timedelta(days=31)
        purged = app.purge(now=later)
        assert {withdrawn, rejected} <= set(purged) and open_one not in purged
        assert app.purge(now=later) == []  # nothing left to remove, nothing audited twice
    finally:
        site_policy(app, None)
    for rid in (withdrawn, rejected):
        assert not app.store.has_snapshots(rid)
        kept = app.tx(lambda s, rid=rid: [(f.path, f.sha256) for f in workflow.get_request(s, rid, AUTHOR).files])
        assert kept == hashes[rid]  # the record and its hashes stay; only the bytes went
        trail = [e for e in app.tx(lambda s, rid=rid: list(audit.events(s, request=rid)))
                 if e.action == "airlock.snapshot_purged"]  # fmt: skip
        assert len(trail) == 1 and trail[0].actor == workflow.SYSTEM
        assert [f["sha256"] for f in trail[0].detail["files"]] == [sha for _, sha in hashes[rid]]
    assert app.store.has_snapshots(open_one)
    assert app.tx(audit.verify) == []


def test_the_purge_command_runs_the_same_purge(app):
    if os.geteuid() != 0:
        pytest.skip("run the tests as root")
    result = subprocess.run([ENCLAVE, "--home", str(app.paths.home), "airlock", "purge"], capture_output=True,
                            text=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
