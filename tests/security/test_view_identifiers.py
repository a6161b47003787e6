"""No direct identifier from the raw site exports reaches a project view, in any modality or file name."""

from __future__ import annotations

import stat

import pytest

from tests.view_scan import raw_identifiers, scan_view

pytestmark = pytest.mark.security


@pytest.fixture(scope="module")
def identifiers(cohort):
    ids = raw_identifiers(cohort)
    assert len(ids.nhs_numbers) >= 2 * 200 and ids.mrns and ids.names and ids.birth_dates and ids.postcodes
    assert ids.sample_ids
    return ids


@pytest.mark.parametrize("project", ["cvd-risk", "biomed"])
def test_no_raw_identifier_anywhere_in_the_view(enclave, identifiers, project):
    view = enclave.view(project)
    files = [p for p in view.rglob("*") if p.is_file()]
    kinds = {p.relative_to(view).parts[0] for p in files}
    assert {"clinical", "imaging", "genomics", "MANIFEST.json"} <= kinds
    assert scan_view(view, identifiers) == []


def test_the_scanner_finds_identifiers_when_they_are_there(tmp_path, identifiers):
    """Guard against a scan that cannot fail: plant one of each kind and expect each to be reported."""
    planted = {
        "name": next(iter(identifiers.names)),
        "nhs_number": next(iter(identifiers.nhs_numbers)),
        "mrn": next(iter(identifiers.mrns)),
        "birth_date": next(iter(identifiers.birth_dates)),
        "postcode": next(iter(identifiers.postcodes)),
        "sample_id": next(iter(identifiers.sample_ids)),
    }
    for kind, value in planted.items():
        (tmp_path / f"{kind}.txt").write_text(f"row 17: {value}\n")
    hits = {kind for _path, kind in scan_view(tmp_path, identifiers)}
    assert hits == set(planted)


def test_pseudonym_keys_are_private_and_outside_every_view(enclave):
    secrets = enclave.paths.secrets
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    assert len(list(secrets.glob("project-*.key"))) == 2  # one pseudonym key per project
    keys = list(secrets.glob("*.key"))  # with the audit anchors' key and any release ledger's
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        raw = key.read_bytes()
        for project in ("cvd-risk", "biomed"):
            for path in enclave.view(project).rglob("*"):
                if path.is_file():
                    assert raw not in path.read_bytes()
