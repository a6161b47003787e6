"""Privacy-preserving linkage across sites (federation/linkage.py): tokens from a shared key, the coordinator's overlap
computed from tokens alone, each patient counted once, and the key file kept private."""

from __future__ import annotations

import dis
import hashlib
import inspect
import os
import pickle
import random

import pytest

from fabric.identifiers.nhs import check_digit
from federation.linkage import (
    LinkageError,
    LinkageKey,
    _checked,
    linkage_token,
    linkage_tokens,
    normalise_identifier,
    overlap,
    overlap_size,
)

pytestmark = pytest.mark.unit

ORDER = ("site-a", "site-b", "site-c")


def nhs_numbers(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    numbers: set[str] = set()
    while len(numbers) < count:
        body = f"{rng.randrange(10**8, 10**9):09d}"
        digit = check_digit(body)
        if digit is not None:
            numbers.add(body + str(digit))
    return sorted(numbers)


def spaced(number: str) -> str:
    return f"{number[:3]} {number[3:6]} {number[6:]}"


@pytest.fixture
def key() -> LinkageKey:
    return LinkageKey.generate()


def test_a_patient_at_several_sites_is_counted_once(key: LinkageKey) -> None:
    people = nhs_numbers(60, seed=1)
    at = {
        "site-a": people[0:30],  # 20..29 also at b, 25..29 also at c
        "site-b": people[20:45],  # 40..44 also at c
        "site-c": [spaced(p) for p in people[25:30] + people[40:60]],  # written the way people write them
    }
    tokens = {site: linkage_tokens((("nhs", n) for n in numbers), key) for site, numbers in at.items()}
    leave_out = overlap(tokens, ORDER)

    assert leave_out["site-a"] == set()  # the first site in the order keeps all its patients
    assert len(leave_out["site-b"]) == 10  # 20..29, kept at site-a
    assert len(leave_out["site-c"]) == 10  # 25..29 (site-a) and 40..44 (site-b)
    kept = {site: tokens[site] - leave_out[site] for site in ORDER}
    counted = [t for site in ORDER for t in kept[site]]
    assert len(counted) == len(set(counted)) == 60  # every person once
    assert overlap_size(tokens) == 15  # 20..29 and 40..44; the people at three sites count once


def test_the_order_decides_who_keeps_the_patient(key: LinkageKey) -> None:
    shared = linkage_tokens([("nhs", nhs_numbers(1, seed=2)[0])], key)
    tokens = {"site-a": shared, "site-b": set(shared)}
    assert overlap(tokens, ("site-b", "site-a")) == {"site-b": set(), "site-a": shared}
    with pytest.raises(LinkageError) as refused:
        overlap(tokens, ("site-a",))
    assert refused.value.reason == "malformed-request"


def test_tokens_are_keyed_and_formatting_free(key: LinkageKey) -> None:
    number = nhs_numbers(1, seed=3)[0]
    token = linkage_token("nhs", number, key)
    assert linkage_token("nhs", spaced(number), key) == token
    assert len(token) == 64 and int(token, 16) >= 0
    assert linkage_token("nhs", number, LinkageKey.generate()) != token  # another key, another token
    assert token != hashlib.sha256(number.encode()).hexdigest()
    assert token != hashlib.sha256(f"nhs:{number}".encode()).hexdigest()  # not a plain hash anyone can compute
    people = nhs_numbers(20, seed=4)
    mine = linkage_tokens([("nhs", p) for p in people], key)
    theirs = linkage_tokens([("nhs", p) for p in people], LinkageKey.generate())
    assert not mine & theirs


def test_the_coordinator_needs_no_key(key: LinkageKey) -> None:
    for function in (overlap, overlap_size):
        parameters = inspect.signature(function).parameters
        assert "key" not in parameters and all("Key" not in str(p.annotation) for p in parameters.values())
    for function in (overlap, overlap_size, _checked):  # nothing on the coordinator's path touches a key or an HMAC
        names = {i.argval for i in dis.get_instructions(function)}
        assert not names & {"LinkageKey", "_secret", "hmac", "linkage_token", "linkage_tokens", "normalise_identifier"}
    # raw identifiers sent by mistake are refused at the coordinator's door, and not echoed back
    number = nhs_numbers(1, seed=5)[0]
    with pytest.raises(LinkageError) as refused:
        overlap({"site-a": {number}}, ORDER)
    assert refused.value.reason == "not-a-token" and number not in str(refused.value)
    with pytest.raises(LinkageError):
        overlap({"site-a": {hashlib.sha256(number.encode()).hexdigest().upper()}}, ORDER)
    with pytest.raises(LinkageError):
        overlap_size({"site-a": "0" * 64})  # one string is not a set of tokens


def test_identifiers_are_normalised_by_their_scheme() -> None:
    number = nhs_numbers(1, seed=6)[0]
    assert normalise_identifier("nhs", spaced(number)) == number
    assert normalise_identifier("nl-bsn", "1112.22.333") == "111222333"
    bad = number[:9] + str((int(number[9]) + 1) % 10)
    with pytest.raises(LinkageError) as refused:
        normalise_identifier("nhs", bad)
    assert refused.value.reason == "bad-identifier" and bad not in str(refused.value)
    for scheme in ("local-mrn", "passport"):
        with pytest.raises(LinkageError) as refused:
            normalise_identifier(scheme, number)
        assert refused.value.reason == "unknown-scheme"
    with pytest.raises(LinkageError) as refused:
        linkage_tokens([("nhs", number), ("nhs", bad), ("nhs", "12")], LinkageKey.generate())
    assert "2 identifier(s)" in str(refused.value) and bad not in str(refused.value)


def test_the_key_file_is_private(tmp_path, key: LinkageKey) -> None:
    path = tmp_path / "federation" / "linkage.key"
    key.write(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    loaded = LinkageKey.load(path)
    number = nhs_numbers(1, seed=7)[0]
    assert linkage_token("nhs", number, loaded) == linkage_token("nhs", number, key)
    assert loaded.fingerprint() == key.fingerprint() != LinkageKey.generate().fingerprint()
    secret_hex = path.read_text().strip().rsplit(":", 1)[1]
    assert secret_hex not in repr(key) and secret_hex not in key.fingerprint()
    with pytest.raises(TypeError):
        pickle.dumps(key)

    os.chmod(path, 0o640)
    with pytest.raises(LinkageError) as refused:
        LinkageKey.load(path)
    assert refused.value.reason == "bad-key" and secret_hex not in str(refused.value)
    os.chmod(path, 0o600)
    if os.geteuid() == 0:  # a key file someone else owns is not this node's
        os.chown(path, 65534, -1)
        with pytest.raises(LinkageError, match="not owned"):
            LinkageKey.load(path)
        os.chown(path, 0, -1)

    link = tmp_path / "link.key"
    link.symlink_to(path)
    with pytest.raises(LinkageError):
        LinkageKey.load(link)

    wrong = tmp_path / "wrong.key"
    wrong.write_text("not a key " + secret_hex + "\n")
    wrong.chmod(0o600)
    with pytest.raises(LinkageError) as refused:
        LinkageKey.load(wrong)
    assert secret_hex not in str(refused.value)
    with pytest.raises(LinkageError):
        LinkageKey.load(tmp_path / "absent.key")
    with pytest.raises(LinkageError):
        LinkageKey(b"short")
