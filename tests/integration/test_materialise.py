"""Materialising project views from the synthetic cohort through the real registry, consent and de-identifiers:
who is in a view, how patients link across modalities, and that a build is published whole or not at all."""

from __future__ import annotations

import json
import stat
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import pysam
import pytest
from sqlalchemy import select

from fabric.catalogue import find_patient
from fabric.materialise.view import MANIFEST, materialise_project, verify_view
from fabric.models import Patient, PatientRecord
from fabric.pseudonyms import load_or_create_key, pseudonym
from kernel.errors import EnclaveError
from tests.provisioned import Enclave, provision
from tests.view_scan import view_tables
from workbench import open_project, view_contract

pytestmark = pytest.mark.integration


def consent_in_force(sites: Path) -> dict[str, dict]:
    """Independent reading of the consent exports: NHS number -> latest event on or before today."""
    latest: dict[str, dict] = {}
    for path in sites.glob("*/consent.ndjson"):
        for line in path.read_text().splitlines():
            e = json.loads(line)
            nhs = e["nhs_number"].replace(" ", "")
            if date.fromisoformat(e["date"]) <= date.today() and (
                nhs not in latest or e["date"] >= latest[nhs]["date"]
            ):
                latest[nhs] = e
    return latest


def covers_cvd(event: dict | None) -> bool:
    if event is None or event["action"] == "withdraw":
        return False
    known_modifiers = {"NPU", "NCU", "PUB"}
    return set(event["purposes"]) & {"GRU", "HMB", "DS-CVD"} and set(event["modifiers"]) <= known_modifiers


def pseudonyms_by_nhs(env: Enclave, project: str) -> dict[str, str]:
    key = load_or_create_key(env.paths.project_key(project))
    with env.registry.session() as session:
        return {nhs: pseudonym(key, pid) for pid, nhs in session.execute(select(Patient.id, Patient.nhs_number))}


def vcf_samples(view: Path) -> set[str]:
    samples: set[str] = set()
    for vcf in (view / "genomics").glob("*.vcf.gz"):
        with pysam.VariantFile(str(vcf)) as fh:
            samples |= set(fh.header.samples)
    return samples


def dicom_patients(view: Path) -> dict[str, set[str]]:
    """Folder pseudonym -> PatientIDs found in its DICOM headers."""
    found: dict[str, set[str]] = {}
    for path in (view / "imaging").rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found.setdefault(path.relative_to(view / "imaging").parts[0], set()).add(str(ds.PatientID))
    return found


def test_view_holds_exactly_the_consented_patients(enclave, cohort):
    view = enclave.view("cvd-risk")
    in_force = consent_in_force(cohort)
    names = pseudonyms_by_nhs(enclave, "cvd-risk")
    with enclave.registry.session() as session:
        indexed = {nhs for (nhs,) in session.execute(select(Patient.nhs_number).join(PatientRecord).distinct())}
    expected = {names[nhs] for nhs in indexed if covers_cvd(in_force.get(nhs))}
    excluded = {names[nhs] for nhs in indexed} - expected
    assert excluded, "the cohort should include patients whose consent does not cover DS-CVD"
    tables = view_tables(view)
    present = set(tables["patients"]["pseudonym"]) | vcf_samples(view) | set(dicom_patients(view))
    assert present <= expected
    assert set(tables["patients"]["pseudonym"]) == expected & set(tables["patients"]["pseudonym"])
    assert not present & excluded
    manifest = json.loads((view / MANIFEST).read_text())
    assert manifest["patients"] == len(expected)


def test_same_patient_same_pseudonym_in_every_modality_with_their_own_data(enclave, cohort):
    view = enclave.view("cvd-risk")
    dicoms = dicom_patients(view)
    assert dicoms, "some consented patients should have imaging"
    for folder, ids in dicoms.items():
        assert ids == {folder}
    # A patient with all three modalities: their pseudonym names their DICOM folder, their VCF column and their
    # clinical rows, and each holds *their* data (pixels and genotypes equal to the raw source for their MRN/sample).
    tables = view_tables(view)
    samples = vcf_samples(view)
    both = sorted(set(dicoms) & samples & set(tables["patients"]["pseudonym"]))
    assert both
    target = both[0]
    names = pseudonyms_by_nhs(enclave, "cvd-risk")
    nhs = next(n for n, p in names.items() if p == target)
    with enclave.registry.session() as session:
        patient = find_patient(session, nhs)
        records = {(r.dataset_id, r.local_id) for r in patient.records}
    imaging_mrn = next(local for ds, local in records if ds.endswith("imaging"))
    raw_study = next(p for p in cohort.glob(f"*/imaging/{imaging_mrn}") if p.is_dir())
    raw = sorted(raw_study.rglob("*.dcm"))
    raw_pixels = sorted(pydicom.dcmread(p).PixelData for p in raw)
    view_pixels = sorted(pydicom.dcmread(p).PixelData for p in (view / "imaging" / target).rglob("*.dcm"))
    assert raw_pixels == view_pixels

    sample = next(local for ds, local in records if ds.endswith("variants"))
    site = next(ds for ds, local in records if ds.endswith("variants")).removesuffix("-variants")
    with (
        pysam.VariantFile(str(cohort / site / "genomics" / f"{site}.vcf.gz")) as src,
        pysam.VariantFile(str(view / "genomics" / f"{site}.vcf.gz")) as dst,
    ):
        raw_gt = {(r.chrom, r.pos, r.ref, r.alts): r.samples[sample]["GT"] for r in src}
        view_gt = {(r.chrom, r.pos, r.ref, r.alts): r.samples[target]["GT"] for r in dst}
    # Variants no included patient carries are dropped from the view; every kept one has this patient's call.
    assert view_gt and set(view_gt) <= set(raw_gt)
    assert all(raw_gt[v] == gt for v, gt in view_gt.items())
    assert not any(a for v, gt in raw_gt.items() if v not in view_gt for a in gt if a)


def test_pseudonyms_differ_across_projects(enclave):
    cvd = set(view_tables(enclave.view("cvd-risk"))["patients"]["pseudonym"])
    biomed = set(view_tables(enclave.view("biomed"))["patients"]["pseudonym"])
    assert cvd and biomed
    assert not cvd & biomed


def test_clinical_tables_are_harmonised_across_site_formats(enclave):
    tables = view_tables(enclave.view("cvd-risk"))
    patients, measurements = tables["patients"], tables["measurements"]
    assert patients["site"].nunique() == 3
    ldl = measurements[measurements["measure"] == "ldl"].merge(
        patients[["pseudonym", "site"]].drop_duplicates("pseudonym")
    )
    by_site = ldl.groupby("site_x" if "site_x" in ldl else "site")["value"].median()
    # FHIR sites report LDL in mg/dL; after harmonisation every site's median is in mmol/L range.
    assert ((by_site > 1.5) & (by_site < 6)).all(), by_site
    assert set(measurements["unit"][measurements["measure"] == "ldl"]) == {"mmol/L"}
    assert set(tables["outcomes"]["event"]) <= {"mi", "stroke", "hf_admission", "revascularisation", "cv_death"}
    assert not tables["medications"]["drug_class"].isna().any()


def test_manifest_lists_every_file_with_its_hash_and_the_view_is_read_only(enclave):
    view = enclave.view("cvd-risk")
    assert verify_view(view) == []
    assert not (view.stat().st_mode & 0o222)
    some_file = next((view / "clinical").glob("*.parquet"))
    assert not (some_file.stat().st_mode & 0o222)


def test_the_readers_open_a_real_build_through_the_view_contract(enclave, monkeypatch):
    """What the builder published is what the researcher's library opens: by the project's name under the home,
    every listed file present, the contract's folders and modes, every patient named by the contract's pattern."""
    monkeypatch.setenv(view_contract.ENV_HOME, str(enclave.paths.home))
    opened = open_project("cvd-risk")
    assert opened.root == enclave.view("cvd-risk").resolve() == view_contract.project_view("cvd-risk").resolve()
    manifest = opened.manifest
    assert set(manifest) == set(view_contract.Manifest.__annotations__)
    assert set(manifest["modalities"]) == set(view_contract.MODALITIES)
    assert set(view_contract.COMPUTE_LIMITS) <= set(manifest["compute"])
    assert {p.name for p in opened.root.iterdir() if p.is_dir()} <= set(view_contract.MODALITIES)
    listed = dict(view_contract.listed_files(manifest))
    assert len(listed) == len(manifest["files"]) and all(isinstance(size, int) for size in listed.values())
    assert opened.pseudonyms and all(view_contract.is_pseudonym(p) for p in opened.pseudonyms)
    assert len(opened.pseudonyms) <= manifest["patients"]
    assert set(opened.pseudonyms) <= set(dicom_patients(opened.root)) | vcf_samples(opened.root) | set(
        opened.clinical("patients", ["pseudonym"]).compute()["pseudonym"]
    )
    assert stat.S_IMODE(opened.root.stat().st_mode) == view_contract.VIEW_DIR_MODE
    some_file = opened.root / next(iter(listed))
    assert stat.S_IMODE(some_file.stat().st_mode) == view_contract.VIEW_FILE_MODE


def test_withdrawal_then_rematerialisation_removes_the_patient_everywhere(tmp_path, cohort):
    env = provision(tmp_path / "home", cohort, {"cvd-risk": "DS-CVD"})
    view = env.view("cvd-risk")
    dicoms, samples = dicom_patients(view), vcf_samples(view)
    target = sorted(set(dicoms) & samples)[0]
    names = pseudonyms_by_nhs(env, "cvd-risk")
    nhs = next(n for n, p in names.items() if p == target)
    before = json.loads((view / MANIFEST).read_text())["patients"]

    from click.testing import CliRunner

    from provisioning.cli import main

    result = CliRunner().invoke(
        main, ["--home", str(env.paths.home), "consent", "withdraw", nhs, "--rematerialise", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert nhs not in result.output
    new_view = env.view("cvd-risk")
    assert new_view != view and not view.exists(), "the old build must be gone"
    assert json.loads((new_view / MANIFEST).read_text())["patients"] == before - 1
    assert target not in dicom_patients(new_view) and target not in vcf_samples(new_view)
    for path in new_view.rglob("*"):
        if path.is_file():
            from tests.view_scan import decoded

            assert target.encode() not in decoded(path), path
    assert verify_view(new_view) == []
    env.registry.close()


def test_a_failed_build_leaves_the_published_view_untouched(tmp_path, own_cohort):
    env = provision(tmp_path / "home", own_cohort, {"cvd-risk": "DS-CVD"})
    published = env.view("cvd-risk")
    mrn_folder = next(p for p in sorted(own_cohort.glob("*/imaging/*")) if p.name in {r for r in _consented_mrns(env)})
    victim = sorted(mrn_folder.rglob("*.dcm"))[0]
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.raises(EnclaveError) as info:
        materialise_project(env.registry, env.paths, "cvd-risk", actor="test", progress=False)
    assert mrn_folder.name not in str(info.value), "errors must not quote MRNs"
    assert env.view("cvd-risk") == published
    assert verify_view(published) == []
    assert [p.name for p in (env.paths.project_dir("cvd-risk") / "views").iterdir()] == [published.name]
    env.registry.close()


def _consented_mrns(env: Enclave) -> set[str]:
    view = env.view("cvd-risk")
    present = set(dicom_patients(view))
    names = pseudonyms_by_nhs(env, "cvd-risk")
    nhs_in_view = {n for n, p in names.items() if p in present}
    with env.registry.session() as session:
        rows = session.execute(
            select(PatientRecord.local_id, Patient.nhs_number)
            .join(Patient)
            .where(PatientRecord.dataset_id.like("%imaging"))
        )
        return {mrn for mrn, nhs in rows if nhs in nhs_in_view}


def test_planted_genetic_effect_is_visible_in_the_view(enclave):
    """The view keeps signal: LDL is higher in carriers of planted LDLR variants (read straight from the files)."""
    view = enclave.view("cvd-risk")
    tables = view_tables(view)
    ldl = tables["measurements"].query("measure == 'ldl'").groupby("pseudonym")["value"].mean()
    carriers: set[str] = set()
    genotyped: set[str] = set()
    for vcf in (view / "genomics").glob("*.vcf.gz"):
        with pysam.VariantFile(str(vcf)) as fh:
            genotyped |= set(fh.header.samples)
            for rec in fh.fetch("chr19", 11_089_000, 11_134_000):
                if "Pathogenic" not in str(rec.info.get("CLNSIG", "")):
                    continue
                for name, call in rec.samples.items():
                    if any(a for a in call["GT"] if a):
                        carriers.add(name)
    assert carriers and genotyped - carriers
    carrier_ldl = ldl[ldl.index.isin(carriers)]
    other_ldl = ldl[ldl.index.isin(genotyped - carriers)]
    assert not carrier_ldl.empty and not other_ldl.empty
    assert np.mean(carrier_ldl) > np.mean(other_ldl) + 1.0


def sites_in(vcf: Path) -> set[tuple]:
    with pysam.VariantFile(str(vcf)) as fh:
        return {(r.chrom, r.pos, r.ref, r.alts) for r in fh}


def test_a_variant_carried_at_one_site_keeps_its_record_at_every_site(enclave, cohort):
    """Allele frequencies across sites need every site's hom-ref calls: a site is dropped only when no included
    patient at any site carries it (so a withdrawn patient's private variant still disappears)."""
    view = enclave.view("cvd-risk")
    per_file = {p.name: sites_in(p) for p in (view / "genomics").glob("*.vcf.gz")}
    raw = {p.name: sites_in(p) for p in cohort.glob("*/genomics/*.vcf.gz") if p.name in per_file}
    assert len(per_file) == 3
    carried = set().union(*per_file.values())
    for name, kept in per_file.items():
        assert kept == carried & raw[name]
    assert carried < set().union(*raw.values())
