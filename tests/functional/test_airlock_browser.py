"""The airlock web app in a real headless Chromium (Debian's `chromium`, driven by Playwright through
`executable_path`; Playwright's own browser download is never used): a researcher submits two files, two output
checkers review them, one file is released, and the researcher downloads it byte for byte. The researcher starts
from the new-request page (`/new`), the page JupyterLab's Airlock menu opens.

Screenshots of the key pages go to docs/images/airlock-*.png (the how-to guides show them)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from output_checks.release.service import Airlock
from output_checks.release.states import RequestState
from tests.airlock_factories import AUTHOR, CHECKERS, ensure_people, request_at, write_output
from tests.airlock_web import dev_airlock
from tests.browser import chromium, file_section, new_page, screenshot
from tests.provisioned import provision

pytestmark = [pytest.mark.functional, pytest.mark.timeout(900)]

COUNTS = b"site,n\nA,120\nB,45\nC,230\n"
REPORT = b"# LDL report\n\nMean LDL fell after treatment at every site; see the counts table for group sizes.\n"
CHECKS_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def site(tmp_path_factory, cohort):
    env = provision(tmp_path_factory.mktemp("browser-home"), cohort, {"cvd-risk": "DS-CVD"})
    airlock = Airlock(env.registry, env.paths)
    ensure_people(airlock)
    write_output(airlock, "counts.csv", COUNTS)
    write_output(airlock, "report.md", REPORT)
    with dev_airlock(airlock) as url:
        yield url, airlock
    env.registry.close()


def sign_in(browser, base: str, user: str, problems: list[str]):
    """A fresh browser context for `user`; console errors (a CSP violation, a failed load) go to `problems`."""
    page = new_page(browser, user, problems)
    page.goto(f"{base}/dev/login?user={user}")
    return page


def shot(page, name: str, **kwargs) -> None:
    screenshot(page, f"airlock-{name}", **kwargs)


def review(page, base: str, request_id: str, second: str, *, screenshots: bool = False) -> None:
    """Approve counts.csv, decide `second` on report.md, submit the review."""
    page.goto(f"{base}/review")
    page.get_by_role("link", name=request_id).click()
    counts = file_section(page, "counts.csv")
    counts.get_by_role("radio", name="approve").check()
    counts.get_by_label("Comment").fill("Aggregate counts, all above the threshold.")
    if screenshots:
        counts.scroll_into_view_if_needed()
        # The preview is rendered in the checker sandbox: the picture shows it, not the frame before it loads.
        counts.frame_locator("iframe").locator("table").first.wait_for()
        shot(page, "review-form")
    counts.get_by_role("button", name="Save decision on counts.csv").click()
    report = file_section(page, "report.md")
    report.get_by_role("radio", name=second.replace("_", " ")).check()
    report.get_by_label("Comment").fill("Please say which sites, not 'every site'.")
    report.get_by_role("button", name="Save decision on report.md").click()
    page.get_by_role("button", name="Submit my review").click()
    assert "Your review is submitted." in page.get_by_role("status").inner_text()


def test_submit_review_release_download(browser, site):
    base, airlock = site
    problems: list[str] = []

    # alice asks for two files from her project's outputs folder, on the page JupyterLab's Airlock menu opens
    alice = sign_in(browser, base, AUTHOR, problems)
    assert alice.url.endswith("/requests")
    alice.get_by_role("navigation", name="Main").get_by_role("link", name="New request").click()
    assert alice.url.endswith("/new")
    alice.get_by_label("Title").fill("LDL by site, first look")
    alice.get_by_label("counts.csv", exact=True).check()
    alice.get_by_label("Justification for counts.csv").fill("Group sizes per site for the paper's table 1.")
    alice.get_by_label("report.md", exact=True).check()
    alice.get_by_label("Justification for report.md").fill("The summary for the steering group.")
    shot(alice, "new-request", full_page=True)
    alice.get_by_role("button", name="Submit for checks and review").click()
    request_id = re.search(r"/requests/(r-[0-9]{8}-[0-9a-f]{8})", alice.url).group(1)

    # the checks run in the background: reload until the request is in review
    deadline = time.monotonic() + CHECKS_TIMEOUT_S
    while "in_review" not in alice.locator(".facts").first.inner_text():
        assert time.monotonic() < deadline, "the automated checks did not finish"
        time.sleep(1)
        alice.reload()
    alice.goto(f"{base}/requests")
    assert request_id in alice.get_by_role("table").first.inner_text()
    shot(alice, "my-requests", full_page=True)

    # carol opens it from her review list: findings and previews next to each file
    carol = sign_in(browser, base, CHECKERS[0], problems)
    assert carol.url.endswith("/review")
    carol.get_by_role("link", name=request_id).click()
    counts = file_section(carol, "counts.csv")
    assert counts.get_by_text("every automated check passed").count() + counts.locator("table.findings").count()
    preview = counts.frame_locator("iframe")
    assert "230" in preview.locator("table").inner_text()
    report_preview = file_section(carol, "report.md").frame_locator("iframe")
    assert "Mean LDL fell" in report_preview.locator("pre").inner_text()
    review(carol, base, request_id, "needs_changes", screenshots=True)

    # what a checker sees of a file the checks blocked: the finding next to the table, and the override field
    blocked = request_at(airlock, RequestState.IN_REVIEW, files={"by-age.csv": "age_band,n\n40-49,120\n50-59,6\n"})
    carol.goto(f"{base}/requests/{blocked}")
    findings = file_section(carol, "by-age.csv").locator("table.findings")
    assert "block" in findings.inner_text()
    assert file_section(carol, "by-age.csv").get_by_label("Override reason").count() == 1
    shot(carol, "request-in-review")

    # dave reviews independently: he cannot see carol's decisions until his own is in
    dave = sign_in(browser, base, CHECKERS[1], problems)
    dave.goto(f"{base}/requests/{request_id}")
    assert "Please say which sites" not in dave.content()
    review(dave, base, request_id, "reject")
    assert "approved" in dave.locator(".facts").first.inner_text()
    assert "Please say which sites" in dave.content()  # every review is in: all votes visible

    # carol releases the approved file
    carol.goto(f"{base}/requests/{request_id}")
    carol.get_by_role("button", name="Release the approved files").click()
    assert "released" in carol.locator(".facts").first.inner_text()

    # the release stays in the project's history for its checkers, who compare new requests with it (issue 16)
    dave.get_by_role("navigation", name="Main").get_by_role("link", name="Release history").click()
    history = dave.get_by_role("table").first
    assert request_id in history.inner_text() and "released" in history.inner_text()
    history.get_by_role("link", name=request_id).click()
    assert "released" in dave.locator(".facts").first.inner_text()

    # alice downloads it: the bytes are the ones she asked for
    alice.goto(f"{base}/requests/{request_id}")
    assert alice.get_by_role("link", name="Download report.md").count() == 0
    with alice.expect_download() as download:
        alice.get_by_role("link", name="Download counts.csv").click()
    assert download.value.suggested_filename == "counts.csv"
    assert Path(download.value.path()).read_bytes() == COUNTS
    shot(alice, "released")
    assert problems == []


def test_a_researcher_sees_the_checks_verdicts_on_a_draft_before_submitting(browser, site):
    """Issue 16: the automatic verdicts of a draft, on the request page the New request page (JupyterLab's Airlock
    menu) leads to, before any reviewer is involved; the draft stays a draft and out of the checkers' list."""
    base, airlock = site
    write_output(airlock, "small-by-site.csv", b"site,n\nA,120\nB,4\nC,230\n")
    problems: list[str] = []
    alice = sign_in(browser, base, AUTHOR, problems)
    alice.goto(f"{base}/new")
    alice.get_by_label("Title").fill("LDL by site, draft")
    alice.get_by_label("small-by-site.csv", exact=True).check()
    alice.get_by_label("Justification for small-by-site.csv").fill("Group sizes per site.")
    alice.get_by_role("button", name="Save as draft").click()
    request_id = re.search(r"/requests/(r-[0-9]{8}-[0-9a-f]{8})", alice.url).group(1)

    deadline = time.monotonic() + CHECKS_TIMEOUT_S
    while "block" not in file_section(alice, "small-by-site.csv").locator("h3").inner_text():
        assert time.monotonic() < deadline, "the draft's checks did not finish"
        time.sleep(1)
        alice.reload()
    section = file_section(alice, "small-by-site.csv")
    assert "below the minimum of 10" in section.get_by_role("table").inner_text()
    assert "draft" in alice.locator(".facts").first.inner_text()
    assert "before anyone reviews this request" in alice.content()
    shot(alice, "draft-verdicts", full_page=True)

    carol = sign_in(browser, base, CHECKERS[0], problems)
    carol.goto(f"{base}/review")
    assert request_id not in carol.content(), "a draft reached the checkers"
    assert problems == []
