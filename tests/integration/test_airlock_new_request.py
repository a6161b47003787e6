"""The airlock web app's new-request page (`/new`, what JupyterLab's Airlock menu opens), served for real on loopback
over a provisioned home: what each person is offered, a submission snapshotted byte for byte and audited, and every
refusal (a tampered path, a project that is not yours, no role, no XSRF token) creating nothing and, where the form
can be fixed, showing it again with the person's choices kept.

People (tests/airlock_factories.py): alice researcher on cvd-risk, biomed and quiet (whose outputs stay empty), bob
researcher on cvd-risk only, carol output checker on cvd-risk and biomed, dave output checker, erin researcher and
output checker on cvd-risk, mallory nobody."""

from __future__ import annotations

import hashlib
import os
import re
import time
from datetime import datetime

import pytest

from kernel import audit
from output_checks.release import workflow
from output_checks.release.service import Airlock
from provisioning import steps
from tests.airlock_factories import AUTHOR, BOTH, CHECKERS, OTHER_RESEARCHER, STRANGER, ensure_people, write_output
from tests.airlock_web import Person, dev_airlock, footprint
from tests.provisioned import provision, spec_file

pytestmark = pytest.mark.integration

PROJECT, OTHER, QUIET = "cvd-risk", "biomed", "quiet"
CAROL, DAVE = CHECKERS
CHOSEN = re.compile(r'name="file" value="([^"]+)"')
WHEN = datetime(2024, 5, 6, 7, 8, 9)


@pytest.fixture(scope="module")
def app(tmp_path_factory, cohort) -> Airlock:
    home = tmp_path_factory.mktemp("new-request-home")
    env = provision(home, cohort, {PROJECT: "DS-CVD", OTHER: "HMB"})
    steps.ensure_project(env.registry, spec_file(home, QUIET, "GRU"), actor="test-admin")  # never materialised
    airlock = Airlock(env.registry, env.paths)
    ensure_people(airlock)
    yield airlock
    env.registry.close()


@pytest.fixture(scope="module")
def base(app) -> str:
    with dev_airlock(app) as url:
        yield url


def outputs(app: Airlock, project: str = PROJECT):
    return app.paths.project_outputs(project)


def offered(page: str, prefix: str = "") -> set[str]:
    return {p for p in CHOSEN.findall(page) if p.startswith(prefix)}


def created_id(response) -> str:
    assert response.status_code == 303, response.text
    return re.fullmatch(r"/requests/(r-[0-9]{8}-[0-9a-f]{8})\?done=\w+", response.headers["Location"]).group(1)


def state_of(app: Airlock, request_id: str) -> str:
    return app.tx(lambda s: s.get(workflow.ReleaseRequest, request_id).state)


# ------------------------------------------------------------------------------------------------ what is offered


def test_a_researcher_is_offered_the_regular_files_of_their_own_projects_only(app, base):
    write_output(app, "listing/table.csv", "site,n\nA,120\n")
    write_output(app, "listing/sub/deep.md", "# Deep\n")
    write_output(app, "listing/.hidden.csv", "site,n\nA,120\n")
    folder = outputs(app) / "listing"
    os.utime(folder / "table.csv", (WHEN.timestamp(), WHEN.timestamp()))
    (folder / "link.csv").symlink_to("table.csv")
    (folder / "linked-dir").symlink_to(folder / "sub", target_is_directory=True)
    os.mkfifo(folder / "pipe")
    outputs(app, OTHER).mkdir(parents=True, exist_ok=True)
    (outputs(app, OTHER) / "bio-only.csv").write_text("group,n\nA,150\n")

    bob = Person(base, OTHER_RESEARCHER).get("/new")
    assert bob.status_code == 200 and "Outputs of project cvd-risk" in bob.text
    assert offered(bob.text, "listing/") == {"listing/table.csv", "listing/sub/deep.md"}
    assert "bio-only.csv" not in bob.text and "<select" not in bob.text  # one project: nothing to choose
    row = bob.text[bob.text.index('value="listing/table.csv"') :].split("</tr>")[0]
    assert "13 bytes" in row and f"{WHEN:%Y-%m-%d %H:%M} UTC" in row

    alice = Person(base, AUTHOR)
    mine = alice.get("/new", params={"project": OTHER})
    assert mine.status_code == 200 and offered(mine.text) == {"bio-only.csv"}
    assert f'<option value="{OTHER}" selected>' in mine.text
    assert all(f'<option value="{p}"' in mine.text for p in (PROJECT, QUIET))
    assert offered(alice.get("/new", params={"project": PROJECT}).text, "listing/") == {
        "listing/table.csv", "listing/sub/deep.md"
    }  # fmt: skip

    theirs = Person(base, OTHER_RESEARCHER).get("/new", params={"project": OTHER})
    assert theirs.status_code == 403 and "not a researcher on project" in theirs.text
    assert "bio-only.csv" not in theirs.text


def test_empty_outputs_say_where_to_put_files(app, base):
    page = Person(base, AUTHOR).get("/new", params={"project": QUIET})
    assert page.status_code == 200
    assert "outputs folder of quiet is empty" in page.text and "<code>/project/outputs</code>" in page.text
    assert offered(page.text) == set() and 'name="then"' not in page.text


def test_researchers_get_the_new_request_link_and_nobody_else(base):
    for user in (AUTHOR, OTHER_RESEARCHER, BOTH):
        person = Person(base, user)
        assert 'href="/new"' in person.get("/requests").text, user
        assert 'href="/new"' in person.get("/review").text, user  # in the navigation on every page
        assert person.get("/new").status_code == 200, user
    for user in (CAROL, DAVE, STRANGER):
        person = Person(base, user)
        assert 'href="/new"' not in person.get("/requests").text, user
        page = person.get("/new")
        assert page.status_code == 403 and "only researchers can ask for a release" in page.text, user


def test_signing_in_is_required(base):
    anonymous = Person(base, None)
    r = anonymous.get("/new", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith("/dev/login?next=%2Fnew")


# ------------------------------------------------------------------------------------------------ submitting


def test_submitting_snapshots_the_outputs_byte_for_byte_and_audits_every_step(app, base):
    counts = write_output(app, "submit/counts.csv", "site,n\nA,120\nB,45\n")
    notes = write_output(app, "submit/notes.md", "# Notes\n\nMean LDL was 3.1 mmol/L at every site.\n")
    alice = Person(base, AUTHOR)
    request_id = created_id(alice.post("/new", {
        "project": PROJECT, "title": "Counts and notes", "file": [counts, notes],
        "why:submit/counts.csv": "table 1 of the paper", "then": "submit",
    }))  # fmt: skip

    record = app.tx(lambda s: workflow.get_request(s, request_id, AUTHOR))
    assert (record.project, record.author, record.title) == (PROJECT, AUTHOR, "Counts and notes")
    current = app.tx(lambda s: workflow.current_files(workflow.get_request(s, request_id, AUTHOR)))
    files = {f.path: (f.sha256, f.snapshot, f.justification) for f in current}
    assert set(files) == {counts, notes}
    for path, (sha256, snapshot, _) in files.items():
        assert sha256 == hashlib.sha256((outputs(app) / path).read_bytes()).hexdigest()
        app.store.verify(snapshot, sha256)  # the immutable copy hashes the same
    assert files[counts][2] == "table 1 of the paper" and files[notes][2] == ""

    events = app.tx(lambda s: [(e.actor, e.action, e.detail) for e in audit.events(s, request=request_id)])
    assert [(actor, action) for actor, action, _ in events[:4]] == [
        (AUTHOR, "airlock.create"), (AUTHOR, "airlock.add_file"), (AUTHOR, "airlock.add_file"),
        (AUTHOR, "airlock.submit"),
    ]  # fmt: skip
    assert {d["path"]: d["sha256"] for _, a, d in events if a == "airlock.add_file"} == {
        p: sha for p, (sha, _, _) in files.items()
    }
    assert app.tx(audit.verify) == []

    deadline = time.monotonic() + 300  # the automated checks run in the web app's background runner
    while state_of(app, request_id) == "checking" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert state_of(app, request_id) == "in_review"
    page = alice.get(f"/requests/{request_id}?done=submitted")
    assert "the automated checks are running" in page.text.lower() or "Submitted" in page.text


def test_save_as_draft_takes_the_copies_but_submits_nothing(app, base):
    name = write_output(app, "draft/table.csv", "site,n\nA,120\n")
    r = Person(base, OTHER_RESEARCHER).post("/new", {"project": PROJECT, "title": "Later", "file": name,
                                                     "then": "draft"})  # fmt: skip
    request_id = created_id(r)
    assert r.headers["Location"].endswith("?done=created") and state_of(app, request_id) == "draft"
    actions = app.tx(lambda s: [e.action for e in audit.events(s, request=request_id)])
    assert actions == ["airlock.create", "airlock.add_file"]


# ------------------------------------------------------------------------------------------------ refusals


@pytest.fixture(scope="module")
def traps(app) -> dict[str, str]:
    """Files and links in cvd-risk's outputs that a tampered form might name, and a file outside every project."""
    write_output(app, "refuse/ok.csv", "site,n\nA,120\n")
    write_output(app, "refuse/folder/inner.csv", "site,n\nA,120\n")
    outside = app.paths.home / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.csv").write_text("name,nhs\nJane Doe,9434765919\n")
    folder = outputs(app) / "refuse"
    (folder / "out-link.csv").symlink_to(outside / "secret.csv")
    (folder / "in-link.csv").symlink_to("ok.csv")
    (folder / "dir-link").symlink_to(outside, target_is_directory=True)
    depth = len(outputs(app).relative_to(app.paths.home).parts)
    return {
        "dot-dot out": "../" * depth + "outside/secret.csv",
        "dot-dot in and back": "refuse/../refuse/ok.csv",
        "absolute, inside outputs": str(folder / "ok.csv"),
        "absolute, elsewhere": "/etc/passwd",
        "link to a file outside": "refuse/out-link.csv",
        "link to a file inside": "refuse/in-link.csv",
        "through a linked folder": "refuse/dir-link/secret.csv",
        "a folder": "refuse/folder",
        "no such file": "refuse/nothing.csv",
        "empty": "",
    }


@pytest.mark.parametrize("trap", ["dot-dot out", "dot-dot in and back", "absolute, inside outputs",
                                  "absolute, elsewhere", "link to a file outside", "link to a file inside",
                                  "through a linked folder", "a folder", "no such file", "empty"])  # fmt: skip
def test_a_tampered_path_is_refused_whole_and_the_form_keeps_the_choices(app, base, traps, trap):
    before = footprint(app)
    alice = Person(base, AUTHOR)
    r = alice.post("/new", {"project": PROJECT, "title": "Keep my title", "file": ["refuse/ok.csv", traps[trap]],
                            "why:refuse/ok.csv": "kept justification", "then": "submit"})  # fmt: skip
    assert r.status_code == 400, trap
    assert 'role="alert"' in r.text and "Nothing was requested" in r.text
    assert re.search(r'value="refuse/ok\.csv" id="f-\d+" checked>', r.text)
    assert 'value="Keep my title"' in r.text and 'value="kept justification"' in r.text
    assert "9434765919" not in r.text
    assert footprint(app) == before


def test_a_refusal_by_the_workflow_shows_its_reason_on_the_form(app, base):
    name = write_output(app, "refuse/titled.csv", "site,n\nA,120\n")
    before = footprint(app)
    alice = Person(base, AUTHOR)
    r = alice.post("/new", {"project": PROJECT, "title": "  ", "file": name, "why:refuse/titled.csv": "kept"})
    assert r.status_code == 409 and "a request needs a title" in r.text
    assert re.search(r'value="refuse/titled\.csv" id="f-\d+" checked>', r.text) and 'value="kept"' in r.text
    r = alice.post("/new", {"project": PROJECT, "title": "No files"})
    assert r.status_code == 400 and "choose at least one file" in r.text and 'value="No files"' in r.text
    assert footprint(app) == before


def test_checkers_strangers_and_other_projects_are_refused_and_nothing_is_created(app, base):
    name = write_output(app, "refuse/checker.csv", "site,n\nA,120\n")
    before = footprint(app)
    form = {"project": PROJECT, "title": "Not mine to ask", "file": name}
    for user in (CAROL, STRANGER):
        r = Person(base, user).post("/new", form)
        assert r.status_code == 403 and "only researchers can ask for a release" in r.text, user
    r = Person(base, OTHER_RESEARCHER).post("/new", {**form, "project": OTHER})
    assert r.status_code == 403 and "not a researcher on project" in r.text
    assert footprint(app) == before


def test_a_post_without_the_xsrf_token_is_refused(app, base):
    name = write_output(app, "refuse/xsrf.csv", "site,n\nA,120\n")
    before = footprint(app)
    alice = Person(base, AUTHOR)
    form = {"project": PROJECT, "title": "Forged", "file": name}
    r = alice.post("/new", form, xsrf=False)
    assert r.status_code == 403 and "_xsrf" in r.text
    assert alice.post("/new", {**form, "_xsrf": "forged"}, xsrf=False).status_code == 403
    assert footprint(app) == before


def test_a_refusal_half_way_through_the_service_call_leaves_no_snapshot_behind(app):
    """The second file fails after the first is copied: the transaction rolls back and the copy goes too."""
    name = write_output(app, "refuse/half.csv", "site,n\nA,120\n")
    before = footprint(app)
    with pytest.raises(workflow.InvalidRequest, match="no such file"):
        app.tx(
            lambda s: workflow.request_release(s, app.paths, app.store, project=PROJECT, author=AUTHOR, title="Half",
                                               files=[(name, ""), ("refuse/gone.csv", "")])
        )  # fmt: skip
    assert footprint(app) == before
