"""Outputs sealed to a federated project's key: what a site sends back, readable by the coordinator's project alone
(not by the site's operator, nor by any relay in between), and bound to one task at one site.

`seal` and `open_sealed` are HPKE (RFC 9180, base mode: KEM X25519, HKDF-SHA256, ChaCha20-Poly1305) through
`cryptography.hazmat.primitives.hpke`. The `context` (`seal_context(project, task_id, site)`) goes into HPKE's
`info`, so a sealed blob opens only under the context it was sealed for: one site's result cannot be passed off as
another's, nor one task's as another's. Every failure to open is the same `SealError`, whatever the cause (wrong key,
wrong context, altered bytes), so a failure tells an attacker nothing more.

`Bundle` is what goes inside: the files a site's airlock released (relative path -> bytes) with an index of their
SHA-256, the task and the site, in one byte string; reading it back checks every path, size and digest.
`ProjectKey` is a federated project's X25519 key pair on disk (the private key 0600, never through a link).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from federation.key_files import load_public_pem, read_key_file, write_public_file
from federation.tasks import (
    HEX64,
    MAX_OUTPUTS,
    canonical_json,
    check_name,
    check_output_path,
    check_task_id,
    strict_json,
)
from kernel.errors import EnclaveError, InvalidInputError
from kernel.secret_files import write_secret

SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)
SEALED_MAGIC = b"ENCLAVE-SEALED-1"  # a version for the format, so a later suite can be told apart
INFO_PREFIX = b"enclave federation sealed result v1\x00"
BUNDLE_MAGIC = b"ENCLAVE-BUNDLE-1"
BUNDLE_VERSION = 1
MAX_BUNDLE_BYTES = 256 * 1024 * 1024  # released files together; the airlock's default is 16 MB a file
MAX_INDEX_BYTES = 64 * 1024
MAX_MEMBERS = MAX_OUTPUTS  # a bundle holds a task's declared outputs, no more
MAX_SEALED_BYTES = MAX_BUNDLE_BYTES + MAX_INDEX_BYTES + 1024
_OVERHEAD = len(SEALED_MAGIC) + KEM.X25519.enc_length() + 16  # magic, encapsulated key, Poly1305 tag


class SealError(EnclaveError):
    """A sealed result that could not be opened (or sealed). The message never says which key or context."""


class BundleError(EnclaveError):
    """A bundle whose bytes are not a well-formed set of released files."""


def seal_context(project: str, task_id: str, site: str) -> bytes:
    """The bytes that bind a sealed result to one federated project, task and site."""
    try:
        data = {
            "project": check_name(project, "project"),
            "task_id": check_task_id(task_id),
            "site": check_name(site, "site"),
        }
    except ValueError as exc:
        raise SealError(f"cannot make a seal context: {exc}") from None
    return canonical_json(data)


def seal(payload: bytes, recipient: X25519PublicKey, *, context: bytes) -> bytes:
    """`payload` encrypted to `recipient` (the project's public key) under `context`; each call draws a fresh
    ephemeral key, so sealing the same bytes twice gives different blobs."""
    if not isinstance(recipient, X25519PublicKey):
        raise SealError("a result is sealed to an X25519 public key")
    if not isinstance(context, bytes) or not context:
        raise SealError("a seal needs a non-empty context (seal_context)")
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise SealError("a sealed payload is bytes")
    if len(payload) > MAX_BUNDLE_BYTES + MAX_INDEX_BYTES:
        raise SealError(f"a sealed result is at most {MAX_BUNDLE_BYTES // (1024 * 1024)} MiB")
    return SEALED_MAGIC + SUITE.encrypt(bytes(payload), recipient, info=INFO_PREFIX + context)


def open_sealed(blob: bytes, private: X25519PrivateKey, *, context: bytes) -> bytes:
    """The payload of `blob`; SealError when it is not a sealed result, was sealed to another key or under another
    context, or was altered in any byte."""
    if not isinstance(private, X25519PrivateKey):
        raise SealError("a sealed result is opened with an X25519 private key")
    if not isinstance(context, bytes) or not context:
        raise SealError("opening a sealed result needs its context (seal_context)")
    if not isinstance(blob, bytes) or len(blob) > MAX_SEALED_BYTES:
        raise SealError("not a sealed result (not bytes, or too large)")
    if len(blob) < _OVERHEAD or not blob.startswith(SEALED_MAGIC):
        raise SealError("not a sealed result")
    try:
        return SUITE.decrypt(blob[len(SEALED_MAGIC) :], private, info=INFO_PREFIX + context)
    except (InvalidTag, ValueError):
        raise SealError(
            "the sealed result could not be opened: another key, another task or site, or altered"
        ) from None


# --- a federated project's key pair ------------------------------------------------------------------------------


class ProjectKey:
    """A federated project's X25519 key pair: sites seal to its public half, the coordinator opens with the private
    one. Its repr never shows key material."""

    def __init__(self, private: X25519PrivateKey) -> None:
        if not isinstance(private, X25519PrivateKey):
            raise TypeError("a project key is an X25519 private key")
        self._private = private

    def __repr__(self) -> str:
        return f"ProjectKey(fingerprint={self.fingerprint()})"

    @classmethod
    def generate(cls) -> ProjectKey:
        return cls(X25519PrivateKey.generate())

    @property
    def private(self) -> X25519PrivateKey:
        return self._private

    @property
    def public(self) -> X25519PublicKey:
        return self._private.public_key()

    def fingerprint(self) -> str:
        """The public key's fingerprint (first 16 hex digits of the SHA-256 of its raw bytes): safe to show."""
        return public_fingerprint(self.public)

    def public_pem(self) -> str:
        return public_pem(self.public)

    def save(self, private_path: Path, public_path: Path | None = None) -> None:
        """The private key as PKCS#8 PEM (0600, its folder 0700, whole, never through a link), and the public one
        as PEM beside it when `public_path` is given."""
        pem = self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_secret(private_path, pem.decode("ascii"))
        if public_path is not None:
            write_public_file(public_path, self.public_pem())

    @classmethod
    def load(cls, private_path: Path) -> ProjectKey:
        """A project key saved by `save`; errors name the file, never its content."""
        try:
            key = serialization.load_pem_private_key(read_key_file(private_path, private=True), password=None)
        except (ValueError, TypeError):
            raise InvalidInputError(private_path, "not an unencrypted PEM private key") from None
        if not isinstance(key, X25519PrivateKey):
            raise InvalidInputError(private_path, "not an X25519 private key")
        return cls(key)

    def open(self, blob: bytes, *, context: bytes) -> bytes:
        return open_sealed(blob, self._private, context=context)


def public_pem(public: X25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def public_fingerprint(public: X25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_project_public_key(source: Path | str | bytes) -> X25519PublicKey:
    """A project's public key (what a site seals to) from a PEM file (Path) or PEM text."""
    return load_public_pem(source, X25519PublicKey, "project public key")


# --- the bundle of released files --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """The files a site released for a task: `files` maps a path relative to the project's outputs/ to its bytes.

    Packed: `BUNDLE_MAGIC`, the index's length (4 bytes, big-endian), the index (canonical JSON: version, task_id,
    site, and per file its path, size and SHA-256, in path order), then the files' bytes back to back in the
    index's order, nothing after."""

    task_id: str
    site: str
    files: Mapping[str, bytes] = field(hash=False)

    def __post_init__(self) -> None:
        try:
            check_task_id(self.task_id)
            check_name(self.site, "site")
            if not isinstance(self.files, Mapping):
                raise ValueError("files map paths to bytes")
            if len(self.files) > MAX_MEMBERS:
                raise ValueError(f"a bundle holds at most {MAX_MEMBERS} files")
            files = {}
            for path in sorted(self.files, key=str):
                check_output_path(path)
                content = self.files[path]
                if not isinstance(content, bytes | bytearray | memoryview):
                    raise ValueError("a file's content is bytes")
                files[path] = bytes(content)
        except ValueError as exc:
            raise BundleError(str(exc)) from None
        if sum(len(content) for content in files.values()) > MAX_BUNDLE_BYTES:
            raise BundleError(f"a bundle holds at most {MAX_BUNDLE_BYTES // (1024 * 1024)} MiB of files")
        object.__setattr__(self, "files", MappingProxyType(files))

    def index(self) -> dict:
        return {
            "version": BUNDLE_VERSION,
            "task_id": self.task_id,
            "site": self.site,
            "files": [
                {"path": path, "size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
                for path, content in self.files.items()
            ],
        }

    def pack(self) -> bytes:
        index = canonical_json(self.index())
        if len(index) > MAX_INDEX_BYTES:
            raise BundleError("a bundle's index is too large")
        return b"".join([BUNDLE_MAGIC, struct.pack(">I", len(index)), index, *self.files.values()])

    @classmethod
    def unpack(cls, data: bytes) -> Bundle:
        """The bundle in `data`; BundleError for a bad header or index, a path that is absolute, holds `..` or is
        not normalised, a name given twice, more than MAX_MEMBERS files, sizes that do not add up to the bytes
        given, more than MAX_BUNDLE_BYTES, or any file whose SHA-256 differs from the index's."""
        if not isinstance(data, bytes):
            raise BundleError("a bundle is bytes")
        if len(data) > MAX_BUNDLE_BYTES + MAX_INDEX_BYTES + len(BUNDLE_MAGIC) + 4:
            raise BundleError("a bundle over the size limit")
        header = len(BUNDLE_MAGIC) + 4
        if len(data) < header or not data.startswith(BUNDLE_MAGIC):
            raise BundleError("not a bundle")
        (index_size,) = struct.unpack(">I", data[len(BUNDLE_MAGIC) : header])
        if index_size > MAX_INDEX_BYTES or header + index_size > len(data):
            raise BundleError("a bundle's index is larger than allowed or than the bundle")
        entries, task_id, site = _read_index(data[header : header + index_size])
        offset = header + index_size
        if offset + sum(size for _, size, _ in entries) != len(data):
            raise BundleError("the files' sizes do not add up to the bundle's length")
        files = {}
        for number, (path, size, digest) in enumerate(entries, start=1):
            content = data[offset : offset + size]
            offset += size
            if hashlib.sha256(content).hexdigest() != digest:
                raise BundleError(f"file {number} ({path!r}) does not match its SHA-256 in the index")
            files[path] = content
        return cls(task_id=task_id, site=site, files=files)


def _read_index(raw: bytes) -> tuple[list[tuple[str, int, str]], str, str]:
    try:
        index = strict_json(raw)
        if not isinstance(index, dict) or set(index) != {"version", "task_id", "site", "files"}:
            raise ValueError("the index is an object of exactly version, task_id, site and files")
        if type(index["version"]) is not int or index["version"] != BUNDLE_VERSION:
            raise ValueError(f"only bundles of version {BUNDLE_VERSION} are read")
        task_id = check_task_id(index["task_id"])
        site = check_name(index["site"], "site")
        members = index["files"]
        if not isinstance(members, list):
            raise ValueError("the index's files are a list")
        if len(members) > MAX_MEMBERS:
            raise ValueError(f"a bundle holds at most {MAX_MEMBERS} files")
        entries: list[tuple[str, int, str]] = []
        seen: set[str] = set()
        total = 0
        for number, member in enumerate(members, start=1):
            if not isinstance(member, dict) or set(member) != {"path", "size", "sha256"}:
                raise ValueError(f"file {number}: an entry is exactly path, size and sha256")
            try:
                path = check_output_path(member["path"])
            except ValueError as exc:
                raise ValueError(f"file {number}: {exc}") from None
            if path in seen:
                raise ValueError(f"file {number}: a path given twice")
            seen.add(path)
            size, digest = member["size"], member["sha256"]
            if type(size) is not int or size < 0 or size > MAX_BUNDLE_BYTES:
                raise ValueError(f"file {number}: size must be a whole number of bytes within the limit")
            total += size
            if total > MAX_BUNDLE_BYTES:
                raise ValueError(f"a bundle holds at most {MAX_BUNDLE_BYTES // (1024 * 1024)} MiB of files")
            if not isinstance(digest, str) or not HEX64.fullmatch(digest):
                raise ValueError(f"file {number}: sha256 must be 64 lower-case hexadecimal digits")
            entries.append((path, size, digest))
    except ValueError as exc:
        raise BundleError(f"bad bundle index: {exc}") from None
    return entries, task_id, site


def seal_bundle(bundle: Bundle, recipient: X25519PublicKey, *, project: str) -> bytes:
    """`bundle` packed and sealed to the project's key under its (project, task, site) context."""
    return seal(bundle.pack(), recipient, context=seal_context(project, bundle.task_id, bundle.site))


def open_bundle(blob: bytes, key: ProjectKey, *, project: str, task_id: str, site: str) -> Bundle:
    """The bundle sealed in `blob` for this project, task and site: SealError unless it opens under that context,
    BundleError unless its content is well formed and its index names the same task and site."""
    bundle = Bundle.unpack(key.open(blob, context=seal_context(project, task_id, site)))
    if bundle.task_id != task_id or bundle.site != site:
        raise BundleError("the bundle's index names another task or site than it was sealed for")
    return bundle
