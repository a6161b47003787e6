"""Sealed results (federation/sealing.py): HPKE to a federated project's key bound to (project, task, site), the
project's key pair on disk, and the bundle of released files with every path, size and digest checked."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from federation import sealing
from federation.sealing import (
    BUNDLE_MAGIC,
    MAX_MEMBERS,
    SEALED_MAGIC,
    Bundle,
    BundleError,
    ProjectKey,
    SealError,
    load_project_public_key,
    open_bundle,
    open_sealed,
    seal,
    seal_bundle,
    seal_context,
)
from kernel.errors import InvalidInputError

pytestmark = pytest.mark.unit

TASK = str(uuid.uuid4())
OTHER_TASK = str(uuid.uuid4())
CONTEXT = seal_context("cardio-outcomes", TASK, "site-a")
PAYLOAD = b"released table\n" * 50


@pytest.fixture(scope="module")
def project_key() -> ProjectKey:
    return ProjectKey.generate()


def secrets_of(key: ProjectKey) -> list[str]:
    """Every spelling of the private key a message could leak."""
    raw = key.private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pem = key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return [raw.hex(), pem.splitlines()[1], repr(raw)]


# --- seal and open -----------------------------------------------------------------------------------------------


def test_a_sealed_payload_opens_with_the_project_key_under_its_context(project_key):
    blob = seal(PAYLOAD, project_key.public, context=CONTEXT)
    assert blob.startswith(SEALED_MAGIC)
    assert PAYLOAD not in blob
    assert open_sealed(blob, project_key.private, context=CONTEXT) == PAYLOAD
    assert project_key.open(blob, context=CONTEXT) == PAYLOAD


def test_sealing_twice_gives_different_blobs(project_key):
    first, second = (seal(PAYLOAD, project_key.public, context=CONTEXT) for _ in range(2))
    assert first != second
    assert open_sealed(second, project_key.private, context=CONTEXT) == PAYLOAD


def test_an_empty_payload_seals(project_key):
    assert open_sealed(seal(b"", project_key.public, context=CONTEXT), project_key.private, context=CONTEXT) == b""


@pytest.mark.parametrize(
    "context",
    [
        seal_context("cardio-outcomes", OTHER_TASK, "site-a"),  # another task
        seal_context("cardio-outcomes", TASK, "site-b"),  # another site
        seal_context("other-project", TASK, "site-a"),  # another project
        b"x",
    ],
    ids=["another-task", "another-site", "another-project", "arbitrary"],
)
def test_a_sealed_payload_does_not_open_under_another_context(project_key, context):
    blob = seal(PAYLOAD, project_key.public, context=CONTEXT)
    with pytest.raises(SealError):
        open_sealed(blob, project_key.private, context=context)


def test_a_sealed_payload_does_not_open_with_another_key(project_key):
    blob = seal(PAYLOAD, project_key.public, context=CONTEXT)
    with pytest.raises(SealError):
        open_sealed(blob, X25519PrivateKey.generate(), context=CONTEXT)


def test_any_altered_byte_fails_to_open(project_key):
    blob = seal(b"abc" * 10, project_key.public, context=CONTEXT)
    for position in range(len(blob)):  # the magic, the encapsulated key, the ciphertext, the tag
        altered = bytearray(blob)
        altered[position] ^= 0x40
        with pytest.raises(SealError):
            open_sealed(bytes(altered), project_key.private, context=CONTEXT)


@pytest.mark.parametrize("cut", [0, 1, len(SEALED_MAGIC), len(SEALED_MAGIC) + 32, -1])
def test_a_truncated_or_extended_blob_fails_to_open(project_key, cut):
    blob = seal(PAYLOAD, project_key.public, context=CONTEXT)
    with pytest.raises(SealError):
        open_sealed(blob[:cut], project_key.private, context=CONTEXT)
    with pytest.raises(SealError):
        open_sealed(blob + b"\x00", project_key.private, context=CONTEXT)


def test_a_seal_error_shows_no_key_material(project_key):
    blob = seal(PAYLOAD, project_key.public, context=CONTEXT)
    with pytest.raises(SealError) as caught:
        open_sealed(blob, ProjectKey.generate().private, context=CONTEXT)
    message = str(caught.value) + repr(caught.value)
    for secret in secrets_of(project_key):
        assert secret not in message
    assert caught.value.__cause__ is None  # raised `from None`: the library's error is not chained
    assert caught.value.__suppress_context__


def test_sealing_needs_a_context_and_an_x25519_key(project_key):
    with pytest.raises(SealError):
        seal(PAYLOAD, project_key.public, context=b"")
    with pytest.raises(SealError):
        seal(PAYLOAD, project_key.private, context=CONTEXT)
    with pytest.raises(SealError):
        open_sealed(b"x", project_key.public, context=CONTEXT)


def test_a_seal_context_names_project_task_and_site():
    assert json.loads(CONTEXT) == {"project": "cardio-outcomes", "site": "site-a", "task_id": TASK}
    assert len({CONTEXT, seal_context("cardio-outcomes", OTHER_TASK, "site-a"), seal_context("x", TASK, "y")}) == 3
    for bad in (("Cardio", TASK, "site-a"), ("cardio", "not-a-uuid", "site-a"), ("cardio", TASK, "../site")):
        with pytest.raises(SealError):
            seal_context(*bad)


def test_an_oversized_payload_is_refused(project_key, monkeypatch):
    monkeypatch.setattr(sealing, "MAX_BUNDLE_BYTES", 100)
    monkeypatch.setattr(sealing, "MAX_INDEX_BYTES", 10)
    with pytest.raises(SealError):
        seal(b"x" * 111, project_key.public, context=CONTEXT)


# --- the project's key on disk -----------------------------------------------------------------------------------


def test_a_project_key_is_saved_private_and_loads_back(tmp_path, project_key):
    private, public = tmp_path / "keys" / "project.pem", tmp_path / "keys" / "project.pub.pem"
    project_key.save(private, public)
    assert private.stat().st_mode & 0o777 == 0o600
    assert private.parent.stat().st_mode & 0o777 == 0o700
    loaded = ProjectKey.load(private)
    assert loaded.fingerprint() == project_key.fingerprint()
    recipient = load_project_public_key(public)
    assert loaded.open(seal(PAYLOAD, recipient, context=CONTEXT), context=CONTEXT) == PAYLOAD
    assert load_project_public_key(project_key.public_pem()) is not None


def test_a_project_key_shows_no_key_material(project_key):
    text = repr(project_key) + str(project_key)
    assert project_key.fingerprint() in text
    for secret in secrets_of(project_key):
        assert secret not in text


def test_a_project_key_is_never_read_through_a_link_or_when_others_can_read_it(tmp_path, project_key):
    private = tmp_path / "project.pem"
    project_key.save(private)
    link = tmp_path / "link.pem"
    link.symlink_to(private)
    with pytest.raises(InvalidInputError):
        ProjectKey.load(link)
    os.chmod(private, 0o604)
    with pytest.raises(InvalidInputError) as caught:
        ProjectKey.load(private)
    for secret in secrets_of(project_key):
        assert secret not in str(caught.value)


def test_saving_a_project_key_replaces_a_link_instead_of_following_it(tmp_path, project_key):
    target = tmp_path / "elsewhere.txt"
    target.write_text("untouched")
    path = tmp_path / "project.pem"
    path.symlink_to(target)
    project_key.save(path)
    assert target.read_text() == "untouched"
    assert not path.is_symlink()


def test_a_key_of_another_kind_is_refused(tmp_path):
    other = Ed25519PrivateKey.generate()
    path = tmp_path / "ed.pem"
    path.write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)
    with pytest.raises(InvalidInputError, match="not an X25519"):
        ProjectKey.load(path)
    with pytest.raises(InvalidInputError, match="not an X25519"):
        load_project_public_key(
            other.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )


# --- the bundle --------------------------------------------------------------------------------------------------

FILES = {"tables/counts.csv": b"age,n\n40-49,12\n", "model/estimates.csv": b"term,coef,se\nage,0.1,0.02\n", "e": b""}


def test_a_bundle_round_trips_with_its_index():
    bundle = Bundle(task_id=TASK, site="site-a", files=FILES)
    data = bundle.pack()
    assert data.startswith(BUNDLE_MAGIC)
    back = Bundle.unpack(data)
    assert back == bundle
    assert dict(back.files) == FILES
    assert [entry["sha256"] for entry in back.index()["files"]] == [
        hashlib.sha256(FILES[path]).hexdigest() for path in sorted(FILES)
    ]


def test_a_bundle_is_sealed_and_opened_for_its_task_and_site(project_key):
    bundle = Bundle(task_id=TASK, site="site-a", files=FILES)
    blob = seal_bundle(bundle, project_key.public, project="cardio-outcomes")
    assert open_bundle(blob, project_key, project="cardio-outcomes", task_id=TASK, site="site-a") == bundle
    with pytest.raises(SealError):
        open_bundle(blob, project_key, project="cardio-outcomes", task_id=OTHER_TASK, site="site-a")
    with pytest.raises(SealError):
        open_bundle(blob, project_key, project="cardio-outcomes", task_id=TASK, site="site-b")


def test_a_bundle_whose_index_names_another_site_than_its_seal_is_refused(project_key):
    bundle = Bundle(task_id=TASK, site="site-b", files=FILES)
    blob = seal(bundle.pack(), project_key.public, context=CONTEXT)  # sealed for site-a
    with pytest.raises(BundleError, match="another task or site"):
        open_bundle(blob, project_key, project="cardio-outcomes", task_id=TASK, site="site-a")


def raw_bundle(entries: list[dict], contents: list[bytes], **index) -> bytes:
    """Bundle bytes written by hand, to say what the packer never would."""
    body = {"version": 1, "task_id": TASK, "site": "site-a", "files": entries, **index}
    encoded = json.dumps(body).encode()
    return BUNDLE_MAGIC + struct.pack(">I", len(encoded)) + encoded + b"".join(contents)


def entry(path: str, content: bytes) -> dict:
    return {"path": path, "size": len(content), "sha256": hashlib.sha256(content).hexdigest()}


def test_a_hand_written_bundle_reads():
    assert dict(Bundle.unpack(raw_bundle([entry("a.csv", b"x")], [b"x"])).files) == {"a.csv": b"x"}


@pytest.mark.parametrize(
    "path", ["../escape.csv", "tables/../../escape.csv", "/etc/passwd", "a\\b.csv", "a//b.csv", "./a.csv", "a\x00"]
)
def test_a_bundle_member_outside_the_outputs_is_refused(path):
    with pytest.raises(BundleError) as caught:
        Bundle.unpack(raw_bundle([entry(path, b"x")], [b"x"]))
    assert path not in str(caught.value)
    with pytest.raises(BundleError):
        Bundle(task_id=TASK, site="site-a", files={path: b"x"})


def test_a_bundle_member_whose_bytes_differ_from_its_sha256_is_refused():
    data = raw_bundle([entry("a.csv", b"12"), entry("b.csv", b"34")], [b"12", b"35"])
    with pytest.raises(BundleError, match=r"file 2 .* SHA-256"):
        Bundle.unpack(data)


def test_a_packed_bundle_altered_in_any_content_byte_is_refused():
    data = Bundle(task_id=TASK, site="site-a", files={"a.csv": b"abcdef"}).pack()
    for position in range(len(data) - 6, len(data)):
        altered = bytearray(data)
        altered[position] ^= 0x01
        with pytest.raises(BundleError):
            Bundle.unpack(bytes(altered))


def test_a_name_given_twice_is_refused():
    with pytest.raises(BundleError, match="twice"):
        Bundle.unpack(raw_bundle([entry("a.csv", b"x"), entry("a.csv", b"x")], [b"x", b"x"]))


def test_more_members_than_a_task_may_declare_are_refused():
    count = MAX_MEMBERS + 1
    entries = [entry(f"f{n}.csv", b"") for n in range(count)]
    with pytest.raises(BundleError, match="at most"):
        Bundle.unpack(raw_bundle(entries, []))
    with pytest.raises(BundleError, match="at most"):
        Bundle(task_id=TASK, site="site-a", files={f"f{n}.csv": b"" for n in range(count)})


def test_a_bundle_over_the_size_cap_is_refused(monkeypatch):
    monkeypatch.setattr(sealing, "MAX_BUNDLE_BYTES", 10)
    with pytest.raises(BundleError, match="MiB"):
        Bundle.unpack(raw_bundle([entry("a.csv", b"x" * 6), entry("b.csv", b"y" * 6)], [b"x" * 6, b"y" * 6]))
    with pytest.raises(BundleError):
        Bundle(task_id=TASK, site="site-a", files={"a.csv": b"x" * 11})


MALFORMED_BUNDLES = [
    b"",
    b"PK\x03\x04 a zip file",
    BUNDLE_MAGIC + b"\x00",
    BUNDLE_MAGIC + struct.pack(">I", 2**31) + b"{}",  # an index larger than the bundle
    BUNDLE_MAGIC + struct.pack(">I", 2) + b"{}",
    BUNDLE_MAGIC + struct.pack(">I", 9) + b"not json!",
    raw_bundle([entry("a.csv", b"x")], [b"x", b"trailing"]),  # bytes after the last member
    raw_bundle([entry("a.csv", b"xyz")], [b"x"]),  # fewer bytes than the index says
    raw_bundle([entry("a.csv", b"x")], [b"x"], extra="field"),
    raw_bundle([entry("a.csv", b"x")], [b"x"], version=2),
    raw_bundle([entry("a.csv", b"x")], [b"x"], task_id="not-a-uuid"),
    raw_bundle([entry("a.csv", b"x")], [b"x"], site="Site A"),
    raw_bundle([{**entry("a.csv", b"x"), "mode": 0o777}], [b"x"]),
    raw_bundle([{**entry("a.csv", b"x"), "size": -1}], [b"x"]),
    raw_bundle([{**entry("a.csv", b"x"), "size": True}], [b"x"]),
    raw_bundle([{**entry("a.csv", b"x"), "sha256": "X" * 64}], [b"x"]),
    raw_bundle("a.csv", [b"x"]),
]


@pytest.mark.parametrize(
    "data",
    MALFORMED_BUNDLES,
    ids=[f"malformed-{n}" for n in range(len(MALFORMED_BUNDLES))],  # stable across workers
)
def test_a_malformed_bundle_is_refused(data):
    with pytest.raises(BundleError):
        Bundle.unpack(data)
