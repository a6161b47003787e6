"""JupyterHub authenticator for Enclave's local accounts: password (argon2id) and a TOTP code, both required.

    c.JupyterHub.authenticator_class = "enclave"        # entry point: hub.authenticator:EnclaveAuthenticator
    c.EnclaveAuthenticator.enclave_home = "/var/lib/enclave"

The login form's extra field is JupyterHub's own OTP field (`request_otp`, on and not switchable off here). The
rules live in hub/accounts.py and hub/throttle.py; this class only adapts them to JupyterHub: it names the source of
each attempt, and answers a throttled one with 429 and when to try again. Production sites use OIDC through
OAuthenticator instead (docs/how-to/admin.md).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import struct
from pathlib import Path
from typing import Any

from jupyterhub.auth import Authenticator
from tornado import web
from traitlets import Bool, Unicode, default, validate

from hub import accounts, throttle

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


class EnclaveAuthenticator(Authenticator):
    enclave_home = Unicode(
        help="The Enclave home whose registry holds the accounts (default: $ENCLAVE_HOME).",
    ).tag(config=True)

    request_otp = Bool(True, help="Always on: every login needs the authenticator app's code.").tag(config=True)

    @default("enclave_home")
    def _default_home(self) -> str:
        from fabric.config import default_home

        return str(default_home())

    @default("otp_prompt")
    def _default_prompt(self) -> str:
        return "Code from your authenticator app:"

    @validate("request_otp")
    def _always_otp(self, proposal: Any) -> bool:
        if not proposal["value"]:
            raise ValueError("Enclave's authenticator always asks for the TOTP code")
        return True

    _registry = None

    def _session(self):
        if self._registry is None:
            from fabric.config import Paths
            from fabric.db import Registry

            self._registry = Registry(Paths(Path(self.enclave_home)).database_url)
        return self._registry.session()

    def _verify(self, username: str, password: str, code: str, source: str) -> accounts.Verdict:
        with self._session() as session:
            return accounts.verify_login(session, username, password, code, source=source)

    async def authenticate(self, handler: Any, data: dict[str, str]) -> str | None:
        username = self.normalize_username(data.get("username", ""))
        source = client_source(handler.request) if handler is not None else throttle.UNKNOWN
        verdict = await asyncio.to_thread(self._verify, username, data.get("password", ""), data.get("otp", ""), source)
        if verdict.retry_after:
            # raised after the attempt's audit entry is committed; the message names no account and no account state
            refusal = web.HTTPError(429, "Too many login attempts from here: try again in %d s.", verdict.retry_after)
            refusal.headers = {"Retry-After": str(verdict.retry_after)}  # JupyterHub's error page sets these
            raise refusal
        return username if verdict else None

    async def check_allowed(self, username: str, authentication: Any = None) -> bool:
        """Anyone with an Enclave account; what they may then do is decided by their roles and project membership."""
        return True
