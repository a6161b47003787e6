"""Immutable request snapshots and the egress store, on disk under `Paths.airlock`.

A snapshot is copied once, in blocks, hashed while it is copied, and made read-only; what is reviewed is the
snapshot, and what is released must hash to the same SHA-256 (checked again when it is copied out). A copy stops
as soon as it passes its byte limit (a file that grows while it is copied is refused), and leaves nothing behind."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from kernel.digests import sha256_file
from kernel.errors import EnclaveError

BLOCK = 1 << 20
COPY_BLOCK = 8 << 20


class IntegrityError(EnclaveError):
    """A snapshot no longer matches the hash it was reviewed under."""


class TooLarge(EnclaveError):
    """A file, or a request's files together, over the policy's byte limit for a submission."""


@dataclass(frozen=True)
class Snapshot:
    relative: str
    sha256: str
    size: int


def open_beneath(root: Path, relative: Path) -> int:
    """Open `root/relative` for reading one component at a time, following no link on the way, so that a folder
    swapped for a link (researchers control the outputs folder from their workspace) can never lead the airlock,
    which runs with more rights than they have, out of `root`. FIFOs and devices are opened without blocking and
    refused by the caller's regular-file check."""
    nofollow = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, nofollow | os.O_DIRECTORY)
    try:
        *folders, name = relative.parts
        for part in folders:
            if part in ("", ".", ".."):
                raise EnclaveError(f"{relative}: not a plain path inside the outputs folder")
            inner = os.open(part, nofollow | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        return os.open(name, nofollow | os.O_NONBLOCK, dir_fd=fd)
    except OSError as exc:
        raise EnclaveError(f"{relative}: cannot be read as a file inside the outputs folder ({exc.strerror})") from exc
    finally:
        os.close(fd)


def output_size(root: Path, relative: Path) -> int:
    """The size of a regular file below `root`, read without following any link (as the copy will open it), so a
    limit is enforced before a byte is copied."""
    fd = open_beneath(root, relative)
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(info.st_mode):
        raise EnclaveError(f"{relative.name}: not a regular file")
    return info.st_size


def _copy_hashing(
    source: Path, target: Path, beneath: Path | None = None, limit: int | None = None, shown: str | None = None
) -> tuple[str, int]:
    """Copy `source` to `target` block by block, hashing as it goes; past `limit` bytes the copy stops with
    TooLarge (the file grew after it was measured) and the partial copy is removed."""
    digest = hashlib.sha256()
    size = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.part-{secrets.token_hex(4)}")  # its own: two copiers never share one
    if beneath is not None:
        fd = open_beneath(beneath, source.relative_to(beneath))
    else:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        with os.fdopen(fd, "rb") as src, tmp.open("xb") as out:
            if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                raise EnclaveError(f"{source.name}: not a regular file")
            # One buffer, reused: a few large blocks, so a copy in a web app's worker thread takes the interpreter
            # lock a few hundred times per GiB, not thousands (reads, hashing and writes release it).
            buffer = memoryview(bytearray(COPY_BLOCK))
            while n := src.readinto(buffer):
                size += n
                if limit is not None and size > limit:
                    raise TooLarge(
                        f"{shown or source.name}: grew past the airlock's limit of {megabytes(limit)} while it was "
                        "copied; nothing was taken. Submit it again once it is complete and within the limit"
                    )
                digest.update(buffer[:n])
                out.write(buffer[:n])
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o440)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest.hexdigest(), size


def megabytes(size: int) -> str:
    return f"{size / 2**20:,.0f} MB" if size >= 2**20 else f"{size:,} bytes"


class AirlockStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.snapshots = root / "snapshots"
        self.egress = root / "egress"

    def snapshot(
        self, request_id: str, file_id: int, version: int, source: Path, beneath: Path | None = None,
        limit: int | None = None, shown: str | None = None,
    ) -> Snapshot:  # fmt: skip
        """Copy `source` (opened without following links below `beneath`, when given) into the request, refusing
        it (nothing left behind) once more than `limit` bytes have been read."""
        relative = f"{request_id}/{file_id:06d}-v{version}"
        sha, size = _copy_hashing(source, self.snapshots / relative, beneath, limit, shown)
        return Snapshot(relative, sha, size)

    def has_snapshots(self, request_id: str) -> bool:
        return (self.snapshots / request_id).exists()

    def snapshot_path(self, relative: str) -> Path:
        return self.snapshots / relative

    def verify(self, relative: str, sha256: str) -> Path:
        path = self.snapshot_path(relative)
        if not path.is_file() or sha256_file(path) != sha256:
            raise IntegrityError(f"snapshot {relative} does not match the SHA-256 it was reviewed under")
        return path

    def release(self, project: str, request_id: str, path: str, relative: str, sha256: str) -> Path:
        """Copy a reviewed snapshot to the egress store, checking the hash before and after."""
        source = self.verify(relative, sha256)
        target = self.egress / project / request_id / path
        if target.exists():
            os.chmod(target, 0o640)
            target.unlink()
        copied, _ = _copy_hashing(source, target)
        if copied != sha256:
            target.unlink(missing_ok=True)
            raise IntegrityError(f"the egress copy of {path} does not match the reviewed snapshot")
        return target

    def egress_path(self, project: str, request_id: str, path: str) -> Path:
        return self.egress / project / request_id / path

    def remove_request(self, request_id: str) -> None:
        folder = self.snapshots / request_id
        if folder.exists():
            for p in folder.rglob("*"):
                os.chmod(p, 0o640)
            shutil.rmtree(folder)
