"""A file's SHA-256, the one fact every package records about a file (a view's manifest, a release request's
snapshot, the airlock's report): read in 1 MiB blocks, so large BAMs and VCFs never sit in memory."""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 20


def sha256_file(path: Path | str) -> str:
    """Hex SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()
