"""Clinical writers: the same facts rendered as csv-local and fhir-ndjson, with the contract's units and codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthetic_sites.clinical import CsvLocalWriter, FhirNdjsonWriter, SiteRecords, fhir_patient_id
from synthetic_sites.phenotypes import RESULT_UNITS

pytestmark = pytest.mark.unit


def _records() -> SiteRecords:
    pid = fhir_patient_id(1, "rbh", "RBH0000001")
    ids = {"mrn": "RBH0000001", "patient_id": pid}
    day = np.datetime64("2017-03-04")
    patients = pd.DataFrame(
        [
            {
                **ids,
                "nhs": "9434765919",
                "surname": "O'Brien",
                "forename": "Niamh",
                "dob": np.datetime64("1960-01-02"),
                "male": False,
                "postcode": "SW3 6NP",
                "ethnicity": "White Irish",
                "smoking": "EX",
                "baseline": day,
                "death_date": np.datetime64("2021-05-06"),
            }
        ]
    )
    diagnoses = pd.DataFrame(
        [
            {
                **ids,
                "icd10": "I42.1",
                "description": "Obstructive hypertrophic cardiomyopathy",
                "date": day,
                "category": "problem-list-item",
            },
            {
                **ids,
                "icd10": "I21.4",
                "description": "Acute subendocardial myocardial infarction",
                "date": day + 400,
                "category": "encounter-diagnosis",
            },
        ]
    )
    medications = pd.DataFrame([{**ids, "drug": "bisoprolol", "dose": "5 mg once daily", "start": day}])
    results = pd.DataFrame(
        [
            {**ids, "code": "LDL", "value": 3.0, "date": day},
            {**ids, "code": "HBA1C", "value": 48.0, "date": day},
            {**ids, "code": "LVMASS", "value": 231.0, "date": day},
        ]
    )
    events = pd.DataFrame([{**ids, "event": "MI", "date": day + 400}, {**ids, "event": "CV_DEATH", "date": day + 1524}])
    return SiteRecords(patients, diagnoses, medications, results, events)


def test_csv_local(tmp_path: Path) -> None:
    writer = CsvLocalWriter(tmp_path)
    writer.write(_records(), RESULT_UNITS)
    writer.close()
    assert (tmp_path / "patients.csv").read_text().splitlines() == [
        "MRN,NHS_NO,SURNAME,FORENAME,DOB,SEX,POSTCODE,ETHNIC_GRP,SMOKER",
        "RBH0000001,943 476 5919,O'Brien,Niamh,02/01/1960,F,SW3 6NP,White Irish,EX",
    ]
    assert (tmp_path / "results.csv").read_text().splitlines()[1:] == [
        "RBH0000001,LDL,3.0,mmol/L,04/03/2017",
        "RBH0000001,HBA1C,48,mmol/mol,04/03/2017",
        "RBH0000001,LVMASS,231,g,04/03/2017",
    ]
    assert (tmp_path / "events.csv").read_text().splitlines()[1:] == [
        "RBH0000001,MI,08/04/2018",
        "RBH0000001,CV_DEATH,06/05/2021",
    ]
    diagnoses = pd.read_csv(tmp_path / "diagnoses.csv", dtype=str)
    assert diagnoses["ICD10"].tolist() == ["I42.1", "I21.4"]


def test_fhir_ndjson(tmp_path: Path) -> None:
    writer = FhirNdjsonWriter(tmp_path, "rbh")
    writer.write(_records(), RESULT_UNITS)
    writer.close()
    (patient,) = [json.loads(x) for x in (tmp_path / "Patient.ndjson").read_text().splitlines()]
    assert patient["identifier"] == [
        {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"},
        {"system": "urn:enclave:site:rbh:mrn", "value": "RBH0000001"},
    ]
    assert patient["name"][0] == {"use": "official", "family": "O'Brien", "given": ["Niamh"]}
    assert patient["birthDate"] == "1960-01-02" and patient["gender"] == "female"
    assert patient["deceasedDateTime"] == "2021-05-06"
    assert patient["extension"] == [{"url": "urn:enclave:ethnicity", "valueString": "White Irish"}]
    observations = [json.loads(x) for x in (tmp_path / "Observation.ndjson").read_text().splitlines()]
    by_code = {o["code"]["coding"][0]["code"]: o for o in observations}
    assert by_code["18262-6"]["valueQuantity"]["value"] == pytest.approx(116.0)
    assert by_code["18262-6"]["valueQuantity"]["unit"] == "mg/dL"
    assert by_code["4548-4"]["valueQuantity"]["value"] == pytest.approx(6.5)
    assert by_code["lv-mass"]["code"]["coding"][0]["system"] == "urn:enclave:code"
    assert by_code["72166-2"]["valueCodeableConcept"]["coding"][0]["code"] == "8517006"
    assert all(o["subject"]["reference"] == f"Patient/{patient['id']}" for o in observations)
    conditions = [json.loads(x) for x in (tmp_path / "Condition.ndjson").read_text().splitlines()]
    assert [c["category"][0]["coding"][0]["code"] for c in conditions] == ["problem-list-item", "encounter-diagnosis"]
    assert conditions[1]["onsetDateTime"] == "2018-04-08"
    (med,) = [json.loads(x) for x in (tmp_path / "MedicationStatement.ndjson").read_text().splitlines()]
    assert med["medicationCodeableConcept"]["text"] == "bisoprolol" and med["dosage"][0]["text"] == "5 mg once daily"
    assert med["effectivePeriod"]["start"] == "2017-03-04"
