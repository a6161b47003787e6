"""Key files of the federation (a coordinator's signing key, a federated project's key pair): read never through a
link, a private one only when no one but its owner can read it; a public one written whole. Private keys are
written by kernel/secret_files.py. Errors name the file, never its content."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives import serialization

from kernel.errors import InvalidInputError
from kernel.secret_files import write_secret_bytes

T = TypeVar("T")

MAX_KEY_FILE = 64 * 1024


def read_key_file(path: Path, *, private: bool) -> bytes:
    """A key file's bytes, never through a link; a private one must be a regular file its owner alone may read or
    write (0600 or narrower)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise InvalidInputError(path, "key file not found") from None
    except OSError as exc:
        raise InvalidInputError(path, f"cannot open the key file ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInputError(path, "a key file must be a regular file")
        if private and info.st_mode & 0o077:
            raise InvalidInputError(path, "a private key file must be readable by its owner only (0600)")
        data = handle.read(MAX_KEY_FILE + 1)
    if len(data) > MAX_KEY_FILE:
        raise InvalidInputError(path, "too large for a key file")
    return data


def write_public_file(path: Path, text: str) -> None:
    """Write a public key's PEM (0644) whole, never through a link (kernel/secret_files.py)."""
    write_secret_bytes(path, text.encode("ascii"), mode=0o644)


def load_public_pem(source: Path | str | bytes, kind: type[T], what: str) -> T:
    """A public key of `kind` (an X25519 or Ed25519 public key class) from a PEM file (Path) or PEM text; errors
    name the file or `what`, never the content."""
    data = read_key_file(source, private=False) if isinstance(source, Path) else source
    where = source if isinstance(source, Path) else what
    try:
        key = serialization.load_pem_public_key(data.encode("ascii") if isinstance(data, str) else data)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise InvalidInputError(where, "not a PEM public key") from None
    if not isinstance(key, kind):
        raise InvalidInputError(where, f"not an {kind.__name__.removesuffix('PublicKey')} public key")
    return key
