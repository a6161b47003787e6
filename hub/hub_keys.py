"""The hub's own secrets in its root-only state folder, and replacing them: the cookie secret that signs every login
cookie, `enclave-admin`'s API token (hub/revocation.py), and the keys that encrypt stored auth state (the
`JUPYTERHUB_CRYPT_KEY` JupyterHub reads, kept in a file).

JupyterHub reads the cookie secret and its services' tokens when it starts, and keeps every token it was ever given
in its database: a token removed from the configuration still works. So these two are replaced while the hub is
stopped, and the hub's database is made to forget what the old ones granted (`forget_browser_sessions`,
`forget_admin_tokens`, through JupyterHub's own ORM). The crypt keys are a list, newest first: the newest encrypts,
every one decrypts (JupyterHub's `CryptKeeper.keys`), so adding a key loses nothing; dropping old ones makes auth
state they encrypted unreadable (those people sign in again).

    hub_keys.crypt_keys(paths)   # the auth-state keys in ENCLAVE_CRYPT_KEY_FILE, newest first ([] when none)
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hub.revocation import ADMIN_SERVICE, TOKEN_FILE, end_browser_sessions
from kernel.config import Paths
from kernel.secret_files import write_secret

COOKIE_SECRET_FILE = "cookie_secret"  # noqa: S105 (a file name, not a secret)
DEFAULT_CRYPT_KEY_FILE = Path("/etc/enclave/crypt-key")
HUB_DATABASE = "jupyterhub.sqlite"


# ------------------------------------------------------------------------------------------------ cookie secret


def replace_cookie_secret(paths: Paths) -> None:
    """A new cookie secret (32 random bytes, hex, as JupyterHub makes its own), for the next start."""
    write_secret(paths.hub / COOKIE_SECRET_FILE, secrets.token_hex(32) + "\n")


def forget_browser_sessions(paths: Paths) -> int:
    """In the stopped hub's database: every person's browser sessions end (their cookie id replaced, the tokens
    their sessions were given deleted), as logout does for one. How many tokens went; 0 without a database."""
    from jupyterhub import orm

    with _hub_db(paths) as db:
        return sum(end_browser_sessions(db, user) for user in db.query(orm.User)) if db is not None else 0


# ------------------------------------------------------------------------------------------------ enclave-admin


def replace_admin_token(paths: Paths) -> None:
    """A new token for `enclave-admin`, which the hub's configuration gives it at the next start."""
    write_secret(paths.hub / TOKEN_FILE, secrets.token_hex(32))


def forget_admin_tokens(paths: Paths) -> int:
    """In the stopped hub's database: delete every token `enclave-admin` holds, so only the one in its token file
    (added at the next start) works. How many; 0 without a database."""
    from jupyterhub import orm

    with _hub_db(paths) as db:
        service = orm.Service.find(db, ADMIN_SERVICE) if db is not None else None
        tokens = list(service.api_tokens) if service is not None else []
        for token in tokens:
            db.delete(token)
        if tokens:
            db.commit()
        return len(tokens)


# ------------------------------------------------------------------------------------------------ crypt keys


def crypt_key_path(paths: Paths) -> Path:
    """Where the hub's auth-state keys are kept: ENCLAVE_CRYPT_KEY_FILE, else /etc/enclave/crypt-key, beside the
    settings file; `enclave up` passes them to the hub as JUPYTERHUB_CRYPT_KEY when it signs in through OIDC."""
    return Path((os.environ.get("ENCLAVE_CRYPT_KEY_FILE") or "").strip() or DEFAULT_CRYPT_KEY_FILE)


def crypt_keys(paths: Paths) -> list[str]:
    """The auth-state encryption keys Enclave keeps for the hub, newest first (hex, 32 bytes each), for
    `c.CryptKeeper.keys`: the file holds them `;`-separated, as `JUPYTERHUB_CRYPT_KEY` does. [] without the file."""
    try:
        text = crypt_key_path(paths).read_text()
    except FileNotFoundError:
        return []
    return [key.strip() for key in text.split(";") if key.strip()]


def add_crypt_key(paths: Paths, *, drop_old: bool = False) -> tuple[int, int]:
    """Put a new key first (the one that encrypts from the hub's next start); the old ones stay after it to decrypt
    what they encrypted, unless `drop_old`. Returns (keys kept, keys dropped)."""
    old = crypt_keys(paths)
    kept = [] if drop_old else old
    write_secret(crypt_key_path(paths), ";".join([secrets.token_hex(32), *kept]) + "\n")
    return len(kept) + 1, len(old) - len(kept)


# ------------------------------------------------------------------------------------------------ the hub's database


@contextlib.contextmanager
def _hub_db(paths: Paths) -> Iterator[Any]:
    """A JupyterHub ORM session on the hub's database, None when the hub never ran; closed (and its engine
    disposed) after."""
    path = paths.hub / HUB_DATABASE
    if not path.is_file():
        yield None
        return
    from jupyterhub import orm

    db = orm.new_session_factory(f"sqlite:///{path}")()
    try:
        yield db
    finally:
        db.close()
        db.get_bind().dispose()
