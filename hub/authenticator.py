"""JupyterHub authenticator for Enclave's local accounts: password (argon2id) and a TOTP code, both required.

    c.JupyterHub.authenticator_class = "enclave"        # entry point: hub.authenticator:EnclaveAuthenticator
    c.EnclaveAuthenticator.enclave_home = "/var/lib/enclave"

The login form's extra field is JupyterHub's own OTP field (`request_otp`, on and not switchable off here). The
rules live in hub/accounts.py and hub/throttle.py; this class only adapts them to JupyterHub: it names the source of
each attempt, and answers a throttled one with 429 and when to try again. Production sites may sign in through an
OpenID provider instead (hub/oidc.py, `ENCLAVE_AUTH=oidc`), with the same sessions.

Sessions (`EnclaveSessions`, shared by both authenticators): `refresh_user` (every `auth_refresh_age` seconds of a
person's use) refuses a session whose person Enclave no longer knows (account gone or disabled; with OIDC, in no
project), or which was idle longer than `idle_timeout`, and sets the person's project groups from the registry;
`add_user` does the same at every hub start, where a user Enclave does not know is refused (and, with
`delete_invalid_users`, deleted). Logout is a confirmation page and a POST that ends the person's browser sessions
server-side (hub/revocation.py), audited."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import struct
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from jupyterhub.auth import Authenticator
from jupyterhub.handlers.login import LogoutHandler
from sqlalchemy.orm import Session, object_session
from tornado import web
from traitlets import Bool, Integer, Unicode, default, validate

from hub import accounts, revocation, throttle
from hub.workspaces import registry_of
from kernel import audit
from kernel.config import Paths, default_home
from kernel.db import Registry

_UCRED = struct.Struct("3i")  # SO_PEERCRED: pid, uid, gid


def client_source(request: Any) -> str:
    """Who is trying to log in, for the throttle: the address of the connection's peer, or of the client the proxy
    served when the peer is the proxy; `unix:UID` for another account on the hub's Unix socket (a kernel).

    Never JupyterHub's `request.remote_ip`: the hub trusts X-Real-Ip and X-Forwarded-For from anyone, so a guesser
    could name a fresh source on every try. Only the proxy's own hop is believed: the last X-Forwarded-For entry,
    which configurable-http-proxy appends, and only when the peer is the proxy (loopback, or on the Unix socket the
    hub's own account).
    """
    context = getattr(getattr(request, "connection", None), "context", None)
    family = getattr(context, "address_family", None)
    hop = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
    if family in (socket.AF_INET, socket.AF_INET6) and context.address:
        peer = context.address[0]
        if hop and _is_address(hop) and ipaddress.ip_address(peer).is_loopback:
            return throttle.source_of(hop)
        return throttle.source_of(peer)
    if family == socket.AF_UNIX:
        uid = _peer_uid(request)
        if uid == os.getuid() and hop and _is_address(hop):
            return throttle.source_of(hop)
        return "unix" if uid is None else f"unix:{uid}"
    return throttle.UNKNOWN


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _peer_uid(request: Any) -> int | None:
    try:
        raw = request.connection.stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except (AttributeError, OSError):
        return None
    return _UCRED.unpack(raw)[1]


class EnclaveSessions(Authenticator):
    """What every Enclave authenticator shares, whoever checks the password: the registry, sessions that end when
    the person is no longer known to Enclave or was idle too long, project groups kept as the registry has them, and
    the confirmed logout. Subclasses say who is known (`_account_active`)."""

    enclave_home = Unicode(
        help="The Enclave home whose registry holds the accounts and projects (default: $ENCLAVE_HOME).",
    ).tag(config=True)

    @default("enclave_home")
    def _default_home(self) -> str:
        return str(default_home())

    _registry = None

    def _registry_of_home(self) -> Registry:
        """The registry of `enclave_home`, opened once per process (opening one migrates it)."""
        if self._registry is None:
            self._registry = registry_of(Paths(Path(self.enclave_home)))
        return self._registry

    def _session(self) -> AbstractContextManager[Session]:
        """A session for reading; changes go through `self._registry_of_home().transaction`."""
        return self._registry_of_home().session()

    def _account_active(self, username: str) -> bool:
        """Whether `username` may hold a session (called in a thread)."""
        raise NotImplementedError

    idle_timeout = Integer(
        3600,
        help="Seconds without any request from a person (hub, workspace through its hub check, airlock) after which "
        "their session is refused and they log in again; 0: never. Noticed within `auth_refresh_age`.",
    ).tag(config=True)

    _seen: dict[str, float]

    def _last_seen(self) -> dict[str, float]:
        if not hasattr(self, "_seen"):
            self._seen = {}
        return self._seen

    def _project_groups(self, username: str) -> set[str]:
        with self._session() as session:
            return revocation.project_groups(session, username)

    async def _sync_groups(self, user: Any) -> None:
        """The person's project groups as the registry has them (platform-admins is left as configured)."""
        from jupyterhub import orm

        wanted = await asyncio.to_thread(self._project_groups, user.name)
        orm_user = _orm(user)
        db = object_session(orm_user)
        changed = False
        for name in sorted(revocation.PROJECT_GROUPS):
            group = orm.Group.find(db, name)
            if group is None:  # the first start: load_groups makes it
                continue
            member = group in orm_user.groups
            if name in wanted and not member:
                orm_user.groups.append(group)
                changed = True
            elif name not in wanted and member:
                orm_user.groups.remove(group)
                changed = True
        if changed:
            db.commit()

    async def add_user(self, user: Any) -> None:
        """At every hub start (and when a user is first made): a user Enclave no longer knows is refused, so the hub
        deletes it (`delete_invalid_users`) with its tokens and grants; the others get their project groups."""
        if not await asyncio.to_thread(self._account_active, user.name):
            raise ValueError("not known to Enclave")
        super().add_user(user)
        await self._sync_groups(user)

    async def _refresh_session(self, user: Any, handler: Any = None) -> bool:
        """Refuse the session (a new login is needed; API calls with its tokens are refused, `auth_refresh_strict`)
        when the person is no longer known, or was idle too long; otherwise refresh their groups."""
        if not await asyncio.to_thread(self._account_active, user.name):
            return False
        if handler is not None and _persons_request(handler):
            seen = self._last_seen()
            now = time.monotonic()
            last = seen.get(user.name)
            if self.idle_timeout and last is not None and now - last > self.idle_timeout:
                # the idle session ends server-side, as at logout: its cookie and browser tokens stop working
                seen.pop(user.name, None)
                revoked = revocation.end_browser_sessions(object_session(_orm(user)), _orm(user))
                await asyncio.to_thread(_audit_revoked, self, user.name, "idle", revoked)
                return False
            seen[user.name] = now
        await self._sync_groups(user)
        return True

    def note_login(self, username: str) -> None:
        self._last_seen()[username] = time.monotonic()

    def get_handlers(self, app: Any) -> list[tuple[str, type]]:
        # first, so that this logout replaces JupyterHub's and any other the authenticator's base class brings
        return [(r"/logout", ConfirmedLogoutHandler), *super().get_handlers(app)]


class EnclaveAuthenticator(EnclaveSessions):
    """Local accounts: password and TOTP code checked against the registry (hub/accounts.py)."""

    request_otp = Bool(True, help="Always on: every login needs the authenticator app's code.").tag(config=True)

    @default("otp_prompt")
    def _default_prompt(self) -> str:
        return "Code from your authenticator app:"

    @validate("request_otp")
    def _always_otp(self, proposal: Any) -> bool:
        if not proposal["value"]:
            raise ValueError("Enclave's authenticator always asks for the TOTP code")
        return True

    def _verify(self, username: str, password: str, code: str, source: str) -> accounts.Verdict:
        return self._registry_of_home().transaction(
            lambda session: accounts.verify_login(session, username, password, code, source=source)
        )

    async def authenticate(self, handler: Any, data: dict[str, str]) -> str | None:
        username = self.normalize_username(data.get("username", ""))
        source = client_source(handler.request) if handler is not None else throttle.UNKNOWN
        verdict = await asyncio.to_thread(self._verify, username, data.get("password", ""), data.get("otp", ""), source)
        if verdict.retry_after:
            # raised after the attempt's audit entry is committed; the message names no account and no account state
            refusal = web.HTTPError(429, "Too many login attempts from here: try again in %d s.", verdict.retry_after)
            refusal.headers = {"Retry-After": str(verdict.retry_after)}  # JupyterHub's error page sets these
            raise refusal
        if verdict:
            self.note_login(username)
            return username
        return None

    async def check_allowed(self, username: str, authentication: Any = None) -> bool:
        """Anyone with an Enclave account; what they may then do is decided by their roles and project membership."""
        return True

    def _account_active(self, username: str) -> bool:
        with self._session() as session:
            return accounts.active(session, username)

    async def refresh_user(self, user: Any, handler: Any = None) -> bool:
        return await self._refresh_session(user, handler)


def _orm(user: Any) -> Any:
    """The ORM row of a user: JupyterHub passes its wrapper at login, the row itself at start."""
    return getattr(user, "orm_user", user)


def _persons_request(handler: Any) -> bool:
    """Whether the request comes from the person (a cookie, or a token given to a browser session), not from a
    server's own token (a workspace reporting activity is not the person using it)."""
    if not getattr(handler, "_token_authenticated", False):
        return True
    from jupyterhub import orm

    raw = handler.get_auth_token()
    token = orm.APIToken.find(handler.db, raw) if raw else None
    return token is not None and token.session_id is not None


class ConfirmedLogoutHandler(LogoutHandler):
    """GET asks (a link on another site cannot log anyone out); the form's POST, with the XSRF token, logs out:
    every browser session of the person ends server-side (hub/revocation.py `end_browser_sessions`), audited."""

    async def get(self) -> None:
        if self.current_user is None:
            self.redirect(self.settings["login_url"], permanent=False)
            return
        self.finish(await self.render_template("logout_confirm.html", logout_url=self.request.path))

    async def post(self) -> None:
        user = self.current_user
        await self.default_handle_logout()  # JupyterHub's own: this session's tokens and cookies
        if user is not None:
            revoked = revocation.end_browser_sessions(self.db, user.orm_user)
            await asyncio.to_thread(_audit_logout, self.authenticator, user.name, revoked)
            self.authenticator._last_seen().pop(user.name, None)
        self._jupyterhub_user = None
        # an identity provider's own logout next, when the authenticator names one (hub/oidc.py), else the login page
        after = getattr(self.authenticator, "logout_redirect_url", "") or self.settings["login_url"]
        self.redirect(after, permanent=False)


def _audit_logout(authenticator: EnclaveSessions, username: str, tokens: int) -> None:
    _audit_revoked(authenticator, username, "logout", tokens, logout=True)


def _audit_revoked(
    authenticator: EnclaveSessions, username: str, reason: str, tokens: int, *, logout: bool = False
) -> None:
    def record(session: Session) -> None:
        if logout:
            audit.record(session, actor=username, action="user.logout", target=f"user:{username}")
        audit.record(session, actor=username if logout else "enclave-hub", action="access.revoked",
                     target=f"user:{username}", reason=reason, browser_tokens=tokens, hub_cookie=True)  # fmt: skip

    authenticator._registry_of_home().transaction(record)
