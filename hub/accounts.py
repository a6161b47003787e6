"""Local accounts: argon2id password hashes and mandatory TOTP (RFC 6238), for the hub's authenticator and the
`enclave user` commands. One rule-owning layer: creating, removing and verifying accounts, each change audited.

A password or an authenticator is replaced in place (`reset_password`, `reset_mfa`): memberships stay, and the caller
ends the person's hub sessions (hub/revocation.py). A TOTP code is accepted once (the last accepted time step is stored,
so a code seen over a shoulder or replayed within its 30 s window fails), with one step of clock drift either way.
Failed logins slow down the source they come from, per account and overall (hub/throttle.py); nothing locks an account
for everyone. Nothing here logs or returns a password, a secret or a code.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric.models import Project, ProjectMember
from hub import throttle
from hub.models import Account
from kernel import audit
from kernel.clock import utcnow
from kernel.errors import EnclaveError, NotFoundError
from kernel.names import USERNAME

# One plain address (no display name, no spaces, no header-breaking characters): the airlock's notices go there.
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"  # one part of a domain name
EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{LABEL}(?:\.{LABEL})+$")
MIN_PASSWORD = 12
ISSUER = "Enclave"
HASHER = PasswordHasher()  # argon2id with the library's current defaults (RFC 9106 low-memory profile)


class AccountError(EnclaveError):
    pass


@dataclass(frozen=True)
class Enrolment:
    """What a new user needs once, to set up their authenticator app: shown at creation, never stored in logs."""

    username: str
    secret: str
    uri: str


@dataclass(frozen=True)
class Verdict:
    """The answer to a login attempt: true only when it succeeded. `retry_after` > 0 when it was refused before the
    password was checked, because its source tried too often; it says nothing about the account."""

    ok: bool
    retry_after: int = 0

    def __bool__(self) -> bool:
        return self.ok


def checked_email(address: str) -> str:
    """`address` when it is one plain e-mail address (at most 254 characters), else AccountError."""
    address = address.strip()
    if len(address) > 254 or not EMAIL.match(address):
        raise AccountError(f"not a plain e-mail address (like name@example.org): {address[:80]!r}")
    return address


def add_account(session: Session, username: str, password: str, *, actor: str, email: str | None = None) -> Enrolment:
    if not USERNAME.match(username):
        raise AccountError("a user name is 2-32 characters: a lower-case letter, then letters, digits, '_' or '-'")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
    if session.get(Account, username) is not None:
        raise AccountError(f"user {username} already exists")
    address = checked_email(email) if email else None
    secret = pyotp.random_base32()
    session.add(Account(username=username, password_hash=HASHER.hash(password), totp_secret=secret, last_totp_step=0,
                        disabled=False, created_at=utcnow(whole_seconds=True), email=address))  # fmt: skip
    audit.record(session, actor=actor, action="user.add", target=f"user:{username}", email=bool(address))
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)
    return Enrolment(username, secret, uri)


def reset_password(session: Session, username: str, password: str, *, actor: str) -> None:
    """Give `username` a new password, keeping their authenticator and project memberships; audited without it.
    Their hub sessions are ended by hub/revocation.py's `revoke_account` after this commits."""
    account = _account(session, username)
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
    if _password_ok(account, password):
        raise AccountError("the new password is the old one: choose another")
    account.password_hash = HASHER.hash(password)
    audit.record(session, actor=actor, action="user.password_reset", target=f"user:{username}")


def reset_mfa(session: Session, username: str, *, actor: str) -> Enrolment:
    """Enrol `username` afresh: a new TOTP seed (the old authenticator's codes are refused from now on), keeping their
    password and project memberships. Returns the enrolment, to be shown once; audited without it."""
    account = _account(session, username)
    secret = pyotp.random_base32()
    account.totp_secret = secret
    account.last_totp_step = 0  # the replay guard belongs to the old seed; the new one starts clean
    audit.record(session, actor=actor, action="user.mfa_reset", target=f"user:{username}")
    return Enrolment(username, secret, pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER))


def _account(session: Session, username: str) -> Account:
    account = session.get(Account, username) if USERNAME.match(username or "") else None
    if account is None:
        raise NotFoundError(f"no user {username}")
    return account


def set_email(session: Session, username: str, email: str | None, *, actor: str) -> None:
    """Set (or, with None or "", clear) the address `username`'s notices go to; audited without the address."""
    account = session.get(Account, username)
    if account is None:
        raise NotFoundError(f"no user {username}")
    account.email = checked_email(email) if email else None
    audit.record(session, actor=actor, action="user.set_email", target=f"user:{username}", email=bool(account.email))


def remove_account(session: Session, username: str, *, actor: str) -> list[str]:
    """Delete the login record and every project membership of `username` (each audited), so that a new account of
    the same name inherits nothing unless an admin adds it again. Returns the projects it was a member of. Ending the
    person's hub sessions and workspaces is hub/revocation.py's `revoke_account`, after this commits."""
    account = session.get(Account, username)
    if account is None:
        raise NotFoundError(f"no user {username}")
    projects = forget_memberships(session, username, actor=actor, reason="account removed")
    session.delete(account)
    audit.record(session, actor=actor, action="user.remove", target=f"user:{username}", projects=projects)
    return projects


def forget_memberships(session: Session, username: str, *, actor: str, reason: str) -> list[str]:
    """Remove `username` from every project (the membership rows and the project specs' member lists)."""
    members = list(session.scalars(select(ProjectMember).where(ProjectMember.username == username)))
    projects = sorted({m.project_name for m in members})
    for member in members:
        session.delete(member)
        audit.record(session, actor=actor, action="project.remove_member", target=member.project_name,
                     user=username, role=member.role, reason=reason)  # fmt: skip
    for project in session.scalars(select(Project).where(Project.name.in_(projects))):
        spec: dict[str, Any] = dict(project.spec)
        spec["members"] = [m for m in spec.get("members", []) if m.get("user") != username]
        project.spec = spec
    session.flush()
    return projects


def active(session: Session, username: str) -> bool:
    """Whether `username` has an account that may log in (it exists and is not disabled)."""
    account = session.get(Account, username) if USERNAME.match(username or "") else None
    return account is not None and not account.disabled


def current_code(session: Session, username: str) -> str:
    """The TOTP code of this moment (demo and tests only: `enclave demo otp USER`)."""
    account = session.get(Account, username)
    if account is None:
        raise NotFoundError(f"no user {username}")
    return pyotp.TOTP(account.totp_secret).now()


def verify_login(
    session: Session,
    username: str,
    password: str,
    code: str,
    *,
    source: str = throttle.UNKNOWN,
    at: float | None = None,
    policy: tuple[throttle.Limit, ...] = throttle.POLICY,
) -> Verdict:
    """Whether the password and a fresh TOTP code are both right, for an attempt from `source` (hub/throttle.py) at
    `at` (default now). A source that failed too often is refused before anything is checked. Every attempt is
    audited, with its source, never its secrets."""
    moment = time.time() if at is None else at
    now = datetime.fromtimestamp(moment, UTC).replace(tzinfo=None)
    valid = bool(USERNAME.match(username or ""))
    name = username if valid else ""  # only a possible account name is kept in the throttle's table
    actor = username[:64] or "?"
    wait = throttle.retry_after(session, name, source, now, policy)
    if wait:
        audit.record(session, actor=actor, action="user.login_throttled", target="user:" + (name or "unknown"),
                     source=source, retry_after=wait)  # fmt: skip
        return Verdict(False, retry_after=wait)
    account = session.get(Account, username) if valid else None
    if account is None or account.disabled:
        _burn()  # the same cost as a real check: timing does not tell which names exist
        throttle.record_failure(session, name, source, now, policy)
        audit.record(session, actor=actor, action="user.login_failed", target="user:unknown", source=source)
        return Verdict(False)
    ok = _password_ok(account, password)
    step = _totp_step(account.totp_secret, code, moment)
    if ok and step is not None and step > account.last_totp_step:
        account.last_totp_step = step
        throttle.clear(session, username, source)
        if HASHER.check_needs_rehash(account.password_hash):
            account.password_hash = HASHER.hash(password)
        audit.record(session, actor=username, action="user.login", target=f"user:{username}", source=source)
        return Verdict(True)
    throttle.record_failure(session, username, source, now, policy)
    reason = "password" if not ok else ("code reused" if step is not None else "code")
    audit.record(session, actor=username, action="user.login_failed", target=f"user:{username}", reason=reason,
                 source=source)  # fmt: skip
    return Verdict(False)


_DUMMY = HASHER.hash("not-a-password-of-anyone")


def _burn() -> None:
    with contextlib.suppress(VerificationError):
        HASHER.verify(_DUMMY, "wrong")


def _password_ok(account: Account, password: str) -> bool:
    try:
        return HASHER.verify(account.password_hash, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _totp_step(secret: str, code: str, moment: float) -> int | None:
    """The time step a code belongs to (now, or one step either side), or None."""
    code = (code or "").strip().replace(" ", "")
    if not re.fullmatch(r"\d{6}", code):
        return None
    totp = pyotp.TOTP(secret)
    for drift in (0, -1, 1):
        when = moment + drift * totp.interval
        if pyotp.utils.strings_equal(totp.at(when), code):
            return int(when // totp.interval)
    return None
