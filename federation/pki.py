"""The consortium's certificate authority and the mutual-TLS contexts its nodes build on it.

The authority issues each node (a site or the coordinator) an ECDSA P-256 key and a certificate naming it by one SAN
URI, `enclave-node://{role}/{name}`, revokes certificates through a CRL, and rotates node keys and its own key. A node
keeps its credentials in one folder (`node.key`, `node.pem`, `bundle.pem`, `crl.pem`) from which `server_context` and
`client_context` build TLS 1.3 contexts that demand a certificate of the consortium on both sides and check the
peer's certificate against the CRL. The authority always hands out a CRL with the credentials, so a node has one from
its first connection; a folder without one is refused rather than run without revocation.

Serial numbers are lowercase hex strings everywhere (state file, audit, `NodeIdentity`). Nothing here puts a key or
PEM into a message or a log line.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import ssl
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kernel.errors import EnclaveError
from kernel.secret_files import write_secret

ROLES = ("site", "coordinator")
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
CONSORTIUM = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,47}")  # fits a certificate's common name with " CA n"
SCHEME = "enclave-node"
NODE_URI = re.compile(rf"{SCHEME}://([a-z]+)/(.*)")

STATE = "authority.json"
LOCK = ".lock"
NODE_KEY = "node.key"
NODE_CERT = "node.pem"
BUNDLE = "bundle.pem"
CRL = "crl.pem"

AUTHORITY_DAYS = 3650
NODE_DAYS = 365
CRL_DAYS = 30
# A certificate is valid from a little before it was issued, so a node whose clock is behind still accepts it.
CLOCK_SKEW = timedelta(minutes=5)
CRL_BEGIN = "-----BEGIN X509 CRL-----"
CERT_BEGIN = "-----BEGIN CERTIFICATE-----"


class PkiError(EnclaveError):
    """The authority or a node's credentials refused an operation (the message names the file or node, never a key)."""


@dataclass(frozen=True)
class NodeIdentity:
    """Who a certificate says its holder is: the role and name from its SAN URI, and its serial (lowercase hex)."""

    role: str
    name: str
    serial: str


@dataclass(frozen=True)
class NodeCredentials:
    """What a node needs to take part: its private key, its certificate, the consortium's trust bundle and the
    current CRL (PEM texts), none of which appears in a repr."""

    identity: NodeIdentity
    not_after: datetime
    key_pem: str = field(repr=False)
    cert_pem: str = field(repr=False)
    bundle_pem: str = field(repr=False)
    crl_pem: str = field(repr=False)


@dataclass
class CertificateRecord:
    """One certificate the authority issued, as its state file lists it."""

    serial: str
    name: str
    role: str
    generation: int  # which of the authority's keys signed it
    not_after: str  # ISO 8601, UTC
    revoked_at: str | None = None
    hosts: list[str] = field(default_factory=list)

    def status(self, now: datetime) -> str:
        if self.revoked_at:
            return "revoked"
        return "expired" if _parse(self.not_after) <= now else "valid"


@dataclass
class AuthorityRecord:
    """One of the authority's own keys (a generation: 1 at `init`, one more at each `rotate_authority`)."""

    generation: int
    serial: str
    not_after: str
    created_at: str


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _hex(serial: int) -> str:
    return format(serial, "x")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise PkiError("a node name is 1 to 63 of a-z, 0-9 and '-', starting with a letter or digit")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise PkiError(f"a node's role is one of {', '.join(ROLES)}")
    return role


def node_uri(role: str, name: str) -> str:
    return f"{SCHEME}://{check_role(role)}/{check_name(name)}"


# ---------------------------------------------------------------------------------------------------------------------
# Folders and files


def private_folder(folder: Path) -> Path:
    """`folder`, made 0700 when missing; refused when it is a link or not a folder this user owns (a key written
    there would land wherever the link points). The folder's parents are the operator's to keep unwritable by
    others."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.lstat(folder)
    if stat.S_ISLNK(info.st_mode):
        raise PkiError(f"{folder}: is a symbolic link; credentials are never written through one")
    if not stat.S_ISDIR(info.st_mode):
        raise PkiError(f"{folder}: is not a folder")
    if info.st_uid != os.geteuid():
        raise PkiError(f"{folder}: belongs to another user")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(folder, 0o700)
    return folder


def _read_private(path: Path) -> bytes:
    """A key file's bytes, refused when it is a link or others may read it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise PkiError(f"{path}: missing") from None
    except OSError:
        raise PkiError(f"{path}: is a link or cannot be opened") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            raise PkiError(f"{path}: must be a regular file readable by its owner only (0600)")
        return handle.read()


def _read_text(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise PkiError(f"{path}: missing") from None
    except OSError:
        raise PkiError(f"{path}: is a link or cannot be opened") from None
    with os.fdopen(fd, encoding="ascii") as handle:
        return handle.read()


def _existing_folder(folder: Path) -> Path:
    folder = Path(folder)
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        raise PkiError(f"{folder}: no such folder") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise PkiError(f"{folder}: is not a folder (a link is refused)")
    return folder


def _pem_blocks(text: str, begin: str) -> list[str]:
    """The PEM blocks of one kind in `text`, each with its armour."""
    end = begin.replace("BEGIN", "END")
    blocks = re.findall(rf"{re.escape(begin)}.*?{re.escape(end)}", text, flags=re.DOTALL)
    return [block + "\n" for block in blocks]


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


# ---------------------------------------------------------------------------------------------------------------------
# The authority


def init_authority(
    folder: Path, consortium: str, *, days: int = AUTHORITY_DAYS, crl_days: int = CRL_DAYS, now: datetime | None = None
) -> Authority:
    """Make a consortium's authority in `folder` (0700; refused when it already holds one): its first key
    (`authority-1.key`, 0600), its self-signed certificate (`authority-1.pem`; CA, path length 0: it signs nodes only)
    and its state file (`authority.json`)."""
    if not isinstance(consortium, str) or not CONSORTIUM.fullmatch(consortium):
        raise PkiError("a consortium name is 1 to 48 of letters, digits, space, '.', '_' and '-'")
    if days < 1 or crl_days < 1:
        raise PkiError("validity periods are at least one day")
    folder = private_folder(folder)
    with _locked(folder):
        if os.path.lexists(folder / STATE):
            raise PkiError(f"{folder}: already holds an authority")
        authority = Authority(folder, {"consortium": consortium, "crl_days": crl_days, "authorities": [],
                                       "certificates": []})  # fmt: skip
        authority._new_generation(days=days, now=_now(now))
        authority._save()
    return authority


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the authority's lock: two commands at once must not both issue from the same state."""
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Authority:
    """A consortium's certificate authority in its folder. Change it through its methods only: each takes the
    folder's lock, rereads the state and saves it whole."""

    def __init__(self, folder: Path, state: dict) -> None:
        self.folder = folder
        self._state = state

    @classmethod
    def load(cls, folder: Path) -> Authority:
        folder = _existing_folder(folder)
        return cls(folder, cls._read_state(folder))

    @staticmethod
    def _read_state(folder: Path) -> dict:
        if not os.path.lexists(folder / STATE):
            raise PkiError(f"{folder}: holds no authority (run `enclave consortium init`)")
        try:
            state = json.loads(_read_private(folder / STATE))
        except ValueError:
            raise PkiError(f"{folder / STATE}: is not an authority's state") from None
        return state

    def _save(self) -> None:
        write_secret(self.folder / STATE, json.dumps(self._state, indent=1, sort_keys=True) + "\n")

    @contextmanager
    def _change(self) -> Iterator[None]:
        with _locked(self.folder):
            self._state = self._read_state(self.folder)
            yield
            self._save()

    # -- what it holds

    @property
    def consortium(self) -> str:
        return self._state["consortium"]

    @property
    def crl_days(self) -> int:
        return int(self._state["crl_days"])

    def authorities(self) -> list[AuthorityRecord]:
        return [AuthorityRecord(**row) for row in self._state["authorities"]]

    def certificates(self) -> list[CertificateRecord]:
        return [CertificateRecord(**row) for row in self._state["certificates"]]

    @property
    def generation(self) -> int:
        """The current key's generation: the one that signs new certificates."""
        return self._state["authorities"][-1]["generation"]

    def _ca_files(self, generation: int) -> tuple[Path, Path]:
        return self.folder / f"authority-{generation}.key", self.folder / f"authority-{generation}.pem"

    def _ca(self, generation: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key_file, cert_file = self._ca_files(generation)
        key = serialization.load_pem_private_key(_read_private(key_file), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{key_file}: is not an ECDSA key")
        return key, x509.load_pem_x509_certificate(_read_text(cert_file).encode("ascii"))

    def trusted_generations(self, *, now: datetime | None = None) -> list[int]:
        """The generations in the trust bundle: the current one, and each older one while a certificate it signed is
        neither revoked nor expired (then it retires by itself)."""
        moment = _now(now)
        live = {row.generation for row in self.certificates() if row.status(moment) == "valid"}
        return [
            row.generation
            for row in self.authorities()
            if row.generation == self.generation or (row.generation in live and _parse(row.not_after) > moment)
        ]

    def bundle_pem(self, *, now: datetime | None = None) -> str:
        """The consortium's trust bundle: the certificate of each generation in `trusted_generations`."""
        return "".join(_read_text(self._ca_files(generation)[1]) for generation in self.trusted_generations(now=now))

    def crl_pem(self, *, days: int | None = None, now: datetime | None = None) -> str:
        """One CRL per generation in the bundle, each signed by that generation's key and listing the certificates it
        signed that were revoked; valid for `days` (default: the authority's `crl_days`). A node checks every peer
        against it and refuses all peers once it is past its next update: hand nodes a fresh one before then."""
        moment = _now(now)
        days = self.crl_days if days is None else days
        if days < 1:
            raise PkiError("a CRL is valid for at least one day")
        revoked = [row for row in self.certificates() if row.revoked_at]
        texts = []
        for generation in self.trusted_generations(now=moment):
            key, cert = self._ca(generation)
            builder = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(cert.subject)
                .last_update(moment - CLOCK_SKEW)
                .next_update(moment + timedelta(days=days))
                # seconds since the epoch: each CRL a node is given numbers higher than the one before
                .add_extension(x509.CRLNumber(int(moment.timestamp())), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
            )
            for row in revoked:
                if row.generation == generation:
                    builder = builder.add_revoked_certificate(
                        x509.RevokedCertificateBuilder()
                        .serial_number(int(row.serial, 16))
                        .revocation_date(_parse(row.revoked_at))
                        .build()
                    )
            crl = builder.sign(key, hashes.SHA256())
            texts.append(crl.public_bytes(serialization.Encoding.PEM).decode("ascii"))
        return "".join(texts)

    # -- changes

    def _new_generation(self, *, days: int, now: datetime) -> AuthorityRecord:
        generation = (self._state["authorities"][-1]["generation"] + 1) if self._state["authorities"] else 1
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.consortium),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{self.consortium} CA {generation}"),
        ])  # fmt: skip
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage("key_cert_sign", "crl_sign"), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        key_file, cert_file = self._ca_files(generation)
        write_secret(key_file, _key_pem(key))
        write_secret(cert_file, _cert_pem(cert))
        record = AuthorityRecord(generation, _hex(cert.serial_number), _iso(cert.not_valid_after_utc), _iso(now))
        self._state["authorities"].append(asdict(record))
        return record

    def issue(
        self, name: str, role: str, *, days: int = NODE_DAYS, hosts: Sequence[str] = (), now: datetime | None = None
    ) -> NodeCredentials:
        """A new key and certificate for node `name` in `role`, signed by the current generation and valid for
        `days` (at most until the authority's own certificate ends). `hosts` adds SAN DNS names and IP addresses
        (e.g. `localhost`, `127.0.0.1`) so a client may check the coordinator by host name as well. `now` moves the
        issue time (tests make expired certificates with it). The node's earlier certificates stay valid."""
        check_name(name)
        check_role(role)
        if days < 1:
            raise PkiError("a certificate is valid for at least one day")
        names = _host_names(hosts)
        moment = _now(now)
        with self._change():
            return self._issue(name, role, days=days, hosts=names, now=moment)

    def _issue(self, name: str, role: str, *, days: int, hosts: list[str], now: datetime) -> NodeCredentials:
        generation = self.generation
        ca_key, ca_cert = self._ca(generation)
        if ca_cert.not_valid_after_utc <= now:
            raise PkiError("the authority's own certificate has expired: rotate the authority first")
        key = ec.generate_private_key(ec.SECP256R1())
        not_after = min(now + timedelta(days=days), ca_cert.not_valid_after_utc)
        alternative: list[x509.GeneralName] = [x509.UniformResourceIdentifier(node_uri(role, name))]
        for host in hosts:
            try:
                alternative.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alternative.append(x509.DNSName(host))
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.consortium),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ])  # fmt: skip
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage("digital_signature"), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        serial = _hex(cert.serial_number)
        record = CertificateRecord(serial, name, role, generation, _iso(cert.not_valid_after_utc), hosts=hosts)
        self._state["certificates"].append(asdict(record))
        return NodeCredentials(
            identity=NodeIdentity(role, name, serial),
            not_after=cert.not_valid_after_utc,
            key_pem=_key_pem(key),
            cert_pem=_cert_pem(cert),
            bundle_pem=self.bundle_pem(now=now),
            crl_pem=self.crl_pem(now=now),
        )

    def revoke(self, name_or_serial: str, *, now: datetime | None = None) -> list[CertificateRecord]:
        """Revoke every current (unrevoked, unexpired) certificate of node `name_or_serial`, or the one certificate
        with that serial (hex) when no node has that name. Nodes refuse it once they hold a CRL made after this."""
        moment = _now(now)
        with self._change():
            rows = self._state["certificates"]
            chosen = [row for row in rows if row["name"] == name_or_serial]
            if chosen:
                chosen = [row for row in chosen if CertificateRecord(**row).status(moment) == "valid"]
                if not chosen:
                    raise PkiError(f"node {name_or_serial} has no current certificate")
            else:
                serial = _serial_text(name_or_serial)
                chosen = [row for row in rows if row["serial"] == serial]
                if not chosen:
                    raise PkiError("no node of that name and no certificate of that serial")
                if chosen[0]["revoked_at"]:
                    raise PkiError(f"certificate {serial} is already revoked")
            for row in chosen:
                row["revoked_at"] = _iso(moment)
        return [CertificateRecord(**row) for row in chosen]

    def rotate(
        self, name: str, *, days: int = NODE_DAYS, hosts: Sequence[str] | None = None, now: datetime | None = None
    ) -> NodeCredentials:
        """A fresh key and certificate for node `name`, in the role (and with the hosts, unless `hosts` is given) of
        its latest certificate, signed by the current generation. The node's old certificate stays valid until it is
        revoked (`revoke(old serial)`, once the node runs on the new one) or expires."""
        check_name(name)
        moment = _now(now)
        with self._change():
            mine = [CertificateRecord(**row) for row in self._state["certificates"] if row["name"] == name]
            if not mine:
                raise PkiError(f"node {name} was never issued a certificate (use issue)")
            latest = mine[-1]
            names = latest.hosts if hosts is None else _host_names(hosts)
            return self._issue(name, latest.role, days=days, hosts=names, now=moment)

    def rotate_authority(self, *, days: int = AUTHORITY_DAYS, now: datetime | None = None) -> AuthorityRecord:
        """A new key and self-signed certificate for the authority (the next generation), which signs every
        certificate from now on. The bundle holds the old generation too while any certificate it signed is valid:
        hand every node the new bundle, rotate each node, revoke the old certificates; the old generation then leaves
        the bundle."""
        if days < 1:
            raise PkiError("validity periods are at least one day")
        with self._change():
            return self._new_generation(days=days, now=_now(now))


def _key_usage(*allowed: str) -> x509.KeyUsage:
    """A KeyUsage allowing `allowed` only: an authority signs certificates and CRLs, a node its handshakes."""
    flags = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")  # fmt: skip
    return x509.KeyUsage(**{flag: flag in allowed for flag in flags})


def _serial_text(text: str) -> str:
    cleaned = text.lower().removeprefix("0x").replace(":", "")
    if not re.fullmatch(r"[0-9a-f]{1,40}", cleaned):
        raise PkiError("no node of that name, and not a serial number (hex)")
    return cleaned.lstrip("0") or "0"


def _host_names(hosts: Iterable[str]) -> list[str]:
    names = []
    for host in hosts:
        try:
            names.append(str(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        label = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
        if not isinstance(host, str) or len(host) > 253 or not re.fullmatch(rf"{label}(\.{label})*", host.lower()):
            raise PkiError("a host is a DNS name or an IP address")
        names.append(host.lower())
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------------------------------------------------------
# A node's credentials and its TLS contexts


def write_node_credentials(folder: Path, creds: NodeCredentials) -> None:
    """Put `creds` in a node's `folder` (0700, never a link): `node.key` (0600), `node.pem`, `bundle.pem` and
    `crl.pem`, each replaced whole (a reader sees the old file or the new one, never a part). The four are not
    replaced as one: make contexts after this returns."""
    folder = private_folder(folder)
    write_secret(folder / BUNDLE, creds.bundle_pem)
    write_secret(folder / CRL, creds.crl_pem)
    write_secret(folder / NODE_CERT, creds.cert_pem)
    write_secret(folder / NODE_KEY, creds.key_pem)


def install_bundle(folder: Path, pem: str) -> None:
    """Replace a node's trust bundle (after the authority rotated its key) in one step; then `install_crl` the
    authority's current CRL, which has one for the new key (until then a peer certified by it is refused)."""
    folder = _existing_folder(folder)
    certs = _pem_blocks(pem, CERT_BEGIN)
    if not certs:
        raise PkiError("the bundle holds no certificate")
    for block in certs:
        try:
            cert = x509.load_pem_x509_certificate(block.encode("ascii"))
        except ValueError:
            raise PkiError("the bundle holds something that is not a certificate") from None
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if not constraints.ca:
            raise PkiError("the bundle holds a certificate that is not an authority's")
    write_secret(folder / BUNDLE, "".join(certs))


def install_crl(folder: Path, pem: str) -> None:
    """Replace a node's CRL in one step. Refused unless each CRL in `pem` is signed by an authority of the node's
    bundle (after a rotation of the authority: install the new bundle first) and is not older than the one installed
    for that authority (an old CRL would un-revoke certificates). Contexts read the CRL when made: make new ones
    after installing."""
    folder = _existing_folder(folder)
    authorities = _bundle(folder)
    installed = {}
    if os.path.lexists(folder / CRL):
        installed = {crl.issuer: crl for crl in _crls(_read_text(folder / CRL))}
    new = _crls(pem)
    if not new:
        raise PkiError("the CRL file holds no CRL")
    for crl in new:
        signers = [cert for cert in authorities if cert.subject == crl.issuer]
        if not any(_signed_by(crl, cert) for cert in signers):
            raise PkiError("a CRL is not signed by an authority of this node's bundle")
        before = installed.get(crl.issuer)
        if before is not None and _crl_number(crl) < _crl_number(before):
            raise PkiError("a CRL is older than the one installed")
    write_secret(folder / CRL, "".join(crl.public_bytes(serialization.Encoding.PEM).decode("ascii") for crl in new))


def _bundle(folder: Path) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(block.encode("ascii"))
            for block in _pem_blocks(_read_text(folder / BUNDLE), CERT_BEGIN)]  # fmt: skip


def _crls(pem: str) -> list[x509.CertificateRevocationList]:
    try:
        return [x509.load_pem_x509_crl(block.encode("ascii")) for block in _pem_blocks(pem, CRL_BEGIN)]
    except ValueError:
        raise PkiError("the CRL file holds something that is not a CRL") from None


def _signed_by(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(cert.public_key())  # type: ignore[arg-type]
    except (InvalidSignature, TypeError):
        return False


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return -1


def node_identity(folder: Path) -> NodeIdentity:
    """The identity a node's own certificate gives it."""
    pem = _read_text(_existing_folder(folder) / NODE_CERT)
    return peer_identity(x509.load_pem_x509_certificate(pem.encode("ascii")).public_bytes(serialization.Encoding.DER))


def _context(folder: Path, purpose: ssl._SSLMethod) -> ssl.SSLContext:
    folder = _existing_folder(folder)
    for name in (NODE_CERT, BUNDLE, CRL):
        if not os.path.isfile(folder / name) or os.path.islink(folder / name):
            hint = " (install the consortium's CRL: `enclave consortium crl`)" if name == CRL else ""
            raise PkiError(f"{folder / name}: missing{hint}")
    _read_private(folder / NODE_KEY)  # refuses a linked or readable key before OpenSSL opens it
    context = ssl.SSLContext(purpose)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(folder / NODE_CERT, folder / NODE_KEY)
    context.load_verify_locations(cafile=folder / BUNDLE)
    context.load_verify_locations(cafile=folder / CRL)  # OpenSSL reads the CRLs of a PEM file with its certificates
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF | ssl.VERIFY_X509_STRICT
    return context


def server_context(folder: Path) -> ssl.SSLContext:
    """A TLS 1.3 server context from a node's folder that demands a client certificate of the consortium, unrevoked
    by the node's CRL. Who the client is comes from `peer_identity(sock.getpeercert(binary_form=True))`."""
    return _context(folder, ssl.PROTOCOL_TLS_SERVER)


def client_context(folder: Path, *, server_name: str | None = None) -> ssl.SSLContext:
    """A TLS 1.3 client context from a node's folder that presents the node's certificate and demands a server
    certificate of the consortium, unrevoked by the node's CRL.

    With `server_name` (the host name or address the client dials, which the coordinator's certificate must name:
    issued with `hosts=`), host names are checked as well. Without it they are not: every node of the consortium
    holds a certificate, so the caller must check the server is the coordinator it meant, with
    `expect_peer(sock.getpeercert(binary_form=True), role="coordinator")`."""
    context = _context(folder, ssl.PROTOCOL_TLS_CLIENT)
    if server_name is None:
        context.check_hostname = False
    else:
        _host_names([server_name])
        context.check_hostname = True
    return context


def peer_identity(der: bytes | None) -> NodeIdentity:
    """The role, name and serial a certificate (DER, as `getpeercert(binary_form=True)` gives it) names. ValueError
    when it carries no or several `enclave-node://` URIs or an unknown role or malformed name. It does not verify
    the certificate: the TLS context did."""
    if not der:
        raise ValueError("no peer certificate")
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise ValueError("not a certificate") from None
    try:
        alternative = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise ValueError("the certificate names no node") from None
    uris = [uri for uri in alternative.get_values_for_type(x509.UniformResourceIdentifier)
            if uri.lower().startswith(f"{SCHEME}:")]  # fmt: skip
    if len(uris) != 1:
        raise ValueError(f"the certificate names {len(uris)} nodes, not one")
    match = NODE_URI.fullmatch(uris[0])
    if not match:
        raise ValueError("the certificate's node URI is malformed")
    role, name = match.groups()
    if role not in ROLES:
        raise ValueError("the certificate's node role is unknown")
    if not NAME.fullmatch(name):
        raise ValueError("the certificate's node name is malformed")
    return NodeIdentity(role, name, _hex(cert.serial_number))


def expect_peer(der: bytes | None, *, role: str, name: str | None = None) -> NodeIdentity:
    """`peer_identity`, refused (ValueError) unless the peer has `role` (and `name`, when given)."""
    identity = peer_identity(der)
    if identity.role != role or (name is not None and identity.name != name):
        raise ValueError(f"the peer is not the expected {role}")
    return identity
