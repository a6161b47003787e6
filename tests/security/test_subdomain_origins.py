"""Finding 9 of issue 17 (the origin half): the hub, every workspace and the airlock shared one origin, so a script
injected into one person's workspace pages (a co-researcher's MLflow run, say) could read the hub's pages, the
airlock and other workspaces with the victim's cookies. Now (hub/origins.py, `ENCLAVE_SUBDOMAIN_HOST`, on by default)
the hub serves each person's workspaces on `NAME.HOST` and the airlock on `airlock--service.HOST`.

A real Enclave of this module's own, on `http://localhost:PORT` (Chromium resolves every `*.localhost` name to
loopback, so no DNS is needed), and Debian's Chromium: alice logs in, opens her workspace and its MLflow on her own
origin, opens the airlock on its origin through the hub's links; a script on her workspace origin then tries to read
the hub's API, the airlock and bob's workspace with her cookies, and gets nothing; her own workspace still answers.
"""

from __future__ import annotations

import time

import pytest

from tests.browser import VIEWPORT, chromium, watch
from tests.workspace_hub import DEMO, RunningEnclave, hub_log, needs_enclave, running_enclave

pytestmark = [pytest.mark.security, needs_enclave, pytest.mark.timeout(900)]

# Read with the page's cookies; "blocked" when the browser refuses the answer to the script (CORS).
READ = """async (urls) => {
  const out = {};
  const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || "";
  for (const url of urls) {
    // the page's own server asks for its XSRF token (JupyterHub refuses cookie-only API calls); a custom header
    // to another origin would be refused by its preflight alone, so none is sent there
    const headers = new URL(url).origin === location.origin ? {"X-XSRFToken": decodeURIComponent(xsrf)} : {};
    try { const r = await fetch(url, {credentials: "include", headers}); out[url] = "read " + r.status; }
    catch (e) { out[url] = "blocked"; }
  }
  return out;
}"""
# A window of another origin opened from the page: its document is out of the script's reach.
PEEK = """(url) => new Promise((done) => {
  const w = window.open(url);
  setTimeout(() => { try { done("read " + w.document.body.innerText.slice(0, 40)); } catch (e) { done("blocked"); }
                     w.close(); }, 3000);
})"""


@pytest.fixture(scope="module")
def enclave(tmp_path_factory, cohort, workspace_env):
    """An Enclave of its own, whose hub serves people and services on subdomains of http://localhost:PORT (the
    default)."""
    with running_enclave(tmp_path_factory.mktemp("origins-hub") / "home", cohort) as enclave:
        assert enclave.url == f"http://localhost:{enclave.settings.port}"
        yield enclave


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def log_in(browser, enclave: RunningEnclave, hub: str, user: str, problems: list[str]):
    """`user` logged in through the hub's form, in a context that ignores the pages' CSPs: what is measured here
    is the origin boundary alone (the CSPs are tests/security/test_service_headers.py's)."""
    context = browser.new_context(viewport=VIEWPORT, bypass_csp=True)
    context.on("page", lambda page: watch(page, user, problems))
    page = context.new_page()
    page.goto(f"{hub}/hub/login")
    page.get_by_label("Username:").fill(user)
    page.get_by_label("Password:").fill(enclave.passwords[user])
    page.get_by_label("Code from your authenticator app:").fill(enclave.totp(user))
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert page.url == f"{hub}/hub/home", f"{user} could not log in: {page.url}\n{hub_log(enclave)}"
    return page


def hub_api(page, hub: str, method: str, path: str) -> int:
    """The hub's REST API with the browser's own cookies and XSRF token (what is measured is the browser's view)."""
    response = page.context.request.fetch(f"{hub}/hub/api{path}", method=method, headers=hub_xsrf(page, hub))
    return response.status


def hub_xsrf(page, hub: str) -> dict[str, str]:
    """The XSRF token of the hub's pages (its home page carries it in `jhdata`)."""
    token = page.evaluate("() => window.jhdata && window.jhdata.xsrf_token") if page.url.startswith(hub) else None
    if not token:
        page.goto(f"{hub}/hub/home")
        token = page.evaluate("() => window.jhdata.xsrf_token")
    return {"X-XSRFToken": token}


def ready(page, hub: str, user: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = page.context.request.get(f"{hub}/hub/api/users/{user}", headers=hub_xsrf(page, hub)).json()
        if (got.get("servers", {}).get(DEMO) or {}).get("ready"):
            return
        time.sleep(0.5)
    raise AssertionError(f"{user}'s workspace did not start")


def test_each_person_and_the_airlock_on_their_own_origin(enclave, browser):
    port = enclave.settings.port
    hub = f"http://localhost:{port}"
    alice_origin, bob_origin = f"http://alice.localhost:{port}", f"http://bob.localhost:{port}"
    airlock_origin = f"http://airlock--service.localhost:{port}"
    problems: list[str] = []
    alice = log_in(browser, enclave, hub, "alice", problems)
    bob = log_in(browser, enclave, hub, "bob", problems)
    try:
        for page, user in ((alice, "alice"), (bob, "bob")):
            assert hub_api(page, hub, "POST", f"/users/{user}/servers/{DEMO}") in (201, 202)
        for page, user in ((alice, "alice"), (bob, "bob")):
            ready(page, hub, user)
        bob.goto(f"{hub}/user/bob/{DEMO}/lab")
        bob.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
        assert bob.url.startswith(f"{bob_origin}/user/bob/{DEMO}/"), bob.url

        # the hub's link to her workspace lands on her own origin, through the hub's OAuth
        alice.goto(f"{hub}/user/alice/{DEMO}/lab")
        alice.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
        assert alice.url.startswith(f"{alice_origin}/user/alice/{DEMO}/"), alice.url
        # MLflow in her workspace on her origin: its cross-origin check knows the origin (JUPYTERHUB_PUBLIC_URL)
        mlflow = alice.context.new_page()
        mlflow.goto(f"{alice_origin}/user/alice/{DEMO}/mlflow/", timeout=180_000)
        mlflow.get_by_text("Default").first.wait_for(timeout=180_000)  # the experiments list came from its API
        mlflow.close()
        # the airlock, from the hub's home page link and from JupyterLab's Airlock menu link, on its own origin
        airlock = alice.context.new_page()
        airlock.goto(f"{hub}/services/airlock/")
        assert airlock.url.startswith(f"{airlock_origin}/services/airlock/"), airlock.url
        assert "alice" in airlock.content(), airlock.content()[:500]
        airlock.goto(f"{alice_origin}/services/airlock/new")
        assert airlock.url.startswith(f"{airlock_origin}/services/airlock/new"), airlock.url
        airlock.close()

        # cookies are per origin: the workspace's origin holds none of the hub's or the airlock's
        # (JupyterHub shares only its session id across its subdomains, HttpOnly: it names the login for logout and
        # authenticates nothing)
        cookies = alice.context.cookies(alice_origin)
        names = {c["name"] for c in cookies}
        assert not any(n.startswith(("jupyterhub-hub-login", "jupyterhub-services")) for n in names), names
        assert not any("airlock" in n for n in names), names
        assert all(c["httpOnly"] for c in cookies if c["name"] == "jupyterhub-session-id"), cookies

        # a script on alice's workspace origin, with her cookies, reads her workspace and nothing else
        own = f"{alice_origin}/user/alice/{DEMO}/api/contents"
        targets = [f"{hub}/hub/api/user", f"{hub}/hub/token", f"{airlock_origin}/services/airlock/",
                   f"{bob_origin}/user/bob/{DEMO}/api/contents"]  # fmt: skip
        seen = alice.evaluate(READ, [own, *targets])
        assert seen == {own: "read 200", **dict.fromkeys(targets, "blocked")}, "\n".join(
            [str(seen), alice.url, *problems]
        )
        assert alice.evaluate(PEEK, f"{hub}/hub/home") == "blocked"
        assert alice.evaluate(PEEK, f"{airlock_origin}/services/airlock/") == "blocked"
    finally:
        for page, user in ((alice, "alice"), (bob, "bob")):
            hub_api(page, hub, "DELETE", f"/users/{user}/servers/{DEMO}")
