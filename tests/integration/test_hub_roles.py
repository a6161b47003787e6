"""Roles and scopes as data (hub/roles.py) in a real JupyterHub: no one mints tokens, checkers get no workspace,
researchers reach only their own, admins see users but no servers."""

from __future__ import annotations

import pytest
import requests

from hub.roles import GROUP_ROLES, TOKEN_MAX_SECONDS, hub_groups, hub_roles
from tests.hub_runner import CHP, NO_CHP, free_ports, login_form, loopback_config, running_hub
from tests.provisioned import provision

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not CHP.exists(), reason=NO_CHP), pytest.mark.timeout(180)]
PASSWORD = "hub-roles-test-password"


def test_groups_come_from_project_membership(tmp_path, cohort):
    env = provision(tmp_path / "home", cohort, {"cvd-risk": "DS-CVD"})
    with env.registry.session() as session:
        groups = hub_groups(session, admins=["ada"])
    env.registry.close()
    assert groups == {
        "researchers": {"users": ["alice"]},
        "output-checkers": {"users": ["carol"]},
        "platform-admins": {"users": ["ada"]},
    }


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub-roles")
    public, hub_port, api = free_ports(3)
    groups = {"researchers": {"users": ["alice"]}, "output-checkers": {"users": ["carol"]},
              "platform-admins": {"users": ["ada"]}}  # fmt: skip
    config = tmp / "jupyterhub_config.py"
    config.write_text(
        loopback_config(tmp, public=public, hub=hub_port, proxy_api=api)
        + f"""\
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {PASSWORD!r}
c.Authenticator.allowed_users = {{"alice", "carol", "ada"}}
c.JupyterHub.load_roles = {hub_roles()!r}
c.JupyterHub.load_groups = {groups!r}
c.JupyterHub.token_expires_in_max_seconds = {TOKEN_MAX_SECONDS}
"""
    )
    url = f"http://127.0.0.1:{public}"
    with running_hub(tmp, config, [f"{url}/hub/health"]):
        yield url


def session_of(url: str, user: str) -> requests.Session:
    http, response = login_form(url, {"username": user, "password": PASSWORD})
    assert response.status_code == 302
    return http


def api(http: requests.Session, url: str, method: str, path: str, **kwargs) -> requests.Response:
    return http.request(method, f"{url}/hub/api/{path}", headers={"X-XSRFToken": http.cookies.get("_xsrf", "")},
                        timeout=30, **kwargs)  # fmt: skip


@pytest.mark.parametrize("user", ["alice", "carol", "ada"])
def test_no_one_mints_a_token(hub, user):
    http = session_of(hub, user)
    response = api(http, hub, "POST", f"users/{user}/tokens", json={"note": "exfiltration", "expires_in": 600})
    assert response.status_code == 403, response.text


def test_only_researchers_get_servers(hub):
    alice = api(session_of(hub, "alice"), hub, "GET", "user").json()["scopes"]
    carol = api(session_of(hub, "carol"), hub, "GET", "user").json()["scopes"]
    assert "servers!user=alice" in alice and "access:servers!user=alice" in alice
    assert not any(s.startswith(("servers", "access:servers")) for s in carol)
    assert not any(s.startswith("tokens") for s in alice + carol)
    assert api(session_of(hub, "carol"), hub, "POST", "users/carol/server").status_code == 403


def test_a_researcher_cannot_reach_the_admin_api_or_another_server(hub):
    http = session_of(hub, "alice")
    assert api(http, hub, "GET", "users").status_code == 403
    assert api(http, hub, "POST", "users/carol/server").status_code in (403, 404)


def test_admins_list_users_but_touch_no_server(hub):
    http = session_of(hub, "ada")
    assert api(http, hub, "GET", "users").status_code == 200
    scopes = api(http, hub, "GET", "user").json()["scopes"]
    assert not any(s.startswith(("servers", "access:servers", "tokens", "admin:server")) for s in scopes)


def test_roles_are_complete():
    assert set(GROUP_ROLES) == {"researchers", "output-checkers", "platform-admins"}
    assert hub_roles()[0]["name"] == "user"  # replaces JupyterHub's default 'user' role (scope 'self')
