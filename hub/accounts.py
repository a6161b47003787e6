"""Local accounts: argon2id password hashes and mandatory TOTP (RFC 6238), for the hub's authenticator and the
`enclave user` commands. One rule-owning layer: creating, removing and verifying accounts, each change audited.

A TOTP code is accepted once (the last accepted time step is stored, so a code seen over a shoulder or replayed
within its 30 s window fails), with one step of clock drift either way. Five failed logins lock the account for
five minutes. Nothing here logs or returns a password, a secret or a code.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.orm import Session

from fabric import audit
from fabric.errors import FabricError, NotFoundError
from hub.models import Account

USERNAME = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")  # also a safe Unix account name
MIN_PASSWORD = 12
ISSUER = "Enclave"
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=5)
HASHER = PasswordHasher()  # argon2id with the library's current defaults (RFC 9106 low-memory profile)


class AccountError(FabricError):
    pass


@dataclass(frozen=True)
class Enrolment:
    """What a new user needs once, to set up their authenticator app: shown at creation, never stored in logs."""

    username: str
    secret: str
    uri: str


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def add_account(session: Session, username: str, password: str, *, actor: str) -> Enrolment:
    if not USERNAME.match(username):
        raise AccountError("a user name is 2-32 characters: a lower-case letter, then letters, digits, '_' or '-'")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
    if session.get(Account, username) is not None:
        raise AccountError(f"user {username} already exists")
    secret = pyotp.random_base32()
    session.add(Account(username=username, password_hash=HASHER.hash(password), totp_secret=secret,
                        last_totp_step=0, failures=0, disabled=False, created_at=_now()))  # fmt: skip
    audit.record(session, actor=actor, action="user.add", target=f"user:{username}")
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)
    return Enrolment(username, secret, uri)


def remove_account(session: Session, username: str, *, actor: str) -> None:
    account = session.get(Account, username)
    if account is None:
        raise NotFoundError(f"no user {username}")
    session.delete(account)
    audit.record(session, actor=actor, action="user.remove", target=f"user:{username}")


def current_code(session: Session, username: str) -> str:
    """The TOTP code of this moment (demo and tests only: `enclave demo otp USER`)."""
    account = session.get(Account, username)
    if account is None:
        raise NotFoundError(f"no user {username}")
    return pyotp.TOTP(account.totp_secret).now()


def verify_login(session: Session, username: str, password: str, code: str, *, at: float | None = None) -> bool:
    """True when the password and a fresh TOTP code are both right; audits every attempt (never its secrets)."""
    account = session.get(Account, username) if USERNAME.match(username or "") else None
    if account is None or account.disabled:
        _burn()  # the same cost as a real check: timing does not tell which names exist
        audit.record(session, actor=username[:64] or "?", action="user.login_failed", target="user:unknown")
        return False
    now = _now()
    if account.locked_until and account.locked_until > now:
        audit.record(session, actor=username, action="user.login_locked", target=f"user:{username}")
        return False
    ok = _password_ok(account, password)
    step = _totp_step(account.totp_secret, code, at)
    if ok and step is not None and step > account.last_totp_step:
        account.last_totp_step = step
        account.failures = 0
        account.locked_until = None
        if HASHER.check_needs_rehash(account.password_hash):
            account.password_hash = HASHER.hash(password)
        audit.record(session, actor=username, action="user.login", target=f"user:{username}")
        return True
    account.failures += 1
    if account.failures >= MAX_FAILURES:
        account.locked_until = now + LOCKOUT
        account.failures = 0
    reason = "password" if not ok else ("code reused" if step is not None else "code")
    audit.record(session, actor=username, action="user.login_failed", target=f"user:{username}", reason=reason)
    return False


_DUMMY = HASHER.hash("not-a-password-of-anyone")


def _burn() -> None:
    with contextlib.suppress(VerificationError):
        HASHER.verify(_DUMMY, "wrong")


def _password_ok(account: Account, password: str) -> bool:
    try:
        return HASHER.verify(account.password_hash, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _totp_step(secret: str, code: str, at: float | None) -> int | None:
    """The time step a code belongs to (now, or one step either side), or None."""
    code = (code or "").strip().replace(" ", "")
    if not re.fullmatch(r"\d{6}", code):
        return None
    totp = pyotp.TOTP(secret)
    moment = time.time() if at is None else at
    for drift in (0, -1, 1):
        when = moment + drift * totp.interval
        if pyotp.utils.strings_equal(totp.at(when), code):
            return int(when // totp.interval)
    return None
