"""Who is at the keyboard: two identity providers behind one small interface, and never both in one app.

- `HubIdentity`: the web app runs as a JupyterHub service. Browsers log in through the hub with OAuth
  (`HubOAuth`, the `HubOAuthenticated` mixin and `HubOAuthCallbackHandler` at `<prefix>oauth_callback`); the hub
  user's name is the actor, and the visitor's token must carry the scope `access:services!service=airlock`
  (granted to users by the role in hub/airlock_service.py), otherwise 403.
- `DevIdentity`: stand-alone development and tests. The user comes from a signed cookie set by
  `/dev/login?user=NAME`, a page that exists only in this mode, which itself runs only on 127.0.0.1.

Either way the identity only names the user: what they may see and do is decided by the release workflow.
"""

from __future__ import annotations

import os
import re
from typing import Any, Protocol

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from tornado.web import HTTPError, RequestHandler

from output_checks.web.handlers import Page

SERVICE_NAME = "airlock"
ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"
DEV_COOKIE = "airlock-dev-user"
DEV_HOSTS = frozenset({"127.0.0.1"})
USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class Identity(Protocol):
    """What the app needs from an identity provider."""

    name: str
    base_url: str  # the URL prefix the app serves under ("/", or "/services/airlock/" behind the hub)

    def bind(self, handler: type[RequestHandler]) -> type[RequestHandler]:
        """`handler` with this provider's `get_current_user` (the user's name), login URL and XSRF checks."""

    def routes(self) -> list[tuple[str, type[RequestHandler]]]:
        """The provider's own pages (the OAuth callback, or the development login)."""

    def settings(self) -> dict[str, Any]:
        """Tornado application settings the provider needs (cookie secret, login URL)."""


# ------------------------------------------------------------------------------------------------ JupyterHub


class _HubAuthFromSettings:
    """The app's one HubOAuth instance, from the application settings."""

    @property
    def hub_auth(self) -> HubOAuth:
        return self.settings["hub_auth"]  # type: ignore[attr-defined]

    @hub_auth.setter
    def hub_auth(self, value: HubOAuth) -> None:  # HubAuthenticated's own setter; the settings win
        pass


class _HubUser(_HubAuthFromSettings, HubOAuthenticated):
    """Authenticated through the hub; only hub *users* holding the airlock's access scope get in."""

    @property
    def hub_scopes(self) -> set[str]:
        return {ACCESS_SCOPE}

    def get_current_user(self) -> str | None:
        model = super().get_current_user()
        if not model:
            return None
        if model.get("kind", "user") != "user":
            raise HTTPError(403, "only people can use the airlock")
        return model["name"]


class _HubCallback(_HubAuthFromSettings, HubOAuthCallbackHandler):
    pass


class HubIdentity:
    """The hub's user, through OAuth. Configured from the environment the hub gives a managed service
    (JUPYTERHUB_API_TOKEN, JUPYTERHUB_CLIENT_ID, JUPYTERHUB_SERVICE_PREFIX, JUPYTERHUB_API_URL, ...)."""

    name = "jupyterhub"

    def __init__(self, hub_auth: HubOAuth | None = None) -> None:
        # ask the hub again about a visitor's token after a few seconds (JupyterHub's default is 300), so a revoked
        # session (logout, account removed, idle) is refused at once; cookie options come from the hub's environment
        # never below 1: HubAuth reads a cache age of 0 as "cache forever"
        cache = max(1, int(os.environ.get("ENCLAVE_AUTH_CACHE_SECONDS", "5")))
        self.hub_auth = hub_auth or HubOAuth(access_scopes={ACCESS_SCOPE}, cache_max_age=cache)
        self.base_url = self.hub_auth.base_url
        self.hub_home = self.hub_auth.hub_prefix + "home"

    def bind(self, handler: type[RequestHandler]) -> type[RequestHandler]:
        return type(handler.__name__, (_HubUser, handler), {})

    def routes(self) -> list[tuple[str, type[RequestHandler]]]:
        return [(self.base_url + "oauth_callback", _HubCallback)]

    def settings(self) -> dict[str, Any]:
        # A fresh secret per start, as in JupyterHub's own service example: after a restart, browsers simply go
        # through the (confirmation-free) OAuth redirect again.
        return {"hub_auth": self.hub_auth, "cookie_secret": os.urandom(32)}


# ------------------------------------------------------------------------------------------------ development


class _DevUser:
    def get_current_user(self) -> str | None:
        raw = self.get_signed_cookie(DEV_COOKIE, max_age_days=1)  # type: ignore[attr-defined]
        name = raw.decode() if raw else None
        return name if name and USERNAME.match(name) else None


class DevLogin(Page):
    """/dev/login?user=NAME: become NAME (development only). Without a name, a small form."""

    def get(self) -> None:
        user = self.get_argument("user", "").strip()
        base = self.settings["identity"].base_url
        next_url = self.get_argument("next", "")
        if not next_url.startswith(base) or next_url.startswith("//") or "\\" in next_url:
            next_url = base  # only ever back into this app
        if not user:
            self.page("dev_login.html", next_url=next_url)
            return
        if not USERNAME.match(user):
            raise HTTPError(400, "not a user name")
        self.set_signed_cookie(DEV_COOKIE, user, expires_days=1, httponly=True, samesite="Lax", path=base)
        self.redirect(next_url, status=303)


class DevLogout(Page):
    def post(self) -> None:
        base = self.settings["identity"].base_url
        self.clear_cookie(DEV_COOKIE, path=base)
        self.redirect(base + "dev/login", status=303)


class DevIdentity:
    """A test identity for running the app on its own: anyone can be anyone, so it serves only on loopback."""

    name = "development"

    def __init__(self, base_url: str = "/") -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"

    def bind(self, handler: type[RequestHandler]) -> type[RequestHandler]:
        return type(handler.__name__, (_DevUser, handler), {})

    def routes(self) -> list[tuple[str, type[RequestHandler]]]:
        return [(self.base_url + "dev/login", self.bind(DevLogin)), (self.base_url + "dev/logout", DevLogout)]

    def settings(self) -> dict[str, Any]:
        return {"cookie_secret": os.urandom(32), "login_url": self.base_url + "dev/login"}


def check_dev_host(host: str) -> None:
    """The development login must never be reachable from another machine."""
    if host not in DEV_HOSTS:
        raise ValueError(f"--dev-login serves only on 127.0.0.1 (not {host})")
    if os.environ.get("JUPYTERHUB_API_TOKEN"):
        raise ValueError("--dev-login cannot be used when started by JupyterHub")
