"""Production sign-in through an OpenID Connect provider (Keycloak, Entra ID, ...), with a second factor required.

Selected in the settings file (`ENCLAVE_AUTH=oidc`, docs/reference/hub-config.md): hub/oidc_settings.py reads the
settings and `configure_oidc` there names this module's authenticator by its entry point. What Enclave decides, not
the provider:

- Endpoints come from the provider's discovery document (`ISSUER/.well-known/openid-configuration`, whose `issuer`
  must be the configured one), or all four from settings.
- The ID token is verified (signature against the provider's keys, issuer, audience, expiry) and its `amr` (RFC
  8176) must show a second factor, whatever the provider's own configuration says.
- Claims become an Enclave user name by the site's rule (hub/oidc_names.py); a person Enclave does not know (in no
  project, not a platform admin) is refused. Every refusal is a 403 with a message and an audit entry.
- Enclave owns group membership, as with local accounts: project groups follow the registry (at start, at each
  membership change through the hub's API, at every login and session refresh). The provider's groups are not
  used: OAuthenticator's `manage_groups` would replace them with the token's at every login and JupyterHub refuses
  it beside `load_groups`.
- auth_state (the tokens, kept for session refresh) is encrypted with JUPYTERHUB_CRYPT_KEY, which `enclave up`
  reads from a root-only file (`crypt_key`) and passes in the hub's environment only.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import jwt
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthCallbackHandler
from sqlalchemy import select
from tornado.web import HTTPError
from traitlets import Dict, List, Unicode

from fabric.models import ProjectMember
from hub.authenticator import EnclaveSessions
from hub.oidc_names import MAPPINGS, SUBJECTS_FILE, NameRefused, SubjectBindings, UsernameRule
from hub.oidc_settings import SECOND_FACTORS, SIGNING_ALGORITHMS
from kernel import audit
from kernel.config import Paths


class EnclaveCallbackHandler(OAuthCallbackHandler):
    """OAuthenticator's callback, whose refusals tornado logs without the query string: it holds the authorization
    code and state (JupyterHub's access log masks them; tornado's warning for an HTTP error would not)."""

    def _request_summary(self) -> str:
        return f"{self.request.method} {self.request.path} ({self.request.remote_ip})"


class EnclaveOIDCAuthenticator(EnclaveSessions, GenericOAuthenticator):
    """OAuthenticator's authorization-code flow, with Enclave's rules on top (this module's docstring)."""

    callback_handler = EnclaveCallbackHandler

    issuer = Unicode(help="The provider's issuer identifier: ID tokens must name it.").tag(config=True)
    jwks_url = Unicode(help="Where the provider publishes the keys that sign its ID tokens.").tag(config=True)
    required_amr = List(
        Unicode(),
        default_value=list(SECOND_FACTORS),
        help="Authentication methods (RFC 8176 `amr` values) of which the ID token must show at least one.",
    ).tag(config=True)
    username_mapping = Unicode("exact", help=f"How a claim becomes a user name: {', '.join(MAPPINGS)}.").tag(
        config=True
    )
    allowed_domains = List(Unicode(), help="E-mail domains accepted by the `email` mapping.").tag(config=True)
    explicit_usernames = Dict(help="Claim value (lower case) -> Enclave user name, before the rule.").tag(config=True)
    platform_admins = List(Unicode(), help="Known to Enclave without a project (ENCLAVE_ADMINS).").tag(config=True)

    _jwks: jwt.PyJWKClient | None = None

    def _rule(self) -> UsernameRule:
        claim = self.username_claim if isinstance(self.username_claim, str) else "preferred_username"
        return UsernameRule(claim, self.username_mapping, tuple(self.allowed_domains), dict(self.explicit_usernames))

    def user_info_to_username(self, user_info: dict[str, Any]) -> str:
        try:
            return self._rule().username(user_info or {})
        except NameRefused as refused:
            raise SignInRefused(refused.reason, refused.message) from None

    async def authenticate(self, handler: Any, data: Any = None, **kwargs: Any) -> dict[str, Any] | None:
        """OAuthenticator's flow, then the ID token verified (its claims kept for `check_allowed`)."""
        try:
            model = await super().authenticate(handler, data, **kwargs)
            if model is None:
                return None
            state = model.get("auth_state") or {}
            claims = await asyncio.to_thread(self._verified_id_claims, state.get("id_token") or "")
            state["id_claims"] = {"amr": list(claims.get("amr") or []), "iss": claims["iss"], "sub": claims["sub"]}
            if claims["sub"] != (state.get(self.user_auth_state_key) or {}).get("sub"):
                raise SignInRefused("subject-mismatch", "Your identity provider's answers disagree: sign in again.")
            return model
        except SignInRefused as refused:
            await asyncio.to_thread(self._audit_refusal, refused)
            raise

    def _verified_id_claims(self, id_token: str) -> dict[str, Any]:
        if not id_token:
            raise SignInRefused("no-id-token", "Your identity provider sent no ID token: it must speak OpenID Connect.")
        if self._jwks is None:
            self._jwks = jwt.PyJWKClient(self.jwks_url, timeout=10)
        try:
            key = self._jwks.get_signing_key_from_jwt(id_token)
            return jwt.decode(
                id_token, key.key, algorithms=SIGNING_ALGORITHMS, audience=self.client_id, issuer=self.issuer,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]}, leeway=60,
            )  # fmt: skip
        except (jwt.PyJWTError, OSError) as exc:
            self.log.warning("OIDC sign-in refused: the ID token did not verify (%s)", type(exc).__name__)
            raise SignInRefused("id-token-invalid", "Your identity provider's ID token did not verify.") from None

    def _bind(self, name: str, issuer: str, subject: str) -> bool:

        if not issuer or not subject:
            return False  # no verified identity (authenticate keeps it): never bind a name to nobody
        return SubjectBindings(Paths(Path(self.enclave_home)).hub / SUBJECTS_FILE).claim(name, issuer, subject)

    async def check_allowed(self, username: str, auth_model: dict[str, Any] | None = None) -> bool:
        """A second factor in the verified ID token, a person Enclave knows, and the name theirs: free, or held by
        this identity already. Audited either way. The name is taken only by a sign-in that passed everything else,
        so nobody can hold a name by a refused attempt."""
        if auth_model is None:
            return True
        try:
            if not second_factor_used(auth_model, self.required_amr):
                raise SignInRefused(
                    "no-second-factor",
                    "Enclave requires a second factor at sign-in; your identity provider did not report one: sign "
                    "in again with it, or ask your identity provider's admin.",
                    username,
                )
            if not await asyncio.to_thread(self._account_active, username):
                raise SignInRefused(
                    "not-a-member",
                    "You are not a member of any Enclave project: ask Enclave's admin to add you.",
                    username,
                )
            identity = (auth_model.get("auth_state") or {}).get("id_claims") or {}
            if not await asyncio.to_thread(self._bind, username, identity.get("iss", ""), identity.get("sub", "")):
                raise SignInRefused(
                    "username-taken",
                    "Another account of your identity provider already signs in to Enclave under the name yours maps "
                    "to: ask Enclave's admin to map your account to a name of its own.",
                    username,
                )
        except SignInRefused as refused:
            await asyncio.to_thread(self._audit_refusal, refused)
            raise
        await asyncio.to_thread(self._audit_login, username, auth_model)
        self.note_login(username)
        return True

    def _account_active(self, username: str) -> bool:
        """Known to Enclave: a member of a project (any role) or a platform admin."""

        if username in self.platform_admins:
            return True
        with self._session() as session:
            member = select(ProjectMember.username).where(ProjectMember.username == username)
            return session.scalars(member).first() is not None

    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        """The provider still accepts the person's tokens (OAuthenticator), and Enclave's own session rules."""
        refreshed = await super().refresh_user(user, handler, **kwargs)
        if refreshed is False:
            return False
        if not await self._refresh_session(user, handler):
            return False
        return refreshed

    def _audit_refusal(self, refused: SignInRefused) -> None:
        name = refused.username or "unknown"
        self._registry_of_home().transaction(
            lambda session: audit.record(session, actor=name, action="user.login_failed", target=f"user:{name}",
                                         method="oidc", reason=refused.reason)
        )  # fmt: skip

    def _audit_login(self, username: str, auth_model: dict[str, Any]) -> None:
        amr = ((auth_model.get("auth_state") or {}).get("id_claims") or {}).get("amr") or []
        self._registry_of_home().transaction(
            lambda session: audit.record(session, actor=username, action="user.login", target=f"user:{username}",
                                         method="oidc", amr=sorted(str(m) for m in amr))
        )  # fmt: skip


class SignInRefused(HTTPError):
    """A 403 whose message the person sees (no claim value in it) and whose reason code goes to the audit log."""

    def __init__(self, reason: str, message: str, username: str | None = None) -> None:
        super().__init__(403, message)
        self.reason = reason
        self.username = username
        self.jupyterhub_message = message


def second_factor_used(auth_model: dict[str, Any], required: list[str] | tuple[str, ...]) -> bool:
    """Whether the verified ID token's `amr` (kept as `id_claims` by `authenticate`) shows one of `required`."""
    claims = ((auth_model or {}).get("auth_state") or {}).get("id_claims") or {}
    methods = claims.get("amr") or []
    return isinstance(methods, list) and any(method in required for method in methods)
