"""The signed task manifest: what a coordinator asks every site of a federated project to run, and a site's check of
it before it acts.

A manifest names the notebook (by its SHA-256), its parameters, the outputs it declares (path and kind), the
project, purpose, submitter and coordinator, the sites it is for, a random nonce and a validity window. The
coordinator signs its canonical bytes (sorted-key compact JSON, UTF-8, `version: 1`) with Ed25519; a site verifies
the signature against the keys it trusts, then that the task is for it, within its window, and not seen before.
Every refusal is a `TaskRefused` whose `reason` is a short machine code (`REASONS`); none names a key, a nonce or
a person.

The order of the checks is part of the contract: the envelope's shape (`malformed`), the key (`unknown-key`), the
signature (`bad-signature`), and only then is the signed text parsed (a signed manifest that breaks the format is
`malformed` too: nothing unauthenticated is interpreted beyond the envelope), then the site
(`not-for-this-site`), the window (`not-yet-valid`, `expired`) and last the replay guard (`replayed`), so that a
manifest refused for any other reason does not use up its nonce.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import secrets
import threading
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from federation.key_files import load_public_pem, read_key_file, write_public_file
from kernel.errors import EnclaveError, InvalidInputError
from kernel.names import USERNAME
from kernel.secret_files import write_secret

MANIFEST_VERSION = 1
MAX_TASK_BYTES = 256 * 1024  # a signed task's JSON; a manifest is a few KiB
MAX_VALIDITY = timedelta(days=14)  # the longest window a manifest may claim: a leaked one cannot live for ever
CLOCK_SKEW = timedelta(seconds=60)  # how far ahead of a site's clock a coordinator's issued_at may be
MAX_OUTPUTS = 32
MAX_SITES = 64
MAX_PARAMETERS = 64
MAX_PATH = 255  # characters of a declared output's path
MAX_TEXT = 1024  # characters of a parameter's string value
MAX_INT = 2**53  # integers every JSON reader holds exactly
OUTPUT_KINDS = ("table", "counts", "estimates", "figure", "text")

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # a federated project's or a node's name
PURPOSE = re.compile(r"[A-Z][A-Z0-9-]{1,15}")  # a DUO-like code: GRU, HMB, DS-CVD
HEX64 = re.compile(r"[0-9a-f]{64}")
KEY_ID = re.compile(r"[0-9a-f]{16}")
PARAMETER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # papermill injects parameters as Python names
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
SIGNATURE_BYTES = 64

# Signed before the manifest's bytes, so that the coordinator's key signing anything else can never yield a valid
# task (domain separation).
SIGNING_PREFIX = b"enclave federation task manifest v1\x00"

REASONS = (
    "malformed",
    "unknown-key",
    "bad-signature",
    "not-for-this-site",
    "not-yet-valid",
    "expired",
    "replayed",
)

Scalar = str | int | float | bool | None


class TaskRefused(EnclaveError):
    """A task a site will not run; `reason` is one of REASONS. The message says what kind of problem it is and
    never quotes the task's content."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"task refused ({reason})" + (f": {detail}" if detail else ""))

    def __reduce__(self):  # raised in worker processes: must survive pickling back to the parent
        return (type(self), (self.reason, self.detail))


# --- field rules (ValueError: the constructors' and the parser's one way to say a field is wrong) ---------------


def check_name(value: object, what: str) -> str:
    """`value` as a project's or node's name (`[a-z0-9][a-z0-9-]{0,62}`), else ValueError naming `what`."""
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise ValueError(f"{what} must be lower-case letters, digits and '-', 1-63 characters")
    return value


def check_task_id(value: object) -> str:
    """`value` as a task id: a UUID4 in its canonical lower-case form, else ValueError."""
    if isinstance(value, str):
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.version == 4 and str(parsed) == value:
            return value
    raise ValueError("task_id must be a UUID4 in lower-case hyphenated form")


def check_output_path(value: object) -> str:
    """`value` as a declared output's path: relative to the project's outputs/, POSIX, normalised (no empty, `.` or
    `..` segment, no leading or trailing `/`), NFC, without backslashes or control or format characters. ValueError
    otherwise; the message never repeats the path."""
    if not isinstance(value, str) or not value:
        raise ValueError("an output path must be a non-empty string")
    if len(value) > MAX_PATH:
        raise ValueError(f"an output path is at most {MAX_PATH} characters")
    if value.startswith("/"):
        raise ValueError("an output path must be relative to the project's outputs/, not absolute")
    if "\\" in value:
        raise ValueError("an output path uses '/' only, never a backslash")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise ValueError("an output path must not hold control or format characters")
    if unicodedata.normalize("NFC", value) != value:
        raise ValueError("an output path must be in Unicode normal form C")
    for segment in value.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError("an output path must be normalised: no empty, '.' or '..' segment")
    return value


def _check_scalar(name: str, value: object) -> Scalar:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise ValueError(f"parameter {name}: integers are at most 2**53 in size")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"parameter {name}: numbers must be finite")
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ValueError(f"parameter {name}: text is at most {MAX_TEXT} characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"parameter {name}: text must be valid Unicode") from None
        return value
    raise ValueError(f"parameter {name}: a value is text, a number, true, false or null")


def _check_time(value: object, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError(f"{what} must be an aware UTC datetime")
    if value.microsecond:
        raise ValueError(f"{what} must be a whole second")
    return value.astimezone(UTC)


def format_time(value: datetime) -> str:
    """An aware UTC datetime as the manifest writes it: `2026-12-08T01:02:03Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object, what: str) -> datetime:
    """A manifest's timestamp (`YYYY-MM-DDTHH:MM:SSZ`, nothing else) as an aware UTC datetime; ValueError otherwise."""
    if not isinstance(value, str) or not TIMESTAMP.fullmatch(value):
        raise ValueError(f"{what} must be written YYYY-MM-DDTHH:MM:SSZ")
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{what} is not a valid date and time") from None


# --- the manifest ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeclaredOutput:
    """One file a task declares it will write: `path` relative to the project's outputs/, `kind` one of
    OUTPUT_KINDS. Only declared outputs are ever put through a site's airlock."""

    path: str
    kind: str

    def __post_init__(self) -> None:
        check_output_path(self.path)
        if not isinstance(self.kind, str) or self.kind not in OUTPUT_KINDS:
            raise ValueError(f"an output's kind is one of {', '.join(OUTPUT_KINDS)}")


@dataclass(frozen=True)
class TaskManifest:
    """What a coordinator asks a federated project's sites to run. Constructing one checks every field
    (ValueError); `new_manifest` fills in the task id, nonce and window."""

    task_id: str
    project: str
    purpose: str
    submitter: str
    notebook_sha256: str
    parameters: Mapping[str, Scalar] = field(hash=False)
    outputs: tuple[DeclaredOutput, ...]
    sites: tuple[str, ...]
    nonce: str
    issued_at: datetime
    expires_at: datetime
    coordinator: str
    # patients with records at several sites counted once: each site exchanges keyed-hash tokens through the
    # coordinator before it runs and leaves out those a site earlier in the consortium's order keeps
    count_once: bool = False

    def __post_init__(self) -> None:
        check_task_id(self.task_id)
        if type(self.count_once) is not bool:
            raise ValueError("count_once must be true or false")
        check_name(self.project, "project")
        check_name(self.coordinator, "coordinator")
        if not isinstance(self.purpose, str) or not PURPOSE.fullmatch(self.purpose):
            raise ValueError("purpose must be a DUO-like code: an upper-case letter, then 1-15 of A-Z, 0-9 and '-'")
        if not isinstance(self.submitter, str) or not USERNAME.fullmatch(self.submitter):
            raise ValueError("submitter must be an Enclave user name")
        for name, value in (("notebook_sha256", self.notebook_sha256), ("nonce", self.nonce)):
            if not isinstance(value, str) or not HEX64.fullmatch(value):
                raise ValueError(f"{name} must be 64 lower-case hexadecimal digits")
        self._freeze_parameters()
        self._freeze_outputs()
        self._freeze_sites()
        issued = _check_time(self.issued_at, "issued_at")
        expires = _check_time(self.expires_at, "expires_at")
        object.__setattr__(self, "issued_at", issued)
        object.__setattr__(self, "expires_at", expires)
        if expires <= issued:
            raise ValueError("expires_at must come after issued_at")
        if expires - issued > MAX_VALIDITY:
            raise ValueError(f"a manifest is valid for at most {MAX_VALIDITY.days} days")

    def _freeze_parameters(self) -> None:
        if not isinstance(self.parameters, Mapping):
            raise ValueError("parameters must be a mapping of names to values")
        if len(self.parameters) > MAX_PARAMETERS:
            raise ValueError(f"a task has at most {MAX_PARAMETERS} parameters")
        checked = {}
        for name in sorted(self.parameters, key=lambda n: (not isinstance(n, str), str(n))):
            if not isinstance(name, str) or not PARAMETER.fullmatch(name):
                raise ValueError("a parameter's name must be a Python identifier of at most 64 characters")
            checked[name] = _check_scalar(name, self.parameters[name])
        object.__setattr__(self, "parameters", MappingProxyType(checked))

    def _freeze_outputs(self) -> None:
        if isinstance(self.outputs, str | bytes) or not isinstance(self.outputs, Iterable):
            raise ValueError("outputs must be a sequence of DeclaredOutput")
        outputs = tuple(self.outputs)
        if not outputs:
            raise ValueError("a task declares at least one output")
        if len(outputs) > MAX_OUTPUTS:
            raise ValueError(f"a task declares at most {MAX_OUTPUTS} outputs")
        if not all(isinstance(output, DeclaredOutput) for output in outputs):
            raise ValueError("outputs must be a sequence of DeclaredOutput")
        if len({output.path for output in outputs}) != len(outputs):
            raise ValueError("an output path is declared twice")
        object.__setattr__(self, "outputs", outputs)

    def _freeze_sites(self) -> None:
        if isinstance(self.sites, str | bytes) or not isinstance(self.sites, Iterable):
            raise ValueError("sites must be a sequence of site names")
        sites = tuple(self.sites)
        if not sites:
            raise ValueError("a task names at least one site")
        if len(sites) > MAX_SITES:
            raise ValueError(f"a task names at most {MAX_SITES} sites")
        for site in sites:
            check_name(site, "a site")
        if len(set(sites)) != len(sites):
            raise ValueError("a site is named twice")
        object.__setattr__(self, "sites", sites)

    def to_dict(self) -> dict:
        """The manifest as JSON-ready data, `version` included."""
        return {
            "version": MANIFEST_VERSION,
            "task_id": self.task_id,
            "project": self.project,
            "purpose": self.purpose,
            "submitter": self.submitter,
            "coordinator": self.coordinator,
            "notebook_sha256": self.notebook_sha256,
            "parameters": dict(self.parameters),
            "outputs": [{"path": output.path, "kind": output.kind} for output in self.outputs],
            "sites": list(self.sites),
            "nonce": self.nonce,
            "issued_at": format_time(self.issued_at),
            "expires_at": format_time(self.expires_at),
            "count_once": self.count_once,
        }

    def canonical_bytes(self) -> bytes:
        """The bytes that are signed: sorted-key compact JSON in UTF-8. One manifest has exactly one form."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> TaskManifest:
        """A manifest from JSON data with exactly the fields `to_dict` writes; ValueError on anything else."""
        if not isinstance(data, dict):
            raise ValueError("a manifest is a JSON object")
        expected = set(cls.__dataclass_fields__) | {"version"}
        if set(data) != expected:
            unknown, missing = len(set(data) - expected), sorted(expected - set(data))
            raise ValueError(
                "a manifest's fields are fixed"
                + (f"; {unknown} unknown field(s)" if unknown else "")
                + (f"; missing: {', '.join(missing)}" if missing else "")
            )
        version = data["version"]
        if type(version) is not int or version != MANIFEST_VERSION:
            raise ValueError(f"this site reads manifests of version {MANIFEST_VERSION} only")
        if not isinstance(data["parameters"], dict):
            raise ValueError("parameters must be a JSON object")
        for name in ("outputs", "sites"):
            if not isinstance(data[name], list):
                raise ValueError(f"{name} must be a JSON array")
        outputs = []
        for raw in data["outputs"]:
            if not isinstance(raw, dict) or set(raw) != {"path", "kind"}:
                raise ValueError("an output is a JSON object of exactly path and kind")
            outputs.append(DeclaredOutput(path=raw["path"], kind=raw["kind"]))
        return cls(
            task_id=data["task_id"],
            project=data["project"],
            purpose=data["purpose"],
            submitter=data["submitter"],
            notebook_sha256=data["notebook_sha256"],
            parameters=data["parameters"],
            outputs=tuple(outputs),
            sites=tuple(data["sites"]),
            nonce=data["nonce"],
            issued_at=parse_time(data["issued_at"], "issued_at"),
            expires_at=parse_time(data["expires_at"], "expires_at"),
            coordinator=data["coordinator"],
            count_once=data["count_once"],
        )

    @classmethod
    def from_canonical(cls, text: str) -> TaskManifest:
        """A manifest from its signed text; ValueError unless the text is valid and exactly the manifest's canonical
        form (so two readers can never see two manifests in one text: no duplicate keys, no other spelling)."""
        manifest = cls.from_dict(strict_json(text))
        if manifest.canonical_bytes() != text.encode("utf-8"):
            raise ValueError("a manifest's text must be its canonical form")
        return manifest


def canonical_json(data: object) -> bytes:
    """`data` as sorted-key compact JSON in UTF-8 (no NaN or infinities)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a JSON object repeats a key")
    return result


def _no_constants(name: str) -> object:
    raise ValueError("NaN and infinities are not JSON")


def strict_json(text: str | bytes) -> object:
    """`text` parsed as JSON refusing duplicate keys, NaN and infinities; ValueError for anything else wrong."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    except (UnicodeDecodeError, RecursionError):
        raise ValueError("not JSON (undecodable or too deeply nested)") from None


def new_manifest(
    *,
    project: str,
    purpose: str,
    submitter: str,
    coordinator: str,
    notebook_sha256: str,
    outputs: Iterable[DeclaredOutput],
    sites: Iterable[str],
    parameters: Mapping[str, Scalar] | None = None,
    valid_for: timedelta = timedelta(days=7),
    now: datetime | None = None,
    count_once: bool = False,
) -> TaskManifest:
    """A new manifest: a fresh UUID4 task id, a 32-byte random nonce, issued now (whole seconds, UTC) and valid for
    `valid_for` (at most MAX_VALIDITY)."""
    if now is not None and now.tzinfo is None:
        raise ValueError("new_manifest needs an aware `now`")
    issued = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    return TaskManifest(
        task_id=str(uuid.uuid4()),
        project=project,
        purpose=purpose,
        submitter=submitter,
        notebook_sha256=notebook_sha256,
        parameters=dict(parameters or {}),
        outputs=tuple(outputs),
        sites=tuple(sites),
        nonce=secrets.token_hex(32),
        issued_at=issued,
        expires_at=issued + valid_for,
        coordinator=coordinator,
        count_once=count_once,
    )


# --- signing -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedTask:
    """A manifest's canonical text, its Ed25519 signature (base64) and the id of the key that made it: what the
    coordinator serves and a site pulls."""

    manifest: str
    signature: str
    key_id: str

    def __post_init__(self) -> None:
        if (
            not isinstance(self.manifest, str)
            or not isinstance(self.signature, str)
            or not isinstance(self.key_id, str)
        ):
            raise ValueError("a signed task's manifest, signature and key_id are strings")
        if len(self.manifest.encode("utf-8", "surrogatepass")) > MAX_TASK_BYTES:
            raise ValueError(f"a manifest is at most {MAX_TASK_BYTES} bytes")
        if not KEY_ID.fullmatch(self.key_id):
            raise ValueError("key_id must be 16 lower-case hexadecimal digits")
        _signature_bytes(self.signature)

    def signature_bytes(self) -> bytes:
        return _signature_bytes(self.signature)

    def to_json(self) -> str:
        """The signed task as compact JSON: `{"key_id", "manifest", "signature"}`."""
        return canonical_json({"key_id": self.key_id, "manifest": self.manifest, "signature": self.signature}).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> SignedTask:
        """A signed task from what the coordinator served: TaskRefused("malformed") when it is over MAX_TASK_BYTES,
        not JSON, or not exactly the three fields in their shapes. The manifest inside is not read until verified."""
        size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_TASK_BYTES:
            raise TaskRefused("malformed", f"over {MAX_TASK_BYTES} bytes")
        try:
            data = strict_json(text)
            if not isinstance(data, dict) or set(data) != {"key_id", "manifest", "signature"}:
                raise ValueError("a signed task is a JSON object of exactly key_id, manifest and signature")
            return cls(manifest=data["manifest"], signature=data["signature"], key_id=data["key_id"])
        except ValueError as exc:
            raise TaskRefused("malformed", str(exc)) from None


def _signature_bytes(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("signature must be base64") from None
    if len(raw) != SIGNATURE_BYTES or base64.b64encode(raw).decode("ascii") != text:
        raise ValueError(f"signature must be {SIGNATURE_BYTES} bytes in canonical base64")
    return raw


def sign(manifest: TaskManifest, private_key: Ed25519PrivateKey, key_id: str) -> SignedTask:
    """`manifest` signed with the coordinator's key, whose id (`key_id(public)`) the sites look it up by."""
    text = manifest.canonical_bytes()
    signature = private_key.sign(SIGNING_PREFIX + text)
    return SignedTask(
        manifest=text.decode("utf-8"), signature=base64.b64encode(signature).decode("ascii"), key_id=key_id
    )


# --- verifying at a site -----------------------------------------------------------------------------------------


class ReplayGuard(Protocol):
    """Remembers the tasks a site has accepted, until they expire."""

    def seen(self, task_id: str, nonce: str, expires_at: datetime) -> bool:
        """True when `task_id` or `nonce` was recorded before; otherwise record both (until `expires_at`) and return
        False. Check and record are one atomic step: two callers with the same nonce never both get False."""
        ...


class MemoryReplayGuard:
    """A ReplayGuard in memory, for tests and one process; a site's agent uses the registry's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._task_ids: dict[str, datetime] = {}
        self._nonces: dict[str, datetime] = {}

    def seen(self, task_id: str, nonce: str, expires_at: datetime) -> bool:
        with self._lock:
            if task_id in self._task_ids or nonce in self._nonces:
                return True
            self._task_ids[task_id] = expires_at
            self._nonces[nonce] = expires_at
            return False

    def forget_expired(self, now: datetime) -> None:
        """Drop what expired before `now`: an expired manifest is refused before the guard is asked."""
        with self._lock:
            for table in (self._task_ids, self._nonces):
                for key in [key for key, expires in table.items() if expires <= now]:
                    del table[key]


def verify(
    signed: SignedTask,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    *,
    site: str,
    now: datetime,
    replay: ReplayGuard,
) -> TaskManifest:
    """The manifest of `signed` when this site may act on it; TaskRefused(reason) otherwise, checked in the order
    of the module's docstring. `now` is an aware datetime; the replay guard records the task only when every other
    check passed."""
    if now.tzinfo is None:
        raise ValueError("verify needs an aware `now`")
    if not isinstance(signed, SignedTask):
        raise TaskRefused("malformed", "not a signed task")
    public_key = trusted_keys.get(signed.key_id)
    if public_key is None:
        raise TaskRefused("unknown-key")
    try:
        public_key.verify(signed.signature_bytes(), SIGNING_PREFIX + signed.manifest.encode("utf-8"))
    except (InvalidSignature, UnicodeEncodeError):
        raise TaskRefused("bad-signature") from None
    try:
        manifest = TaskManifest.from_canonical(signed.manifest)
    except ValueError as exc:
        raise TaskRefused("malformed", str(exc)) from None
    if site not in manifest.sites:
        raise TaskRefused("not-for-this-site")
    if manifest.issued_at > now + CLOCK_SKEW:
        raise TaskRefused("not-yet-valid")
    if now >= manifest.expires_at:
        raise TaskRefused("expired")
    if replay.seen(manifest.task_id, manifest.nonce, manifest.expires_at):
        raise TaskRefused("replayed")
    return manifest


# --- the coordinator's signing key -------------------------------------------------------------------------------


def generate_signing_key() -> Ed25519PrivateKey:
    """A new Ed25519 key for signing a coordinator's manifests."""
    return Ed25519PrivateKey.generate()


def key_id(public_key: Ed25519PublicKey) -> str:
    """A public key's id: the first 16 hex digits of the SHA-256 of its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def save_signing_key(path: Path, private_key: Ed25519PrivateKey) -> None:
    """Write the private key as PKCS#8 PEM, whole, 0600, never through a link (kernel/secret_files.py)."""
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_secret(path, pem.decode("ascii"))


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """A public key as SubjectPublicKeyInfo PEM, what a site is given to trust."""
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def save_public_key(path: Path, public_key: Ed25519PublicKey) -> None:
    """Write the public key's PEM (0644), whole and never through a link: what the sites are given to trust."""
    write_public_file(path, public_key_pem(public_key))


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The coordinator's private key from an unencrypted PKCS#8 PEM written by `save_signing_key`."""
    try:
        key = serialization.load_pem_private_key(read_key_file(path, private=True), password=None)
    except (ValueError, TypeError):
        raise InvalidInputError(path, "not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInputError(path, "not an Ed25519 private key")
    return key


def load_public_key(source: Path | str | bytes) -> Ed25519PublicKey:
    """A trusted public key from a PEM file (Path) or PEM text."""
    return load_public_pem(source, Ed25519PublicKey, "public key")


def trusted_keys(public_keys: Iterable[Ed25519PublicKey]) -> dict[str, Ed25519PublicKey]:
    """The mapping `verify` takes, each key under its `key_id`."""
    return {key_id(public): public for public in public_keys}
