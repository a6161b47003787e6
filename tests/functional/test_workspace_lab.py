"""The hardened JupyterLab in a real headless Chromium (Debian's `chromium` through Playwright's
`executable_path`): the workspace's JupyterLab loads with the download, open-in-browser-tab, export and print
plugins disabled and no plugin failing to start; the File menu and the file browser's context menu offer none of
those items; the Airlock menu opens the airlock's new-request page in a new browser tab; the Dask panel
(dask-labextension) lists the dashboard panes of the cluster a kernel runs (a LocalCluster on the workspace's
dashboard port, as `open_project().client()` starts one) and opens them through the workspace's `dask/` route, and its
NEW button, in a local project, says how a notebook starts the cluster (the SLURM project's cluster routes:
tests/integration/test_slurm_workspace.py)."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest

from tests.workspace_server import running_workspace

pytestmark = [pytest.mark.functional, pytest.mark.timeout(600)]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
# A kernel's LocalCluster, its dashboard on the workspace's dashboard port (where the `dask/` route forwards).
KERNEL_CLUSTER = """
import sys
from distributed import LocalCluster
cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=sys.argv[1])
print(cluster.dashboard_link, flush=True)
sys.stdin.readline()
cluster.close()
"""
GONE = ["Download", "Copy Download Link", "Open in New Browser Tab", "Print…", "Save and Export Notebook As"]


@pytest.fixture(scope="module")
def lab(workspace_env: Path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium): apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with running_workspace(workspace_env) as ws, sync_playwright() as p, _kernel_cluster(ws) as _cluster:
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


@contextlib.contextmanager
def _kernel_cluster(ws):
    python = str(ws.env / "bin" / "python")
    cluster = subprocess.Popen([python, "-c", KERNEL_CLUSTER, ws.dask_address], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=ws.environ, cwd=ws.home)  # fmt: skip
    try:
        assert cluster.stdout.readline().strip(), "the kernel's cluster did not start"
        yield cluster
    finally:
        cluster.stdin.close()
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cluster.kill()
            cluster.wait()


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


def _open_dask_panel(page) -> None:
    tab = page.locator(".lm-TabBar-tab[data-id='dask-dashboard-launcher']")
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()


def test_the_dask_panel_shows_the_running_clusters_dashboard_panes(lab):
    ws, page, _problems = lab
    _open_dask_panel(page)
    progress = page.locator(".dask-DashboardListing-item button[value='Progress']")
    # the browser found the dashboard's panes; the panel polls again with a back-off up to a minute after a check
    # that found none (a loaded machine's first checks can), so wait past two of its longest intervals
    progress.wait_for(timeout=150_000)
    labels = set(page.locator(".dask-DashboardListing-item button").evaluate_all("bs => bs.map(b => b.value)"))
    assert {"Progress", "Task Stream", "Workers Memory"} <= labels, labels
    with page.expect_response(lambda r: r.url.endswith("/dask/individual-progress"), timeout=60_000) as loaded:
        progress.click()
    assert loaded.value.status == 200 and loaded.value.url == f"{ws.url}/dask/individual-progress"
    frame = page.locator("iframe[src$='/individual-progress']")
    frame.wait_for(timeout=30_000)
    # the pane draws: Bokeh's document runs in the frame (its root element appears)
    page.frame_locator("iframe[src$='/individual-progress']").locator(".bk-Figure, .bk-Canvas").first.wait_for(
        timeout=60_000
    )


def test_the_dask_panels_new_cluster_says_how_a_notebook_starts_one(lab):
    _ws, page, _problems = lab
    _open_dask_panel(page)
    page.locator(".dask-DaskClusterManager [data-command='dask:launch-cluster']").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=30_000)
    assert "open_project().client()" in dialog.inner_text()
    page.keyboard.press("Escape")
