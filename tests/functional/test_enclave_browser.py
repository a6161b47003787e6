"""End to end in a real headless Chromium (tests/browser.py), through a real Enclave (tests/workspace_hub.py: the
hub, the proxy, the airlock service, sandboxed workspaces) as the README's "Try it" runs it: the hub on
`http://localhost:PORT`, alice's workspace on her own origin (`alice.localhost`), the airlock on its own
(`airlock--service.localhost`). Alice logs in with her password and TOTP code, starts
the demo project's workspace from the hub's home page, runs the example notebook in JupyterLab (its figure shows
inline), edits and saves a text file, looks at the Dask dashboard and the MLflow UI, asks for its two
outputs through JupyterLab's Airlock menu; carol and dave, each logged in through the hub with their own codes,
approve both files and dave releases them; alice downloads the released table, byte for byte the file her notebook
wrote. Alice's workspace is stopped at the end whatever happens.

Screenshots of the key pages go to docs/images/enclave-*.png (the tutorial shows them)."""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from provisioning import steps
from tests.browser import chromium, file_section, new_page, screenshot
from tests.workspace_hub import DEMO, RunningEnclave, hub_log, needs_enclave

pytestmark = [pytest.mark.functional, needs_enclave, pytest.mark.timeout(1200)]

NOTEBOOK = "cardiac_risk.ipynb"
TABLE = "cardiac_risk/risk_groups.csv"
FIGURE = "cardiac_risk/calibration.png"
CHECKERS = ("carol", "dave")
SPAWN_TIMEOUT_MS = 300_000
NOTEBOOK_TIMEOUT_S = 600  # ~35 s on the test cohort alone; generous for a loaded machine
CHECKS_TIMEOUT_S = 300

# Console errors are collected from every page and tab; all fail the test except this one, on JupyterLab's pages:
# a background request of JupyterLab to its workspace (typically the PUT that saves the layout every few seconds)
# answered 503 by the proxy. configurable-http-proxy reaches the workspace over its Unix socket, and Node's HTTP
# client writing a request body to a Unix socket now and then fails with "write EPIPE" (nodejs/node#41062) even
# though the workspace got the request and answered it; the proxy then reports 503. JupyterLab saves again on the
# next change, so nothing is lost; the proxy's log shows "503 PUT ... Error: write EPIPE". Uncaught exceptions,
# any other error in the workspace, and every error on the hub's and the airlock's pages fail the test.
WORKSPACE_NOISE = (
    r"^alice: {workspace}\S*: Failed to load resource: the server responded with a status of 503 "
    r"\(Service Unavailable\) \[{workspace}\S*\]$"
)  # {workspace}: the workspace's URL prefix, escaped


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


# The MLflow UI asks for the signed-in MLflow user (its optional auth plugin, not installed): MLflow answers 404.
MLFLOW_NOISE = (
    r"^alice: {workspace}mlflow/\S*: Failed to load resource: the server responded with a status of 404 "
    r"\(Not Found\) \[{workspace}mlflow/ajax-api/2\.0/mlflow/users/current\]$"
)


def enclaves_own_problems(problems: list[str], enclave: RunningEnclave) -> list[str]:
    """The console errors to fail on: all but WORKSPACE_NOISE and MLFLOW_NOISE."""
    workspace = re.escape(f"{enclave.origin('alice')}/user/alice/{DEMO}/")
    noise = [re.compile(pattern.format(workspace=workspace)) for pattern in (WORKSPACE_NOISE, MLFLOW_NOISE)]
    return [p for p in problems if not any(n.match(p) for n in noise)]


def log_in(browser, enclave: RunningEnclave, user: str, problems: list[str]):
    """`user` in a fresh browser context, logged in through the hub's form: password and the current TOTP code."""
    page = new_page(browser, user, problems)
    page.goto(f"{enclave.url}/hub/login")
    page.get_by_label("Username:").fill(user)
    page.get_by_label("Password:").fill(enclave.passwords[user])
    page.get_by_label("Code from your authenticator app:").fill(enclave.totp(user))
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert page.url == f"{enclave.url}/hub/home", f"{user} could not log in: {page.url}\n{hub_log(enclave)}"
    return page


def stop_workspace(enclave: RunningEnclave, user: str, project: str) -> None:
    """Stop `user`'s workspace for `project` through the hub's REST API, if it runs (leaves a clean session)."""
    person = enclave.person(user)
    if person.api("GET", f"/users/{user}").json().get("servers", {}).get(project):
        person.stop(project)


def menu(page, menu_name: str, item: str) -> None:
    """Click `item` in JupyterLab's menu bar menu `menu_name` (exact label: "Run All Cells" is not "Restart Kernel
    and Run All Cells…")."""
    page.locator(".lm-MenuBar-itemLabel", has_text=menu_name).first.click()
    page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def wait_for_kernel(page, timeout_s: float) -> None:
    """Until the status bar says the notebook's kernel is connected and idle. The proxy now and then answers 503 to a
    request with a body that the workspace did serve (WORKSPACE_NOISE); when that request was the one connecting the
    kernel to the notebook, JupyterLab says "Error Starting Kernel" although the kernel runs: select it again, as a
    person would."""
    idle = page.locator(".jp-StatusBar-Widget", has_text="Python 3 (ipykernel) | Idle")
    deadline = time.monotonic() + timeout_s
    while not idle.count():
        assert time.monotonic() < deadline, "the notebook's kernel never became idle"
        failed = page.locator(".jp-Dialog", has_text="Error Starting Kernel")
        if failed.count():
            failed.get_by_role("button", name="Ok").click()
            page.locator(".jp-NotebookPanel .jp-KernelName").first.click()
            page.locator(".jp-Dialog").get_by_role("button", name="Select").click()
        time.sleep(1)


def wait_for_notebook_run(page, timeout_s: float) -> None:
    """Until the kernel is idle and every code cell has an execution count. Run All stops at a failing cell and
    leaves the cells after it without one: then fail at once, with the error the notebook shows."""
    # text_content, not inner_text: JupyterLab renders cells outside the viewport with content-visibility: hidden
    prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt")
    deadline = time.monotonic() + timeout_s
    stopped = 0
    while True:
        idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count() == 1
        shown = [(p.text_content() or "").strip() for p in prompts.all()]
        if idle and shown and all(re.fullmatch(r"\[\d+\]:", p) for p in shown):
            return
        # idle with nothing queued (no [*]) but cells left unrun, three polls in a row: Run All stopped at an error
        stopped = stopped + 1 if idle and "[*]:" not in shown else 0
        if stopped >= 3 or time.monotonic() > deadline:
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            tracebacks = [t for t in (e.text_content() or "" for e in errors.all()) if "Error" in t]
            raise AssertionError(f"the notebook did not run to the end: prompts {shown}; {tracebacks[-1:]}")
        time.sleep(1)


NOTES = "notes.txt"


def edit_text_file(page, enclave: RunningEnclave) -> None:
    """Open a text file of her home from the file browser, type a line, save it: the line is on disk."""
    home = enclave.paths.project_home(DEMO, "alice")
    notes = home / NOTES
    notes.write_text("first line\n")
    owner = home.stat()
    os.chown(notes, owner.st_uid, owner.st_gid)
    item = page.locator(f".jp-DirListing-item[title*='{NOTES}']")
    item.wait_for(timeout=60_000)  # the file browser polls its folder every few seconds
    item.dblclick()
    editor = page.locator(".jp-FileEditor .cm-content")
    editor.wait_for(timeout=60_000)
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("edited in the browser")
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 60
    while "edited in the browser" not in notes.read_text():
        assert time.monotonic() < deadline, "the edit never reached the file"
        time.sleep(0.5)


def open_dashboard_and_mlflow(page, enclave: RunningEnclave) -> None:
    """The Dask dashboard of a cluster in her workspace, and the MLflow UI showing the notebook's experiment, each
    in a tab of her browser; nothing on either is refused by the workspace's screening or budget."""
    workspace = f"{enclave.origin('alice')}/user/alice/{DEMO}"
    refused: list[str] = []

    def watch(tab) -> None:
        tab.on("response", lambda r: refused.append(f"{r.status} {r.url}") if r.status in (403, 413, 429) else None)

    # a cluster, alive while the tab looks at it (the kernel's client runs its own event loop: not in Playwright's)
    with ThreadPoolExecutor(1) as pool, enclave.person("alice").kernel(DEMO) as run:
        code = "from workbench import open_project\nclient = open_project().client(n_workers=1)"
        pool.submit(run, code, 180).result()
        dashboard = page.context.new_page()
        watch(dashboard)
        dashboard.goto(f"{workspace}/dask/status")
        dashboard.locator("canvas").first.wait_for(timeout=120_000)  # Bokeh drew its plots (on canvases)
        assert "Dask" in dashboard.title(), dashboard.title()
        screenshot(dashboard, "enclave-dask-dashboard")
        dashboard.close()
    mlflow = page.context.new_page()
    watch(mlflow)
    mlflow.goto(f"{workspace}/mlflow/", timeout=180_000)  # started on first visit
    mlflow.get_by_text("cardiac-risk").first.wait_for(timeout=180_000)
    screenshot(mlflow, "enclave-mlflow")
    mlflow.close()
    assert refused == [], refused


def whole_page_screenshot(page, name: str) -> None:
    """The whole request page, previews included. The previews are sandboxed iframes, which Chromium draws in their
    own process and leaves blank below the viewport in a full-page screenshot: so make the viewport as tall as the
    page, wait for each preview's content, and put the viewport back after."""
    viewport = page.viewport_size
    page.set_viewport_size({**viewport, "height": page.evaluate("document.documentElement.scrollHeight")})
    try:
        for frame in page.locator("section.file iframe").all():
            frame.content_frame.locator("body > *").first.wait_for()
        screenshot(page, name)
    finally:
        page.set_viewport_size(viewport)


def test_researcher_runs_the_example_and_gets_its_table_released(browser, running_enclave, tmp_path):
    enclave = running_enclave
    assert enclave.url == f"http://localhost:{enclave.settings.port}"  # the default: an origin per person
    outputs = enclave.paths.project_outputs(DEMO)
    table = outputs / TABLE
    before = table.stat().st_mtime_ns if table.exists() else None
    steps.ensure_example_notebooks(enclave.paths, DEMO, ["alice"])
    assert (enclave.paths.project_home(DEMO, "alice") / NOTEBOOK).is_file()
    stop_workspace(enclave, "alice", DEMO)  # start from a stopped workspace, whatever ran before in the session
    problems: list[str] = []
    try:
        # 1. alice logs in, starts her cardio-risk workspace from the home page, and JupyterLab opens
        alice = log_in(browser, enclave, "alice", problems)
        assert alice.locator(f"tr[data-server-name='{DEMO}']").is_visible()
        alice.locator(f"#start-{DEMO}").click()
        alice.wait_for_url(f"{enclave.origin('alice')}/user/alice/{DEMO}/lab**", timeout=SPAWN_TIMEOUT_MS)
        alice.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
        notebook = alice.locator(f".jp-DirListing-item[title*='{NOTEBOOK}']")
        notebook.wait_for(timeout=60_000)
        screenshot(alice, "enclave-lab")

        # 2. she opens the example notebook and runs every cell
        notebook.dblclick()
        # the status bar says Idle only once the kernel is connected (the toolbar's indicator says idle before it has
        # one, and Run All without a kernel only asks which kernel to start)
        wait_for_kernel(alice, 120)
        menu(alice, "Run", "Run All Cells")
        wait_for_notebook_run(alice, NOTEBOOK_TIMEOUT_S)
        listed = alice.locator(".jp-NotebookPanel .jp-CodeCell").last.locator(".jp-OutputArea").inner_text()
        assert TABLE in listed and FIGURE in listed, listed  # the last cell lists what the notebook wrote
        assert table.is_file() and (outputs / FIGURE).is_file()
        assert table.stat().st_mtime_ns != before  # written by this run, not left over
        screenshot(alice, "enclave-notebook")

        # 2b. what she reads in the browser still shows: the notebook's figure inline, a text file she edits and
        # saves, the Dask dashboard of a cluster, and the MLflow UI with the notebook's experiment
        assert alice.locator(".jp-NotebookPanel .jp-OutputArea-output img").count() >= 1
        edit_text_file(alice, enclave)
        open_dashboard_and_mlflow(alice, enclave)

        # 3. the Airlock menu opens the new-request page in a new tab: she asks for both outputs
        alice.locator(".lm-MenuBar-itemLabel", has_text="Airlock").click()
        with alice.context.expect_page() as opened:
            alice.locator(".lm-Menu-itemLabel", has_text="Submit outputs to the airlock").click()
        airlock = opened.value
        airlock.wait_for_url(f"{enclave.airlock}/services/airlock/new**")
        airlock.get_by_label("Title").fill("Cardiac risk groups and calibration figure")
        airlock.get_by_label(TABLE, exact=True).check()
        airlock.get_by_label(f"Justification for {TABLE}").fill("Rounded risk-group counts for the paper's table 2.")
        airlock.get_by_label(FIGURE, exact=True).check()
        airlock.get_by_label(f"Justification for {FIGURE}").fill("Calibration figure drawn from that table.")
        with airlock.expect_navigation(url=re.compile(r"/services/airlock/requests/r-[0-9]{8}-[0-9a-f]{8}")):
            airlock.get_by_role("button", name="Submit for checks and review").click()
        request_id = re.search(r"/requests/(r-[0-9]{8}-[0-9a-f]{8})", airlock.url).group(1)
        deadline = time.monotonic() + CHECKS_TIMEOUT_S
        while "checking" in (state := airlock.locator(".facts").first.inner_text()):
            assert time.monotonic() < deadline, "the automated checks did not finish"
            time.sleep(1)
            airlock.reload()
        assert "in_review" in state, state
        airlock.goto(f"{enclave.airlock}/services/airlock/requests/{request_id}")  # without "submitted, checks running"
        # the rounded table passes every check; a figure cannot be judged automatically: a person must look at it
        assert "pass" in file_section(airlock, TABLE).get_by_role("heading", level=3).inner_text()
        assert "review" in file_section(airlock, FIGURE).get_by_role("heading", level=3).inner_text()
        whole_page_screenshot(airlock, "enclave-airlock-request")

        # 4. carol, then dave: each logs in to the hub, opens the request from the airlock's review list and
        # approves both files (the figure's verdict is review: a checker may approve it; no override is needed)
        for checker in CHECKERS:
            page = log_in(browser, enclave, checker, problems)
            page.goto(f"{enclave.url}/services/airlock/")  # the hub's link, on to the airlock's own origin
            assert page.url == f"{enclave.airlock}/services/airlock/review", page.url
            page.get_by_role("link", name=request_id).click()
            for path, comment in ((TABLE, "Rounded counts, all at least 10."), (FIGURE, "Drawn from the table.")):
                section = file_section(page, path)
                section.get_by_role("radio", name="approve").check()
                section.get_by_label("Comment").fill(comment)
                with page.expect_navigation():
                    section.get_by_role("button", name=f"Save decision on {path}").click()
            if checker == CHECKERS[0]:
                file_section(page, FIGURE).scroll_into_view_if_needed()
                screenshot(page, "enclave-review")
            with page.expect_navigation():
                page.get_by_role("button", name="Submit my review").click()
            assert "Your review is submitted." in page.get_by_role("status").inner_text()

        # every review is in and both files are approved: dave releases them
        assert "approved" in page.locator(".facts").first.inner_text()
        with page.expect_navigation():
            page.get_by_role("button", name="Release the approved files").click()
        assert "released" in page.locator(".facts").first.inner_text()

        # 5. alice (still logged in) downloads the released table: the bytes her notebook wrote
        airlock.goto(f"{enclave.airlock}/services/airlock/requests/{request_id}")
        assert "released" in airlock.locator(".facts").first.inner_text()
        with airlock.expect_download() as download:
            airlock.get_by_role("link", name=f"Download {TABLE}").click()
        assert download.value.suggested_filename == "risk_groups.csv"
        assert Path(download.value.path()).read_bytes() == table.read_bytes()
        whole_page_screenshot(airlock, "enclave-released")
        unexpected = enclaves_own_problems(problems, enclave)
        assert unexpected == [], "\n".join(unexpected)
    except BaseException:
        # what each page showed when the test failed
        for i, shown in enumerate(p for c in browser.contexts for p in c.pages):
            shown.screenshot(path=str(tmp_path / f"failure-{i}.png"))
        print(f"screenshots of every open page: {tmp_path}/failure-*.png")
        raise
    finally:
        # 6. the session's other tests see alice's workspace stopped
        stop_workspace(enclave, "alice", DEMO)
