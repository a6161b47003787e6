"""Logging in to a real JupyterHub with Enclave's authenticator: password and a TOTP code, both required, a code
accepted once."""

from __future__ import annotations

import pyotp
import pytest

from hub import accounts
from kernel.config import Paths
from kernel.db import Registry
from tests.hub_runner import CHP, NO_CHP, free_ports, login_form, loopback_config, running_hub

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not CHP.exists(), reason=NO_CHP), pytest.mark.timeout(180)]
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub-login")
    home = tmp / "home"
    registry = Registry(Paths(home).database_url)
    with registry.session() as session:
        enrolment = accounts.add_account(session, "alice", PASSWORD, actor="test-admin")
    registry.close()
    public, hub_port, api = free_ports(3)
    config = tmp / "jupyterhub_config.py"
    config.write_text(
        loopback_config(tmp, public=public, hub=hub_port, proxy_api=api)
        + f'c.JupyterHub.authenticator_class = "enclave"\nc.EnclaveAuthenticator.enclave_home = {str(home)!r}\n'
    )
    url = f"http://127.0.0.1:{public}"
    with running_hub(tmp, config, [f"{url}/hub/health"]):
        yield url, enrolment.secret


def test_the_login_form_asks_for_the_code(hub):
    url, _ = hub
    import requests

    assert 'name="otp"' in requests.get(f"{url}/hub/login", timeout=30).text


def test_password_and_code_log_in_once(hub):
    url, secret = hub
    code = pyotp.TOTP(secret).now()
    _, wrong = login_form(url, {"username": "alice", "password": "not the password", "otp": code})
    assert wrong.status_code != 302
    _, no_code = login_form(url, {"username": "alice", "password": PASSWORD})
    assert no_code.status_code != 302
    http, ok = login_form(url, {"username": "alice", "password": PASSWORD, "otp": code})
    assert ok.status_code == 302
    assert http.get(f"{url}/hub/api/user", timeout=30, headers={"X-XSRFToken": http.cookies.get("_xsrf", "")}).ok
    _, replay = login_form(url, {"username": "alice", "password": PASSWORD, "otp": code})
    assert replay.status_code != 302, "a TOTP code is accepted once"
