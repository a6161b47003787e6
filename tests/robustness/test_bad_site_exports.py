"""Bad site exports: each is refused with a clear message naming the file and the problem, and nothing is half
recorded (the registry transaction rolls back). `site add` checks the whole export first (issue 16): damage it used to
accept, found only when a project was rebuilt, is refused, and every problem of an export is listed at once."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fabric.catalogue import add_site
from fabric.consent import import_consent
from fabric.models import ConsentEvent, Dataset, Patient, Site
from fabric.site_export import IncompleteExportError
from kernel.db import Registry
from kernel.errors import EnclaveError, InvalidInputError, SpecError
from kernel.models import AuditEvent

pytestmark = pytest.mark.robustness


@pytest.fixture
def registry(tmp_path):
    reg = Registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    yield reg
    reg.close()


def first_site(sites: Path, fmt: str = "csv-local") -> Path:
    return next(
        p for p in sorted(sites.iterdir()) if (p / "site.yaml").exists() and fmt in (p / "site.yaml").read_text()
    )


def register(registry: Registry, folder: Path) -> None:
    with registry.session() as session:
        add_site(session, folder, actor="test")


def count(registry: Registry, model) -> int:
    with registry.session() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize(
    ("manifest", "error", "message"),
    [
        ("id: [unclosed", InvalidInputError, "not valid YAML"),
        ("id: Bad Site\nname: x\nclinical_format: csv-local\ndatasets: []", SpecError, "id: String should match"),
        (
            "id: s\nname: x\nclinical_format: hl7\ndatasets: [{id: a, modality: clinical, format: csv-local, path: c}]",
            SpecError,
            "clinical_format 'hl7'",
        ),
        (
            "id: s\nname: x\nclinical_format: csv-local\n"
            "datasets: [{id: a, modality: imaging, format: vcf, path: imaging}]",
            SpecError,
            "format 'vcf' is not a imaging format",
        ),
        (
            "id: s\nname: x\nclinical_format: csv-local\n"
            "datasets: [{id: a, modality: clinical, format: csv-local, path: ../../etc}]",
            SpecError,
            "stay inside it",
        ),
    ],
)
def test_bad_manifests(registry, tmp_path, manifest, error, message):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "site.yaml").write_text(manifest)
    with pytest.raises(error, match=message) as info:
        register(registry, folder)
    assert "site.yaml" in str(info.value)
    assert count(registry, Site) == 0


def test_truncated_vcf_is_refused_and_nothing_recorded(registry, own_cohort):
    site = first_site(own_cohort)
    vcf = site / "genomics" / f"{site.name}.vcf.gz"
    vcf.write_bytes(vcf.read_bytes()[:300])
    with pytest.raises(InvalidInputError, match=r"\.vcf\.gz: not a readable VCF"):
        register(registry, site)
    assert count(registry, Site) == 0 and count(registry, Dataset) == 0


def test_garbage_clinical_export_is_refused(registry, own_cohort):
    site = first_site(own_cohort)
    (site / "clinical" / "patients.csv").write_bytes(gzip.compress(b"MRN,NHS_NO\n1,2\n"))
    with pytest.raises(InvalidInputError, match=r"patients\.csv"):
        register(registry, site)
    assert count(registry, Site) == 0


def test_missing_sample_manifest_is_named(registry, own_cohort):
    site = first_site(own_cohort)
    (site / "genomics" / "samples.csv").unlink()
    with pytest.raises(InvalidInputError, match=r"samples\.csv: lab sample manifest not found"):
        register(registry, site)


def test_broken_fhir_export_names_the_line(registry, own_cohort):
    site = first_site(own_cohort, "fhir-ndjson")
    patients = site / "clinical" / "Patient.ndjson"
    lines = patients.read_text().splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]
    patients.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInputError, match=r"Patient\.ndjson: line 3 is not JSON"):
        register(registry, site)


def test_bad_consent_line_records_nothing(registry, own_cohort):
    site = first_site(own_cohort)
    register(registry, site)
    consent = site / "consent.ndjson"
    lines = consent.read_text().splitlines()
    consent.write_text("\n".join([*lines[:5], '{"nhs_number": "1", "date": "2020-01-01"}', *lines[5:]]) + "\n")
    with (
        pytest.raises(EnclaveError, match=r"consent\.ndjson line 6: missing field 'action'"),
        registry.session() as session,
    ):
        import_consent(session, consent, source=site.name, actor="test")
    assert count(registry, ConsentEvent) == 0


def test_invalid_nhs_numbers_are_counted_not_linked(registry, own_cohort):
    site = first_site(own_cohort)
    patients = site / "clinical" / "patients.csv"
    lines = patients.read_text().splitlines()
    fields = lines[1].split(",")
    fields[1] = "123 456 7890"
    lines[1] = ",".join(fields)
    patients.write_text("\n".join(lines) + "\n")
    with registry.session() as session:
        _site, summaries = add_site(session, site, actor="test")
    clinical = next(s for s in summaries if s.dataset.endswith("clinical"))
    assert clinical.invalid_nhs_numbers == 1


# ------------------------------------------------------------------------------------------------ whole-export check
# Damage that registration used to accept (it read only the patients table, the imaging folder names and the genomic
# headers), so the error showed only when a project using the site was rebuilt.


def _a_patient_folder(site: Path) -> Path:
    return sorted(p for p in (site / "imaging").iterdir() if p.is_dir())[0]


def _a_dicom(site: Path, n: int = 0) -> Path:
    return sorted(_a_patient_folder(site).rglob("*.dcm"))[n]


def _empty_patient_folder(site: Path) -> None:
    folder = _a_patient_folder(site)
    shutil.rmtree(folder)
    folder.mkdir()


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


DAMAGE = {
    "missing clinical table": (lambda s: (s / "clinical" / "diagnoses.csv").unlink(),
                               r"diagnoses\.csv: missing from the site's clinical export"),
    "empty clinical table": (lambda s: (s / "clinical" / "events.csv").write_bytes(b""),
                             r"events\.csv: not a readable CSV \(EmptyDataError\)"),
    "damaged clinical values": (lambda s: (s / "clinical" / "results.csv").write_text("MRN,TEST_CODE,RESULT,UNITS,"
                                "RESULT_DATE\nX1,LDL,high,mmol/L,01/01/2020\n"), r"results\.csv: 1 RESULT value"),
    "empty imaging export": (lambda s: [shutil.rmtree(p) for p in (s / "imaging").iterdir()],
                             r"imaging: no patient folders"),
    "empty patient imaging folder": (_empty_patient_folder, r"imaging/\w{3}…\w{2}: no DICOM files"),
    "truncated DICOM": (lambda s: _truncate(_a_dicom(s), 2000), r"\.dcm: truncated pixel data"),
    "DICOM header only": (lambda s: _truncate(_a_dicom(s), 700), r"\.dcm: no pixel data"),
    "not DICOM": (lambda s: _a_dicom(s).write_bytes(b"not an image" * 20), r"\.dcm: not a DICOM file"),
    "truncated BAM": (lambda s: _truncate(sorted((s / "genomics" / "bam").glob("*.bam"))[0], 5000),
                      r"bam/\w{3}…\w{2}\.bam: truncated \(no BGZF end-of-file block\)"),
    "no BAMs": (lambda s: [p.unlink() for p in (s / "genomics" / "bam").iterdir()], r"bam: no BAM files"),
}  # fmt: skip


@pytest.mark.parametrize("damage", DAMAGE)
def test_an_export_registration_used_to_accept_is_refused_naming_the_file(registry, own_cohort, damage):
    site = first_site(own_cohort)
    spoil, message = DAMAGE[damage]
    spoil(site)
    with pytest.raises(IncompleteExportError, match=message) as info:
        register(registry, site)
    assert "nothing was registered" in str(info.value)
    assert count(registry, Site) == 0 and count(registry, Dataset) == 0 and count(registry, Patient) == 0


def test_every_problem_is_listed_at_once_without_identifiers_and_nothing_is_recorded(registry, own_cohort):
    site = first_site(own_cohort)
    patients = site / "clinical" / "patients.csv"
    patients.write_text(patients.read_text().replace("NHS_NO", "NHS", 1))  # a missing patient column
    (site / "clinical" / "medications.csv").unlink()
    folder = _a_patient_folder(site)
    _truncate(_a_dicom(site, 1), 2000)
    vcf = site / "genomics" / f"{site.name}.vcf.gz"
    _truncate(vcf, vcf.stat().st_size - 5000)  # the records cut short
    (site / "genomics" / "samples.csv").write_text("sample,nhs\n")
    consent = site / "consent.ndjson"
    lines = consent.read_text().splitlines()
    consent.write_text("\n".join([*lines[:2], lines[2].replace('"action"', '"act"'), *lines[3:]]) + "\n")
    with pytest.raises(IncompleteExportError) as info:
        register(registry, site)
    text = str(info.value)
    for expected in (
        "patients.csv: missing column(s) NHS_NO",
        "medications.csv: missing from the site's clinical export",
        ".dcm: truncated pixel data",
        "truncated: no BGZF end-of-file block",
        "samples.csv: needs columns sample_id,nhs_number",
        "consent.ndjson line 3: missing field 'action'",
    ):
        assert expected in text, text
    assert len(info.value.problems) == 6, text
    assert folder.name not in text  # the MRN the folder is named by
    with registry.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0
    assert count(registry, Site) == 0 and count(registry, Dataset) == 0 and count(registry, Patient) == 0


def test_a_complete_export_is_registered_after_its_check(registry, own_cohort):
    site = first_site(own_cohort, "fhir-ndjson")
    register(registry, site)
    assert count(registry, Dataset) == 4
