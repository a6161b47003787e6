"""Writing a root-only secret file whole: the one way Enclave replaces a key or token on disk (the audit anchor keys,
the hub's cookie secret, `enclave-admin`'s token, the crypt keys, a federation's linkage key), and reading one back
only when it is still private (`read_secret`)."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


def write_secret(path: Path, text: str) -> None:
    """Write `path` whole (0600; its folder made 0700 when missing) under a private name, flushed to disk, then renamed
    into place: a reader sees the old file or the new one, never a part. A link at `path` is replaced, not
    followed."""
    write_secret_bytes(path, text.encode())


def write_secret_bytes(path: Path, content: bytes, *, mode: int = 0o600) -> None:
    """`write_secret` for bytes (a key in DER, a task's notebook, a sealed bundle); `mode` 0o644 for a file meant to
    be read by others (a public key), still written whole and never through a link."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


class SecretFileError(ValueError):
    """A secret file that is missing, not a plain file, readable by others, or not the reader's own."""


def read_secret(path: Path, *, max_bytes: int = 1 << 16) -> str:
    """The text of a secret file written by `write_secret`: opened without following a link, and refused unless it is
    a plain file of this process's user that no one else can read or write (mode 0600 or stricter). The message
    names the path and the problem, never the content."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SecretFileError(f"{path}: no such file") from None
    except OSError as exc:  # ELOOP: a link
        raise SecretFileError(f"{path}: cannot be opened as a plain file ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise SecretFileError(f"{path}: not a plain file")
        if st.st_uid != os.geteuid():
            raise SecretFileError(f"{path}: not owned by this user")
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise SecretFileError(f"{path}: readable or writable by others (chmod 600)")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SecretFileError(f"{path}: larger than a secret file is")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretFileError(f"{path}: not UTF-8 text") from None
