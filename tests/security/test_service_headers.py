"""Finding 9 of issue 17 (the CSP half): the MLflow UI and the Dask dashboard, proxied by a workspace, carried no
Content-Security-Policy, so a script injected into a co-researcher's MLflow would run with the victim's cookies
and could read the hub, the airlock and other workspaces on the same origin. Now every response of the workspace
server carries a CSP (images/enclave_workspace/headers.py): the services' policies confine scripts and connections
to the service's own path, JupyterLab's confine connections to the workspace's path.

Through a real hub, proxy and sandboxed workspace, in Debian's Chromium: JupyterLab, the Dask dashboard of a live
cluster and the MLflow UI load and draw with no CSP violation in the console; a script running in MLflow's page
cannot fetch the hub's API, the airlock or the workspace's own API, and an inline script it adds does not run.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.browser import chromium, new_page
from tests.workspace_hub import DEMO, RunningEnclave, needs_enclave

pytestmark = [pytest.mark.security, needs_enclave, pytest.mark.timeout(900)]

CSP_VIOLATION = re.compile(r"Content Security Policy|Content-Security-Policy", re.I)
# What a script injected into a page tries to read with the victim's cookies: the hub's API (tokens), the airlock,
# the workspace's own API (contents) when it is not the page's own path.
STEAL = """async (urls) => {
  const out = {};
  for (const url of urls) {
    try { const r = await fetch(url, {credentials: "include"}); out[url] = "read " + r.status; }
    catch (e) { out[url] = "blocked"; }
  }
  return out;
}"""
INLINE = """() => new Promise((done) => {
  window.__injected = false;
  const s = document.createElement("script");
  s.textContent = "window.__injected = true";
  document.body.appendChild(s);
  setTimeout(() => done(window.__injected), 500);
})"""


@pytest.fixture(scope="module")
def alice(running_enclave):
    alice = running_enclave.person("alice")
    alice.spawn(DEMO)
    yield alice
    alice.stop(DEMO)


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def browser_page(browser, enclave: RunningEnclave, problems: list[str]):
    """alice's browser, logged in through the hub's form."""
    page = new_page(browser, "alice", problems)
    page.goto(f"{enclave.url}/hub/login")
    page.get_by_label("Username:").fill("alice")
    page.get_by_label("Password:").fill(enclave.passwords["alice"])
    page.get_by_label("Code from your authenticator app:").fill(enclave.totp("alice"))
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    return page


def test_every_page_of_the_workspace_carries_a_policy(alice):
    """HTTP level: MLflow's, the dashboard's and JupyterLab's responses carry a CSP with their own path as the only
    source of scripts and connections; before the change MLflow and Dask sent none."""
    workspace = alice.server(DEMO)
    host = workspace.split("://", 1)[1].split("/", 1)[0]
    path = f"/user/alice/{DEMO}"
    mlflow = alice.http.get(f"{workspace}/mlflow/", timeout=180)
    assert mlflow.status_code == 200
    csp = mlflow.headers.get("Content-Security-Policy", "")
    assert f"script-src {host}{path}/mlflow/;" in csp, csp
    assert f"connect-src {host}{path}/mlflow/ ws://{host}{path}/mlflow/ " in csp and "'unsafe-eval'" not in csp, csp
    for directive in ("object-src 'none'", "base-uri 'none'", "frame-ancestors 'self'", "form-action 'none'"):
        assert directive in csp, csp
    assert mlflow.headers.get("X-Content-Type-Options") == "nosniff"
    assert mlflow.headers.get("X-Frame-Options") == "SAMEORIGIN"
    dask = alice.http.get(f"{workspace}/dask/status", timeout=60)  # no cluster yet: the proxy's own error
    assert f"connect-src {host}{path}/dask/ ws://" in dask.headers.get("Content-Security-Policy", ""), dask.headers
    lab = alice.open_workspace(DEMO)
    assert lab.status_code == 200
    assert f"connect-src {host}{path}/ ws://" in lab.headers.get("Content-Security-Policy", ""), lab.headers
    api = alice.workspace("GET", DEMO, "/api/contents")
    assert api.headers.get("Content-Security-Policy", "").endswith("default-src 'none'"), api.headers
    airlock = alice.http.get(f"{alice.enclave.url}/services/airlock/", timeout=60)
    assert "script-src 'none'" in airlock.headers.get("Content-Security-Policy", ""), airlock.headers


def test_the_apps_work_under_their_policies_and_an_injected_script_reaches_nothing(alice, browser):
    enclave = alice.enclave
    workspace = alice.server(DEMO)
    problems: list[str] = []
    page = browser_page(browser, enclave, problems)
    # ?reset: the lab opens on its launcher, not on whatever an earlier test of this session left open in alice's layout
    page.goto(f"{workspace}/lab?reset")
    page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
    page.locator(".jp-Launcher").first.wait_for(timeout=60_000)  # the lab drew its launcher (kernels, services)
    page.wait_for_timeout(2000)
    assert [p for p in problems if CSP_VIOLATION.search(p)] == [], "\n".join(problems)

    with ThreadPoolExecutor(1) as pool, alice.kernel(DEMO) as run:
        code = "from workbench import open_project\nclient = open_project().client(n_workers=1)"
        pool.submit(run, code, 180).result()
        dashboard = page.context.new_page()
        dashboard.goto(f"{workspace}/dask/status")
        dashboard.locator("canvas").first.wait_for(timeout=120_000)  # Bokeh drew its plots over its WebSocket
        dashboard.wait_for_timeout(2000)
        assert [p for p in problems if CSP_VIOLATION.search(p)] == [], "\n".join(problems)
        dashboard.close()

    mlflow = page.context.new_page()
    mlflow.goto(f"{workspace}/mlflow/", timeout=180_000)
    mlflow.get_by_text("Experiments").first.wait_for(timeout=180_000)
    mlflow.wait_for_timeout(2000)
    violations = [p for p in problems if CSP_VIOLATION.search(p)]
    assert violations == [], violations

    targets = [f"{enclave.url}/hub/api/user", f"{enclave.url}/services/airlock/", f"{workspace}/api/contents"]
    stolen = mlflow.evaluate(STEAL, targets)
    assert stolen == dict.fromkeys(targets, "blocked"), stolen
    assert mlflow.evaluate(INLINE) is False
    # its own API still answers (the fence is around the service, not in its way)
    own = mlflow.evaluate(STEAL, [f"{workspace}/mlflow/ajax-api/2.0/mlflow/experiments/search?max_results=1"])
    assert list(own.values()) == ["read 200"], own
