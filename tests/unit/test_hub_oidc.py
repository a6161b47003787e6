"""The production OIDC configuration: rendered into a real traitlets Config and loaded by OAuthenticator's own
class (no provider is contacted); sign-ins without a second factor are refused."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from tornado.web import HTTPError
from traitlets.config import Config

from hub.oidc import EnclaveOIDCAuthenticator, configure_oidc, second_factor_used

pytestmark = pytest.mark.unit
ISSUER = "https://idp.invalid/realms/enclave"  # never contacted


def id_token(claims: dict) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{body}.signature"


def model(amr: list[str], groups: list[str] | None = None) -> dict:
    """An auth model as OAuthenticator's update_auth_model leaves it (admin and groups resolved)."""
    groups = groups or ["researchers"]
    state = {"token_response": {"id_token": id_token({"amr": amr})},
             "oauth_user": {"preferred_username": "alice", "groups": groups}}  # fmt: skip
    return {"name": "alice", "admin": False, "groups": groups, "auth_state": state}


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "client-secret"
    path.write_text("s3cr3t\n")
    path.chmod(0o600)
    return path


def test_config_loads_into_the_authenticator(secret):
    c = Config()
    configure_oidc(c, issuer=ISSUER + "/", client_id="enclave-hub", client_secret_file=secret,
                   callback_url="https://enclave.invalid/hub/oauth_callback")  # fmt: skip
    assert c.JupyterHub.authenticator_class is EnclaveOIDCAuthenticator
    auth = EnclaveOIDCAuthenticator(config=c)
    assert auth.token_url == f"{ISSUER}/protocol/openid-connect/token"
    assert auth.client_secret == "s3cr3t" and "openid" in auth.scope and auth.manage_groups
    assert auth.allowed_groups == {"researchers", "output-checkers", "platform-admins"}


def test_a_world_readable_secret_file_is_refused(secret):
    secret.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        configure_oidc(Config(), issuer=ISSUER, client_id="x", client_secret_file=secret, callback_url="https://x")


@pytest.mark.parametrize(("amr", "ok"), [(["pwd", "otp"], True), (["hwk"], True), (["pwd"], False), ([], False)])
def test_second_factor_is_required(amr, ok):
    assert second_factor_used(model(amr), ["otp", "hwk", "mfa"]) is ok


def test_sign_in_without_a_second_factor_is_refused(secret):
    c = Config()
    configure_oidc(c, issuer=ISSUER, client_id="x", client_secret_file=secret, callback_url="https://x")
    auth = EnclaveOIDCAuthenticator(config=c)
    with pytest.raises(HTTPError) as refused:
        asyncio.run(auth.check_allowed("alice", model(["pwd"])))
    assert refused.value.status_code == 403
    assert asyncio.run(auth.check_allowed("alice", model(["pwd", "otp"])))
