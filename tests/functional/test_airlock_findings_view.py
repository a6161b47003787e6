"""Reviewers see why, in a real headless Chromium (tests/browser.py): the request page lists each file's findings
(check, verdict, message, location) and the preview beside it highlights the cells and lines they name."""

from __future__ import annotations

import pytest

from output_checks.release import workflow
from output_checks.release.service import Airlock
from output_checks.release.states import RequestState
from tests.airlock_factories import CHECKERS, ensure_people, request_at
from tests.airlock_web import dev_airlock
from tests.browser import chromium, file_section, new_page
from tests.provisioned import provision

pytestmark = [pytest.mark.functional, pytest.mark.timeout(900)]

SMALL = "practice,n\nHillside,132\nRiverside,4\nLakeside,57\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory, cohort):
    env = provision(tmp_path_factory.mktemp("findings-view"), cohort, {"cvd-risk": "DS-CVD"})
    airlock = Airlock(env.registry, env.paths)
    ensure_people(airlock)
    request_id = request_at(airlock, RequestState.IN_REVIEW, files={"small.csv": SMALL})
    with dev_airlock(airlock) as url:
        yield url, airlock, request_id
    env.registry.close()


def findings_of(airlock: Airlock, request_id: str) -> list[dict]:
    request = lambda s: workflow.get_request(s, request_id, CHECKERS[0])  # noqa: E731
    return airlock.tx(lambda s: list(workflow.current_files(request(s))[0].findings or []))


def test_a_flagged_cell_is_listed_and_highlighted_in_the_preview(site):
    base, airlock, request_id = site
    findings = findings_of(airlock, request_id)
    small = [f for f in findings if "row 2" in (f.get("location") or "")]
    assert small, findings  # the count of 4 is a finding located at column 'n', row 2
    problems: list[str] = []
    with chromium() as browser:
        page = new_page(browser, CHECKERS[0], problems)
        page.goto(f"{base}/dev/login?user={CHECKERS[0]}")
        page.goto(f"{base}/requests/{request_id}")
        section = file_section(page, "small.csv")
        listed = section.locator("table.findings tbody tr")
        assert listed.count() == len(findings)
        text = listed.all_inner_texts()
        assert any(small[0]["check"] in t and small[0]["location"] in t for t in text)

        preview = section.frame_locator("iframe")
        flagged = preview.locator("td.flag")
        flagged.first.wait_for()
        assert flagged.all_inner_texts() == ["4"]  # the cell itself, not its row or the table
        assert small[0]["message"] in (flagged.first.get_attribute("title") or "")
        assert preview.locator("tr#row-2 td.flag").count() == 1
        assert preview.locator("tr#row-1 td.flag, tr#row-3 td.flag").count() == 0
        assert "Highlighted" in preview.locator("p.legend").inner_text()
    assert problems == []
