"""Keyed pseudonyms and UID re-keying."""

import stat

import pytest

from fabric.pseudonyms import load_or_create_key, new_key, pseudonym, rekey_uid

pytestmark = pytest.mark.unit


def test_pseudonym_is_stable_per_key_and_differs_across_keys():
    a, b = new_key(), new_key()
    assert pseudonym(a, "EP-1") == pseudonym(a, "EP-1")
    assert pseudonym(a, "EP-1") != pseudonym(a, "EP-2")
    assert pseudonym(a, "EP-1") != pseudonym(b, "EP-1")
    assert pseudonym(a, "EP-1").startswith("P-") and len(pseudonym(a, "EP-1")) == 18


def test_rekeyed_uids_are_valid_dicom_uids():
    key = new_key()
    uid = rekey_uid(key, "1.2.826.0.1.3680043.8.498.1")
    assert uid.startswith("2.25.") and len(uid) <= 64
    assert all(part.isdigit() and (part == "0" or not part.startswith("0")) for part in uid.split("."))
    assert uid == rekey_uid(key, "1.2.826.0.1.3680043.8.498.1")
    assert uid != rekey_uid(new_key(), "1.2.826.0.1.3680043.8.498.1")


def test_key_file_is_private_and_reused(tmp_path):
    path = tmp_path / "secrets" / "project-x.key"
    key = load_or_create_key(path)
    assert load_or_create_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_damaged_key_is_refused(tmp_path):
    path = tmp_path / "k.key"
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="damaged"):
        load_or_create_key(path)


def test_errors_survive_the_trip_back_from_a_worker_process():
    import pickle

    from kernel.errors import InvalidInputError

    error = pickle.loads(pickle.dumps(InvalidInputError("/x/y.dcm", "truncated")))
    assert str(error) == "/x/y.dcm: truncated" and error.problem == "truncated"
