"""Test helper for hand-made site exports: what `enclave site add` checks beyond the rows a test cares about (every
clinical table of a csv-local export; real DICOM files in an imaging folder), so a small export is a complete one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fabric.synthetic.imaging import CmrStudy, write_cine_study

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
