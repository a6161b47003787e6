"""Per-project keyed pseudonyms: the one place patient identities are turned into project-local names.

A pseudonym is HMAC-SHA256 under the project's secret key, so the same patient has the same pseudonym in every
modality of one project and unlinkable pseudonyms across projects; without the key it cannot be reversed or
recomputed. DICOM UIDs are re-keyed the same way, so a project's series structure survives de-identification.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from workbench.view_contract import PSEUDONYM_PREFIX

KEY_BYTES = 32


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def load_or_create_key(path: Path) -> bytes:
    """The project's key from `path`, created (mode 0600, in a 0700 folder) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = new_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key
    if len(key) != KEY_BYTES:
        raise ValueError(f"pseudonym key {path.name} is damaged ({len(key)} bytes, expected {KEY_BYTES})")
    return key


def _digest(key: bytes, domain: str, value: str) -> bytes:
    return hmac.new(key, f"{domain}\x00{value}".encode(), hashlib.sha256).digest()


def pseudonym(key: bytes, patient_id: str) -> str:
    """`P-` and 16 base32 characters (80 bits) for one enclave patient id: the view contract's PSEUDONYM."""
    code = base64.b32encode(_digest(key, "patient", patient_id)[:10]).decode("ascii")
    return PSEUDONYM_PREFIX + code


def rekey_uid(key: bytes, uid: str) -> str:
    """A DICOM UID under the 2.25 root (ISO/IEC 9834-8 UUID form) derived from `uid` and the project key."""
    number = int.from_bytes(_digest(key, "dicom-uid", uid)[:16], "big")
    return f"2.25.{number}"
