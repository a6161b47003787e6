"""The hardened JupyterLab in a real headless Chromium (Debian's `chromium` through Playwright's
`executable_path`): the workspace's JupyterLab loads with the download, open-in-browser-tab, export and print
plugins disabled and no plugin failing to start; the File menu and the file browser's context menu offer none of
those items; the Airlock menu opens the airlock's new-request page in a new browser tab."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workspace_server import running_workspace

pytestmark = [pytest.mark.functional, pytest.mark.timeout(600)]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
GONE = ["Download", "Copy Download Link", "Open in New Browser Tab", "Print…", "Save and Export Notebook As"]


@pytest.fixture(scope="module")
def lab(workspace_env: Path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium): apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with running_workspace(workspace_env) as ws, sync_playwright() as p:
        (ws.home / "results.csv").write_text("site,n\nA,120\n")
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        context = browser.new_context()
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(f"{ws.url}/lab?token={ws.token}")
        page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
        page.wait_for_selector(".jp-DirListing-item[title*='results.csv']", timeout=60_000)
        yield ws, page, problems
        browser.close()


def _menu_items(page) -> list[str]:
    page.wait_for_selector(".lm-Menu", timeout=10_000)
    items = page.locator(".lm-Menu .lm-Menu-item:not(.lm-mod-hidden) .lm-Menu-itemLabel").all_inner_texts()
    page.keyboard.press("Escape")
    return [item.strip() for item in items]


def test_lab_starts_without_plugin_errors(lab):
    _ws, _page, problems = lab
    failed = [p for p in problems if "activat" in p.lower() or "plugin" in p.lower()]
    assert not failed, failed


def test_file_menu_offers_no_download_export_or_print(lab):
    _ws, page, _problems = lab
    page.locator(".lm-MenuBar-itemLabel", has_text="File").first.click()
    items = _menu_items(page)
    assert "New" in items and "Save All" in items  # the menu is really there
    assert not set(GONE) & set(items), items


def test_file_browser_context_menu_offers_no_download(lab):
    _ws, page, _problems = lab
    page.locator(".jp-DirListing-item[title*='results.csv']").click(button="right")
    items = _menu_items(page)
    assert "Rename" in items and "Open" in items
    assert not set(GONE) & set(items), items


def test_airlock_menu_opens_the_new_request_page(lab):
    ws, page, _problems = lab
    page.locator(".lm-MenuBar-itemLabel", has_text="Airlock").click()
    with page.context.expect_page() as opened:
        page.locator(".lm-Menu-itemLabel", has_text="Submit outputs to the airlock").click()
    assert opened.value.url.startswith(f"{ws.url}/services/airlock/new")
    opened.value.close()
