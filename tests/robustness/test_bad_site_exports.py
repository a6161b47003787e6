"""Bad site exports: each is refused with a clear message naming the file and the problem, and nothing is half
recorded (the registry transaction rolls back)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fabric.catalogue import add_site
from fabric.consent import import_consent
from fabric.db import Registry
from fabric.errors import FabricError, InvalidInputError, SpecError
from fabric.models import ConsentEvent, Dataset, Site

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
        pytest.raises(FabricError, match=r"consent\.ndjson line 6: missing field 'action'"),
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
