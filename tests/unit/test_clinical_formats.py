"""Both site formats read into the one harmonised schema, with units converted; bad exports fail clearly."""

import json
from datetime import date

import pandas as pd
import pytest

from fabric.clinical import open_site_clinical
from fabric.clinical.schema import MEASURE_UNITS, SOURCE_COLUMNS
from kernel.errors import EnclaveError, InvalidInputError

pytestmark = pytest.mark.unit


def table(reader, name) -> pd.DataFrame:
    chunks = list(reader.iter_table(name))
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=SOURCE_COLUMNS[name])


@pytest.fixture
def csv_site(tmp_path):
    root = tmp_path / "clinical"
    root.mkdir()
    (root / "patients.csv").write_text(
        "MRN,NHS_NO,SURNAME,FORENAME,DOB,SEX,POSTCODE,ETHNIC_GRP,SMOKER\n"
        "M001,943 476 5919,Smith,Ann,04/07/1956,F,SW3 6NP,White British,EX\n"
        "M002,401 023 2137,Jones,Bob,31/12/1970,M,CB2 0QQ,,N\n"
    )
    (root / "diagnoses.csv").write_text("MRN,ICD10,DIAG_DESC,DIAG_DATE\nM001,i21.4,NSTEMI,02/03/2019\n")
    (root / "medications.csv").write_text("MRN,DRUG,DOSE,START_DATE\nM001,Atorvastatin,80 mg,03/03/2019\n")
    (root / "results.csv").write_text(
        "MRN,TEST_CODE,RESULT,UNITS,RESULT_DATE\nM001,LDL,4.2,mmol/L,02/03/2019\nM002,HBA1C,48,mmol/mol,05/05/2020\n"
    )
    (root / "events.csv").write_text("MRN,EVENT,EVENT_DATE\nM001,MI,01/02/2022\n")
    return root


def ndjson(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def subject(pid):
    return {"reference": f"Patient/{pid}"}


def coding(system, code, display=None):
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return {"coding": [c]}


@pytest.fixture
def fhir_site(tmp_path):
    root = tmp_path / "fhir"
    root.mkdir()
    ndjson(
        root / "Patient.ndjson",
        [
            {
                "resourceType": "Patient",
                "id": "p1",
                "identifier": [
                    {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"},
                    {"system": "urn:enclave:site:leeds:mrn", "value": "L-9"},
                ],
                "name": [{"family": "Smith", "given": ["Ann"]}],
                "birthDate": "1956-07-04",
                "gender": "female",
                "address": [{"postalCode": "LS1 3EX"}],
                "deceasedDateTime": "2023-01-09",
                "extension": [{"url": "urn:enclave:ethnicity", "valueString": "Mixed"}],
            }
        ],
    )
    ndjson(
        root / "Condition.ndjson",
        [
            {
                "resourceType": "Condition",
                "subject": subject("p1"),
                "code": coding("http://hl7.org/fhir/sid/icd-10", "I42.1", "Hypertrophic cardiomyopathy"),
                "category": [coding("x", "problem-list-item")],
                "onsetDateTime": "2018-05-01",
            },
            {
                "resourceType": "Condition",
                "subject": subject("p1"),
                "code": coding("http://hl7.org/fhir/sid/icd-10", "I50.0"),
                "category": [coding("x", "encounter-diagnosis")],
                "onsetDateTime": "2021-11-30",
            },
        ],
    )
    ndjson(
        root / "MedicationStatement.ndjson",
        [
            {
                "resourceType": "MedicationStatement",
                "subject": subject("p1"),
                "medicationCodeableConcept": {"text": "Bisoprolol"},
                "dosage": [{"text": "5 mg once daily"}],
                "effectivePeriod": {"start": "2018-05-02"},
            }
        ],
    )
    ndjson(
        root / "Observation.ndjson",
        [
            {
                "resourceType": "Observation",
                "subject": subject("p1"),
                "code": coding("http://loinc.org", "18262-6"),
                "valueQuantity": {"value": 162.4, "unit": "mg/dL"},
                "effectiveDateTime": "2018-05-01",
            },
            {
                "resourceType": "Observation",
                "subject": subject("p1"),
                "code": coding("http://loinc.org", "4548-4"),
                "valueQuantity": {"value": 6.5, "unit": "%"},
                "effectiveDateTime": "2018-05-01",
            },
            {
                "resourceType": "Observation",
                "subject": subject("p1"),
                "code": coding("http://loinc.org", "72166-2"),
                "valueCodeableConcept": coding("http://snomed.info/sct", "77176002"),
                "effectiveDateTime": "2018-05-01",
            },
        ],
    )
    return root


def test_csv_local_reads_into_the_harmonised_schema(csv_site):
    reader = open_site_clinical(csv_site, "csv-local", "rbh")
    patients = table(reader, "patients")
    assert list(patients.columns) == SOURCE_COLUMNS["patients"]
    assert patients["nhs_number"].tolist() == ["9434765919", "4010232137"]
    assert patients["birth_date"].tolist() == [date(1956, 7, 4), date(1970, 12, 31)]
    assert patients["smoking"].tolist() == ["ex", "never"]
    assert table(reader, "diagnoses")["icd10"].tolist() == ["I21.4"]
    assert table(reader, "medications")["drug"].tolist() == ["atorvastatin"]
    measurements = table(reader, "measurements")
    assert set(measurements["measure"]) == {"ldl", "hba1c"}
    assert table(reader, "outcomes")["event"].tolist() == ["mi"]


def test_fhir_reads_into_the_same_schema_with_units_converted(fhir_site):
    reader = open_site_clinical(fhir_site, "fhir-ndjson", "leeds")
    patients = table(reader, "patients")
    assert patients.loc[0, "mrn"] == "L-9" and patients.loc[0, "sex"] == "F"
    assert patients.loc[0, "smoking"] == "current" and patients.loc[0, "ethnicity"] == "Mixed"
    m = table(reader, "measurements").set_index("measure")
    assert m.loc["ldl", "value"] == pytest.approx(162.4 / 38.67)
    assert m.loc["ldl", "unit"] == MEASURE_UNITS["ldl"]
    assert m.loc["hba1c", "value"] == pytest.approx(10.929 * (6.5 - 2.15))
    assert table(reader, "diagnoses")["icd10"].tolist() == ["I42.1"]
    assert sorted(table(reader, "outcomes")["event"]) == ["cv_death", "hf_admission"]
    assert table(reader, "medications")["drug"].tolist() == ["bisoprolol"]


def test_missing_column_is_named(csv_site):
    (csv_site / "events.csv").write_text("MRN,EVENT\nM001,MI\n")
    with pytest.raises(InvalidInputError, match=r"events.csv: missing column\(s\) EVENT_DATE"):
        table(open_site_clinical(csv_site, "csv-local", "rbh"), "outcomes")


def test_bad_dates_and_units_and_codes_are_named(csv_site):
    reader = open_site_clinical(csv_site, "csv-local", "rbh")
    (csv_site / "diagnoses.csv").write_text("MRN,ICD10,DIAG_DESC,DIAG_DATE\nM001,I21,x,2019-03-02\n")
    with pytest.raises(InvalidInputError, match="DIAG_DATE: 1 value"):
        table(reader, "diagnoses")
    (csv_site / "results.csv").write_text("MRN,TEST_CODE,RESULT,UNITS,RESULT_DATE\nM001,LDL,4,furlongs,02/03/2019\n")
    with pytest.raises(InvalidInputError, match="no conversion for measure 'ldl' in unit 'furlongs'"):
        table(reader, "measurements")
    (csv_site / "results.csv").write_text("MRN,TEST_CODE,RESULT,UNITS,RESULT_DATE\nM001,XYZ,4,g,02/03/2019\n")
    with pytest.raises(InvalidInputError, match="unknown TEST_CODE"):
        table(reader, "measurements")


def test_binary_garbage_is_refused(csv_site):
    (csv_site / "patients.csv").write_bytes(b"\xff\xfe\x00garbage\x00\x81" * 100)
    with pytest.raises(InvalidInputError, match=r"patients\.csv"):
        table(open_site_clinical(csv_site, "csv-local", "rbh"), "patients")


def test_fhir_problems_name_the_line(fhir_site):
    with (fhir_site / "Observation.ndjson").open("a") as fh:
        fh.write("{not json\n")
    with pytest.raises(InvalidInputError, match=r"Observation\.ndjson: line 4 is not JSON"):
        table(open_site_clinical(fhir_site, "fhir-ndjson", "leeds"), "measurements")


def test_fhir_dangling_subject_is_refused_without_echoing_it(fhir_site):
    ndjson(
        fhir_site / "MedicationStatement.ndjson",
        [{"resourceType": "MedicationStatement", "subject": subject("nobody-9434765919"), "effectivePeriod": {}}],
    )
    with pytest.raises(InvalidInputError, match="line 1: subject is not a Patient") as info:
        table(open_site_clinical(fhir_site, "fhir-ndjson", "leeds"), "medications")
    assert "9434765919" not in str(info.value)


def test_unknown_format_and_missing_folder(tmp_path, csv_site):
    with pytest.raises(EnclaveError, match="unknown clinical format"):
        open_site_clinical(csv_site, "hl7v2", "x")
    with pytest.raises(InvalidInputError, match="does not exist"):
        open_site_clinical(tmp_path / "nope", "csv-local", "x")
