"""Mutual TLS between consortium nodes (federation/pki.py): a real TLS server on 127.0.0.1 built with
`server_context` and clients built with `client_context`. A node of the consortium connects and each side reads the
other's identity; a foreign, expired or revoked certificate, a client without one and a TLS 1.2 client are refused,
by the server and, for a server's certificate, by the client. Assertions are on the refusal (the server's handshake
error, the client's SSL error or closed connection), never on timing."""

from __future__ import annotations

import queue
import socket
import ssl
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from federation import pki

pytestmark = pytest.mark.security
WAIT = 20  # seconds a test waits for the server's outcome before failing: a bound for a stuck test, not a measurement


class Server:
    """A TLS server in a thread: it takes one connection at a time, records each handshake's outcome (the client's
    identity, or the exception the handshake raised) and sends a verified client a line naming it."""

    def __init__(self, context: ssl.SSLContext, folder: Path | None = None) -> None:
        self.context = context
        self.folder = folder  # the node folder its context came from
        self.outcomes: queue.Queue = queue.Queue()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(WAIT)
            try:
                tls = self.context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                conn.close()
                self.outcomes.put(exc)
                continue
            with tls:
                client = pki.peer_identity(tls.getpeercert(binary_form=True))
                self.outcomes.put(client)
                tls.sendall(f"hello {client.role}/{client.name}\n".encode())

    def outcome(self):
        return self.outcomes.get(timeout=WAIT)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=WAIT)
        self.listener.close()


def connect(port: int, context: ssl.SSLContext, server_hostname: str | None = None) -> tuple[pki.NodeIdentity, bytes]:
    """Connect, shake hands and read the server's greeting: the server's identity and the greeting, or an exception.
    Under TLS 1.3 the client finishes its handshake before the server has checked the client's certificate, so a
    server's refusal reaches the client as an alert or a closed connection when it reads."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        server = pki.peer_identity(tls.getpeercert(binary_form=True))
        greeting = tls.recv(200)
        if not greeting:
            raise ConnectionResetError("the server closed the connection")
        return server, greeting


REFUSED = (ssl.SSLError, ConnectionResetError, BrokenPipeError)


@pytest.fixture
def authority(tmp_path):
    return pki.init_authority(tmp_path / "authority", "Test consortium")


@pytest.fixture
def coordinator(authority, tmp_path):
    folder = tmp_path / "coordinator"
    pki.write_node_credentials(folder, authority.issue("hub", "coordinator", hosts=["localhost", "127.0.0.1"]))
    server = Server(pki.server_context(folder), folder)
    yield server
    server.close()


def node(authority, tmp_path, name: str, **issue) -> pki.NodeIdentity:
    folder = tmp_path / name
    creds = authority.issue(name, "site", **issue)
    pki.write_node_credentials(folder, creds)
    return creds.identity


def assert_refused_by_server(server: Server, reason: str) -> None:
    outcome = server.outcome()
    assert isinstance(outcome, ssl.SSLError), outcome
    assert reason in str(outcome)


def test_a_consortium_node_connects_and_both_sides_see_each_others_identity(authority, coordinator, tmp_path):
    site = node(authority, tmp_path, "site-a")
    server, greeting = connect(coordinator.port, pki.client_context(tmp_path / "site-a"))
    assert coordinator.outcome() == site
    assert greeting == b"hello site/site-a\n"
    assert server == pki.node_identity(coordinator.folder)
    assert pki.expect_peer(_der(coordinator.folder), role="coordinator", name="hub") == server

    # with host names checked too: the coordinator's certificate names localhost
    server, _ = connect(coordinator.port, pki.client_context(tmp_path / "site-a", server_name="localhost"), "localhost")
    assert server.name == "hub" and coordinator.outcome() == site


def _der(folder) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate((folder / "node.pem").read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


def test_a_certificate_of_a_foreign_authority_is_refused(authority, coordinator, tmp_path):
    # the intruder trusts the consortium (its bundle and CRL are public) but holds a certificate of its own authority
    foreign = pki.init_authority(tmp_path / "foreign-authority", "Foreign consortium")
    own = foreign.issue("site-x", "site")
    trusting = replace(own, bundle_pem=authority.bundle_pem(), crl_pem=authority.crl_pem())
    pki.write_node_credentials(tmp_path / "site-x", trusting)
    with pytest.raises(REFUSED):
        connect(coordinator.port, pki.client_context(tmp_path / "site-x"))
    assert_refused_by_server(coordinator, "certificate verify failed")


def test_a_server_of_a_foreign_authority_is_refused_by_the_client(authority, tmp_path):
    node(authority, tmp_path, "site-a")
    foreign = pki.init_authority(tmp_path / "foreign-authority", "Foreign consortium")
    pki.write_node_credentials(tmp_path / "impostor", foreign.issue("hub", "coordinator"))
    impostor = Server(pki.server_context(tmp_path / "impostor"))
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            connect(impostor.port, pki.client_context(tmp_path / "site-a"))
        assert isinstance(impostor.outcome(), ssl.SSLError)
    finally:
        impostor.close()


def test_an_expired_certificate_is_refused(authority, coordinator, tmp_path):
    node(authority, tmp_path, "site-old", days=1, now=datetime.now(UTC) - timedelta(days=10))
    with pytest.raises(REFUSED):
        connect(coordinator.port, pki.client_context(tmp_path / "site-old"))
    outcome = coordinator.outcome()
    assert isinstance(outcome, ssl.SSLCertVerificationError) and "expired" in outcome.verify_message


def test_a_revoked_certificate_is_refused_once_the_server_holds_the_new_crl(authority, coordinator, tmp_path):
    site = node(authority, tmp_path, "site-a")
    connect(coordinator.port, pki.client_context(tmp_path / "site-a"))
    assert coordinator.outcome() == site  # the server's CRL predates the revocation

    authority.revoke("site-a")
    pki.install_crl(coordinator.folder, authority.crl_pem())
    coordinator.context = pki.server_context(coordinator.folder)  # contexts read the CRL when made
    with pytest.raises(REFUSED):
        connect(coordinator.port, pki.client_context(tmp_path / "site-a"))
    outcome = coordinator.outcome()
    assert isinstance(outcome, ssl.SSLCertVerificationError) and "revoked" in outcome.verify_message

    other = node(authority, tmp_path, "site-b")  # the rest of the consortium still connects
    connect(coordinator.port, pki.client_context(tmp_path / "site-b"))
    assert coordinator.outcome() == other


def test_a_revoked_server_is_refused_by_a_client_with_the_new_crl(authority, coordinator, tmp_path):
    node(authority, tmp_path, "site-a")
    authority.revoke("hub")
    pki.install_crl(tmp_path / "site-a", authority.crl_pem())
    with pytest.raises(ssl.SSLCertVerificationError, match="revoked"):
        connect(coordinator.port, pki.client_context(tmp_path / "site-a"))
    assert isinstance(coordinator.outcome(), ssl.SSLError)


def test_a_client_without_a_certificate_is_refused(authority, coordinator, tmp_path):
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname = False
    anonymous.load_verify_locations(cadata=authority.bundle_pem())
    with pytest.raises(REFUSED):
        connect(coordinator.port, anonymous)
    assert_refused_by_server(coordinator, "certificate")


def test_a_tls_12_client_is_refused(authority, coordinator, tmp_path):
    node(authority, tmp_path, "site-a")
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    old.load_verify_locations(cafile=tmp_path / "site-a" / "bundle.pem")
    old.load_cert_chain(tmp_path / "site-a" / "node.pem", tmp_path / "site-a" / "node.key")
    with pytest.raises(REFUSED):
        connect(coordinator.port, old)
    assert isinstance(coordinator.outcome(), ssl.SSLError)


def test_a_host_name_the_coordinator_certificate_does_not_name_is_refused(authority, coordinator, tmp_path):
    node(authority, tmp_path, "site-a")
    context = pki.client_context(tmp_path / "site-a", server_name="coordinator.example")
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        connect(coordinator.port, context, "coordinator.example")
    assert isinstance(coordinator.outcome(), ssl.SSLError)
