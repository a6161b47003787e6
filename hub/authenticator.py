"""JupyterHub authenticator for Enclave's local accounts: password (argon2id) and a TOTP code, both required.

    c.JupyterHub.authenticator_class = "enclave"        # entry point: hub.authenticator:EnclaveAuthenticator
    c.EnclaveAuthenticator.enclave_home = "/var/lib/enclave"

The login form's extra field is JupyterHub's own OTP field (`request_otp`, on and not switchable off here). The
rules live in hub/accounts.py; this class only adapts them to JupyterHub. Production sites use OIDC through
OAuthenticator instead (docs/how-to/admin.md).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from jupyterhub.auth import Authenticator
from traitlets import Bool, Unicode, default, validate

from hub import accounts


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

    def _verify(self, username: str, password: str, code: str) -> bool:
        with self._session() as session:
            return accounts.verify_login(session, username, password, code)

    async def authenticate(self, handler: Any, data: dict[str, str]) -> str | None:
        username = self.normalize_username(data.get("username", ""))
        ok = await asyncio.to_thread(self._verify, username, data.get("password", ""), data.get("otp", ""))
        return username if ok else None

    async def check_allowed(self, username: str, authentication: Any = None) -> bool:
        """Anyone with an Enclave account; what they may then do is decided by their roles and project membership."""
        return True
