"""The airlock web app behind a real JupyterHub and configurable-http-proxy: the hub starts it as its managed
`airlock` service (hub/airlock_service.py), proxies /services/airlock/ to it and is its OAuth provider.

People (tests/airlock_factories.py): carol checks cvd-risk, mallory has no project role; both are in the hub group
that load_roles grants the airlock's access scope to. oscar can log in to the hub but is not in that group.
One hub serves the whole module (it takes a few seconds to start); it runs in its own process group, so that
stopping it takes the proxy and the service with it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import pytest
import requests

from output_checks.release import views
from output_checks.release.service import Airlock
from output_checks.release.states import RequestState
from output_checks.web.auth import ACCESS_SCOPE
from tests.airlock_factories import CHECKERS, STRANGER, ensure_people, request_at
from tests.hub_runner import CHP, NO_CHP, XSRF, free_ports, loopback_config, running_hub, tail
from tests.provisioned import provision

PASSWORD = "airlock-hub-test-password"  # the test hub's one password (SharedPasswordAuthenticator)
GROUP = "airlock-users"
CAROL = CHECKERS[0]
OUTSIDER = "oscar"  # a hub user without the airlock's access scope

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHP.exists(), reason=NO_CHP),
    pytest.mark.timeout(180),
]


@dataclass
class Hub:
    url: str  # the proxy's public address, http://127.0.0.1:PORT
    log: Path
    request_id: str
    airlock: Airlock

    def airlock_url(self, path: str = "") -> str:
        return f"{self.url}/services/airlock/{path.lstrip('/')}"


def hub_config(tmp: Path, home: Path, ports: dict[str, int]) -> Path:
    config = tmp / "jupyterhub_config.py"
    shared = loopback_config(tmp, public=ports["public"], hub=ports["hub"], proxy_api=ports["proxy_api"])
    config.write_text(
        shared
        + f"""\
from hub.airlock_service import airlock_service, load_roles

# DummyAuthenticator.password is deprecated since JupyterHub 5.3: its successor, one password for every user
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {PASSWORD!r}
c.Authenticator.allowed_users = {{{CAROL!r}, {STRANGER!r}, {OUTSIDER!r}}}
c.JupyterHub.load_groups = {{{GROUP!r}: {{"users": [{CAROL!r}, {STRANGER!r}]}}}}
c.JupyterHub.services = [airlock_service(home={str(home)!r}, port={ports["service"]})]
c.JupyterHub.load_roles = load_roles(groups=[{GROUP!r}])
"""
    )
    return config


@pytest.fixture(scope="module")
def hub(tmp_path_factory, cohort) -> Iterator[Hub]:
    tmp = tmp_path_factory.mktemp("hub")
    env = provision(tmp / "home", cohort, {"cvd-risk": "DS-CVD"})
    airlock = Airlock(env.registry, env.paths)
    ensure_people(airlock)
    request_id = request_at(airlock, RequestState.IN_REVIEW, files={"hub.csv": "site,n\nA,120\nB,45\n"})

    ports = dict(zip(("public", "hub", "proxy_api", "service"), free_ports(4), strict=True))
    config = hub_config(tmp, env.paths.home, ports)
    url = f"http://127.0.0.1:{ports['public']}"
    # The second URL is the service, through the proxy.
    try:
        with running_hub(tmp, config, [f"{url}/hub/health", f"{url}/services/airlock/static/airlock.css"]) as (_, log):
            yield Hub(url, log, request_id, airlock)
    finally:
        env.registry.close()


def browser(hub: Hub, user: str | None) -> requests.Session:
    """A browser session, logged in to the hub as `user` (the login form, with its XSRF token)."""
    http = requests.Session()
    if user:
        xsrf = XSRF.search(http.get(f"{hub.url}/hub/login", timeout=30).text).group(1)
        r = http.post(f"{hub.url}/hub/login", data={"username": user, "password": PASSWORD, "_xsrf": xsrf},
                      timeout=30, allow_redirects=False)  # fmt: skip
        assert r.status_code == 302, f"{user} could not log in to the hub: {r.status_code}\n{tail(hub.log)}"
    return http


def api_token(hub: Hub, http: requests.Session, user: str) -> str:
    """An API token minted by the logged-in `user` through the hub's API (cookie + XSRF header)."""
    r = http.post(f"{hub.url}/hub/api/users/{user}/tokens", json={"note": "airlock test", "expires_in": 600},
                  headers={"X-XSRFToken": http.cookies["_xsrf"]}, timeout=30)  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["token"]


def scopes(hub: Hub, token: str) -> set[str]:
    r = requests.get(f"{hub.url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    return set(r.json()["scopes"])


def path_of(response: requests.Response) -> str:
    return urlparse(response.url).path


def test_a_checker_reaches_the_review_list_through_the_hubs_oauth(hub):
    carol = browser(hub, CAROL)
    r = carol.get(hub.airlock_url("review"), timeout=60)
    assert r.status_code == 200, f"{r.status_code} {r.url}\n{tail(hub.log)}"
    assert path_of(r) == "/services/airlock/review"
    hops = [path_of(h) for h in r.history]
    assert "/hub/api/oauth2/authorize" in hops and "/services/airlock/oauth_callback" in hops, hops
    assert hub.request_id in r.text and "Signed in as <strong>carol</strong>" in r.text
    # the one-time OAuth code is masked in the service's log, as in the hub's
    callback = next(h for h in r.history if path_of(h) == "/services/airlock/oauth_callback")
    code = dict(parse_qsl(urlparse(callback.url).query))["code"]
    log = hub.log.read_text(errors="replace")
    assert "/services/airlock/oauth_callback?code=[secret]&state=[secret]" in log and code not in log
    # the service keeps its own login cookie: next time, no trip to the hub
    again = carol.get(hub.airlock_url("review"), timeout=60, allow_redirects=False)
    assert again.status_code == 200 and hub.request_id in again.text


def test_a_checkers_vote_goes_through_the_hub_with_the_services_xsrf(hub):
    carol = browser(hub, CAROL)
    here = hub.airlock_url(f"requests/{hub.request_id}")
    page = carol.get(here, timeout=60)
    assert page.status_code == 200 and "Submit my review" in page.text
    xsrf = XSRF.search(page.text).group(1)
    vote = {"path": "hub.csv", "decision": "approve", "comment": "aggregate, above threshold"}
    forged = carol.post(f"{here}/vote", data=vote, timeout=60, allow_redirects=False)
    assert forged.status_code == 403  # no XSRF token: refused
    r = carol.post(f"{here}/vote", data={**vote, "_xsrf": xsrf}, timeout=60, allow_redirects=False)
    assert r.status_code == 303, f"{r.status_code}\n{r.text[:2000]}\n{tail(hub.log)}"
    assert r.headers["Location"] == f"/services/airlock/requests/{hub.request_id}?done=voted"
    votes = hub.airlock.tx(lambda s: views.request_view(s, hub.request_id, CAROL)["votes"])
    assert [(v["reviewer"], v["path"], v["decision"]) for v in votes] == [(CAROL, "hub.csv", "approve")]


def test_a_hub_user_without_a_project_role_cannot_see_the_request(hub):
    mallory = browser(hub, STRANGER)
    r = mallory.get(hub.airlock_url(f"requests/{hub.request_id}"), timeout=60)
    assert r.status_code == 404 and path_of(r) == f"/services/airlock/requests/{hub.request_id}"
    queue = mallory.get(hub.airlock_url("review"), timeout=60)
    assert queue.status_code == 200 and hub.request_id not in queue.text


def test_a_hub_user_without_the_airlock_scope_is_refused(hub):
    oscar = browser(hub, OUTSIDER)
    # In the browser, the hub itself refuses to authorise the airlock for oscar.
    r = oscar.get(hub.airlock_url("review"), timeout=60)
    assert r.status_code == 403 and path_of(r) == "/hub/api/oauth2/authorize", (r.status_code, r.url)
    # With a token of oscar's own (no airlock scope), the service refuses: it checks the scope itself.
    token = api_token(hub, oscar, OUTSIDER)
    assert ACCESS_SCOPE not in scopes(hub, token)
    direct = requests.get(hub.airlock_url("review"), headers={"Authorization": f"token {token}"}, timeout=60)
    assert direct.status_code == 403 and "Signed in as" not in direct.text
    # A token of carol's own carries the scope (her group's role): the same request goes through.
    carols = api_token(hub, browser(hub, CAROL), CAROL)
    assert ACCESS_SCOPE in scopes(hub, carols)
    ok = requests.get(hub.airlock_url("review"), headers={"Authorization": f"token {carols}"}, timeout=60)
    assert ok.status_code == 200 and hub.request_id in ok.text


def test_an_anonymous_visitor_is_sent_to_the_hubs_login(hub):
    r = browser(hub, None).get(hub.airlock_url("review"), timeout=60)
    assert r.status_code == 200 and path_of(r) == "/hub/login"
