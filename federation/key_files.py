"""Key files of the federation (a coordinator's signing key, a federated project's key pair): read never through a
link, a private one only when no one but its owner can read it; a public one written whole. Private keys are
written by kernel/secret_files.py. Errors name the file, never its content."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from kernel.errors import InvalidInputError

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
    """Write a public key's PEM (0644) whole under a private name, then rename it into place: a link at `path` is
    replaced, not followed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
