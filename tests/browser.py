"""Test helper: Debian's headless Chromium driven by Playwright through `executable_path` (Playwright's own browser
download is never used), console-error collection, and the screenshots the docs show (docs/images/)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
VIEWPORT = {"width": 1280, "height": 900}


@contextlib.contextmanager
def chromium() -> Iterator:
    """A headless Chromium for a test module; skips the test when Debian's chromium is not installed."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium): apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, who: str, problems: list[str]):
    """A page in a fresh context (its own cookies) for `who`; its console errors and uncaught exceptions go to
    `problems` as "who: page URL: message [source URL]", and so do those of the tabs it opens."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.on("page", lambda page: watch(page, who, problems))
    return context.new_page()


def watch(page, who: str, problems: list[str]) -> None:
    def console(message) -> None:
        if message.type == "error":
            problems.append(f"{who}: {page.url}: {message.text} [{message.location.get('url', '')}]")

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append(f"{who}: {page.url}: uncaught {e}"))


def screenshot(page, name: str, **kwargs) -> None:
    """docs/images/NAME.png."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / f"{name}.png"), **kwargs)


def file_section(page, name: str):
    """The airlock request page's section for the file `name` (its heading names the file)."""
    # "/" escaped too: Playwright writes the pattern into a nested selector as /.../ without escaping it
    pattern = re.compile(re.escape(name).replace("/", r"\/"))
    return page.locator("section.file", has=page.get_by_role("heading", name=pattern))
