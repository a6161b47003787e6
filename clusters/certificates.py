"""A cluster's own TLS: a certificate authority made for one cluster, the certificates it signs for the scheduler,
the workers and the client, and the `distributed.security.Security` objects each side uses.

Why not `Security.temporary()`: it makes one key that every role shares, so each worker would hold the scheduler's
key. Here the authority signs one certificate per role and its private key is dropped as soon as they are signed
(held in memory only, never written): nothing can sign another certificate this cluster trusts, and a client or
worker holding any other cluster's certificate (or none) fails the handshake, since each side requires the other's
certificate to chain to this cluster's authority (distributed sets CERT_REQUIRED both ways).

The client's key stays in memory. The worker's key has to reach jobs on other nodes and the scheduler runs as the
project's account in a sandbox of its own (clusters/sandboxed.py), so theirs are files: written by root in the
cluster's folder (a folder only root can write), group-readable by the project's account alone (0440), never on a
command line. dask-jobqueue passes the workers file paths as they are; it would dump in-memory keys into
`shared_temp_directory` as root's 0600 files, which the project account could not read.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from distributed.security import Security

ROLES = ("scheduler", "worker", "client")


@dataclass(frozen=True)
class Credential:
    cert: str  # PEM
    key: str = ""  # PEM, unencrypted; empty for the authority (whose key is never kept)


@dataclass(frozen=True)
class ClusterCertificates:
    """One cluster's authority certificate and a certificate and key per role (all PEM, in memory)."""

    authority: Credential
    roles: dict[str, Credential]

    def client_security(self) -> Security:
        """What a client of this cluster needs, and nothing else: the authority and the client's own pair, in
        memory (a broker can hand it to the researcher's kernel; the cluster object is not needed)."""
        client = self.roles["client"]
        return Security(
            require_encryption=True,
            tls_ca_file=self.authority.cert,
            tls_client_cert=client.cert,
            tls_client_key=client.key,
        )

    def cluster_security(self, files: RoleFiles) -> Security:
        """The cluster's Security: the client's pair in memory (the process holding the cluster connects to its
        scheduler with it), the scheduler's and the worker's as the files their sandboxed processes read
        (`write_role_files`), and the authority as a file too, since every role shares that setting."""
        client = self.roles["client"]
        return Security(
            require_encryption=True,
            tls_ca_file=str(files.authority),
            tls_scheduler_cert=str(files.cert("scheduler")),
            tls_scheduler_key=str(files.key("scheduler")),
            tls_client_cert=client.cert,
            tls_client_key=client.key,
            tls_worker_cert=str(files.cert("worker")),
            tls_worker_key=str(files.key("worker")),
        )

    def write_role_files(self, folder: Path, gid: int) -> RoleFiles:
        """The authority's certificate and the scheduler's and worker's pairs as files in `folder` (which must exist
        and be writable by root alone), owned by root and readable by group `gid` (the project's) only: both run as
        the project's account, in its sandbox."""
        files = RoleFiles(folder)
        _write_new(files.authority, self.authority.cert, gid)
        for role in ("scheduler", "worker"):
            _write_new(files.cert(role), self.roles[role].cert, gid)
            _write_new(files.key(role), self.roles[role].key, gid)
        return files


@dataclass(frozen=True)
class RoleFiles:
    folder: Path

    @property
    def authority(self) -> Path:
        return self.folder / "ca.pem"

    def cert(self, role: str) -> Path:
        return self.folder / f"{role}.pem"

    def key(self, role: str) -> Path:
        return self.folder / f"{role}.key"


def issue(name: str, days: int) -> ClusterCertificates:
    """A new authority named after the cluster, and a certificate per role valid for `days` days."""
    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(days=days)
    authority_key = ec.generate_private_key(ec.SECP256R1())
    authority_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} authority")])
    authority = (
        x509.CertificateBuilder()
        .subject_name(authority_name)
        .issuer_name(authority_name)
        .public_key(authority_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # a node's clock a little behind still accepts it
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(authority_key, hashes.SHA256())
    )
    roles = {}
    for role in ROLES:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} {role}")]))
            .issuer_name(authority_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # every role both listens and connects (workers talk to each other)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .sign(authority_key, hashes.SHA256())
        )
        roles[role] = Credential(_pem(cert), _key_pem(key))
    # authority_key goes out of scope here: nothing else can be signed for this cluster
    return ClusterCertificates(Credential(_pem(authority)), roles)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _write_new(path: Path, text: str, gid: int) -> None:
    """A new file (never an existing one, never through a link), 0440 root:gid, its mode set before anything is
    written to it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o400)
    with os.fdopen(fd, "w") as out:
        os.fchown(out.fileno(), -1, gid)
        os.fchmod(out.fileno(), 0o440)
        out.write(text)
