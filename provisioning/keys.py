"""Enclave's secrets as data (where each lives, whether and how it rotates, what rotating it changes), their ages
without their values, and the rotations `enclave keys` runs: each one audited `keys.rotated` with the secret's name,
never its value. A person's password and authenticator are reset by `enclave user reset-password | reset-mfa`
(hub/accounts.py); the rules of each file are with their owners (hub/hub_keys.py, kernel/audit_anchors.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub import hub_keys, lifecycle
from hub.models import Account
from hub.revocation import TOKEN_FILE
from kernel import audit
from kernel.audit_anchors import RETIRED_NAME
from kernel.config import Paths
from kernel.db import Registry
from kernel.errors import EnclaveError


class Rotation(StrEnum):
    """How a secret rotates."""

    STOPPED = "while Enclave is stopped"
    LIVE = "live"
    PER_PERSON = "per person"
    NO = "no"


@dataclass(frozen=True)
class Secret:
    name: str  # what `enclave keys rotate` calls it
    title: str
    rotation: Rotation
    changes: str  # what rotating it changes (or, for one that does not rotate, what it would)


SECRETS = (
    Secret("cookie-secret", "the hub's cookie secret", Rotation.STOPPED,
           "every browser session ends (cookies and the tokens sessions were given): people sign in again"),
    Secret("admin-token", "enclave-admin's API token", Rotation.STOPPED,
           "nothing people see; the hub forgets the old token, so only the new one reaches its API"),
    Secret("crypt-key", "the hub's auth-state key (JUPYTERHUB_CRYPT_KEY)", Rotation.LIVE,
           "the new key encrypts from the hub's next start, the old ones still decrypt; with --drop-old, auth state "
           "they encrypted is unreadable and those people sign in again"),
    Secret("audit-anchor-key", "the audit anchor key", Rotation.LIVE,
           "new anchors are signed with a new key; the old one, retired, verifies the anchors it signed up to the "
           "entry it sealed, and no later one"),
    Secret("password-totp", "a person's password and TOTP seed", Rotation.PER_PERSON,
           "`enclave user reset-password | reset-mfa USER`: the old one stops working, memberships stay, their hub "
           "sessions and workspaces end"),
    Secret("pseudonym-key", "a project's pseudonym key", Rotation.NO,
           "every pseudonym and re-keyed DICOM UID of the project would change: earlier outputs, released results, "
           "MLflow runs and notebooks would no longer link to its view. Make a new project instead"),
    Secret("ledger-key", "a project's release-ledger key", Rotation.NO,
           "the ledger's keyed hashes of what the project released would no longer match: differencing against "
           "everything it released before would stop finding n and n-1 pairs"),
)  # fmt: skip
BY_NAME = {s.name: s for s in SECRETS}
ROTATABLE = tuple(s.name for s in SECRETS if s.rotation in (Rotation.STOPPED, Rotation.LIVE))


class RotationRefused(EnclaveError):
    pass


@dataclass(frozen=True)
class SecretState:
    """One secret as `enclave keys list` shows it: never its value."""

    secret: Secret
    where: str  # relative to the home, or where it is kept
    modified: datetime | None  # None: not made yet
    note: str = ""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        return None


def states(paths: Paths, registry: Registry) -> list[SecretState]:
    """Every secret of this installation, one row per project for the per-project keys."""
    home = paths.home
    rel = lambda p: str(p.relative_to(home)) if p.is_relative_to(home) else str(p)  # noqa: E731
    anchor_key = paths.secrets / "audit-anchor.key"
    retired = anchor_key.with_name(RETIRED_NAME)
    retired_count = len(retired.read_text().splitlines()) if retired.exists() else 0
    crypt = hub_keys.crypt_key_path(paths)
    rows = [
        SecretState(BY_NAME["cookie-secret"], rel(paths.hub / hub_keys.COOKIE_SECRET_FILE),
                    _mtime(paths.hub / hub_keys.COOKIE_SECRET_FILE)),
        SecretState(BY_NAME["admin-token"], rel(paths.hub / TOKEN_FILE), _mtime(paths.hub / TOKEN_FILE)),
        SecretState(BY_NAME["crypt-key"], rel(crypt), _mtime(crypt),
                    _count(len(hub_keys.crypt_keys(paths)), "key") if crypt.exists() else "none kept by Enclave"),
        SecretState(BY_NAME["audit-anchor-key"], rel(anchor_key), _mtime(anchor_key),
                    f"{retired_count} retired" if retired_count else ""),
    ]  # fmt: skip
    with registry.session() as session:
        people = session.scalar(select(func.count()).select_from(Account)) or 0
    rows.append(SecretState(BY_NAME["password-totp"], "the registry", None, _count(people, "account")))
    for prefix, name in (("project-", "pseudonym-key"), ("ledger-", "ledger-key")):
        found = sorted(paths.secrets.glob(f"{prefix}*.key"))
        for key in found:
            rows.append(SecretState(BY_NAME[name], rel(key), _mtime(key), f"project {key.stem.removeprefix(prefix)}"))
        if not found:
            rows.append(SecretState(BY_NAME[name], f"secrets/{prefix}PROJECT.key", None, "none yet"))
    return rows


# ------------------------------------------------------------------------------------------------ rotations


@dataclass(frozen=True)
class Rotated:
    secret: Secret
    detail: dict[str, int | str]  # what the audit event says: counts and entry numbers, never a value


def check(paths: Paths, name: str, *, drop_old: bool = False) -> Secret:
    """The secret `name` when it may rotate now; RotationRefused, with why, for the others and for a hub secret
    while Enclave runs."""
    secret = BY_NAME.get(name)
    if secret is None:
        raise RotationRefused(f"no secret {name!r}; these rotate: {', '.join(ROTATABLE)}")
    if secret.rotation is Rotation.NO:
        raise RotationRefused(f"{secret.title} does not rotate: {secret.changes}")
    if secret.rotation is Rotation.PER_PERSON:
        raise RotationRefused(f"{secret.title} is reset per person: {secret.changes}")
    if drop_old and name != "crypt-key":
        raise RotationRefused("--drop-old applies to crypt-key only")
    if secret.rotation is Rotation.STOPPED and (pid := lifecycle.read_pid(paths)) is not None:
        raise RotationRefused(
            f"Enclave is running (hub pid {pid}): the hub reads its {secret.name} only when it starts; `enclave down` "
            "first, rotate, then `enclave up`"
        )
    return secret


def rotate(registry: Registry, paths: Paths, name: str, *, actor: str, drop_old: bool = False) -> Rotated:
    """Rotate the secret `name` (one of ROTATABLE) and audit it; refused as `check` says."""
    secret = check(paths, name, drop_old=drop_old)
    if name == "audit-anchor-key":
        return _rotate_anchor_key(registry, secret, actor)
    if name == "cookie-secret":
        detail: dict[str, int | str] = {"session_tokens_deleted": hub_keys.forget_browser_sessions(paths)}
        hub_keys.replace_cookie_secret(paths)
    elif name == "admin-token":
        # forgotten first: if the new file cannot be written, the old token (still in its file) is given back at the
        # next start, and no one is locked out
        detail = {"old_tokens_deleted": hub_keys.forget_admin_tokens(paths)}
        hub_keys.replace_admin_token(paths)
    else:
        kept, dropped = hub_keys.add_crypt_key(paths, drop_old=drop_old)
        detail = {"keys": kept, "dropped": dropped}
    registry.transaction(
        lambda session: audit.record(session, actor=actor, action="keys.rotated", target=f"secret:{name}", **detail)
    )
    return Rotated(secret, detail)


def _rotate_anchor_key(registry: Registry, secret: Secret, actor: str) -> Rotated:
    anchors = registry.anchors
    if anchors is None:
        raise RotationRefused("this registry keeps no audit anchors (an in-memory database)")

    def seal_and_record(session: Session) -> dict[str, int | str]:
        # A concurrent writer can only make this wait or retry at locked_head, before the key changes: once it holds
        # the write lock nobody appends until this commits, so the old key seals the head and the rotation runs once.
        seq, head = audit.locked_head(session)
        if not anchors.rotate(seq, head):
            raise RotationRefused("there is no audit anchor key yet: the first audited change makes one")
        detail: dict[str, int | str] = {"sealed_at_entry": seq}
        audit.record(session, actor=actor, action="keys.rotated", target=f"secret:{secret.name}", **detail)
        return detail

    return Rotated(secret, registry.transaction(seal_and_record))  # the commit anchored this event under the new key
