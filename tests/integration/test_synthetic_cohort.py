"""The synthetic cohort end to end: the custodian-zone layout, every file parsing with the real tools, linkage
by NHS number, the planted genotype→phenotype effects, image-derived LV function agreeing with the clinical
results, determinism and argument validation."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import cyvcf2
import numpy as np
import pandas as pd
import pydicom
import pysam
import pytest
import yaml

from kernel.errors import EnclaveError
from synthetic_sites import CohortSummary, generate_cohort, imaging
from synthetic_sites.clinical import OBSERVATION_CODES
from synthetic_sites.genomics import GENE_REGIONS
from synthetic_sites.identifiers import is_valid_nhs_number

pytestmark = pytest.mark.integration

CSV_COLUMNS = {
    "patients": "MRN,NHS_NO,SURNAME,FORENAME,DOB,SEX,POSTCODE,ETHNIC_GRP,SMOKER",
    "diagnoses": "MRN,ICD10,DIAG_DESC,DIAG_DATE",
    "medications": "MRN,DRUG,DOSE,START_DATE",
    "results": "MRN,TEST_CODE,RESULT,UNITS,RESULT_DATE",
    "events": "MRN,EVENT,EVENT_DATE",
}
LOCAL_CODE = {code: local for local, (_, code, _, _) in OBSERVATION_CODES.items()}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CohortSummary]:
    out = tmp_path_factory.mktemp("sites")
    summary = generate_cohort(out, patients=400, sites=2, seed=1, progress=False)
    return out, summary


def _fhir(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _clinical(site_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(patients: mrn, nhs; results: nhs, code, value, date) in csv-local units, whatever the site's format."""
    fmt = yaml.safe_load((site_dir / "site.yaml").read_text())["clinical_format"]
    if fmt == "csv-local":
        patients = pd.read_csv(site_dir / "clinical/patients.csv", dtype=str)
        patients = pd.DataFrame({"mrn": patients["MRN"], "nhs": patients["NHS_NO"].str.replace(" ", "")})
        r = pd.read_csv(site_dir / "clinical/results.csv", dtype={"MRN": str})
        results = pd.DataFrame(
            {
                "nhs": r["MRN"].map(patients.set_index("mrn")["nhs"]),
                "code": r["TEST_CODE"],
                "value": r["RESULT"].astype(float),
                "date": pd.to_datetime(r["RESULT_DATE"], format="%d/%m/%Y"),
            }
        )
        return patients, results
    rows = []
    for p in _fhir(site_dir / "clinical/Patient.ndjson"):
        ids = {i["system"]: i["value"] for i in p["identifier"]}
        rows.append(
            {
                "id": p["id"],
                "nhs": ids["https://fhir.nhs.uk/Id/nhs-number"],
                "mrn": ids[f"urn:enclave:site:{site_dir.name}:mrn"],
            }
        )
    patients = pd.DataFrame(rows)
    nhs_of = patients.set_index("id")["nhs"]
    obs = []
    for o in _fhir(site_dir / "clinical/Observation.ndjson"):
        code = o["code"]["coding"][0]["code"]
        if code not in LOCAL_CODE:
            continue
        local = LOCAL_CODE[code]
        value = o["valueQuantity"]["value"]
        value = value / 38.67 if local == "LDL" else (10.929 * (value - 2.15) if local == "HBA1C" else value)
        obs.append(
            {
                "nhs": nhs_of[o["subject"]["reference"].split("/")[1]],
                "code": local,
                "value": value,
                "date": pd.Timestamp(o["effectiveDateTime"]),
            }
        )
    return patients[["mrn", "nhs"]], pd.DataFrame(obs)


def _carriers(site_dir: Path, gene: str) -> set[str]:
    """NHS numbers of sequenced patients carrying a pathogenic variant in `gene`, found from VCF + samples.csv."""
    samples = pd.read_csv(site_dir / "genomics/samples.csv", dtype=str).set_index("sample_id")["nhs_number"]
    vcf = cyvcf2.VCF(str(site_dir / f"genomics/{site_dir.name}.vcf.gz"))
    chrom, start, end = GENE_REGIONS[gene]
    carriers: set[str] = set()
    for record in vcf(f"{chrom}:{start}-{end}"):
        if record.INFO.get("CLNSIG") == "Pathogenic" and record.INFO.get("GENE") == gene:
            alt = np.asarray(record.gt_types) == 1  # cyvcf2: 0 hom-ref, 1 het, 2 missing, 3 hom-alt
            carriers |= {samples[s] for s in np.asarray(vcf.samples)[alt | (np.asarray(record.gt_types) == 3)]}
    return carriers


def _sites(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


def test_layout_and_site_manifest(cohort: tuple[Path, CohortSummary]) -> None:
    out, summary = cohort
    sites = _sites(out)
    assert [s.name for s in sites] == ["bhc", "rbh"]
    formats = {}
    for site in sites:
        manifest = yaml.safe_load((site / "site.yaml").read_text())
        sid = site.name
        assert re.fullmatch(r"[a-z0-9-]+", manifest["id"]) and manifest["id"] == sid
        assert manifest["name"].endswith("(synthetic)")
        formats[sid] = manifest["clinical_format"]
        assert manifest["datasets"] == [
            {
                "id": f"{sid}-clinical",
                "modality": "clinical",
                "format": manifest["clinical_format"],
                "path": "clinical",
            },
            {"id": f"{sid}-imaging", "modality": "imaging", "format": "dicom", "path": "imaging"},
            {"id": f"{sid}-variants", "modality": "genomics", "format": "vcf", "path": f"genomics/{sid}.vcf.gz"},
            {"id": f"{sid}-reads", "modality": "genomics", "format": "bam", "path": "genomics/bam"},
        ]
        for d in manifest["datasets"]:
            assert (site / d["path"]).exists()
        assert (site / f"genomics/{sid}.vcf.gz.tbi").exists()
        assert (site / "genomics/samples.csv").exists() and (site / "consent.ndjson").exists()
    assert formats == {"rbh": "csv-local", "bhc": "fhir-ndjson"}
    assert sorted(p.name for p in (out / "rbh/clinical").iterdir()) == sorted(f"{n}.csv" for n in CSV_COLUMNS)
    assert sorted(p.name for p in (out / "bhc/clinical").iterdir()) == sorted(
        f"{r}.ndjson" for r in ("Patient", "Condition", "MedicationStatement", "Observation")
    )
    files = [p for p in out.rglob("*") if p.is_file()]
    assert summary.files == len(files) and summary.bytes == sum(p.stat().st_size for p in files)
    assert summary.patients == 400 and summary.sites == 2
    assert 60 <= summary.imaging_studies <= 140 and summary.dicom_files == 30 * summary.imaging_studies
    assert 200 <= summary.sequenced_samples <= 280 and summary.bam_files == 10
    assert "400 patients" in str(summary)


def test_csv_local_files_follow_the_contract(cohort: tuple[Path, CohortSummary]) -> None:
    out, _ = cohort
    clinical = out / "rbh/clinical"
    tables = {}
    for name, header in CSV_COLUMNS.items():
        assert (clinical / f"{name}.csv").read_text().splitlines()[0] == header
        tables[name] = pd.read_csv(clinical / f"{name}.csv", dtype=str, keep_default_na=False)
    patients = tables["patients"]
    assert patients["MRN"].is_unique and patients["NHS_NO"].is_unique
    assert patients["NHS_NO"].str.fullmatch(r"\d{3} \d{3} \d{4}").all()
    assert patients["NHS_NO"].map(is_valid_nhs_number).all()
    assert set(patients["SEX"]) == {"M", "F"} and set(patients["SMOKER"]) <= {"N", "EX", "Y"}
    pd.to_datetime(patients["DOB"], format="%d/%m/%Y")
    mrns = set(patients["MRN"])
    for name, date_col in (
        ("diagnoses", "DIAG_DATE"),
        ("medications", "START_DATE"),
        ("results", "RESULT_DATE"),
        ("events", "EVENT_DATE"),
    ):
        table = tables[name]
        assert set(table["MRN"]) <= mrns, name
        pd.to_datetime(table[date_col], format="%d/%m/%Y")
    assert tables["diagnoses"]["ICD10"].str.fullmatch(r"[A-Z]\d\d(\.\d)?").all()
    assert {"I10", "E11.9", "I42.1", "I42.0"} <= set(tables["diagnoses"]["ICD10"])
    assert {"atorvastatin", "bisoprolol", "ramipril", "aspirin"} <= set(tables["medications"]["DRUG"])
    results = tables["results"]
    assert set(results["TEST_CODE"]) == {
        "LDL",
        "TROPT",
        "NTPROBNP",
        "HBA1C",
        "QTC",
        "QRS",
        "SBP",
        "DBP",
        "LVEF",
        "LVMASS",
    }
    units = results.groupby("TEST_CODE")["UNITS"].agg(set)
    assert units["LDL"] == {"mmol/L"} and units["HBA1C"] == {"mmol/mol"} and units["LVMASS"] == {"g"}
    results["RESULT"].astype(float)
    assert set(tables["events"]["EVENT"]) <= {"MI", "STROKE", "HF_ADMISSION", "REVASC", "CV_DEATH"}


def test_fhir_files_follow_the_contract(cohort: tuple[Path, CohortSummary]) -> None:
    out, _ = cohort
    clinical = out / "bhc/clinical"
    patients = _fhir(clinical / "Patient.ndjson")
    ids = set()
    for p in patients:
        assert p["resourceType"] == "Patient"
        ids.add(p["id"])
        systems = {i["system"]: i["value"] for i in p["identifier"]}
        nhs = systems["https://fhir.nhs.uk/Id/nhs-number"]
        assert re.fullmatch(r"\d{10}", nhs) and is_valid_nhs_number(nhs)
        assert re.fullmatch(r"BHC\d{7}", systems["urn:enclave:site:bhc:mrn"])
        assert p["name"][0]["family"] and p["name"][0]["given"][0]
        assert p["gender"] in {"male", "female"} and re.fullmatch(r"\d{4}-\d\d-\d\d", p["birthDate"])
        assert re.fullmatch(r"[A-Z]{1,2}\d{1,2} \d[A-Z]{2}", p["address"][0]["postalCode"])
        assert p["extension"][0]["url"] == "urn:enclave:ethnicity" and p["extension"][0]["valueString"]
    assert any("deceasedDateTime" in p for p in patients)
    # Patients live near their home hospital; the few seen at a second site keep their own postcode.
    local = [p["address"][0]["postalCode"].startswith("EC") for p in patients]
    assert sum(local) > 0.9 * len(local)
    for resource_type in ("Condition", "MedicationStatement", "Observation"):
        resources = _fhir(clinical / f"{resource_type}.ndjson")
        assert resources and all(r["resourceType"] == resource_type for r in resources)
        assert all(r["subject"]["reference"].removeprefix("Patient/") in ids for r in resources)
        assert len({r["id"] for r in resources}) == len(resources)
    conditions = _fhir(clinical / "Condition.ndjson")
    categories = {c["category"][0]["coding"][0]["code"] for c in conditions}
    assert categories == {"problem-list-item", "encounter-diagnosis"}
    assert all(c["code"]["coding"][0]["system"] == "http://hl7.org/fhir/sid/icd-10" for c in conditions)
    followup = {
        c["code"]["coding"][0]["code"][:3]
        for c in conditions
        if c["category"][0]["coding"][0]["code"] == "encounter-diagnosis"
    }
    assert followup <= {"I21", "I63", "I50", "Z95"}
    observations = _fhir(clinical / "Observation.ndjson")
    units = {(o["code"]["coding"][0]["code"], o.get("valueQuantity", {}).get("unit")) for o in observations}
    assert ("18262-6", "mg/dL") in units and ("4548-4", "%") in units and ("lv-mass", "g") in units
    assert ("8480-6", "mm[Hg]") in units
    smoking = [o for o in observations if o["code"]["coding"][0]["code"] == "72166-2"]
    assert len(smoking) == len(patients)
    assert {o["valueCodeableConcept"]["coding"][0]["code"] for o in smoking} <= {"266919005", "8517006", "77176002"}
    medications = _fhir(clinical / "MedicationStatement.ndjson")
    assert all(m["medicationCodeableConcept"]["text"] and m["dosage"][0]["text"] for m in medications)


def test_genomics_files_parse_and_link(cohort: tuple[Path, CohortSummary]) -> None:
    out, _ = cohort
    for site in _sites(out):
        samples = pd.read_csv(site / "genomics/samples.csv", dtype=str)
        assert list(samples.columns) == ["sample_id", "nhs_number"]
        assert samples["sample_id"].str.fullmatch(rf"{site.name.upper()}-S\d{{6}}").all()
        clinical_patients, _ = _clinical(site)
        assert set(samples["nhs_number"]) <= set(clinical_patients["nhs"])
        vcf = cyvcf2.VCF(str(site / f"genomics/{site.name}.vcf.gz"))
        assert vcf.samples == samples["sample_id"].tolist()
        assert sum(1 for _ in vcf) == 3000
        chrom, start, end = GENE_REGIONS["MYH7"]
        assert len(list(cyvcf2.VCF(str(site / f"genomics/{site.name}.vcf.gz"))(f"{chrom}:{start}-{end}"))) > 10
        bams = sorted((site / "genomics/bam").glob("*.bam"))
        assert len(bams) == 5
        for bam_path in bams:
            assert Path(f"{bam_path}.bai").exists()
            with pysam.AlignmentFile(str(bam_path)) as bam:
                (rg,) = bam.header.to_dict()["RG"]
                assert rg["SM"] == bam_path.stem and rg["SM"] in set(samples["sample_id"])
                assert rg["LB"] and rg["PL"] and bam.header.to_dict()["HD"]["SO"] == "coordinate"
                assert bam.count("chr19", 11_101_000, 11_107_000) > 1000


def test_dicom_files_parse_and_link(cohort: tuple[Path, CohortSummary]) -> None:
    out, _ = cohort
    for site in _sites(out):
        clinical_patients, _ = _clinical(site)
        mrns = set(clinical_patients["mrn"])
        paths = sorted((site / "imaging").rglob("*.dcm"))
        assert paths
        study_dirs = {p.parent.parent for p in paths}
        for i, path in enumerate(paths):
            ds = pydicom.dcmread(path, stop_before_pixels=i % 7 != 0)
            mrn, study_uid, series_uid, name = path.relative_to(site / "imaging").parts
            assert ds.PatientID == mrn and mrn in mrns
            assert ds.StudyInstanceUID == study_uid and ds.SeriesInstanceUID == series_uid
            assert name == f"{ds.InstanceNumber:04d}.dcm"
            assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4" and ds.Modality == "MR"
            assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
            assert ds.InstitutionName and str(ds.PatientName) and ds.PatientBirthDate and ds.AccessionNumber
            if i % 7 == 0:
                assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
        accession = [
            pydicom.dcmread(next(d.rglob("0001.dcm")), stop_before_pixels=True).AccessionNumber for d in study_dirs
        ]
        assert len(set(accession)) == len(accession)


def test_multi_site_patients_share_nhs_number_with_own_mrns(cohort: tuple[Path, CohortSummary]) -> None:
    out, summary = cohort
    rbh, _ = _clinical(out / "rbh")
    bhc, _ = _clinical(out / "bhc")
    both = rbh.merge(bhc, on="nhs", suffixes=("_rbh", "_bhc"))
    assert len(both) == summary.multi_site_patients > 5
    assert (both["mrn_rbh"] != both["mrn_bhc"]).all()
    consented = {json.loads(line)["nhs_number"] for line in (out / "bhc/consent.ndjson").read_text().splitlines()}
    assert set(bhc["nhs"]) == consented


def test_planted_effects_are_detectable_from_the_exports(cohort: tuple[Path, CohortSummary]) -> None:
    out, _ = cohort
    results = pd.concat([_clinical(site)[1] for site in _sites(out)])
    first = results.sort_values("date").groupby(["nhs", "code"])["value"].first().unstack()
    ldlr = set().union(*(_carriers(site, "LDLR") for site in _sites(out)))
    ttn = set().union(*(_carriers(site, "TTN") for site in _sites(out)))
    hcm = set().union(*(_carriers(site, g) for site in _sites(out) for g in ("MYH7", "MYBPC3")))
    assert len(ldlr) >= 5 and len(ttn) >= 4 and len(hcm) >= 3
    is_ldlr = first.index.isin(ldlr)
    assert first.loc[is_ldlr, "LDL"].mean() > first.loc[~is_ldlr, "LDL"].mean() + 1.5
    is_ttn = first.index.isin(ttn)
    assert first.loc[is_ttn, "LVEF"].mean() < first.loc[~is_ttn, "LVEF"].mean() - 12
    assert first.loc[is_ttn, "NTPROBNP"].median() > 3 * first.loc[~is_ttn, "NTPROBNP"].median()
    is_hcm = first.index.isin(hcm)
    assert first.loc[is_hcm, "LVMASS"].mean() > first.loc[~is_hcm, "LVMASS"].mean() + 40


def test_image_derived_lv_function_matches_clinical_results(cohort: tuple[Path, CohortSummary]) -> None:
    out, _ = cohort
    checked = 0
    for site in _sites(out):
        patients, results = _clinical(site)
        nhs_of = patients.set_index("mrn")["nhs"]
        clinical = results.groupby(["nhs", "code"])["value"].first().unstack()
        for study in sorted((site / "imaging").glob("*/*"))[:6]:
            blood: dict[float, int] = {}
            myo_ed = 0
            datasets = [pydicom.dcmread(p) for p in sorted(study.rglob("*.dcm"))]
            ds0 = datasets[0]
            voxel_ml = float(ds0.PixelSpacing[0]) * float(ds0.PixelSpacing[1]) * float(ds0.SpacingBetweenSlices) / 1000
            for ds in datasets:
                pixels = ds.pixel_array.astype(float)
                phase = float(ds.TriggerTime)
                blood[phase] = blood.get(phase, 0) + int((pixels > (imaging.BLOOD + imaging.MYOCARDIUM) / 2).sum())
                if phase == 0:
                    # Contrast is monotonic (chest < myocardium < blood): myocardium is what lies above the
                    # chest/myocardium midpoint but below the blood threshold.
                    epi = int((pixels > (imaging.TISSUE + imaging.MYOCARDIUM) / 2).sum())
                    myo_ed += epi - int((pixels > (imaging.BLOOD + imaging.MYOCARDIUM) / 2).sum())
            edv, esv = max(blood.values()) * voxel_ml, min(blood.values()) * voxel_ml
            lvef_image = 100 * (edv - esv) / edv
            expected = clinical.loc[nhs_of[study.parent.name]]
            assert lvef_image == pytest.approx(expected["LVEF"], abs=3), study
            assert myo_ed * voxel_ml * imaging.MYOCARDIAL_DENSITY == pytest.approx(expected["LVMASS"], rel=0.08)
            checked += 1
    assert checked >= 8


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_output_is_deterministic(tmp_path: Path) -> None:
    for name, seed in (("a", 9), ("b", 9), ("c", 10)):
        generate_cohort(tmp_path / name, patients=80, sites=3, seed=seed, progress=False, variants=200)
    a, b, c = (_hashes(tmp_path / n) for n in "abc")
    assert a == b
    assert any(name.endswith(".dcm") for name in a) and any(name.endswith(".bam") for name in a)
    assert a != c
    assert a["rbh/clinical/patients.csv"] != c.get("rbh/clinical/patients.csv")


def test_arguments_are_validated(tmp_path: Path) -> None:
    for kwargs in (
        {"patients": 0},
        {"patients": True},
        {"patients": 2.5},
        {"sites": 0},
        {"sites": 27},
        {"seed": -1},
        {"variants": 3},
    ):
        with pytest.raises(EnclaveError):
            generate_cohort(tmp_path / "x", progress=False, **kwargs)  # type: ignore[arg-type]
    (tmp_path / "y" / "rbh").mkdir(parents=True)
    (tmp_path / "y" / "rbh" / "keep.txt").write_text("real data")
    with pytest.raises(EnclaveError, match="not empty"):
        generate_cohort(tmp_path / "y", patients=5, sites=1, progress=False)
    assert (tmp_path / "y" / "rbh" / "keep.txt").read_text() == "real data"


def test_tiny_cohorts_still_write_every_site(tmp_path: Path) -> None:
    summary = generate_cohort(tmp_path, patients=1, sites=3, seed=0, progress=False, variants=50)
    for site in _sites(tmp_path):
        assert (site / "site.yaml").exists() and (site / f"genomics/{site.name}.vcf.gz.tbi").exists()
        with pysam.VariantFile(str(site / f"genomics/{site.name}.vcf.gz")) as vcf:
            assert len(list(vcf)) == 50
    assert summary.patients == 1 and len(_sites(tmp_path)) == 3
