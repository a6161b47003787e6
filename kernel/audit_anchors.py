"""The audit log's head, anchored outside the database: an append-only, root-only file of signed checkpoints.

After every commit that appended audit events, the committed head (its seq and hash) is read back and appended to
`$ENCLAVE_HOME/audit/anchors.log` as one line `seq hash time hmac`, signed with a key kept in the secrets folder
(`secrets/audit-anchor.key`). Someone who can rewrite the database but not root's files can then no longer cut or
rewrite the tail unseen: `audit.verify` finds an anchored entry missing or different, and a forged line's signature
fails. Several processes (the hub, the airlock service, the CLI) append to the same file: each line is one `write`
on a descriptor opened with O_APPEND, so lines never interleave.

The key rotates (`enclave keys rotate audit-anchor-key`, provisioning/keys.py): the old key seals the head it last
anchored, then moves to `secrets/audit-anchor.retired` with that entry's seq, and a new key signs every line after.
A retired key still verifies the lines it signed up to its last seq; a line it signs beyond that is reported forged,
so a leaked old key cannot extend the log. Rotation runs while the rotating process holds the audit log's write
lock: no other process can commit an entry past the sealed head until the new key is in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kernel.errors import EnclaveError
from kernel.secret_files import write_secret

KEY_NAME = "audit-anchor.key"
RETIRED_NAME = "audit-anchor.retired"  # one line per retired key: `last_seq retired_at hexkey`, oldest first
LOG_NAME = Path("audit") / "anchors.log"
_LINE = re.compile(r"^(\d{1,18}) ([0-9a-f]{64}) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) ([0-9a-f]{64})$")
_RETIRED = re.compile(r"^(\d{1,18}) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) ([0-9a-f]{64})$")


@dataclass(frozen=True)
class RetiredKey:
    """A key that signed anchors up to entry `last_seq` and no further."""

    last_seq: int
    retired_at: str
    key: bytes


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    at: str
    line: int  # where in the file, for people


@dataclass(frozen=True)
class AnchorRead:
    """What the anchor file holds: the well-signed anchors, the lines that are not, and whether anchoring ever
    began (a key exists)."""

    anchors: list[Anchor]
    bad_lines: list[tuple[int, str]]
    keyed: bool
    file_exists: bool
    torn_tail: bool = False  # a line was cut short, as a crash in the middle of its write leaves it


class Anchors:
    """One installation's anchor file and its signing key."""

    def __init__(self, log_path: Path, key_path: Path) -> None:
        self.log_path = log_path
        self.key_path = key_path

    @classmethod
    def for_home(cls, home: Path) -> Anchors:
        return cls(home / LOG_NAME, home / "secrets" / KEY_NAME)

    @property
    def retired_path(self) -> Path:
        return self.key_path.with_name(RETIRED_NAME)

    # -- writing

    def _key(self, *, create: bool) -> bytes | None:
        try:
            return bytes.fromhex(self.key_path.read_text().strip())
        except FileNotFoundError:
            if not create:
                return None
        except ValueError:
            raise ValueError("the audit anchor key is not readable as hex") from None
        self.key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written whole under a private name, then linked into place: a racing process either wins the link or
        # reads the finished key, never a half-written one.
        staging = self.key_path.with_name(f".{KEY_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
            with contextlib.suppress(FileExistsError):  # another process linked its key first: use that one
                os.link(staging, self.key_path)
        finally:
            staging.unlink(missing_ok=True)
        return bytes.fromhex(self.key_path.read_text().strip())

    @staticmethod
    def _sign(key: bytes, seq: int, head: str, at: str) -> str:
        return hmac.new(key, f"{seq} {head} {at}".encode(), hashlib.sha256).hexdigest()

    def write(self, seq: int, head: str, now: datetime | None = None) -> None:
        """Append one signed checkpoint of the head (seq, hash): one write on an O_APPEND descriptor."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The file exists before the key: a key without a file means the file was removed, never a crash between.
        fd = os.open(self.log_path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            key = self._key(create=True)
            at = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
            line = f"{seq} {head} {at} {self._sign(key, seq, head, at)}\n".encode()
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # the last line was cut short by a crash: end it, and mark it so with an empty line after it
                line = b"\n\n" + line
            os.write(fd, line)  # well under PIPE_BUF-sized lines: one write, never interleaved with another's
        finally:
            os.close(fd)

    def rotate(self, last_seq: int, head: str, now: datetime | None = None) -> bool:
        """Retire the current key after sealing the head (`last_seq`, `head`) with it, and put a new key in its
        place. The caller holds the audit log's write lock and `last_seq` is the committed head, so no entry past it
        is anchored under the old key. False (nothing changed) when there is no key yet: anchoring has not begun."""
        old = self._key(create=False)
        if old is None:
            return False
        if last_seq:
            self.write(last_seq, head, now)  # the old key's last word: the head it leaves behind
        at = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        retired = self.retired_path.read_text() if self.retired_path.exists() else ""
        # the retired list first, then the new key: a crash between leaves the old key current, which read() prefers
        write_secret(self.retired_path, retired + f"{last_seq} {at} {old.hex()}\n")
        write_secret(self.key_path, secrets.token_hex(32) + "\n")
        return True

    def retired(self) -> list[RetiredKey]:
        """The retired keys, oldest first; a damaged file is a EnclaveError (it is root's, never edited by hand)."""
        try:
            text = self.retired_path.read_text()
        except FileNotFoundError:
            return []
        keys = []
        for number, raw in enumerate(text.splitlines(), start=1):
            match = _RETIRED.match(raw)
            if not match:
                raise EnclaveError(f"{self.retired_path} is damaged: line {number} is not a retired key")
            keys.append(RetiredKey(int(match[1]), match[2], bytes.fromhex(match[3])))
        return keys

    # -- reading

    def read(self) -> AnchorRead:
        key = self._key(create=False)
        retired = self.retired()
        try:
            text = self.log_path.read_text(errors="replace")
            file_exists = True
        except FileNotFoundError:
            text, file_exists = "", False
        anchors: list[Anchor] = []
        bad: list[tuple[int, str]] = []
        lines = text.splitlines()
        torn = bool(text) and not text.endswith("\n") and not _LINE.match(lines[-1])
        if torn:
            lines.pop()  # skipped, not reported: nothing is taken from it, and the next write starts a fresh line
        for number, raw in enumerate(lines, start=1):
            if not raw:
                continue
            match = _LINE.match(raw)
            if not match:
                if number < len(lines) and not lines[number]:
                    torn = True  # cut short by a crash, ended by the next write with an empty line
                else:
                    bad.append((number, "is not an anchor line"))
                continue
            seq, head, at, signature = int(match[1]), match[2], match[3], match[4]
            if key is None or not hmac.compare_digest(signature, self._sign(key, seq, head, at)):
                # the latest retirement of the key that signed it (a rotation cut short may list a key twice)
                signers = [r for r in retired if hmac.compare_digest(signature, self._sign(r.key, seq, head, at))]
                by = max(signers, key=lambda r: r.last_seq, default=None)
                if by is None:
                    bad.append((number, "signature does not match (forged or altered)"))
                    continue
                if seq > by.last_seq:
                    bad.append((number, f"signed by a key retired at entry {by.last_seq}, for a later entry (forged)"))
                    continue
            anchors.append(Anchor(seq, head, at, number))
        return AnchorRead(anchors, bad, keyed=key is not None, file_exists=file_exists, torn_tail=torn)
