"""Production identity: an OIDC provider (e.g. Keycloak) through OAuthenticator, with MFA required.

    from hub.oidc import configure_oidc
    configure_oidc(c, issuer="https://idp.example.org/realms/enclave", client_id="enclave-hub",
                   client_secret_file="/etc/enclave/oidc-client-secret",
                   callback_url="https://enclave.example.org/hub/oauth_callback")

The provider runs the login (password and second factor); the hub refuses an ID token whose `amr` (RFC 8176)
shows no second factor, whatever the provider's configuration says, so MFA cannot be switched off by mistake at the
provider. Group membership comes from the token's `groups` claim and is managed by the hub (`manage_groups`), so
the roles in hub/roles.py apply unchanged. The client secret is read from a file (mode 0600), never written inline.
"""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

from oauthenticator.generic import GenericOAuthenticator
from tornado.web import HTTPError
from traitlets import List, Unicode

SECOND_FACTORS = ["otp", "mfa", "hwk", "swk", "sms", "fpt", "face", "iris", "retina", "pin", "sc"]


class EnclaveOIDCAuthenticator(GenericOAuthenticator):
    required_amr = List(
        Unicode(),
        default_value=SECOND_FACTORS,
        help="Authentication methods (RFC 8176 `amr` values) of which the ID token must show at least one.",
    ).tag(config=True)

    async def check_allowed(self, username: str, auth_model: dict[str, Any]) -> bool:
        if not second_factor_used(auth_model, self.required_amr):
            raise HTTPError(403, "Enclave requires a second factor at sign-in: ask your identity provider's admin")
        return await super().check_allowed(username, auth_model)


def _claims(id_token: str) -> dict[str, Any]:
    """The payload of an ID token that the hub received directly from the provider's token endpoint over TLS (the
    channel authenticates it, as OIDC Core 3.1.3.7 allows); never used for tokens from elsewhere."""
    try:
        payload = id_token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


def second_factor_used(auth_model: dict[str, Any], required: list[str]) -> bool:
    token = ((auth_model or {}).get("auth_state") or {}).get("token_response") or {}
    claims = _claims(token.get("id_token", "")) if token.get("id_token") else {}
    methods = claims.get("amr") or []
    return any(method in required for method in methods)


def read_secret(path: Path | str) -> str:
    path = Path(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"{path}: a client secret file must be readable by its owner only (chmod 600)")
    return path.read_text().strip()


def configure_oidc(
    c: Any, *, issuer: str, client_id: str, client_secret_file: Path | str, callback_url: str,
    groups_claim: str = "groups", admin_group: str = "platform-admins",
) -> None:  # fmt: skip
    """Set `c` (a traitlets Config) for Keycloak-style OIDC endpoints under `issuer`."""
    issuer = issuer.rstrip("/")
    c.JupyterHub.authenticator_class = EnclaveOIDCAuthenticator
    o = c.EnclaveOIDCAuthenticator
    o.client_id = client_id
    o.client_secret = read_secret(client_secret_file)
    o.oauth_callback_url = callback_url
    o.authorize_url = f"{issuer}/protocol/openid-connect/auth"
    o.token_url = f"{issuer}/protocol/openid-connect/token"
    o.userdata_url = f"{issuer}/protocol/openid-connect/userinfo"
    o.logout_redirect_url = f"{issuer}/protocol/openid-connect/logout"
    o.scope = ["openid", "profile", "email"]
    o.username_claim = "preferred_username"
    o.claim_groups_key = groups_claim
    o.manage_groups = True
    o.allowed_groups = {"researchers", "output-checkers", admin_group}
    o.admin_groups = set()  # hub admins are not made from the provider: platform admins get hub/roles.py's role
    o.enable_auth_state = True
    o.extra_authorize_params = {"acr_values": "mfa"}  # ask for it; check_allowed enforces it from the token
