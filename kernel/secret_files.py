"""Writing a root-only secret file whole: the one way Enclave replaces a key or token on disk (the audit anchor keys,
the hub's cookie secret, `enclave-admin`'s token, the crypt keys)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_secret(path: Path, text: str) -> None:
    """Write `path` whole (0600; its folder made 0700 when missing) under a private name, flushed to disk, then renamed
    into place: a reader sees the old file or the new one, never a part. A link at `path` is replaced, not
    followed."""
    write_secret_bytes(path, text.encode())


def write_secret_bytes(path: Path, content: bytes) -> None:
    """`write_secret` for bytes (a key in DER, a task's notebook, a sealed bundle)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
