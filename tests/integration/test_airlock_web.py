"""The airlock web app served for real on loopback (development identity), over a provisioned home with two
projects: pages per role, project isolation, the workflow's refusals as HTTP errors, XSRF, escaped previews from
the snapshot, downloads for the requester only, security headers, audited views. One test drives the JupyterHub
identity against a stand-in for the hub's API (tokens with and without the airlock's access scope).

People (tests/airlock_factories.py): alice researcher and author, bob researcher, carol and dave output checkers of
cvd-risk, erin researcher and checker, mallory nobody; frank checks biomed only (carol checks both)."""

from __future__ import annotations

import json
import re
import time

import pytest
from tornado.web import Application, RequestHandler

from fabric.projects import add_member
from kernel import audit
from output_checks.release import views, workflow
from output_checks.release.service import Airlock, CheckRunner
from output_checks.release.states import RequestState
from output_checks.web.app import make_app
from output_checks.web.auth import ACCESS_SCOPE, DevIdentity, HubIdentity, check_dev_host
from tests.airlock_factories import AUTHOR, BOTH, CHECKERS, STRANGER, ensure_people, request_at, write_output
from tests.airlock_web import Person, serving
from tests.provisioned import provision

pytestmark = pytest.mark.integration

CAROL, DAVE = CHECKERS
FRANK = "frank"  # output checker on biomed only
OTHER = "biomed"


@pytest.fixture(scope="module")
def app(tmp_path_factory, cohort) -> Airlock:
    env = provision(tmp_path_factory.mktemp("web-home"), cohort, {"cvd-risk": "DS-CVD", OTHER: "HMB"})
    airlock = Airlock(env.registry, env.paths)
    ensure_people(airlock)
    airlock.tx(lambda s: add_member(s, OTHER, FRANK, "output_checker", actor="test-admin"))
    yield airlock
    env.registry.close()


@pytest.fixture(scope="module")
def runner(app) -> CheckRunner:
    return CheckRunner(app).start()


@pytest.fixture(scope="module")
def base(app, runner) -> str:
    with serving(make_app(app, DevIdentity(), runner=runner)) as (url,):
        yield url


def person(base: str, user: str | None) -> Person:
    return Person(base, user)


def state_of(app: Airlock, request_id: str) -> str:
    return app.tx(lambda s: s.get(workflow.ReleaseRequest, request_id).state)


def file_id(app: Airlock, request_id: str, path: str) -> int:
    files = app.tx(lambda s: workflow.current_files(workflow.get_request(s, request_id, AUTHOR)))
    return next(f.id for f in files if f.path == path)


def other_project_request(app: Airlock) -> str:
    """A request of biomed in review, by alice (researcher there too)."""
    folder = app.paths.project_outputs(OTHER)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "biomed.csv").write_text("group,n\nA,150\n")

    request_id = app.create_request(project=OTHER, author=AUTHOR, title="biomed counts")
    app.add_file(request_id, AUTHOR, "biomed.csv", "aggregate")
    app.submit(request_id, AUTHOR)
    app.check_request(request_id)
    return request_id


def wait_checked(app: Airlock, request_id: str) -> str:
    """The request's state once the background runner has checked it."""
    deadline = time.monotonic() + 300
    while state_of(app, request_id) == "checking" and time.monotonic() < deadline:
        time.sleep(0.5)
    return state_of(app, request_id)


# ------------------------------------------------------------------------------------------------ pages per role


def test_home_sends_each_person_to_their_list(base):
    assert person(base, AUTHOR).get("/", allow_redirects=False).headers["Location"] == "/requests"
    assert person(base, CAROL).get("/", allow_redirects=False).headers["Location"] == "/review"
    anonymous = person(base, None).get("/requests", allow_redirects=False)
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/dev/login?next=")
    for elsewhere in ("//evil.example/", "/\\evil.example/", "https://evil.example/"):
        login = person(base, None).get("/dev/login", params={"user": AUTHOR, "next": elsewhere}, allow_redirects=False)
        assert login.headers["Location"] == "/", elsewhere


def test_pages_render_for_each_role(app, base):
    request_id = request_at(app, RequestState.IN_REVIEW, files={"pages.csv": "site,n\nA,120\nB,45\n"})
    alice, carol, mallory = person(base, AUTHOR), person(base, CAROL), person(base, STRANGER)

    mine = alice.get("/requests")
    assert mine.status_code == 200 and "<h1>My requests</h1>" in mine.text
    assert request_id in mine.text and 'href="/new"' in mine.text
    assert 'value="pages.csv"' in alice.get("/new?project=cvd-risk").text

    queue = carol.get("/review")
    assert queue.status_code == 200 and request_id in queue.text and "<caption>" in queue.text

    page = carol.get(f"/requests/{request_id}")
    assert page.status_code == 200
    assert "Findings of the automated checks on pages.csv" in page.text or "every automated check passed" in page.text
    assert f"/requests/{request_id}/files/" in page.text and 'sandbox=""' in page.text
    assert f'action="/requests/{request_id}/vote"' in page.text and "Submit my review" in page.text

    own = alice.get(f"/requests/{request_id}")
    assert own.status_code == 200 and "/vote" not in own.text and "Withdraw the whole request" in own.text

    assert "not a researcher on any project" in mallory.get("/requests").text
    assert "Nothing is waiting for your review" in mallory.get("/review").text
    assert mallory.get(f"/requests/{request_id}").status_code == 404


def test_a_new_request_from_the_form_is_checked_in_the_background(app, base, runner):
    write_output(app, "web-a.csv", "site,n\nA,120\nB,45\n")
    write_output(app, "web-b.md", "# Report\n\nThe mean LDL was 3.1 mmol/L across sites.\n")
    alice = person(base, AUTHOR)
    r = alice.post("/new", {"project": "cvd-risk", "title": "From the web", "file": ["web-a.csv", "web-b.md"],
                            "why:web-a.csv": "counts by site", "then": "submit"})  # fmt: skip
    assert r.status_code == 303, r.text
    request_id = re.search(r"/requests/(r-[0-9a-f-]+)\?done=submitted", r.headers["Location"]).group(1)
    assert wait_checked(app, request_id) == "in_review"
    view = app.tx(lambda s: views.request_view(s, request_id, AUTHOR))
    assert {f["path"]: f["justification"] for f in view["files"]} == {"web-a.csv": "counts by site", "web-b.md": ""}
    # the page the redirect leads to, reloaded once the checks are done, no longer says they are running
    reloaded = alice.get(f"/requests/{request_id}?done=submitted").text
    assert "the automated checks are done" in reloaded and "checks are running" not in reloaded


def test_author_forms_draft_justify_withdraw_file_submit_withdraw(app, base):
    write_output(app, "draft-a.csv", "site,n\nA,120\n")
    write_output(app, "draft-b.csv", "site,n\nB,200\n")
    alice = person(base, AUTHOR)
    r = alice.post("/new", {"project": "cvd-risk", "title": "Draft first", "file": ["draft-a.csv", "draft-b.csv"],
                            "then": "draft"})  # fmt: skip
    request_id = re.search(r"/requests/(r-[0-9a-f-]+)\?done=created", r.headers["Location"]).group(1)
    assert state_of(app, request_id) == "draft"
    page = alice.get(f"/requests/{request_id}").text
    assert "Submit for checks and review" in page and "New justification for draft-a.csv" in page
    here = f"/requests/{request_id}"
    assert alice.post(f"{here}/justify", {"path": "draft-a.csv", "justification": "table 2"}).status_code == 303
    assert alice.post(f"{here}/withdraw-file", {"path": "draft-b.csv"}).status_code == 303
    assert person(base, CAROL).post(f"{here}/submit").status_code == 403  # only the author submits
    assert alice.post(f"{here}/submit").headers["Location"].endswith("?done=submitted")
    assert wait_checked(app, request_id) == "in_review"
    view = app.tx(lambda s: views.request_view(s, request_id, AUTHOR))
    files = [(f["path"], f["justification"], f["withdrawn"]) for f in view["files"]]
    assert files == [("draft-a.csv", "table 2", False), ("draft-b.csv", "", True)]
    assert alice.post(f"{here}/withdraw").status_code == 303
    assert state_of(app, request_id) == "withdrawn"
    assert "Withdraw the whole request" not in alice.get(here).text


def test_a_returned_request_is_revised_and_resubmitted(app, base):
    request_id = request_at(app, RequestState.RETURNED, files={"again.csv": "site,n\nA,120\n"})
    alice = person(base, AUTHOR)
    here = f"/requests/{request_id}"
    assert "Submit again for checks and review" in alice.get(here).text
    write_output(app, "again.csv", "site,n\nA,130\n")
    assert alice.post(f"{here}/revise", {"path": "again.csv"}).status_code == 303
    assert alice.post(f"{here}/submit").status_code == 303
    assert wait_checked(app, request_id) == "in_review"
    view = app.tx(lambda s: views.request_view(s, request_id, CAROL))
    assert view["round"] == 2 and [f["version"] for f in view["files"]] == [2]


# ------------------------------------------------------------------------------------------------ isolation, refusals


def test_a_reviewer_of_one_project_cannot_see_another_projects_requests(app, base):
    cvd = request_at(app, RequestState.IN_REVIEW)
    bio = other_project_request(app)
    frank, dave = person(base, FRANK), person(base, DAVE)

    assert frank.get(f"/requests/{bio}").status_code == 200
    assert bio in frank.get("/review").text and cvd not in frank.get("/review").text
    for path in (f"/requests/{cvd}", f"/requests/{cvd}/files/{file_id(app, cvd, 'counts.csv')}/preview"):
        assert frank.get(path).status_code == 404, path
    assert frank.post(f"/requests/{cvd}/vote", {"path": "counts.csv", "decision": "approve"}).status_code == 404

    assert dave.get(f"/requests/{bio}").status_code == 404
    assert bio not in dave.get("/review").text
    assert state_of(app, cvd) == state_of(app, bio) == "in_review"


def test_the_author_gets_403_on_vote_even_when_also_a_checker(app, base):
    request_id = request_at(app, RequestState.IN_REVIEW)
    r = person(base, AUTHOR).post(f"/requests/{request_id}/vote", {"path": "counts.csv", "decision": "approve"})
    assert r.status_code == 403 and "never review" in r.text
    own = request_at(app, RequestState.IN_REVIEW, author=BOTH)
    r = person(base, BOTH).post(f"/requests/{own}/vote", {"path": "counts.csv", "decision": "approve"})
    assert r.status_code == 403
    assert app.votes(own, BOTH) == []


def test_a_post_without_the_xsrf_token_is_refused(app, base):
    request_id = request_at(app, RequestState.IN_REVIEW)
    carol = person(base, CAROL)
    r = carol.post(f"/requests/{request_id}/vote", {"path": "counts.csv", "decision": "approve"}, xsrf=False)
    assert r.status_code == 403 and "_xsrf" in r.text
    r = carol.post(f"/requests/{request_id}/vote", {"path": "counts.csv", "decision": "approve", "_xsrf": "forged"},
                   xsrf=False)  # fmt: skip
    assert r.status_code == 403
    assert app.votes(request_id, CAROL) == []


def test_wrong_state_is_409_and_bad_input_400(app, base):
    request_id = request_at(app, RequestState.IN_REVIEW)
    carol = person(base, CAROL)
    r = carol.post(f"/requests/{request_id}/release")
    assert r.status_code == 409 and "only an approved request can be released" in r.text
    assert carol.post(f"/requests/{request_id}/vote", {"path": "counts.csv", "decision": "maybe"}).status_code == 400
    assert carol.post(f"/requests/{request_id}/no-such-action").status_code == 404
    alice = person(base, AUTHOR)  # a submitted file cannot be changed
    for action, data in (("revise", {"path": "counts.csv"}), ("justify", {"path": "counts.csv", "justification": "x"})):
        assert alice.post(f"/requests/{request_id}/{action}", data).status_code == 409, action
    assert person(base, AUTHOR).post("/new", {"project": "cvd-risk", "title": "x", "file": "../../etc/passwd"}
                                     ).status_code == 400  # fmt: skip


def test_a_blocked_file_is_approved_only_with_a_reason(app, base):
    request_id = request_at(app, RequestState.IN_REVIEW, files={"small.csv": "site,n\nA,120\nB,3\n"})
    carol = person(base, CAROL)
    page = carol.get(f"/requests/{request_id}").text
    assert "Override reason" in page
    r = carol.post(f"/requests/{request_id}/vote", {"path": "small.csv", "decision": "approve"})
    assert r.status_code == 409 and "needs a written reason" in r.text
    r = carol.post(f"/requests/{request_id}/vote", {"path": "small.csv", "decision": "approve",
                                                      "override_reason": "B is a synthetic site"})  # fmt: skip
    assert r.status_code == 303


# ------------------------------------------------------------------------------------------------ reviews and history


def test_votes_stay_hidden_from_the_other_reviewer_and_the_history_leaks_no_decision(app, base):
    request_id = request_at(app, RequestState.IN_REVIEW)
    carol, dave = person(base, CAROL), person(base, DAVE)
    r = carol.post(f"/requests/{request_id}/vote", {"path": "counts.csv", "decision": "reject",
                                                     "comment": "carol-private-remark"})  # fmt: skip
    assert r.status_code == 303
    assert carol.post(f"/requests/{request_id}/review").status_code == 303
    seen = dave.get(f"/requests/{request_id}").text
    assert "carol-private-remark" not in seen and ">reject<" not in seen
    assert ">vote<" in seen  # the history says a vote happened, not what it was
    assert "carol-private-remark" in carol.get(f"/requests/{request_id}").text


def test_opening_a_request_and_a_preview_is_audited_for_checkers(app, base):
    request_id = request_at(app, RequestState.IN_REVIEW)
    carol = person(base, CAROL)
    assert carol.get(f"/requests/{request_id}").status_code == 200
    assert carol.get(f"/requests/{request_id}/files/{file_id(app, request_id, 'counts.csv')}/preview").ok
    person(base, AUTHOR).get(f"/requests/{request_id}")
    seen = app.tx(lambda s: [(e.actor, e.detail["what"]) for e in audit.events(s, request=request_id)
                             if e.action == "airlock.view"])  # fmt: skip
    assert seen == [(CAROL, "request"), (CAROL, "preview:counts.csv:v1")]
    assert app.tx(audit.verify) == []


# ------------------------------------------------------------------------------------------------ previews, downloads


def test_preview_escapes_html_in_a_table_and_is_sandboxed(app, base):
    content = 'site,n\n"<script>alert(1)</script>",120\n"<img src=x onerror=alert(2)>",45\n'
    request_id = request_at(app, RequestState.IN_REVIEW, files={"xss.csv": content})
    r = person(base, CAROL).get(f"/requests/{request_id}/files/{file_id(app, request_id, 'xss.csv')}/preview")
    assert r.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "<script>" not in r.text
    assert "&lt;img src=x onerror=alert(2)&gt;" in r.text and "<img" not in r.text
    assert r.headers["Content-Security-Policy"].startswith("sandbox;")
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]


def test_preview_comes_from_the_verified_snapshot(app, base):
    request_id = request_at(app, RequestState.IN_REVIEW, files={"snap.csv": "site,n\nA,120\n"})
    write_output(app, "snap.csv", "site,n\nA,live-edit\n")  # the live file changes: the preview does not
    carol = person(base, CAROL)
    fid = file_id(app, request_id, "snap.csv")
    assert "live-edit" not in carol.get(f"/requests/{request_id}/files/{fid}/preview").text
    record = app.tx(lambda s: views.request_file(s, request_id, CAROL, fid))
    snapshot = app.store.snapshot_path(record.snapshot)
    snapshot.chmod(0o640)
    snapshot.write_text("site,n\nA,swapped\n")
    r = carol.get(f"/requests/{request_id}/files/{fid}/preview")
    assert r.status_code == 400 and "does not match" in r.text and "swapped" not in r.text


def test_notebook_text_and_image_previews(app, base):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# LDL by site <b>bold</b>")])
    png = (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
        b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
    )
    files = {"analysis.ipynb": nbformat.writes(nb), "notes.txt": "mean <LDL> 3.1\n", "plot.png": png}
    request_id = request_at(app, RequestState.IN_REVIEW, files=files)
    carol = person(base, CAROL)

    def shown(name):
        return carol.get(f"/requests/{request_id}/files/{file_id(app, request_id, name)}/preview")

    notebook = shown("analysis.ipynb")
    assert notebook.status_code == 200 and "LDL by site" in notebook.text
    assert notebook.headers["Content-Security-Policy"].startswith("sandbox;")
    assert "mean &lt;LDL&gt; 3.1" in shown("notes.txt").text
    image = shown("plot.png")
    assert image.headers["Content-Type"] == "image/png" and image.content == png
    assert image.headers["Content-Disposition"] == "inline"


def test_only_the_requester_downloads_a_release(app, base):
    content = "site,n\nA,120\nB,45\n"
    request_id = request_at(app, RequestState.RELEASED, files={"final.csv": content})
    path = f"/requests/{request_id}/files/{file_id(app, request_id, 'final.csv')}/download"
    assert person(base, CAROL).get(path).status_code == 403
    for user in ("bob", STRANGER, FRANK):
        assert person(base, user).get(path).status_code == 404, user
    r = person(base, AUTHOR).get(path)
    assert r.status_code == 200 and r.content == content.encode()
    assert r.headers["Content-Disposition"].startswith("attachment;")
    page = person(base, AUTHOR).get(f"/requests/{request_id}").text
    assert f'href="{path}"' in page
    downloads = app.tx(
        lambda s: [e.actor for e in audit.events(s, request=request_id) if e.action == "airlock.download"]
    )
    assert downloads == [AUTHOR]


def test_security_headers(base):
    alice = person(base, AUTHOR)
    for path in ("/requests", "/review", "/requests/r-20000101-00000000"):
        h = alice.get(path).headers
        assert (
            "default-src 'self'" in h["Content-Security-Policy"] and "script-src 'none'" in h["Content-Security-Policy"]
        )
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
        assert h["X-Frame-Options"] == "DENY"
        assert h["Referrer-Policy"] == "no-referrer"
        assert h["Cache-Control"] == "no-store"
        assert h["X-Content-Type-Options"] == "nosniff"
    cookie = next(c for c in alice.http.cookies if c.name == "airlock-dev-user")
    assert cookie.has_nonstandard_attr("HttpOnly")


# ------------------------------------------------------------------------------------------------ the list at scale


def test_review_list_pages_with_a_constant_number_of_queries(app):
    from sqlalchemy import event

    for _ in range(3):
        request_at(app, RequestState.IN_REVIEW)
    statements: list[str] = []

    def count(*args, **kwargs):
        statements.append(args[2])

    event.listen(app.registry.engine, "before_cursor_execute", count)
    try:
        first = app.tx(lambda s: views.review_page(s, DAVE, 1, 2))
        small = len(statements)
        statements.clear()
        everything = app.tx(lambda s: views.review_page(s, DAVE, 1, 500))
    finally:
        event.remove(app.registry.engine, "before_cursor_execute", count)
    assert len(first.rows) == 2 and first.pages == -(-first.total // 2) and first.total >= 3
    assert len(everything.rows) == everything.total
    assert len(statements) == small <= 5


# ------------------------------------------------------------------------------------------------ identities


def test_dev_login_only_on_loopback_and_never_under_the_hub(monkeypatch):
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        check_dev_host("0.0.0.0")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "x")
    with pytest.raises(ValueError, match="JupyterHub"):
        check_dev_host("127.0.0.1")


def test_app_without_dev_login_refuses_to_start_outside_the_hub(app, monkeypatch):
    from output_checks.web.app import serve

    for name in ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="--dev-login"):
        serve(app.paths, host=None, port=None, dev_login=False)


class FakeHubUser(RequestHandler):
    """GET /hub/api/user as the hub answers it: the model of the token's owner, with the token's scopes."""

    TOKENS = {
        "tok-alice": {"kind": "user", "name": AUTHOR, "scopes": [ACCESS_SCOPE], "groups": [], "admin": False},
        "tok-carol": {"kind": "user", "name": CAROL, "scopes": ["access:services"], "groups": [], "admin": False},
        "tok-noscope": {"kind": "user", "name": "bob", "scopes": [], "groups": [], "admin": False},
        "tok-service": {"kind": "service", "name": "other", "scopes": [ACCESS_SCOPE]},
    }

    def get(self):
        token = self.request.headers.get("Authorization", "").removeprefix("token ")
        if token not in self.TOKENS:
            self.send_error(403)
            return
        self.write(json.dumps({**self.TOKENS[token], "session_id": ""}))


def test_hub_identity_needs_the_airlock_access_scope(app, runner):
    from jupyterhub.services.auth import HubOAuth

    hub = Application([(r"/hub/api/user", FakeHubUser)])
    with serving(hub) as (hub_url,):
        auth = HubOAuth(api_token="service-token", api_url=f"{hub_url}/hub/api", oauth_client_id="service-airlock",
                        base_url="/services/airlock/", hub_prefix="/hub/", access_scopes={ACCESS_SCOPE},
                        cache_max_age=0)  # fmt: skip
        identity = HubIdentity(auth)
        with serving(make_app(app, identity, runner=runner)) as (url,):
            base = f"{url}/services/airlock"

            def get(path, token=None):
                headers = {"Authorization": f"token {token}"} if token else {}
                return Person(base, None).http.get(base + path, headers=headers, allow_redirects=False, timeout=30)

            mine = get("/requests", "tok-alice")
            assert mine.status_code == 200 and "Signed in as <strong>alice</strong>" in mine.text
            assert 'href="/services/airlock/review"' in mine.text
            assert get("/review", "tok-carol").status_code == 200  # access:services covers the airlock
            assert get("/requests", "tok-noscope").status_code == 403
            assert get("/requests", "tok-service").status_code == 403
            login = get("/requests")
            assert login.status_code == 302 and "/hub/api/oauth2/authorize" in login.headers["Location"]
            assert get("/dev/login?user=alice").status_code == 404  # no development login under the hub
            assert get("/static/airlock.css").status_code == 200
            bare = Person(url, None).http.get(f"{url}/services/airlock", allow_redirects=False, timeout=30)
            assert bare.headers["Location"] == "/services/airlock/"


def test_tornado_warnings_never_carry_oauth_secrets():
    import logging

    from output_checks.web.app import SecretQueryFilter

    record = logging.LogRecord(
        "tornado.general", logging.WARNING, __file__, 1, "400 GET %s", ("/oauth_callback?code=c0de&state=s7ate",), None
    )
    SecretQueryFilter().filter(record)
    assert "c0de" not in record.getMessage() and "s7ate" not in record.getMessage()


def test_a_checker_sees_the_release_history_of_the_projects_they_check(app, base):
    """Released and rejected requests stay visible to the project's checkers (issue 16: they dropped off every list,
    though differencing across requests is the checkers' job); not requests still under way, not other projects'."""
    released = request_at(app, RequestState.RELEASED)
    rejected = request_at(app, RequestState.REJECTED)
    open_one = request_at(app, RequestState.IN_REVIEW)
    bio = other_project_request(app)
    dave = person(base, DAVE)
    page = dave.get("/history")
    assert page.status_code == 200 and "Release history" in page.text
    assert released in page.text and rejected in page.text
    assert open_one not in page.text and bio not in page.text, "the history shows more than the project's outcomes"
    assert released in dave.get("/history", params={"project": "cvd-risk"}).text
    assert dave.get("/history", params={"project": OTHER}).status_code == 404, "another project's history"
    assert released in person(base, CAROL).get("/history", params={"project": "cvd-risk"}).text
    assert dave.get(f"/requests/{released}").status_code == 200, "a released request cannot be opened from the list"

    frank = person(base, FRANK).get("/history").text  # checks biomed only
    assert released not in frank and rejected not in frank
    outsider = person(base, STRANGER).get("/history")
    assert outsider.status_code == 200 and "not an output checker on any project" in outsider.text
    assert released not in outsider.text
    researcher = person(base, AUTHOR).get("/history").text  # alice wrote them, but checks nothing
    assert "not an output checker on any project" in researcher and released not in researcher


def test_the_release_history_is_listed_page_by_page(app):
    request_at(app, RequestState.RELEASED)
    first = app.history_page(CAROL, 1, 1, "cvd-risk")
    assert first.total >= 1 and first.pages == first.total and len(first.rows) == 1
    assert {r["state"] for r in app.history_page(CAROL, 1, 500).rows} <= {"released", "rejected"}
    assert app.history_page(STRANGER, 1, 50).total == 0
