"""A site with only its own MRNs (identifier_scheme local-mrn, fabric/linkage.py): its MRNs are scoped to it (equal
MRNs at two sites are two people), its linkage table links an MRN to another registered site's MRN or to a national
identifier (checked by its scheme; a new patient carries one no patient has yet, so later sites of that scheme link),
an MRN with no row is a patient of its own; every bad row is listed with the export's other problems (file, line,
what is wrong, never the MRN or identifier) and nothing is registered; a registered MRN is not relinked; consent is
keyed by MRN; a patient is found by a site's MRN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from fabric.catalogue import SiteManifest, add_site, find_patient
from fabric.consent import import_consent
from fabric.linkage import read_linkage
from fabric.models import ConsentEvent, Patient, PatientIdentifier, PatientRecord, Site, SiteMrn
from fabric.site_export import IncompleteExportError, read_sample_manifest
from kernel.db import Registry
from kernel.errors import EnclaveError, NotFoundError, SpecError
from kernel.models import AuditEvent
from tests.site_exports import csv_local_site

pytestmark = pytest.mark.unit

NHS_1, NHS_2, NHS_BAD = "4010232137", "9434765919", "4010232138"  # the last fails its check digit
BSN = "123456721"


def site_export(root: Path, site_id: str, rows: list[tuple[str, str]], scheme: str | None = "local-mrn",
                linkage: str | None = None, mrn_folders=()) -> Path:  # fmt: skip
    """A local-MRN site by default: csv_local_site with its linkage table."""
    return csv_local_site(root, site_id, rows, scheme, linkage, mrn_folders)


@pytest.fixture
def registry(tmp_path):
    reg = Registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    yield reg
    reg.close()


def add(registry: Registry, folder: Path):
    with registry.session() as session:
        return add_site(session, folder, actor="test")[1]


def patient_of(registry: Registry, site_id: str, mrn: str) -> str:
    with registry.session() as session:
        return find_patient(session, mrn, site=site_id).id


def test_equal_mrns_at_two_local_mrn_sites_are_two_patients(registry, tmp_path):
    summaries = add(registry, site_export(tmp_path, "ams", [("M1", ""), ("M2", "")], mrn_folders=["M1", "M9"]))
    clinical, imaging = summaries
    assert (clinical.linked, clinical.new_patients, clinical.unlinked, clinical.through_linkage) == (2, 2, 0, 0)
    # an imaging folder is the same MRN's patient; one with no clinical record is still a patient of the site
    assert (imaging.linked, imaging.new_patients, imaging.unlinked) == (2, 1, 0)
    (other,) = add(registry, site_export(tmp_path, "rot", [("M1", "")]))
    assert other.new_patients == 1
    assert patient_of(registry, "ams", "M1") != patient_of(registry, "rot", "M1")
    with registry.session() as session:
        assert session.get(Site, "ams").identifier_scheme == "local-mrn"
        assert session.scalar(select(func.count()).select_from(SiteMrn)) == 4
        assert session.scalar(select(func.count()).select_from(PatientIdentifier)) == 0
        assert session.scalars(select(Patient.nhs_number).where(Patient.nhs_number.is_not(None))).all() == []
    again = add(registry, tmp_path / "ams")  # re-adding changes nothing
    assert [s.new_patients for s in again] == [0, 0]


def test_linkage_rows_link_to_another_sites_mrn_and_to_national_identifiers(registry, tmp_path):
    add(registry, site_export(tmp_path, "leeds", [("N1", NHS_1), ("N2", "")], scheme=None))
    table = (
        "mrn,site,site_mrn,scheme,identifier\n"
        "A1,leeds,N1,,\n"
        f"A2,,,nhs,{NHS_2[:3]} {NHS_2[3:6]} {NHS_2[6:]}\n"  # written with spaces, checked and compacted
        f"A4,,,nl-bsn,{BSN[:4]}.{BSN[4:6]}.{BSN[6:]}\n"
        "A5,leeds,N1,,\n"  # two MRNs of one person at this site
    )
    rows = [("A1", ""), ("A2", ""), ("A3", ""), ("A4", ""), ("A5", "")]
    (summary,) = add(registry, site_export(tmp_path, "ams", rows, linkage=table))
    assert (summary.linked, summary.new_patients, summary.through_linkage) == (5, 3, 4)
    leeds_n1 = patient_of(registry, "leeds", "N1")
    assert patient_of(registry, "ams", "A1") == patient_of(registry, "ams", "A5") == leeds_n1
    assert patient_of(registry, "ams", "A3") != leeds_n1
    # the national identifiers are the new patients', so later sites of those schemes link to them
    (york,) = add(registry, site_export(tmp_path, "york", [("Y1", NHS_2)], scheme=None))
    (leiden,) = add(registry, site_export(tmp_path, "leiden", [("L1", BSN)], scheme="nl-bsn"))
    assert york.new_patients == leiden.new_patients == 0
    assert patient_of(registry, "york", "Y1") == patient_of(registry, "ams", "A2")
    assert patient_of(registry, "leiden", "L1") == patient_of(registry, "ams", "A4")
    with registry.session() as session:
        assert session.get(Patient, patient_of(registry, "ams", "A2")).nhs_number == NHS_2
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "site.add")).all()[1]
        assert event.target == "ams" and event.detail["linkage_mrns"] == 4
        register = session.scalars(select(AuditEvent).where(AuditEvent.target == "ams-clinical")).one()
        assert register.detail["through_linkage"] == 4 and register.detail["identifier_scheme"] == "local-mrn"


def test_every_bad_row_is_listed_with_the_exports_other_problems_and_nothing_is_registered(registry, tmp_path):
    add(registry, site_export(tmp_path, "leeds", [("N1", NHS_1), ("N2", NHS_2)], scheme=None))
    table = (
        "mrn,site,site_mrn,scheme,identifier\n"
        "SECRETMRN1,nowhere-site,N1,,\n"  # line 2: an unknown site
        "SECRETMRN2,leeds,SECRETOTHER,,\n"  # line 3: no such MRN at leeds
        f"SECRETMRN3,,,nhs,{NHS_BAD}\n"  # line 4: a failing check digit
        "SECRETMRN4,leeds,N1,,\n"  # line 5
        f"SECRETMRN4,,,nhs,{NHS_2}\n"  # line 6: the same MRN, another patient
        f"SECRETMRN5,,,{NHS_2},{NHS_1}\n"  # line 7: a shifted column, an unknown scheme
        f",,,nhs,{NHS_1}\n"  # line 8: no MRN
        "SECRETMRN6,ams,SECRETMRN1,,\n"  # line 9: this site itself
        f"SECRETMRN7,leeds,N2,nhs,{NHS_2}\n"  # line 10: both forms
        "SECRETMRN8,,,,\n"  # line 11: nothing
    )
    folder = site_export(tmp_path, "ams", [("SECRETMRN1", "")], linkage=table)
    (folder / "clinical" / "events.csv").unlink()  # one of the export's other problems
    with pytest.raises(IncompleteExportError) as info:
        add(registry, folder)
    message = str(info.value)
    linkage = folder / "linkage.csv"
    expected = [
        f"{linkage} line 2: names a site that is not registered (registered: leeds)",
        f"{linkage} line 3: no patient of site leeds has that MRN",
        f"{linkage} line 4: identifier is not a valid NHS number",
        f"{linkage} line 6: maps the MRN of line 5 to another patient",
        f"{linkage} line 7: unknown identifier scheme (known: nhs,",
        f"{linkage} line 8: no MRN",
        f"{linkage} line 9: names this site itself",
        f"{linkage} line 10: fill either site,site_mrn or scheme,identifier, not both",
        f"{linkage} line 11: links the MRN to nothing",
        "events.csv: missing from the site's clinical export",
    ]
    for line in expected:
        assert line in message
    assert "SECRET" not in message and NHS_BAD not in message and NHS_2 not in message and "nowhere" not in message
    with registry.session() as session:
        assert session.get(Site, "ams") is None
        assert session.scalar(select(func.count()).select_from(SiteMrn)) == 0
        assert session.scalar(select(func.count()).select_from(Patient)) == 2


def test_a_table_without_its_header_is_refused_without_repeating_its_first_row(tmp_path):
    path = tmp_path / "linkage.csv"
    path.write_text("SECRETMRN,leeds,SECRETOTHER\n")
    rows, problems = read_linkage(path)
    assert rows == [] and problems == [
        f"{path}: a linkage table's header is mrn,site,site_mrn or mrn,scheme,identifier (or all five)"
    ]
    assert read_linkage(tmp_path / "missing.csv")[1] == [
        f"{tmp_path / 'missing.csv'}: linkage table not found (site.yaml names it)"
    ]
    path.write_text("mrn,scheme,identifier\nA1,nhs,9434765919,extra\n")
    assert read_linkage(path)[1] == [f"{path} line 2: more values than the header has columns"]
    path.write_bytes(b"mrn,site,site_mrn\n\xff\xfeA1,leeds,N1\n")
    assert read_linkage(path)[1] == [f"{path}: not a readable CSV (UnicodeDecodeError)"]
    path.unlink()
    path.mkdir()
    assert read_linkage(path)[1] == [f"{path}: cannot be read (Is a directory)"]


def test_a_registered_mrn_is_not_relinked(registry, tmp_path):
    add(registry, site_export(tmp_path, "leeds", [("N1", NHS_1)], scheme=None))
    folder = site_export(tmp_path, "ams", [("A1", ""), ("A2", "")], linkage="mrn,site,site_mrn\nA1,leeds,N1\n")
    add(registry, folder)
    own = patient_of(registry, "ams", "A2")
    (folder / "linkage.csv").write_text("mrn,site,site_mrn\nA1,leeds,N1\nA2,leeds,N1\n")
    with pytest.raises(IncompleteExportError, match="line 3: the MRN is registered to another patient already"):
        add(registry, folder)
    assert patient_of(registry, "ams", "A2") == own


def test_the_manifest_declares_a_linkage_table_only_for_a_local_mrn_site(tmp_path):
    folder = site_export(tmp_path, "leeds", [("N1", NHS_1)], scheme="nhs", linkage="mrn,site,site_mrn\n")
    with pytest.raises(SpecError, match="linkage is for a site of identifier_scheme local-mrn"):
        SiteManifest.load(folder / "site.yaml")
    folder = site_export(tmp_path, "ams", [("A1", "")])
    manifest = yaml.safe_load((folder / "site.yaml").read_text()) | {"linkage": "../elsewhere.csv"}
    (folder / "site.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(SpecError, match="linkage must be relative to the site folder"):
        SiteManifest.load(folder / "site.yaml")
    manifest["linkage"] = "linkage.csv"  # named, not there: an export problem
    (folder / "site.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(IncompleteExportError, match="linkage table not found"):
        add_site(None, folder, actor="test")  # type: ignore[arg-type]  # refused before the registry is touched


def test_consent_of_a_local_mrn_site_is_keyed_by_its_mrns(registry, tmp_path):
    add(registry, site_export(tmp_path, "leeds", [("N1", NHS_1)], scheme=None))
    folder = site_export(tmp_path, "ams", [("A1", ""), ("A2", "")], linkage="mrn,site,site_mrn\nA1,leeds,N1\n")
    add(registry, folder)
    grant = {"date": "2021-03-04", "action": "grant", "purposes": ["GRU"]}
    path = folder / "consent.ndjson"
    path.write_text("".join(json.dumps({"mrn": m, **grant}) + "\n" for m in (" A1", "A2", "A9")))
    with registry.session() as session:
        summary = import_consent(session, path, source="ams", actor="test")
        assert (summary.recorded, summary.unknown_patients) == (2, 1)
        owners = set(session.scalars(select(ConsentEvent.patient_id)))
    assert owners == {patient_of(registry, "leeds", "N1"), patient_of(registry, "ams", "A2")}
    path.write_text(json.dumps({"nhs_number": NHS_1, **grant}) + "\n")
    with (
        registry.session() as session,
        pytest.raises(EnclaveError, match=r"consent.ndjson line 1: missing field 'mrn'"),
    ):
        import_consent(session, path, source="ams", actor="test")
    # and the whole-export check reads it the same way
    with pytest.raises(IncompleteExportError, match="missing field 'mrn'"):
        add(registry, folder)


def test_a_patient_is_found_by_a_sites_mrn_and_the_error_never_repeats_it(registry, tmp_path):
    add(registry, site_export(tmp_path, "leeds", [("N1", NHS_1)], scheme=None, mrn_folders=["N1"]))
    add(registry, site_export(tmp_path, "ams", [("A1", "")], linkage="mrn,site,site_mrn\nA1,leeds,N1\n"))
    with registry.session() as session:
        assert find_patient(session, " A1 ", site="ams").id == find_patient(session, NHS_1).id
        assert find_patient(session, "N1", site="leeds").id == find_patient(session, NHS_1).id
        with pytest.raises(NotFoundError) as info:
            find_patient(session, "SECRETMRN", site="ams")
        assert "SECRET" not in str(info.value)
        with pytest.raises(NotFoundError, match="no site 'nowhere'"):
            find_patient(session, "A1", site="nowhere")
        records = session.scalars(select(PatientRecord.local_id).where(PatientRecord.dataset_id == "ams-clinical"))
        assert list(records) == ["A1"]


def test_a_local_mrn_sites_sample_manifest_maps_samples_to_mrns(tmp_path):
    path = tmp_path / "samples.csv"
    path.write_text("sample_id,mrn\nS1,A1\n")
    assert read_sample_manifest(path, "local-mrn") == {"S1": "A1"}
    with pytest.raises(EnclaveError, match="needs columns sample_id,nhs_number"):
        read_sample_manifest(path)
