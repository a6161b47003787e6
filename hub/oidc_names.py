"""Who a person signed in through OIDC is in Enclave: the rule that turns a claim of the identity provider into an
Enclave user name, and the record that keeps each such name to the one provider identity that first used it.

Enclave's user names are also Unix account names and project members' names (hub/accounts.py `USERNAME`), so
`a.smith@trust.nhs.uk` cannot be one as it is. The site chooses a claim (`preferred_username` by default) and a
mapping:

| mapping | the claim's value | becomes |
| --- | --- | --- |
| `exact` | already an Enclave user name (upper case is lowered) | itself |
| `email` | an e-mail address in an allowed domain | its local part, lower case, dots to hyphens: `a-smith` |

An explicit map file (`value = name` lines) is consulted first, for the people the rule does not fit or where two
would collide. Whatever results must be a valid Enclave user name, else the sign-in is refused.

Two identities can still reach one name (`a.smith@` and `a-smith@`, or the same local part in two allowed domains).
The first identity (issuer and `sub`, kept only as a keyed digest) to sign in under a name, past every other check
of hub/oidc.py, holds it; another one
mapping there later is refused, until an admin gives one of them an explicit mapping, or releases the name
(`release_name`). Nothing here logs or returns a claim's value.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel.names import USERNAME

MAPPINGS = ("exact", "email")
DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$")
SUBJECTS_FILE = "oidc-subjects.json"  # in the hub's root-only state folder


class NameRefused(Exception):
    """A sign-in whose claims give no Enclave user name. `reason` is a short code for the audit log; the message is
    what the person sees, and repeats no claim value."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class UsernameRule:
    claim: str = "preferred_username"
    mapping: str = "exact"
    domains: tuple[str, ...] = ()
    explicit: dict[str, str] = field(default_factory=dict)  # claim value (lower case) -> Enclave user name

    def __post_init__(self) -> None:
        if self.mapping not in MAPPINGS:
            raise ValueError(f"ENCLAVE_OIDC_USERNAME_MAPPING must be {' or '.join(MAPPINGS)}, not {self.mapping!r}")
        if self.mapping == "email" and not self.domains:
            raise ValueError("ENCLAVE_OIDC_USERNAME_MAPPING=email needs ENCLAVE_OIDC_ALLOWED_DOMAINS (comma-separated)")
        for domain in self.domains:
            if not DOMAIN.match(domain):
                raise ValueError(f"ENCLAVE_OIDC_ALLOWED_DOMAINS: not a domain name: {domain!r}")
        if not self.claim:
            raise ValueError("ENCLAVE_OIDC_USERNAME_CLAIM must name a claim")

    def username(self, claims: dict[str, Any]) -> str:
        """The Enclave user name of the person these userinfo claims describe, or NameRefused."""
        value = claims.get(self.claim)
        if not isinstance(value, str) or not value.strip():
            message = f"Your identity provider did not send the {self.claim!r} claim Enclave signs you in by."
            raise NameRefused("no-username-claim", message)
        value = value.strip().lower()
        if value in self.explicit:
            return self.explicit[value]
        name = email_local_part(value, self.domains) if self.mapping == "email" else value
        if not USERNAME.match(name):
            raise NameRefused(
                "unmappable-username",
                "Your account's name at the identity provider does not make an Enclave user name (2-32 characters: a "
                "lower-case letter, then letters, digits, '_' or '-'): ask Enclave's admin to map it.",
            )
        return name


def email_local_part(address: str, domains: tuple[str, ...]) -> str:
    """`a.smith@trust.nhs.uk` -> `a-smith` when `trust.nhs.uk` is allowed; NameRefused otherwise."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise NameRefused("not-an-email", "Your identity provider's name for you is not an e-mail address.")
    if domain not in domains:
        raise NameRefused("domain-not-allowed", "Your e-mail address is not in a domain this Enclave accepts.")
    return local.replace(".", "-")


def read_explicit_map(path: Path | str) -> dict[str, str]:
    """`claim value = enclave-name` lines (`#` comments, blank lines skipped): keys lower-cased; each name valid and
    used once (two identities on one name is the collision the map exists to resolve). Errors name the line only."""
    path = Path(path)
    mapped: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        value, sep, name = line.rpartition("=")
        value, name = value.strip().lower(), name.strip()
        if not sep or not value:
            raise ValueError(f"{path}, line {number}: not a 'claim value = user name' line")
        if not USERNAME.match(name):
            raise ValueError(f"{path}, line {number}: not an Enclave user name")
        if name in mapped.values():
            raise ValueError(f"{path}, line {number}: that user name is mapped to twice")
        if value in mapped:
            raise ValueError(f"{path}, line {number}: that claim value is mapped twice")
        mapped[value] = name
    return mapped


class SubjectBindings:
    """Which provider identity holds each Enclave user name: `{name: digest}` in a root-only JSON file, the digest an
    HMAC of issuer and `sub` under a key kept in the same file (so the file names no one by itself)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"key": secrets.token_hex(32), "names": {}}
        if stat.S_IMODE(self.path.stat().st_mode) & 0o077:
            raise PermissionError(f"{self.path} must be readable by its owner only (chmod 600)")
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        part = self.path.with_name(self.path.name + ".part")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, sort_keys=True)
        os.replace(part, self.path)

    @staticmethod
    def _digest(key: str, issuer: str, subject: str) -> str:
        return hmac.new(bytes.fromhex(key), f"{issuer}\n{subject}".encode(), hashlib.sha256).hexdigest()

    def claim(self, name: str, issuer: str, subject: str) -> bool:
        """Bind `name` to this identity if it is free; whether the identity holds it (now or already)."""
        data = self._load()
        digest = self._digest(data["key"], issuer, subject)
        holder = data["names"].get(name)
        if holder is None:
            data["names"][name] = digest
            self._save(data)
            return True
        return hmac.compare_digest(holder, digest)

    def release_name(self, name: str) -> bool:
        """Free `name` for the next identity that maps to it; whether it was held."""
        data = self._load()
        if data["names"].pop(name, None) is None:
            return False
        self._save(data)
        return True
