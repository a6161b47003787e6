"""Patients link across sites by the identifier scheme each site declares in site.yaml: the same person at two
sites of one scheme is one patient however the number is written, an invalid number is counted and not linked,
schemes never link to each other, and NHS sites (the default) link by NHS number as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy import select

from fabric.catalogue import add_site, find_patient
from fabric.consent import import_consent
from fabric.identifiers.schemes import SCHEMES
from fabric.models import ConsentEvent, Patient, PatientIdentifier, PatientRecord, Site
from kernel.db import Registry, make_engine, upgrade
from kernel.errors import EnclaveError
from tests.site_exports import csv_local_site

pytestmark = pytest.mark.unit

# synthetic numbers made by each scheme's algorithm (tests/unit/test_identifier_schemes.py checks them)
BSN_A, BSN_B = "123456721", "111222333"
PESEL = "92071504321"
NHS = "4010232137"


site_export = csv_local_site  # a site declaring a scheme's identifiers in NHS_NO


@pytest.fixture
def registry(tmp_path):
    reg = Registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    yield reg
    reg.close()


def add(registry: Registry, folder: Path):
    with registry.session() as session:
        return add_site(session, folder, actor="test")[1]


def patients_by_local_id(registry: Registry) -> dict[str, str]:
    with registry.session() as session:
        return dict(session.execute(select(PatientRecord.local_id, PatientRecord.patient_id)).all())


def test_two_sites_of_one_scheme_link_the_same_person_however_it_is_written(registry, tmp_path):
    add(registry, site_export(tmp_path, "leiden", [("L1", "1234.56.721"), ("L2", BSN_B)], "nl-bsn"))
    (summary,) = add(registry, site_export(tmp_path, "utrecht", [("U1", "123 456 721"), ("U2", "9")], "nl-bsn"))
    assert (summary.linked, summary.new_patients, summary.invalid_identifiers) == (1, 0, 1)
    assert summary.invalid_nhs_numbers == 0  # not an NHS site
    by_mrn = patients_by_local_id(registry)
    assert by_mrn["L1"] == by_mrn["U1"] != by_mrn["L2"]
    assert "U2" not in by_mrn
    with registry.session() as session:
        stored = dict(session.execute(select(PatientIdentifier.value, PatientIdentifier.scheme)).all())
        assert stored == {BSN_A: "nl-bsn", BSN_B: "nl-bsn"}
        assert session.get(Patient, by_mrn["L1"]).nhs_number is None
        assert session.get(Site, "utrecht").identifier_scheme == "nl-bsn"
        assert find_patient(session, "1234 56 721").id == by_mrn["L1"]


def fhir_site(root: Path, site_id: str, patients: list[tuple[str, str, str]], scheme: str) -> Path:
    """A site with a fhir-ndjson clinical export of (MRN, identifier system, identifier) Patients."""
    folder = root / site_id
    (folder / "clinical").mkdir(parents=True)
    lines = [
        json.dumps(
            {
                "resourceType": "Patient",
                "id": mrn,
                "identifier": [
                    {"system": f"urn:enclave:site:{site_id}:mrn", "value": mrn},
                    {"system": system, "value": value},
                ],
                "name": [{"family": "Test", "given": ["Person"]}],
                "birthDate": "1980-02-01",
                "gender": "female",
            }
        )
        for mrn, system, value in patients
    ]
    (folder / "clinical" / "Patient.ndjson").write_text("\n".join(lines) + "\n")
    for resource in ("Observation", "Condition", "MedicationStatement"):  # site add checks the whole export
        (folder / "clinical" / f"{resource}.ndjson").write_text("")
    datasets = [{"id": f"{site_id}-clinical", "modality": "clinical", "format": "fhir-ndjson", "path": "clinical"}]
    manifest = {"id": site_id, "name": site_id.title(), "clinical_format": "fhir-ndjson", "datasets": datasets}
    manifest["identifier_scheme"] = scheme
    (folder / "site.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def test_fhir_sites_carry_the_identifier_under_the_schemes_system(registry, tmp_path):
    official, enclaves = SCHEMES["nl-bsn"].fhir_systems
    add(registry, site_export(tmp_path, "leiden", [("L1", BSN_A)], "nl-bsn"))
    (summary,) = add(
        registry, fhir_site(tmp_path, "nijmegen", [("F1", official, "1234 56 721"), ("F2", enclaves, BSN_B)], "nl-bsn")
    )
    assert (summary.linked, summary.new_patients) == (2, 1)
    by_mrn = patients_by_local_id(registry)
    assert by_mrn["L1"] == by_mrn["F1"]
    # an identifier under another scheme's system is read, then refused by this site's scheme
    (summary,) = add(registry, fhir_site(tmp_path, "ghent", [("G1", official, BSN_A)], "be-national-number"))
    assert summary.invalid_identifiers == 1 and summary.linked == 0


def test_imaging_folders_resolve_through_the_sites_clinical_records(registry, tmp_path):
    summaries = add(registry, site_export(tmp_path, "krakow", [("K1", PESEL)], "pl-pesel", mrn_folders=["K1", "K9"]))
    imaging = next(s for s in summaries if s.dataset == "krakow-imaging")
    assert (imaging.linked, imaging.unlinked, imaging.new_patients) == (1, 1, 0)
    with registry.session() as session:
        owners = set(session.scalars(select(PatientRecord.patient_id)))
    assert len(owners) == 1


def test_schemes_never_link_to_each_other(registry, tmp_path):
    add(registry, site_export(tmp_path, "gdansk", [("G1", PESEL)], "pl-pesel"))
    # the same eleven digits at a Belgian site are another number (and fail the Belgian check)
    (summary,) = add(registry, site_export(tmp_path, "gent", [("B1", PESEL)], "be-national-number"))
    assert summary.invalid_identifiers == 1 and summary.linked == 0
    add(registry, site_export(tmp_path, "leeds", [("N1", NHS)], None))
    by_mrn = patients_by_local_id(registry)
    assert by_mrn["G1"] != by_mrn["N1"]


def test_nhs_is_the_default_and_links_as_before(registry, tmp_path):
    add(registry, site_export(tmp_path, "leeds", [("N1", "401 023 2137"), ("N2", "401 023 2138")], None))
    (summary,) = add(registry, site_export(tmp_path, "york", [("Y1", NHS)], "nhs"))
    assert summary.new_patients == 0 and summary.linked == 1
    by_mrn = patients_by_local_id(registry)
    assert by_mrn["N1"] == by_mrn["Y1"]
    with registry.session() as session:
        assert session.get(Site, "leeds").identifier_scheme == "nhs"
        assert session.get(Patient, by_mrn["N1"]).nhs_number == NHS
        assert session.scalar(select(sa.func.count()).select_from(PatientIdentifier)) == 0
        assert find_patient(session, "401 023 2137").id == by_mrn["N1"]
    leeds = add(registry, tmp_path / "leeds")[0]
    assert leeds.invalid_nhs_numbers == leeds.invalid_identifiers == 1


def test_an_unknown_scheme_is_refused_naming_the_known_ones(registry, tmp_path):
    with pytest.raises(EnclaveError, match=r"unknown identifier scheme 'us-ssn'.*nl-bsn"):
        add(registry, site_export(tmp_path, "boston", [("B1", "078-05-1120")], "us-ssn"))


def test_a_registered_site_cannot_change_its_scheme(registry, tmp_path):
    folder = site_export(tmp_path, "leiden", [("L1", BSN_A)], "nl-bsn")
    add(registry, folder)
    manifest = (folder / "site.yaml").read_text().replace("nl-bsn", "be-national-number")
    (folder / "site.yaml").write_text(manifest)
    with pytest.raises(EnclaveError, match="registered with identifier scheme 'nl-bsn'"):
        add(registry, folder)


def test_the_migration_keeps_existing_patients_and_relaxes_the_nhs_number(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    upgrade(url, "0006")
    engine = make_engine(url)
    with engine.begin() as db:
        db.execute(sa.text("INSERT INTO sites VALUES ('s', 'S', 'csv-local', '/s', '2026-01-01 00:00:00')"))
        db.execute(
            sa.text("INSERT INTO datasets VALUES ('d', 's', 'clinical', 'csv-local', '/s', 'x', 1, 1, '2026-01-01')")
        )
        db.execute(sa.text(f"INSERT INTO patients VALUES ('EP-1', '{NHS}', '2026-01-01 00:00:00')"))
        db.execute(sa.text("INSERT INTO patient_records (patient_id, dataset_id, local_id) VALUES ('EP-1', 'd', 'M1')"))
    engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as db:
        assert db.execute(sa.text("SELECT identifier_scheme FROM sites")).scalar_one() == "nhs"
        assert db.execute(sa.text("SELECT nhs_number FROM patients")).scalar_one() == NHS
        assert db.execute(sa.text("SELECT patient_id FROM patient_records")).scalar_one() == "EP-1"
        db.execute(sa.text("INSERT INTO patients VALUES ('EP-2', NULL, '2026-01-01 00:00:00')"))
        assert db.execute(sa.text("PRAGMA foreign_key_check")).all() == []
    engine.dispose()


def consent_file(folder: Path, lines: list[dict]) -> Path:
    path = folder / "consent.ndjson"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_consent_of_a_non_nhs_site_finds_its_patients_by_the_sites_scheme(registry, tmp_path):
    folder = site_export(tmp_path, "leiden", [("L1", BSN_A)], "nl-bsn")
    add(registry, folder)
    grant = {"date": "2021-03-04", "action": "grant", "purposes": ["GRU"]}
    path = consent_file(folder, [{"identifier": "1234.56.721", **grant}, {"identifier": BSN_B, **grant}])
    with registry.session() as session:
        summary = import_consent(session, path, source="leiden", actor="test")
        assert (summary.recorded, summary.unknown_patients) == (1, 1)
        (event,) = session.scalars(select(ConsentEvent)).all()
        assert event.patient_id == patients_by_local_id(registry)["L1"]
    bad = consent_file(folder, [{"identifier": BSN_A[:-1] + "0", **grant}])
    with registry.session() as session, pytest.raises(EnclaveError, match="not a valid Burgerservicenummer") as info:
        import_consent(session, bad, source="leiden", actor="test")
    assert BSN_A[:-1] not in str(info.value)
