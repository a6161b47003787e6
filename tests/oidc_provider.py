"""Test helper: a real OpenID provider on loopback, built from Authlib's OAuth 2.0 / OpenID Connect server (the
authorization-code grant with its OpenID extension, the UserInfo endpoint, bearer tokens) behind a small Flask app
served by werkzeug in a thread.

    with running_provider(users, client_id="enclave-hub", client_secret=..., redirect_uri=...) as op:
        op.issuer  # http://127.0.0.1:PORT, with /.well-known/openid-configuration, /authorize, /token, ...

Its sign-in page is a form naming the provider's own users: POSTing `login=NAME` signs NAME in, with the claims and
`amr` the test gave them (the provider stands for a hospital's identity system, whose own login is not under test).
ID tokens are RS256-signed with a key made for each provider and published at /jwks. Everything is in memory.
"""

from __future__ import annotations

import contextlib
import html
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oidc.core import UserInfo, UserInfoEndpoint
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, request
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

SCOPES = "openid profile email"


@dataclass
class ProviderUser:
    """Someone the provider signs in: `sub` is its stable identifier, `claims` what UserInfo and the ID token carry
    (`preferred_username`, `email`, ...), `amr` how they authenticated (RFC 8176)."""

    sub: str
    claims: dict[str, Any]
    amr: list[str]


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uri: str
    client_metadata: dict[str, Any] = field(default_factory=dict)  # RFC 7591 metadata: none (unsigned UserInfo)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in SCOPES.split())

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == self.redirect_uri

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: ProviderUser
    nonce: str | None
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str]:
        return list(self.user.amr)


@dataclass
class Token:
    access_token: str
    scope: str
    expires_at: float
    client: Client
    user: ProviderUser

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int(self.expires_at - time.time())

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return False

    def get_user(self) -> ProviderUser:
        return self.user

    def get_client(self) -> Client:
        return self.client


def user_info(user: ProviderUser, scope: str) -> UserInfo:
    return UserInfo(sub=user.sub, **user.claims).filter(scope)


@dataclass
class Provider:
    issuer: str
    users: dict[str, ProviderUser]
    client: Client
    key: RSAKey
    codes: dict[str, Code] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    tokens_issued: int = 0
    logouts: list[str] = field(default_factory=list)  # the client_id of each RP-initiated logout

    def app(self) -> Flask:
        provider = self
        app = Flask("enclave-test-op")
        app.config["OAUTH2_SCOPES_SUPPORTED"] = SCOPES.split()

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code: str, req: Any) -> None:
                provider.codes[code] = Code(code, req.client.client_id, req.payload.redirect_uri, req.payload.scope,
                                            req.user, req.payload.data.get("nonce"), int(time.time()))  # fmt: skip

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                found = provider.codes.get(code)
                return found if found is not None and found.client_id == client.client_id else None

            def delete_authorization_code(self, code: Code) -> None:
                provider.codes.pop(code.code, None)

            def authenticate_user(self, code: Code) -> ProviderUser:
                return code.user

        class IDToken(OpenIDCode):
            def exists_nonce(self, nonce: str, req: Any) -> bool:
                return any(c.nonce == nonce for c in provider.codes.values())

            def resolve_client_private_key(self, client: Client) -> RSAKey:
                return provider.key

            def get_client_algorithm(self, client: Client) -> str:
                return "RS256"

            def get_encode_header(self, client: Client) -> dict[str, str]:
                return {"alg": "RS256", "kid": provider.key.kid}

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                return {"iss": provider.issuer, "aud": [client.client_id], "exp": int(time.time()) + 600}

            def generate_user_info(self, user: ProviderUser, scope: str) -> UserInfo:
                return user_info(user, scope)

        class Bearer(BearerTokenValidator):
            def authenticate_token(self, token_string: str) -> Token | None:
                return provider.tokens.get(token_string)

        class UserInfoAtProvider(UserInfoEndpoint):
            def get_issuer(self) -> str:
                return provider.issuer

            def generate_user_info(self, user: ProviderUser, scope: str) -> UserInfo:
                return user_info(user, scope)

        def save_token(token: dict[str, Any], req: Any) -> None:
            provider.tokens_issued += 1
            provider.tokens[token["access_token"]] = Token(token["access_token"], token.get("scope", ""),
                                                           time.time() + token.get("expires_in", 3600), req.client,
                                                           req.user)  # fmt: skip

        server = AuthorizationServer(
            app, query_client=lambda cid: provider.client if cid == provider.client.client_id else None,
            save_token=save_token,
        )  # fmt: skip
        server.register_grant(CodeGrant, [IDToken(require_nonce=False)])
        protector = ResourceProtector()
        protector.register_token_validator(Bearer())
        server.register_endpoint(UserInfoAtProvider(resource_protector=protector))

        @app.get("/.well-known/openid-configuration")
        def discovery() -> dict[str, Any]:
            return {
                "issuer": provider.issuer,
                "authorization_endpoint": f"{provider.issuer}/authorize",
                "token_endpoint": f"{provider.issuer}/token",
                "userinfo_endpoint": f"{provider.issuer}/userinfo",
                "jwks_uri": f"{provider.issuer}/jwks",
                "end_session_endpoint": f"{provider.issuer}/logout",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": SCOPES.split(),
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            }

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            return {"keys": [provider.key.as_dict(private=False)]}

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize() -> Any:
            user = provider.users.get(request.form.get("login", "")) if request.method == "POST" else None
            try:
                grant = server.get_consent_grant(end_user=user)  # a bad request is refused before anyone signs in
            except OAuth2Error as error:
                return {"error": error.error, "error_description": error.description}, 400
            if request.method == "GET":
                names = "".join(f"<option>{html.escape(n)}</option>" for n in provider.users)
                action = html.escape(request.full_path)
                return f'<form method="post" action="{action}"><select name="login">{names}</select></form>'
            return server.create_authorization_response(grant_user=user, grant=grant)

        @app.get("/logout")
        def logout() -> str:
            provider.logouts.append(request.args.get("client_id", ""))
            return "signed out"

        @app.post("/token")
        def token() -> Any:
            return server.create_token_response()

        @app.route("/userinfo", methods=["GET", "POST"])
        def userinfo() -> Any:
            return server.create_endpoint_response("userinfo")

        return app


@contextlib.contextmanager
def running_provider(
    users: dict[str, ProviderUser], *, client_id: str, client_secret: str, redirect_uri: str
) -> Iterator[Provider]:
    """A provider on 127.0.0.1 (a free port) for one client, stopped after."""
    key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"})
    provider = Provider("", users, Client(client_id, client_secret, redirect_uri), key)
    server = make_server("127.0.0.1", 0, provider.app(), threaded=True)
    provider.issuer = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, name="test-op", daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        thread.join(10)
