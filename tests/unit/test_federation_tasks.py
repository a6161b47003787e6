"""The signed task manifest (federation/tasks.py): its canonical bytes, its fields' rules, signing, and a site's
verification with every refusal reason, in order, the replay guard last."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.tasks import (
    CLOCK_SKEW,
    MAX_OUTPUTS,
    MAX_TASK_BYTES,
    REASONS,
    DeclaredOutput,
    MemoryReplayGuard,
    SignedTask,
    TaskManifest,
    TaskRefused,
    generate_signing_key,
    key_id,
    load_public_key,
    load_signing_key,
    public_key_pem,
    save_public_key,
    save_signing_key,
    sign,
    trusted_keys,
    verify,
)
from kernel.errors import InvalidInputError
from tests.federation_factories import ISSUED, make_manifest, signed

pytestmark = pytest.mark.unit

NOW = ISSUED + timedelta(hours=1)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return generate_signing_key()


@pytest.fixture
def trusted(key):
    return trusted_keys([key.public_key()])


def check(task: SignedTask, trusted, *, site="site-a", now=NOW, replay=None) -> TaskManifest:
    return verify(task, trusted, site=site, now=now, replay=replay if replay is not None else MemoryReplayGuard())


def refusal(task, trusted, **kwargs) -> str:
    with pytest.raises(TaskRefused) as caught:
        check(task, trusted, **kwargs)
    return caught.value.reason


# --- canonical bytes and the round trip --------------------------------------------------------------------------


def test_canonical_bytes_are_sorted_compact_json_with_a_version_and_utc_times():
    manifest = make_manifest()
    text = manifest.canonical_bytes().decode("utf-8")
    data = json.loads(text)
    assert data["version"] == 1
    assert list(data) == sorted(data)
    assert text == json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert data["issued_at"] == "2026-12-01T09:00:00Z"
    assert data["expires_at"] == "2026-12-08T09:00:00Z"
    assert data["outputs"] == [
        {"kind": "counts", "path": "tables/counts.csv"},
        {"kind": "estimates", "path": "model/estimates.csv"},
    ]


def test_a_manifest_round_trips_through_signing_json_and_verification(key, trusted):
    manifest = make_manifest()
    task = SignedTask.from_json(signed(manifest, key).to_json())
    verified = check(task, trusted)
    assert verified == manifest
    assert verified.canonical_bytes() == manifest.canonical_bytes()
    assert dict(verified.parameters) == {
        "outcome": "mace",
        "min_age": 18,
        "alpha": 0.05,
        "adjust": True,
        "subgroup": None,
    }
    assert type(verified.parameters["adjust"]) is bool
    assert verified.issued_at.tzinfo is not None


def test_new_manifests_differ_in_task_id_and_nonce():
    first, second = make_manifest(), make_manifest()
    assert first.task_id != second.task_id
    assert first.nonce != second.nonce
    assert len(first.nonce) == 64


def test_a_zero_offset_zone_is_written_as_utc():
    other_utc = timezone(timedelta(0), "GMT")
    manifest = make_manifest(issued_at=ISSUED.astimezone(other_utc))
    assert json.loads(manifest.canonical_bytes())["issued_at"] == "2026-12-01T09:00:00Z"


# --- each field's rules ------------------------------------------------------------------------------------------


BAD_FIELDS = [
    ("task_id", "not-a-uuid"),
    ("task_id", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"),  # a UUID1
    ("task_id", "9F1C7E5A-8B1D-4C7E-9A3B-2D4E6F8A0B1C"),  # upper case
    ("project", "Cardio"),
    ("project", "-cardio"),
    ("project", "a" * 64),
    ("purpose", "ds-cvd"),
    ("purpose", "D"),
    ("purpose", "DS-CVD-AND-MUCH-MORE"),
    ("submitter", "Alice"),
    ("submitter", "a"),
    ("coordinator", "hub.example.org"),
    ("notebook_sha256", "ABCDEF" + "0" * 58),
    ("notebook_sha256", "0" * 63),
    ("nonce", "0" * 62),
    ("nonce", 12345),
    ("sites", ()),
    ("sites", ("site-a", "site-a")),
    ("sites", ("Site-A",)),
    ("sites", "site-a"),
    ("outputs", ()),
    ("outputs", tuple(DeclaredOutput(f"t/{n}.csv", "table") for n in range(MAX_OUTPUTS + 1))),
    ("outputs", (DeclaredOutput("a.csv", "table"), DeclaredOutput("a.csv", "counts"))),
    ("outputs", ({"path": "a.csv", "kind": "table"},)),
    ("parameters", {"bad name": 1}),
    ("parameters", {"x": [1, 2]}),
    ("parameters", {"x": {"y": 1}}),
    ("parameters", {"x": float("nan")}),
    ("parameters", {"x": float("inf")}),
    ("parameters", {"x": 2**60}),
    ("parameters", {"x": "\ud800"}),
    ("parameters", {"x": "y" * 1025}),
    ("parameters", {f"p{n}": n for n in range(65)}),
    ("issued_at", ISSUED.replace(tzinfo=None)),
    ("issued_at", ISSUED.replace(microsecond=5)),
    ("issued_at", ISSUED.astimezone(timezone(timedelta(hours=1)))),
    ("expires_at", ISSUED),
    ("expires_at", ISSUED - timedelta(seconds=1)),
    ("expires_at", ISSUED + timedelta(days=14, seconds=1)),
]


@pytest.mark.parametrize(("name", "value"), BAD_FIELDS)
def test_a_manifest_refuses_a_bad_field(name, value):
    with pytest.raises(ValueError):
        make_manifest(**{name: value})


def test_the_longest_window_is_fourteen_days():
    assert make_manifest(expires_at=ISSUED + timedelta(days=14)).expires_at == ISSUED + timedelta(days=14)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "../secret.csv",
        "tables/../../secret.csv",
        "tables/./a.csv",
        "tables//a.csv",
        "tables/",
        "tables\\a.csv",
        "a\x00.csv",
        "a\n.csv",
        "a\u202e.csv",  # right-to-left override: a name that reads as another
        "cafe\u0301.csv",  # not NFC
        "x" * 256,
    ],
)
def test_a_declared_output_path_is_relative_normalised_and_plain(path):
    with pytest.raises(ValueError) as caught:
        DeclaredOutput(path, "table")
    if path:
        assert path not in str(caught.value)


@pytest.mark.parametrize("path", ["a.csv", "tables/by age/counts.csv", "résumé.txt", "a..b.csv", ".hidden"])
def test_a_declared_output_path_may_be_any_plain_relative_name(path):
    assert DeclaredOutput(path, "text").path == path


def test_a_declared_output_kind_is_one_of_five():
    with pytest.raises(ValueError):
        DeclaredOutput("a.csv", "notebook")


# --- verification: each reason -----------------------------------------------------------------------------------


def test_a_tampered_manifest_byte_is_a_bad_signature(key, trusted):
    task = signed(make_manifest(), key)
    original = task.manifest
    position = original.index('"site-a"') + 6
    tampered = original[:position] + "c" + original[position + 1 :]  # site-a -> site-c, still canonical JSON
    assert TaskManifest.from_canonical(tampered).sites == ("site-c", "site-b")
    assert refusal(dataclasses.replace(task, manifest=tampered), trusted, site="site-c") == "bad-signature"


@pytest.mark.parametrize(
    "changes",
    [
        {"project": "other-project"},
        {"purpose": "GRU"},
        {"submitter": "mallory"},
        {"notebook_sha256": "f" * 64},
        {"parameters": {"outcome": "death"}},
        {"outputs": (DeclaredOutput("everything.csv", "table"),)},
        {"nonce": "e" * 64},
        {"expires_at": ISSUED + timedelta(days=14)},
    ],
)
def test_any_field_changed_after_signing_is_a_bad_signature(key, trusted, changes):
    manifest = make_manifest()
    task = signed(manifest, key)
    changed = dataclasses.replace(manifest, **changes).canonical_bytes().decode()
    assert refusal(dataclasses.replace(task, manifest=changed), trusted) == "bad-signature"


def test_a_signature_flipped_in_one_bit_is_a_bad_signature(key, trusted):
    task = signed(make_manifest(), key)
    raw = bytearray(base64.b64decode(task.signature))
    raw[10] ^= 0x01
    task = dataclasses.replace(task, signature=base64.b64encode(bytes(raw)).decode())
    assert refusal(task, trusted) == "bad-signature"


def test_a_manifest_resigned_by_an_unknown_key_is_refused(key, trusted):
    intruder = generate_signing_key()
    assert refusal(signed(make_manifest(), intruder), trusted) == "unknown-key"
    # The same intruder claiming the trusted key's id: the signature does not hold.
    posing = sign(make_manifest(), intruder, key_id(key.public_key()))
    assert refusal(posing, trusted) == "bad-signature"


def test_a_signature_over_the_bare_manifest_without_the_domain_prefix_is_refused(key, trusted):
    manifest = make_manifest()
    bare = base64.b64encode(key.sign(manifest.canonical_bytes())).decode()
    task = SignedTask(manifest=manifest.canonical_bytes().decode(), signature=bare, key_id=key_id(key.public_key()))
    assert refusal(task, trusted) == "bad-signature"


def test_a_task_for_other_sites_is_refused(key, trusted):
    assert refusal(signed(make_manifest(), key), trusted, site="site-z") == "not-for-this-site"


def test_an_expired_task_is_refused(key, trusted):
    task = signed(make_manifest(), key)
    assert refusal(task, trusted, now=ISSUED + timedelta(days=7)) == "expired"
    assert check(task, trusted, now=ISSUED + timedelta(days=7) - timedelta(seconds=1)).nonce


def test_a_task_issued_in_the_future_is_not_yet_valid_beyond_the_clock_skew(key, trusted):
    task = signed(make_manifest(), key)
    assert refusal(task, trusted, now=ISSUED - CLOCK_SKEW - timedelta(seconds=1)) == "not-yet-valid"
    assert check(task, trusted, now=ISSUED - CLOCK_SKEW).task_id


def test_a_replayed_task_is_refused(key, trusted):
    task = signed(make_manifest(), key)
    guard = MemoryReplayGuard()
    check(task, trusted, replay=guard)
    assert refusal(task, trusted, replay=guard) == "replayed"
    assert refusal(SignedTask.from_json(task.to_json()), trusted, replay=guard) == "replayed"


def test_a_new_task_reusing_a_nonce_or_task_id_is_replayed(key, trusted):
    first = make_manifest()
    guard = MemoryReplayGuard()
    check(signed(first, key), trusted, replay=guard)
    same_nonce = dataclasses.replace(make_manifest(), nonce=first.nonce)
    same_task = dataclasses.replace(make_manifest(), task_id=first.task_id)
    assert refusal(signed(same_nonce, key), trusted, replay=guard) == "replayed"
    assert refusal(signed(same_task, key), trusted, replay=guard) == "replayed"


def test_a_refused_task_does_not_use_up_its_nonce(key, trusted):
    manifest = make_manifest()
    task = signed(manifest, key)
    guard = MemoryReplayGuard()
    tampered = dataclasses.replace(
        task, manifest=dataclasses.replace(manifest, submitter="mallory").canonical_bytes().decode()
    )
    assert refusal(tampered, trusted, replay=guard) == "bad-signature"
    assert refusal(task, trusted, replay=guard, site="site-z") == "not-for-this-site"
    assert refusal(task, trusted, replay=guard, now=ISSUED - timedelta(hours=1)) == "not-yet-valid"
    assert refusal(task, {}, replay=guard) == "unknown-key"
    assert check(task, trusted, replay=guard) == manifest  # still accepted once
    assert refusal(task, trusted, replay=guard) == "replayed"
    assert refusal(task, trusted, replay=guard, now=ISSUED + timedelta(days=8)) == "expired"  # expiry comes first


# --- malformed ---------------------------------------------------------------------------------------------------


def envelope(task: SignedTask, **changes) -> str:
    data = {"key_id": task.key_id, "manifest": task.manifest, "signature": task.signature, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...})


MALFORMED = {
    "empty": lambda t: "",
    "not-json": lambda t: "{not json",
    "a-list": lambda t: "[]",
    "a-string": lambda t: '"a string"',
    "not-utf8": lambda t: b"\xff\xfe\x00",
    "no-signature": lambda t: envelope(t, signature=...),
    "unknown-field": lambda t: envelope(t, extra="field"),
    "manifest-not-text": lambda t: envelope(t, manifest={"task_id": "x"}),
    "key-id-not-text": lambda t: envelope(t, key_id=12),
    "key-id-upper-case": lambda t: envelope(t, key_id="ABCDEF0123456789"),
    "key-id-a-name": lambda t: envelope(t, key_id="consortium-hub"),
    "signature-not-base64": lambda t: envelope(t, signature="not base64!"),
    "signature-short": lambda t: envelope(t, signature=base64.b64encode(b"short").decode()),
    "signature-unpadded": lambda t: envelope(t, signature=t.signature.rstrip("=")),
    "oversized": lambda t: envelope(t) + " " * (MAX_TASK_BYTES + 1),
    "duplicate-key": lambda t: '{"key_id": "a", "key_id": "b", "manifest": "", "signature": ""}',
    "nan": lambda t: '{"key_id": NaN}',
    "deeply-nested": lambda t: "[" * 100_000,
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_signed_task_is_refused_before_any_key_is_looked_up(key, text):
    task = signed(make_manifest(), key)
    with pytest.raises(TaskRefused) as caught:
        SignedTask.from_json(text(task))
    assert caught.value.reason == "malformed"


def test_an_oversized_manifest_is_malformed(key):
    task = signed(make_manifest(), key)
    with pytest.raises(TaskRefused) as caught:
        SignedTask.from_json(envelope(task, manifest="x" * (MAX_TASK_BYTES + 1)))
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize(
    "rewrite",
    [
        lambda data: json.dumps(data),  # not compact
        lambda data: json.dumps({**data, "extra": 1}, sort_keys=True, separators=(",", ":")),
        lambda data: json.dumps({**data, "version": 2}, sort_keys=True, separators=(",", ":")),
        lambda data: json.dumps({**data, "version": True}, sort_keys=True, separators=(",", ":")),
        lambda data: json.dumps({**data, "issued_at": "2026-12-01T09:00:00+00:00"}, separators=(",", ":")),
        lambda data: json.dumps({**data, "outputs": [{"path": "../x", "kind": "table"}]}, sort_keys=True),
        lambda data: '{"version":1,' + json.dumps(data, sort_keys=True, separators=(",", ":"))[1:],  # duplicate key
        lambda data: "[]",
    ],
)
def test_a_signed_manifest_that_breaks_the_format_is_malformed(key, trusted, rewrite):
    """A trusted coordinator's mistake: the signature holds, the content does not."""
    text = rewrite(json.loads(make_manifest().canonical_bytes()))
    task = SignedTask(
        manifest=text,
        signature=base64.b64encode(key.sign(b"enclave federation task manifest v1\x00" + text.encode())).decode(),
        key_id=key_id(key.public_key()),
    )
    assert refusal(task, trusted) == "malformed"


def test_the_checks_run_in_order(key, trusted):
    stranger = generate_signing_key()
    late = ISSUED + timedelta(days=30)
    assert refusal(signed(make_manifest(), stranger), trusted, site="site-z", now=late) == "unknown-key"
    bad = dataclasses.replace(signed(make_manifest(), key), manifest="{}")
    assert refusal(bad, trusted, site="site-z", now=late) == "bad-signature"
    assert refusal(signed(make_manifest(), key), trusted, site="site-z", now=late) == "not-for-this-site"
    assert refusal(signed(make_manifest(), key), trusted, now=late) == "expired"


def test_a_refusal_names_no_key_nonce_or_person(key, trusted):
    manifest = make_manifest()
    task = signed(manifest, key)
    messages = []
    for kwargs in ({"site": "site-z"}, {"now": ISSUED + timedelta(days=9)}):
        with pytest.raises(TaskRefused) as caught:
            check(task, trusted, **kwargs)
        messages.append(str(caught.value))
    with pytest.raises(TaskRefused) as caught:
        check(task, {})
    messages.append(str(caught.value))
    for message in messages:
        for secret in (task.key_id, manifest.nonce, manifest.task_id, manifest.submitter, task.signature):
            assert secret not in message


def test_refusal_reasons_are_a_closed_list():
    assert set(REASONS) == {
        "malformed",
        "unknown-key",
        "bad-signature",
        "not-for-this-site",
        "not-yet-valid",
        "expired",
        "replayed",
    }
    with pytest.raises(ValueError):
        TaskRefused("because")


def test_verify_needs_an_aware_now(key, trusted):
    with pytest.raises(ValueError):
        check(signed(make_manifest(), key), trusted, now=NOW.replace(tzinfo=None))


# --- the replay guard --------------------------------------------------------------------------------------------


def test_the_memory_replay_guard_lets_one_of_many_concurrent_callers_through():
    guard = MemoryReplayGuard()
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    answers: list[bool] = []
    barrier = threading.Barrier(8)

    def claim():
        barrier.wait()
        answers.append(guard.seen("t", "n" * 64, expires))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [False] + [True] * 7


def test_the_memory_replay_guard_forgets_only_what_expired():
    guard = MemoryReplayGuard()
    guard.seen("old", "1" * 64, ISSUED)
    guard.seen("new", "2" * 64, ISSUED + timedelta(days=1))
    guard.forget_expired(ISSUED)
    assert not guard.seen("old", "1" * 64, ISSUED + timedelta(days=2))
    assert guard.seen("new", "3" * 64, ISSUED + timedelta(days=2))


# --- keys --------------------------------------------------------------------------------------------------------


def test_key_id_is_sixteen_hex_digits_of_the_public_key(key):
    ident = key_id(key.public_key())
    assert len(ident) == 16 and int(ident, 16) >= 0
    assert ident == key_id(load_public_key(public_key_pem(key.public_key())))
    assert ident != key_id(generate_signing_key().public_key())


def test_a_signing_key_is_saved_private_and_loads_back(tmp_path, key, trusted):
    path = tmp_path / "keys" / "signing.pem"
    save_signing_key(path, key)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = load_signing_key(path)
    assert check(signed(make_manifest(), loaded), trusted).project == "cardio-outcomes"
    public = tmp_path / "signing.pub.pem"
    save_public_key(public, key.public_key())
    assert key_id(load_public_key(public)) == key_id(key.public_key())


def test_a_signing_key_is_never_read_through_a_link_or_when_others_can_read_it(tmp_path, key):
    path = tmp_path / "signing.pem"
    save_signing_key(path, key)
    link = tmp_path / "link.pem"
    link.symlink_to(path)
    with pytest.raises(InvalidInputError):
        load_signing_key(link)
    os.chmod(path, 0o640)
    with pytest.raises(InvalidInputError) as caught:
        load_signing_key(path)
    assert "BEGIN" not in str(caught.value)


def test_a_key_of_another_type_or_no_key_is_refused(tmp_path):
    other = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "ec.pem"
    path.write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)
    with pytest.raises(InvalidInputError, match="not an Ed25519"):
        load_signing_key(path)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    garbage.chmod(0o600)
    with pytest.raises(InvalidInputError, match="not an unencrypted PEM"):
        load_signing_key(garbage)
    with pytest.raises(InvalidInputError):
        load_public_key("not a key")
