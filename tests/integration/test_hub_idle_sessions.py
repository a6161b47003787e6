"""Idle sessions end (issue 17, finding 2): a person with no request for `EnclaveAuthenticator.idle_timeout` has
every browser session ended server-side on their next request, as at logout, while one who keeps working stays in.
A real JupyterHub with Enclave's authenticator and a two-second idle time-out."""

from __future__ import annotations

import time

import pyotp
import pytest
import requests

from hub import accounts
from kernel import audit
from kernel.config import Paths
from kernel.db import Registry
from tests.hub_runner import CHP, NO_CHP, free_ports, login_form, loopback_config, running_hub

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not CHP.exists(), reason=NO_CHP), pytest.mark.timeout(300)]
PASSWORD = "a long enough password"
IDLE = 3


def test_an_idle_session_ends_and_a_busy_one_does_not(tmp_path):
    home = tmp_path / "home"
    registry = Registry(Paths(home).database_url)
    secrets = {}
    with registry.session() as session:
        for name in ("ida", "bea"):
            secrets[name] = accounts.add_account(session, name, PASSWORD, actor="test-admin").secret
    public, hub_port, api = free_ports(3)
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        loopback_config(tmp_path, public=public, hub=hub_port, proxy_api=api)
        + f'c.JupyterHub.authenticator_class = "enclave"\nc.EnclaveAuthenticator.enclave_home = {str(home)!r}\n'
        + f"c.EnclaveAuthenticator.idle_timeout = {IDLE}\nc.Authenticator.auth_refresh_age = 1\n"
        + "c.Authenticator.auth_refresh_strict = True\n"
    )
    url = f"http://127.0.0.1:{public}"
    with running_hub(tmp_path, config, [f"{url}/hub/health"]):
        people = {}
        for name in ("ida", "bea"):
            people[name], ok = login_form(
                url, {"username": name, "password": PASSWORD, "otp": pyotp.TOTP(secrets[name]).now()}
            )
            assert ok.status_code == 302
        copy = requests.Session()
        copy.cookies.update(people["ida"].cookies)

        deadline = time.monotonic() + 2 * IDLE
        while time.monotonic() < deadline:  # bea keeps working; ida does nothing
            assert people["bea"].get(f"{url}/hub/api/user", timeout=30).status_code == 200
            time.sleep(0.5)

        assert people["ida"].get(f"{url}/hub/api/user", timeout=30).status_code == 403, "the idle session lives on"
        assert copy.get(f"{url}/hub/api/user", timeout=30).status_code == 403, "a copy of its cookies still works"
        assert people["bea"].get(f"{url}/hub/api/user", timeout=30).status_code == 200
    with registry.session() as session:
        idle = [e for e in audit.events(session) if e.action == "access.revoked" and e.target == "user:ida"]
    registry.close()
    assert idle and idle[-1].detail["reason"] == "idle"
