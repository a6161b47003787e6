"""Small file helpers shared by the materialisers: content hashing for the view manifest, and writing a file
(atomically, or straight into a private staging folder) while hashing what is written."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from kernel.digests import sha256_file

_CHUNK = 1 << 20


class _HashingWriter:
    """A file wrapper that hashes what passes through, so the manifest needs no second read of the file. A writer
    that seeks makes the running hash meaningless: the file is then hashed after it is written."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.sequential = True

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self._fh.write(data)

    def seek(self, *args: int) -> int:
        self.sequential = False
        return self._fh.seek(*args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._fh, name)


def write_hashed(dst: Path, write: Callable[[BinaryIO], None], *, atomic: bool, suffix: str = "") -> tuple[str, int]:
    """Write `dst` and return the SHA-256 and size of what was written. Atomic: through a temporary file in the same
    folder, renamed into place. Not atomic (a build's private staging folder, published as a whole or removed):
    straight to `dst`, created exclusively, removed again on failure, saving two metadata operations per file.
    `suffix` ends the temporary file's name (a tool that looks at names sees the right kind of file)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if atomic:
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=dst.parent)
    else:
        fd, tmp_name = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), str(dst)
    done = False
    try:
        with os.fdopen(fd, "wb") as fh:
            out = _HashingWriter(fh)
            write(out)  # type: ignore[arg-type]
        if out.sequential:
            digest, size = out.sha256.hexdigest(), out.size
        else:
            digest, size = sha256_file(Path(tmp_name)), os.path.getsize(tmp_name)
        if atomic:
            os.replace(tmp_name, dst)
        done = True
        return digest, size
    finally:
        if atomic or not done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
