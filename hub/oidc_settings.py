"""The OpenID Connect settings of the hub, and what they set in its configuration (`configure_oidc`).

Selected in the settings file (`ENCLAVE_AUTH=oidc`, docs/reference/hub-config.md). This module imports no
authenticator: the command line and `enclave up` read and check these settings (the crypt key, the client secret)
without paying for OAuthenticator's imports, which take seconds. The hub loads the authenticator itself, hub/oidc.py,
by its entry point `enclave-oidc`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from hub.hub_keys import DEFAULT_CRYPT_KEY_FILE
from hub.oidc_names import UsernameRule, read_explicit_map
from kernel.errors import EnclaveError

AUTHENTICATOR = "enclave-oidc"  # hub/oidc.py's EnclaveOIDCAuthenticator, by its jupyterhub.authenticators entry point

SECOND_FACTORS = ("otp", "mfa", "hwk", "swk", "sms", "fpt", "face", "iris", "retina", "pin", "sc")
SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
ENDPOINTS = {  # setting -> discovery document's member
    "ENCLAVE_OIDC_AUTHORIZE_URL": "authorization_endpoint",
    "ENCLAVE_OIDC_TOKEN_URL": "token_endpoint",
    "ENCLAVE_OIDC_USERINFO_URL": "userinfo_endpoint",
    "ENCLAVE_OIDC_JWKS_URL": "jwks_uri",
}


class OIDCError(EnclaveError):
    pass


@dataclass(frozen=True)
class OIDCSettings:
    """The OIDC settings of the hub (names only: secrets stay in their files until the hub reads them)."""

    issuer: str
    client_id: str
    client_secret_file: Path
    callback_url: str = ""  # "": the hub's public address + /hub/oauth_callback
    username_claim: str = "preferred_username"
    username_mapping: str = "exact"
    allowed_domains: tuple[str, ...] = ()
    username_map_file: Path | None = None
    required_amr: tuple[str, ...] = SECOND_FACTORS
    crypt_key_file: Path = DEFAULT_CRYPT_KEY_FILE
    endpoints: dict[str, str] = field(default_factory=dict)  # ENDPOINTS' settings, all four or none
    acr_values: str = ""
    provider_name: str = "your organisation"  # the login button: "Sign in with ..."

    @classmethod
    def from_env(cls, env: Any) -> OIDCSettings | None:
        """None for local accounts (`ENCLAVE_AUTH` unset or `local`); ValueError naming the setting to correct."""
        auth = (env.get("ENCLAVE_AUTH") or "local").strip().lower()
        if auth == "local":
            return None
        if auth != "oidc":
            raise ValueError(f"ENCLAVE_AUTH must be local or oidc, not {auth!r}")

        def required(name: str) -> str:
            value = (env.get(name) or "").strip()
            if not value:
                raise ValueError(f"ENCLAVE_AUTH=oidc needs {name}")
            return value

        def listed(name: str) -> tuple[str, ...]:
            return tuple(v.strip().lower() for v in (env.get(name) or "").split(",") if v.strip())

        endpoints = {name: env[name].strip() for name in ENDPOINTS if (env.get(name) or "").strip()}
        if endpoints and len(endpoints) != len(ENDPOINTS):
            raise ValueError(f"set all of {', '.join(ENDPOINTS)} or none (then discovery finds them)")
        settings = cls(
            issuer=_checked_url("ENCLAVE_OIDC_ISSUER", required("ENCLAVE_OIDC_ISSUER")).rstrip("/"),
            client_id=required("ENCLAVE_OIDC_CLIENT_ID"),
            client_secret_file=Path(required("ENCLAVE_OIDC_CLIENT_SECRET_FILE")),
            callback_url=(env.get("ENCLAVE_OIDC_CALLBACK_URL") or "").strip(),
            username_claim=(env.get("ENCLAVE_OIDC_USERNAME_CLAIM") or "preferred_username").strip(),
            username_mapping=(env.get("ENCLAVE_OIDC_USERNAME_MAPPING") or "exact").strip().lower(),
            allowed_domains=listed("ENCLAVE_OIDC_ALLOWED_DOMAINS"),
            username_map_file=Path(env["ENCLAVE_OIDC_USERNAME_MAP_FILE"])
            if (env.get("ENCLAVE_OIDC_USERNAME_MAP_FILE") or "").strip()
            else None,
            required_amr=listed("ENCLAVE_OIDC_REQUIRED_AMR") or SECOND_FACTORS,
            crypt_key_file=Path((env.get("ENCLAVE_CRYPT_KEY_FILE") or "").strip() or DEFAULT_CRYPT_KEY_FILE),
            endpoints={name: _checked_url(name, url) for name, url in endpoints.items()},
            acr_values=(env.get("ENCLAVE_OIDC_ACR_VALUES") or "").strip(),
            provider_name=(env.get("ENCLAVE_OIDC_PROVIDER_NAME") or "").strip() or "your organisation",
        )
        if settings.callback_url:
            _checked_url("ENCLAVE_OIDC_CALLBACK_URL", settings.callback_url)
        settings.rule(read_map=False)  # the mapping's own settings, checked now
        return settings

    def rule(self, *, read_map: bool = True) -> UsernameRule:
        explicit = read_explicit_map(self.username_map_file) if read_map and self.username_map_file else {}
        return UsernameRule(self.username_claim, self.username_mapping, self.allowed_domains, explicit)

    def environment(self) -> dict[str, str]:
        """These settings as the hub's environment variables (what `enclave up` passes on; no secret)."""
        env = {
            "ENCLAVE_AUTH": "oidc",
            "ENCLAVE_OIDC_ISSUER": self.issuer,
            "ENCLAVE_OIDC_CLIENT_ID": self.client_id,
            "ENCLAVE_OIDC_CLIENT_SECRET_FILE": str(self.client_secret_file),
            "ENCLAVE_OIDC_CALLBACK_URL": self.callback_url,
            "ENCLAVE_OIDC_USERNAME_CLAIM": self.username_claim,
            "ENCLAVE_OIDC_USERNAME_MAPPING": self.username_mapping,
            "ENCLAVE_OIDC_ALLOWED_DOMAINS": ",".join(self.allowed_domains),
            "ENCLAVE_OIDC_USERNAME_MAP_FILE": str(self.username_map_file or ""),
            "ENCLAVE_OIDC_REQUIRED_AMR": ",".join(self.required_amr),
            "ENCLAVE_CRYPT_KEY_FILE": str(self.crypt_key_file),
            "ENCLAVE_OIDC_ACR_VALUES": self.acr_values,
            "ENCLAVE_OIDC_PROVIDER_NAME": self.provider_name,
        }
        return {**env, **self.endpoints}


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _checked_url(name: str, url: str) -> str:
    """`url` when it is https, or http to this machine's loopback (a provider under test); else ValueError."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return url
    raise ValueError(f"{name} must be an https:// address (http:// only on loopback), not {url!r}")


def read_secret(path: Path | str, what: str = "a client secret") -> str:
    """The contents of a file only its owner may read; OIDCError saying what to do otherwise (never the contents)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise OIDCError(f"{path}: no such file ({what})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise OIDCError(f"{path}: {what} file must be readable by its owner only (chmod 600 {path})")
    value = path.read_text().strip()
    if not value:
        raise OIDCError(f"{path}: {what} file is empty")
    return value


def crypt_key(settings: OIDCSettings) -> str:
    """JUPYTERHUB_CRYPT_KEY from its root-only file: 32 bytes as 64 hex digits (`openssl rand -hex 32`), or several
    separated by `;` (the first encrypts, all decrypt: how the key is rotated). OIDCError says how to make one."""
    path = settings.crypt_key_file
    how = f"create it with: enclave keys rotate crypt-key (or: (umask 077; openssl rand -hex 32 > {path}))"
    if not path.exists():
        raise OIDCError(
            f"ENCLAVE_AUTH=oidc keeps each person's tokens encrypted with a key in {path} (ENCLAVE_CRYPT_KEY_FILE), "
            f"which does not exist; {how}"
        )
    key = read_secret(path, "the hub's crypt key")
    for part in key.split(";"):
        try:
            ok = len(bytes.fromhex(part.strip())) == 32
        except ValueError:
            ok = False
        if not ok:
            raise OIDCError(f"{path}: the crypt key must be 64 hex digits (32 bytes); {how}")
    return key


def discover(issuer: str, timeout: float = 10) -> dict[str, str]:
    """The four endpoints from the provider's discovery document (OpenID Connect Discovery 1.0, 4), and its logout
    endpoint when it has one; OIDCError when it cannot be read or names another issuer."""
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (https, or loopback: _checked_url)
            document = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise OIDCError(f"cannot read the identity provider's discovery document {url}: {exc}") from exc
    if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != issuer:
        raise OIDCError(f"{url} names another issuer than ENCLAVE_OIDC_ISSUER: check the setting")
    endpoints = {}
    for name, member in ENDPOINTS.items():
        value = document.get(member)
        if not isinstance(value, str) or not value:
            raise OIDCError(f"{url} has no {member}: set {', '.join(ENDPOINTS)} instead")
        endpoints[name] = _checked_url(f"{member} in {url}", value)
    if isinstance(document.get("end_session_endpoint"), str) and document["end_session_endpoint"]:
        endpoints["end_session_endpoint"] = _checked_url(
            f"end_session_endpoint in {url}", document["end_session_endpoint"]
        )
    return endpoints


def configure_oidc(c: Any, settings: OIDCSettings, *, home: Path, public_url: str, admins: list[str]) -> None:
    """Set `c` (a traitlets Config) for OIDC sign-in; reads the client secret and the map file, and the discovery
    document unless the endpoints are set. OIDCError says what to correct."""
    endpoints = settings.endpoints or discover(settings.issuer)
    c.JupyterHub.authenticator_class = AUTHENTICATOR
    o = c.EnclaveOIDCAuthenticator
    o.enclave_home = str(home)
    o.issuer = settings.issuer
    o.client_id = settings.client_id
    o.client_secret = read_secret(settings.client_secret_file)
    o.oauth_callback_url = settings.callback_url or f"{public_url}/hub/oauth_callback"
    o.authorize_url = endpoints["ENCLAVE_OIDC_AUTHORIZE_URL"]
    o.token_url = endpoints["ENCLAVE_OIDC_TOKEN_URL"]
    o.userdata_url = endpoints["ENCLAVE_OIDC_USERINFO_URL"]
    o.jwks_url = endpoints["ENCLAVE_OIDC_JWKS_URL"]
    if end_session := endpoints.get("end_session_endpoint"):
        # after Enclave's logout, the provider's (RP-initiated logout): a shared browser is not left signed in there
        o.logout_redirect_url = (
            f"{end_session}{'&' if '?' in end_session else '?'}{urlencode({'client_id': settings.client_id})}"
        )
    o.login_service = settings.provider_name
    o.scope = ["openid", "profile", "email"]
    o.username_claim = settings.username_claim
    o.username_mapping = settings.username_mapping
    o.allowed_domains = list(settings.allowed_domains)
    o.explicit_usernames = settings.rule().explicit
    o.required_amr = list(settings.required_amr)
    o.platform_admins = list(admins)
    o.manage_groups = False  # Enclave owns groups (this module's docstring)
    o.admin_users = set()  # nobody is a JupyterHub admin: platform admins get hub/roles.py's role
    o.enable_auth_state = True  # the tokens, for refresh; encrypted with JUPYTERHUB_CRYPT_KEY
    if settings.acr_values:
        o.extra_authorize_params = {"acr_values": settings.acr_values}
    if not os.environ.get("JUPYTERHUB_CRYPT_KEY"):
        crypt_key(settings)  # what is wrong with the file first (JupyterHub would only say the variable is unset)
        raise OIDCError(
            "JUPYTERHUB_CRYPT_KEY is not in the hub's environment: start the hub with `enclave up`, which passes it "
            f"from {settings.crypt_key_file}"
        )
