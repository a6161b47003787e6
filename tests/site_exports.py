"""Test helper for hand-made site exports: what `enclave site add` checks beyond the rows a test cares about (every
clinical table of a csv-local export; real DICOM files in an imaging folder), so a small export is a complete one; and
a small csv-local site of (MRN, identifier) rows, with its imaging folders and linkage table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from synthetic_sites.imaging import CmrStudy, write_cine_study

PATIENTS_HEADER = "MRN,NHS_NO,SURNAME,FORENAME,DOB,SEX,POSTCODE,ETHNIC_GRP,SMOKER"
# csv-local's tables other than patients.csv, with their headers (fabric/clinical/formats.py, CsvLocalReader)
OTHER_CSV_TABLES = {
    "diagnoses.csv": "MRN,ICD10,DIAG_DESC,DIAG_DATE",
    "medications.csv": "MRN,DRUG,DOSE,START_DATE",
    "results.csv": "MRN,TEST_CODE,RESULT,UNITS,RESULT_DATE",
    "events.csv": "MRN,EVENT,EVENT_DATE",
}


def complete_csv_local(clinical: Path) -> None:
    """The tables a csv-local export holds besides patients.csv, with headers and no rows."""
    for name, header in OTHER_CSV_TABLES.items():
        (clinical / name).write_text(header + "\n")


def dicom_study(imaging: Path, mrn: str) -> None:
    """One synthetic cine MR study under imaging/MRN/ (the generator's own writer)."""
    study = CmrStudy(mrn=mrn, patient_name="TEST^Person", birth_date="19800201", sex="F", institution="Test",
                     referring_physician="", accession_number="A1", study_date="20200101", study_time="120000",
                     heart_rate=60, edv_ml=150.0, lvef_pct=60.0, lv_mass_g=120.0)  # fmt: skip
    write_cine_study(imaging, study, mrn, np.random.default_rng(0))


def csv_local_site(
    root: Path,
    site_id: str,
    rows: list[tuple[str, str]],
    scheme: str | None = None,
    linkage: str | None = None,
    mrn_folders=(),
) -> Path:
    """A complete csv-local site export of (MRN, identifier in NHS_NO) rows declaring `scheme` (None: the default),
    with a DICOM study per MRN in `mrn_folders` and, given its CSV text, a linkage table."""
    folder = root / site_id
    (folder / "clinical").mkdir(parents=True, exist_ok=True)
    lines = [PATIENTS_HEADER] + [f"{mrn},{number},Test,Person,01/02/1980,F,AB1 2CD,,N" for mrn, number in rows]
    (folder / "clinical" / "patients.csv").write_text("\n".join(lines) + "\n")
    complete_csv_local(folder / "clinical")  # site add checks the whole export
    datasets = [{"id": f"{site_id}-clinical", "modality": "clinical", "format": "csv-local", "path": "clinical"}]
    for mrn in mrn_folders:
        dicom_study(folder / "imaging", mrn)
    if mrn_folders:
        datasets.append({"id": f"{site_id}-imaging", "modality": "imaging", "format": "dicom", "path": "imaging"})
    manifest = {"id": site_id, "name": site_id.title(), "clinical_format": "csv-local", "datasets": datasets}
    if scheme is not None:
        manifest["identifier_scheme"] = scheme
    if linkage is not None:
        (folder / "linkage.csv").write_text(linkage)
        manifest["linkage"] = "linkage.csv"
    (folder / "site.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder
