"""The consortium's certificate authority (federation/pki.py) and its command line: what a node certificate says and
allows, revocation through the CRL, rotation of node keys and of the authority's own key, the files' modes, links
refused, and `enclave consortium` auditing every change without printing a key. Real keys, real files."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from federation import pki
from kernel import audit
from kernel.config import Paths
from kernel.db import Registry
from provisioning.cli import main

pytestmark = pytest.mark.unit


@pytest.fixture
def authority(tmp_path):
    return pki.init_authority(tmp_path / "authority", "Test consortium")


def cert_of(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def der_of(pem: str) -> bytes:
    return cert_of(pem).public_bytes(serialization.Encoding.DER)


def mode(path) -> int:
    return os.lstat(path).st_mode & 0o777


def crafted(*names: x509.GeneralName) -> bytes:
    """A self-signed certificate with these SAN entries (or none), to feed `peer_identity` what an authority never
    issues."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crafted")])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


# ------------------------------------------------------------------------------------------------ the authority


def test_init_makes_a_ca_that_signs_nodes_only_with_private_files(authority):
    folder = authority.folder
    assert mode(folder) == 0o700
    assert mode(folder / "authority-1.key") == 0o600
    assert mode(folder / "authority.json") == 0o600
    ca = cert_of((folder / "authority-1.pem").read_text())
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey) and ca.public_key().curve.name == "secp256r1"
    assert pki.Authority.load(folder).consortium == "Test consortium"


def test_init_refuses_a_folder_that_holds_an_authority_and_a_bad_consortium_name(authority, tmp_path):
    with pytest.raises(pki.PkiError, match="already holds an authority"):
        pki.init_authority(authority.folder, "Again")
    with pytest.raises(pki.PkiError, match="consortium name"):
        pki.init_authority(tmp_path / "other", "bad\nname")


def test_an_issued_certificate_names_its_node_and_serves_both_ends_of_tls(authority):
    creds = authority.issue("site-a", "site")
    cert = cert_of(creds.cert_pem)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign and not usage.crl_sign
    purposes = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(purposes) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    alternative = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alternative.get_values_for_type(x509.UniformResourceIdentifier) == ["enclave-node://site/site-a"]
    assert alternative.get_values_for_type(x509.DNSName) == [] and alternative.get_values_for_type(x509.IPAddress) == []
    assert (
        pki.peer_identity(der_of(creds.cert_pem))
        == creds.identity
        == pki.NodeIdentity("site", "site-a", format(cert.serial_number, "x"))
    )
    ca = cert_of(creds.bundle_pem)
    ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    [row] = authority.certificates()
    assert (row.serial, row.name, row.role, row.revoked_at) == (creds.identity.serial, "site-a", "site", None)
    assert "PRIVATE KEY" not in repr(creds) and "CERTIFICATE" not in repr(creds)


def test_hosts_are_added_only_when_asked(authority):
    creds = authority.issue("hub", "coordinator", hosts=["localhost", "127.0.0.1"])
    alternative = cert_of(creds.cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alternative.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in alternative.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert pki.peer_identity(der_of(creds.cert_pem)).role == "coordinator"


@pytest.mark.parametrize(
    ("name", "role", "hosts"),
    [("Site-A", "site", ()), ("-a", "site", ()), ("a" * 64, "site", ()), ("a/b", "site", ()), ("a", "admin", ()),
     ("a", "site", ("bad host",))],
)  # fmt: skip
def test_bad_names_roles_and_hosts_are_refused(authority, name, role, hosts):
    with pytest.raises(pki.PkiError):
        authority.issue(name, role, hosts=hosts)
    assert authority.certificates() == []


def test_a_certificate_never_outlives_its_authority(tmp_path):
    short = pki.init_authority(tmp_path / "short", "Short", days=10)
    creds = short.issue("site-a", "site", days=365)
    ca = cert_of(creds.bundle_pem)
    assert cert_of(creds.cert_pem).not_valid_after_utc <= ca.not_valid_after_utc


def test_an_expired_authority_issues_nothing_until_it_is_rotated(tmp_path):
    authority = pki.init_authority(tmp_path / "old", "Old", days=1)
    later = datetime.now(UTC) + timedelta(days=2)
    with pytest.raises(pki.PkiError, match="rotate the authority"):
        authority.issue("site-a", "site", now=later)
    authority.rotate_authority(now=later)
    assert authority.issue("site-a", "site", now=later).identity.name == "site-a"
    assert authority.trusted_generations(now=later) == [2]


def test_commands_at_once_lose_no_certificate(authority):
    # each issue rereads and saves the state under the folder's lock: none overwrites another's record
    names = [f"site-{n}" for n in range(6)]
    threads = [
        threading.Thread(target=pki.Authority.load(authority.folder).issue, args=(name, "site")) for name in names
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(row.name for row in pki.Authority.load(authority.folder).certificates()) == names


# ------------------------------------------------------------------------------------------------ peer_identity


@pytest.mark.parametrize(
    "names",
    [
        (),
        (x509.DNSName("localhost"),),
        (
            x509.UniformResourceIdentifier("enclave-node://site/a"),
            x509.UniformResourceIdentifier("enclave-node://site/b"),
        ),
        (x509.UniformResourceIdentifier("enclave-node://admin/a"),),
        (x509.UniformResourceIdentifier("enclave-node://site/A_b"),),
        (x509.UniformResourceIdentifier("enclave-node://site/a/extra"),),
    ],
    ids=["no-san", "dns-only", "two-uris", "unknown-role", "bad-name", "extra-path"],
)
def test_peer_identity_refuses_a_certificate_without_exactly_one_well_formed_node_uri(names):
    with pytest.raises(ValueError):
        pki.peer_identity(crafted(*names))


def test_peer_identity_reads_a_crafted_uri_and_refuses_no_certificate():
    identity = pki.peer_identity(crafted(x509.UniformResourceIdentifier("enclave-node://coordinator/hub")))
    assert (identity.role, identity.name) == ("coordinator", "hub")
    for nothing in (None, b"", b"not a certificate"):
        with pytest.raises(ValueError):
            pki.peer_identity(nothing)


def test_expect_peer_checks_role_and_name(authority):
    der = der_of(authority.issue("hub", "coordinator").cert_pem)
    assert pki.expect_peer(der, role="coordinator", name="hub").name == "hub"
    with pytest.raises(ValueError, match="not the expected site"):
        pki.expect_peer(der, role="site")
    with pytest.raises(ValueError):
        pki.expect_peer(der, role="coordinator", name="other")


# ------------------------------------------------------------------------------------------------ revocation


def revoked_serials(crl_pem: str) -> set[str]:
    return {format(entry.serial_number, "x") for crl in pki._crls(crl_pem) for entry in crl}


def test_revoking_a_name_revokes_all_its_current_certificates_and_the_crl_lists_them(authority):
    first = authority.issue("site-a", "site")
    second = authority.rotate("site-a")
    other = authority.issue("site-b", "site")
    revoked = authority.revoke("site-a")
    assert {row.serial for row in revoked} == {first.identity.serial, second.identity.serial}
    crl_pem = authority.crl_pem()
    assert revoked_serials(crl_pem) == {first.identity.serial, second.identity.serial}
    [crl] = pki._crls(crl_pem)
    assert crl.is_signature_valid(cert_of(authority.bundle_pem()).public_key())
    assert crl.next_update_utc - crl.last_update_utc >= timedelta(days=authority.crl_days)
    statuses = {
        row.serial: row.status(datetime.now(UTC)) for row in pki.Authority.load(authority.folder).certificates()
    }
    assert statuses == {first.identity.serial: "revoked", second.identity.serial: "revoked",
                        other.identity.serial: "valid"}  # fmt: skip
    with pytest.raises(pki.PkiError, match="no current certificate"):
        authority.revoke("site-a")


def test_revoking_by_serial_revokes_that_certificate_only(authority):
    old = authority.issue("site-a", "site")
    new = authority.rotate("site-a")
    [row] = authority.revoke(old.identity.serial.upper())
    assert row.serial == old.identity.serial
    assert revoked_serials(authority.crl_pem()) == {old.identity.serial}
    assert [r.status(datetime.now(UTC)) for r in authority.certificates() if r.serial == new.identity.serial] == [
        "valid"
    ]
    with pytest.raises(pki.PkiError, match="already revoked"):
        authority.revoke(old.identity.serial)
    with pytest.raises(pki.PkiError, match="no node of that name"):
        authority.revoke("ffff")
    with pytest.raises(pki.PkiError):
        authority.revoke("no such node!")


def test_crl_days_are_configurable(authority):
    [crl] = pki._crls(authority.crl_pem(days=2))
    assert crl.next_update_utc - crl.last_update_utc < timedelta(days=3)
    with pytest.raises(pki.PkiError):
        authority.crl_pem(days=0)


# ------------------------------------------------------------------------------------------------ rotation


def test_rotating_a_node_keeps_its_role_and_hosts_and_leaves_the_old_certificate_valid(authority):
    old = authority.issue("hub", "coordinator", hosts=["localhost"])
    new = authority.rotate("hub")
    assert new.identity.serial != old.identity.serial and new.key_pem != old.key_pem
    assert new.identity.role == "coordinator"
    alternative = cert_of(new.cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alternative.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [row.status(datetime.now(UTC)) for row in authority.certificates()] == ["valid", "valid"]
    with pytest.raises(pki.PkiError, match="never issued"):
        authority.rotate("nobody")


def test_rotating_the_authority_keeps_the_old_key_in_the_bundle_until_its_certificates_are_retired(authority):
    old = authority.issue("site-a", "site")
    generation = authority.rotate_authority()
    assert generation.generation == 2 == authority.generation
    assert mode(authority.folder / "authority-2.key") == 0o600
    new = authority.rotate("site-a")
    old_ca, new_ca = (cert_of(block) for block in pki._pem_blocks(authority.bundle_pem(), pki.CERT_BEGIN))
    assert old_ca.subject != new_ca.subject
    assert cert_of(new.cert_pem).issuer == new_ca.subject and cert_of(old.cert_pem).issuer == old_ca.subject
    assert len(pki._crls(authority.crl_pem())) == 2  # a CRL for each key a node trusts: leaf checking needs both
    authority.revoke(old.identity.serial)
    assert authority.trusted_generations() == [2]
    assert cert_of(authority.bundle_pem()).subject == new_ca.subject
    assert len(pki._crls(authority.crl_pem())) == 1


def test_an_old_generation_retires_once_its_certificates_expire(authority):
    authority.issue("site-a", "site", days=1)
    authority.rotate_authority()
    assert authority.trusted_generations() == [1, 2]
    assert authority.trusted_generations(now=datetime.now(UTC) + timedelta(days=2)) == [2]


# ------------------------------------------------------------------------------------------------ node folders


def test_node_credentials_are_private_and_never_written_through_a_link(authority, tmp_path):
    creds = authority.issue("site-a", "site")
    node = tmp_path / "node"
    pki.write_node_credentials(node, creds)
    assert mode(node) == 0o700
    assert {name: mode(node / name) for name in ("node.key", "node.pem", "bundle.pem", "crl.pem")} == dict.fromkeys(
        ("node.key", "node.pem", "bundle.pem", "crl.pem"), 0o600
    )
    assert pki.node_identity(node) == creds.identity

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "linked").symlink_to(elsewhere)
    with pytest.raises(pki.PkiError, match="symbolic link"):
        pki.write_node_credentials(tmp_path / "linked", creds)
    assert list(elsewhere.iterdir()) == []

    target = tmp_path / "target.key"
    target.write_text("untouched")
    (node / "node.key").unlink()
    (node / "node.key").symlink_to(target)
    pki.write_node_credentials(node, creds)  # the link is replaced, its target never written
    assert target.read_text() == "untouched"
    assert not (node / "node.key").is_symlink() and mode(node / "node.key") == 0o600


def test_a_widened_folder_is_narrowed_and_a_readable_key_or_missing_crl_refused(authority, tmp_path):
    node = tmp_path / "node"
    node.mkdir(mode=0o755)
    os.chmod(node, 0o755)
    pki.write_node_credentials(node, authority.issue("site-a", "site"))
    assert mode(node) == 0o700
    pki.server_context(node)
    os.chmod(node / "node.key", 0o644)
    with pytest.raises(pki.PkiError, match="0600"):
        pki.server_context(node)
    os.chmod(node / "node.key", 0o600)
    (node / "crl.pem").unlink()
    with pytest.raises(pki.PkiError, match=r"crl\.pem: missing"):
        pki.client_context(node)


def test_the_authority_refuses_a_linked_folder(authority, tmp_path):
    (tmp_path / "alias").symlink_to(authority.folder)
    with pytest.raises(pki.PkiError, match="link"):
        pki.Authority.load(tmp_path / "alias")
    with pytest.raises(pki.PkiError, match="holds no authority"):
        pki.Authority.load(tmp_path)


def test_contexts_demand_tls_13_and_a_certificate_with_leaf_crl_checking(authority, tmp_path):
    import ssl

    pki.write_node_credentials(tmp_path / "node", authority.issue("hub", "coordinator", hosts=["localhost"]))
    for context in (pki.server_context(tmp_path / "node"), pki.client_context(tmp_path / "node")):
        assert context.minimum_version == ssl.TLSVersion.TLSv1_3
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    assert not pki.client_context(tmp_path / "node").check_hostname
    assert pki.client_context(tmp_path / "node", server_name="localhost").check_hostname


def test_install_crl_takes_a_newer_crl_of_the_bundle_only(authority, tmp_path):
    node = tmp_path / "node"
    pki.write_node_credentials(node, authority.issue("site-a", "site"))
    older = authority.crl_pem(now=datetime.now(UTC) - timedelta(hours=1))
    authority.revoke("site-a")
    newer = authority.crl_pem()
    pki.install_crl(node, newer)
    assert (node / "crl.pem").read_text() == newer and mode(node / "crl.pem") == 0o600
    with pytest.raises(pki.PkiError, match="older than the one installed"):
        pki.install_crl(node, older)
    foreign = pki.init_authority(tmp_path / "foreign", "Foreign")
    with pytest.raises(pki.PkiError, match="not signed by an authority"):
        pki.install_crl(node, foreign.crl_pem())
    with pytest.raises(pki.PkiError, match="no CRL"):
        pki.install_crl(node, "nothing")
    assert (node / "crl.pem").read_text() == newer


def test_install_bundle_takes_authority_certificates_only(authority, tmp_path):
    node = tmp_path / "node"
    creds = authority.issue("site-a", "site")
    pki.write_node_credentials(node, creds)
    authority.rotate_authority()
    pki.install_bundle(node, authority.bundle_pem())
    assert len(pki._pem_blocks((node / "bundle.pem").read_text(), pki.CERT_BEGIN)) == 2
    with pytest.raises(pki.PkiError, match="not an authority"):
        pki.install_bundle(node, creds.cert_pem)


# ------------------------------------------------------------------------------------------------ the command line


@pytest.fixture
def home(tmp_path):
    return Paths(tmp_path / "home")


def enclave(paths: Paths, *args: str):
    result = CliRunner().invoke(main, ["--home", str(paths.home), "consortium", *args])
    assert "BEGIN" not in result.output  # never a key, a certificate or a CRL
    return result


def test_the_command_line_issues_revokes_rotates_and_audits_by_serial_and_name(home, tmp_path):
    ca = tmp_path / "ca"
    assert enclave(home, "init", "--folder", str(ca), "--name", "Test consortium").exit_code == 0
    issued = enclave(home, "issue", "hub", "--folder", str(ca), "--role", "coordinator", "--out",
                     str(tmp_path / "hub"), "--host", "localhost")  # fmt: skip
    assert issued.exit_code == 0, issued.output
    hub = pki.node_identity(tmp_path / "hub")
    assert hub.serial in issued.output and mode(tmp_path / "hub" / "node.key") == 0o600
    site = enclave(home, "issue", "site-a", "--folder", str(ca), "--role", "site", "--out", str(tmp_path / "a"))
    assert site.exit_code == 0
    rotated = enclave(home, "rotate", "site-a", "--folder", str(ca), "--out", str(tmp_path / "a"))
    assert rotated.exit_code == 0 and "still valid until revoked" in rotated.output
    revoked = enclave(home, "revoke", "site-a", "--folder", str(ca))
    assert revoked.exit_code == 0 and revoked.output.count("revoked site site-a") == 2
    assert enclave(home, "crl", "--folder", str(ca), "--out", str(tmp_path / "crl.pem")).exit_code == 0
    assert len(revoked_serials((tmp_path / "crl.pem").read_text())) == 2
    assert enclave(home, "rotate-authority", "--folder", str(ca)).exit_code == 0
    assert enclave(home, "bundle", "--folder", str(ca), "--out", str(tmp_path / "bundle.pem")).exit_code == 0
    listed = enclave(home, "list", "--folder", str(ca))
    assert listed.exit_code == 0 and hub.serial in listed.output and listed.output.count("revoked") == 2

    (tmp_path / "alias").symlink_to(tmp_path / "a")
    linked = enclave(home, "issue", "site-c", "--folder", str(ca), "--role", "site", "--out", str(tmp_path / "alias"))
    assert linked.exit_code == 1 and "symbolic link" in linked.output
    assert "site-c" not in {row.name for row in pki.Authority.load(ca).certificates()}

    refused = enclave(home, "issue", "Bad", "--folder", str(ca), "--role", "site", "--out", str(tmp_path / "x"))
    assert refused.exit_code == 1 and "enclave: error: a node name" in refused.output

    registry = Registry(home.database_url)
    try:
        with registry.session() as session:
            events = [e for e in audit.events(session) if e.action.startswith("consortium.")]
            assert [e.action for e in events] == [
                "consortium.initialised", "consortium.issued", "consortium.issued", "consortium.rotated",
                "consortium.revoked", "consortium.revoked", "consortium.authority-rotated",
            ]  # fmt: skip
            assert events[1].target == "consortium-node:hub" and events[1].detail["serial"] == hub.serial
            assert all("BEGIN" not in str(e.detail) for e in events)
    finally:
        registry.close()


def test_the_authority_folder_defaults_to_the_enclave_home(home, tmp_path, monkeypatch):
    monkeypatch.delenv("ENCLAVE_CONSORTIUM_AUTHORITY", raising=False)
    assert enclave(home, "init", "--name", "Home consortium").exit_code == 0
    assert pki.Authority.load(home.federation / "authority").consortium == "Home consortium"
    missing = enclave(home, "list", "--folder", str(tmp_path / "none"))
    assert missing.exit_code == 1 and "no such folder" in missing.output
