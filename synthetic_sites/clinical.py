"""Clinical export writers: a site's records rendered in its own format, `csv-local` or `fhir-ndjson`.

The two formats carry the same facts in the shapes the data-layout contract fixes: csv-local has dd/mm/yyyy
dates, spaced NHS numbers and local result codes in mmol/L and mmol/mol (or the site's own dialect: names, dates,
separators, encoding); fhir-ndjson has FHIR R4 resources with
LOINC codes, LDL in mg/dL and HbA1c in % (NGSP). Writers append chunk by chunk so a cohort streams to disk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from fabric.clinical.dialect import DEFAULT_DIALECT, CsvDialect
from synthetic_sites.identifiers import format_nhs_number


@dataclass
class SiteRecords:
    """One chunk of a site's records; every frame carries the site-local `mrn` and FHIR `patient_id`."""

    patients: pd.DataFrame  # mrn, patient_id, nhs, surname, forename, dob, male, postcode, ethnicity, smoking,
    #                         baseline, death_date
    diagnoses: pd.DataFrame  # mrn, patient_id, icd10, description, date, category
    medications: pd.DataFrame  # mrn, patient_id, drug, dose, start
    results: pd.DataFrame  # mrn, patient_id, code, value, date
    events: pd.DataFrame  # mrn, patient_id, event, date


def fhir_patient_id(seed: int, site_id: str, mrn: str) -> str:
    """An opaque, stable UUID-shaped resource id (a site's FHIR server would mint one; we derive it)."""
    h = hashlib.blake2b(f"{seed}:{site_id}:{mrn}".encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _dates(values: pd.Series, fmt: str) -> pd.Series:
    return pd.to_datetime(values).dt.strftime(fmt)


def _iso(values: pd.Series) -> list[str]:
    return pd.to_datetime(values).dt.strftime("%Y-%m-%d").tolist()


def _result_text(codes: pd.Series, values: pd.Series) -> pd.Series:
    one_decimal = values.round(1).map("{:.1f}".format)
    integer = values.round().astype(np.int64).astype(str)
    return one_decimal.where(codes == "LDL", integer)


class CsvLocalWriter:
    """`clinical/*.csv` as the contract's csv-local tables, in the site's dialect (the default layout unless given);
    `written` renders a national identifier as the site writes it."""

    def __init__(
        self,
        clinical_dir: Path,
        dialect: CsvDialect = DEFAULT_DIALECT,
        written: Callable[[str], str] = format_nhs_number,
    ) -> None:
        clinical_dir.mkdir(parents=True, exist_ok=True)
        self.dialect = dialect
        self.written = written
        self._files: dict[str, IO[str]] = {}
        for table in ("patients", "diagnoses", "medications", "measurements", "outcomes"):
            fh = open(clinical_dir / dialect.file(table), "w", encoding=dialect.encoding, newline="")  # noqa: SIM115
            fh.write(dialect.delimiter.join(dialect.header(table)) + "\n")
            self._files[table] = fh

    def _append(self, table: str, frame: pd.DataFrame) -> None:
        if len(frame):
            frame.to_csv(self._files[table], header=False, index=False, lineterminator="\n", sep=self.dialect.delimiter)

    def write(self, records: SiteRecords, units: dict[str, str]) -> None:
        fmt = self.dialect.date_format
        p = records.patients
        self._append(
            "patients",
            pd.DataFrame(
                {
                    "MRN": p["mrn"],
                    "NHS_NO": p["nhs"].map(self.written),
                    "SURNAME": p["surname"],
                    "FORENAME": p["forename"],
                    "DOB": _dates(p["dob"], fmt),
                    "SEX": np.where(p["male"], "M", "F"),
                    "POSTCODE": p["postcode"],
                    "ETHNIC_GRP": p["ethnicity"],
                    "SMOKER": p["smoking"],
                }
            ),
        )
        d = records.diagnoses
        self._append(
            "diagnoses",
            pd.DataFrame(
                {
                    "MRN": d["mrn"],
                    "ICD10": d["icd10"],
                    "DIAG_DESC": d["description"],
                    "DIAG_DATE": _dates(d["date"], fmt),
                }
            ),
        )
        m = records.medications
        self._append(
            "medications",
            pd.DataFrame(
                {"MRN": m["mrn"], "DRUG": m["drug"], "DOSE": m["dose"], "START_DATE": _dates(m["start"], fmt)}
            ),
        )
        r = records.results
        result = _result_text(r["code"], r["value"])
        if self.dialect.decimal != ".":
            result = result.str.replace(".", self.dialect.decimal, regex=False)
        self._append(
            "measurements",
            pd.DataFrame(
                {
                    "MRN": r["mrn"],
                    "TEST_CODE": r["code"],
                    "RESULT": result,
                    "UNITS": r["code"].map(units),
                    "RESULT_DATE": _dates(r["date"], fmt),
                }
            ),
        )
        e = records.events
        events = pd.DataFrame({"MRN": e["mrn"], "EVENT": e["event"], "EVENT_DATE": _dates(e["date"], fmt)})
        self._append("outcomes", events)

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()


# ---------------------------------------------------------------------------------------------------- FHIR

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"

# local test code → (code system, code, display, UCUM unit)
OBSERVATION_CODES: dict[str, tuple[str, str, str, str]] = {
    "LDL": (LOINC, "18262-6", "LDL cholesterol (direct)", "mg/dL"),
    "TROPT": (LOINC, "67151-1", "Troponin T, high sensitivity", "ng/L"),
    "NTPROBNP": (LOINC, "33762-6", "NT-proBNP", "pg/mL"),
    "HBA1C": (LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%"),
    "QTC": (LOINC, "8636-3", "QT interval corrected", "ms"),
    "QRS": (LOINC, "8633-0", "QRS duration", "ms"),
    "SBP": (LOINC, "8480-6", "Systolic blood pressure", "mm[Hg]"),
    "DBP": (LOINC, "8462-4", "Diastolic blood pressure", "mm[Hg]"),
    "LVEF": (LOINC, "10230-1", "Left ventricular ejection fraction", "%"),
    "LVMASS": ("urn:enclave:code", "lv-mass", "Left ventricular mass", "g"),
}
SMOKING_SNOMED = {
    "N": ("266919005", "Never smoked tobacco"),
    "EX": ("8517006", "Ex-smoker"),
    "Y": ("77176002", "Smoker"),
}
MMOL_TO_MG_DL_LDL = 38.67


def _fhir_value(code: str, value: float) -> float | int:
    if code == "LDL":
        return round(value * MMOL_TO_MG_DL_LDL, 1)
    if code == "HBA1C":
        return round(value / 10.929 + 2.15, 1)  # IFCC mmol/mol → NGSP %
    return round(value)


class FhirNdjsonWriter:
    """`clinical/<ResourceType>.ndjson` as the contract's fhir-ndjson resources."""

    RESOURCES = ("Patient", "Condition", "MedicationStatement", "Observation")

    def __init__(self, clinical_dir: Path, site_id: str) -> None:
        clinical_dir.mkdir(parents=True, exist_ok=True)
        self.site_id = site_id
        self._files: dict[str, IO[str]] = {
            r: open(clinical_dir / f"{r}.ndjson", "w", encoding="utf-8")  # noqa: SIM115
            for r in self.RESOURCES
        }
        self._counters = dict.fromkeys(self.RESOURCES, 0)

    def _emit(self, resource_type: str, body: dict[str, Any]) -> None:
        self._counters[resource_type] += 1
        resource = {"resourceType": resource_type, "id": f"{resource_type[:3].lower()}-{self._counters[resource_type]}"}
        resource.update(body)
        self._files[resource_type].write(json.dumps(resource, separators=(",", ":")) + "\n")

    def write(self, records: SiteRecords, units: dict[str, str]) -> None:
        del units  # FHIR sites use UCUM units fixed by the contract
        p = records.patients
        mrn_system = f"urn:enclave:site:{self.site_id}:mrn"
        smoking_rows = []
        for row in p.itertuples(index=False):
            patient: dict[str, Any] = {
                "resourceType": "Patient",
                "id": row.patient_id,
                "identifier": [
                    {"system": NHS_NUMBER_SYSTEM, "value": row.nhs},
                    {"system": mrn_system, "value": row.mrn},
                ],
                "name": [{"use": "official", "family": row.surname, "given": [row.forename]}],
                "gender": "male" if row.male else "female",
                "birthDate": str(np.datetime64(row.dob, "D")),
                "address": [{"postalCode": row.postcode}],
                "extension": [{"url": "urn:enclave:ethnicity", "valueString": row.ethnicity}],
            }
            if not pd.isna(row.death_date):
                patient["deceasedDateTime"] = str(np.datetime64(row.death_date, "D"))
            self._files["Patient"].write(json.dumps(patient, separators=(",", ":")) + "\n")
            smoking_rows.append((row.patient_id, row.smoking, str(np.datetime64(row.baseline, "D"))))

        d = records.diagnoses
        for pid, code, text, date, category in zip(
            d["patient_id"], d["icd10"], d["description"], _iso(d["date"]), d["category"], strict=True
        ):
            self._emit(
                "Condition",
                {
                    "subject": {"reference": f"Patient/{pid}"},
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                    "code": category,
                                }
                            ]
                        }
                    ],
                    "code": {"coding": [{"system": ICD10, "code": code, "display": text}]},
                    "onsetDateTime": date,
                },
            )

        m = records.medications
        for pid, drug, dose, start in zip(m["patient_id"], m["drug"], m["dose"], _iso(m["start"]), strict=True):
            self._emit(
                "MedicationStatement",
                {
                    "status": "active",
                    "subject": {"reference": f"Patient/{pid}"},
                    "medicationCodeableConcept": {"text": drug},
                    "dosage": [{"text": dose}],
                    "effectivePeriod": {"start": start},
                },
            )

        r = records.results
        for pid, code, value, date in zip(r["patient_id"], r["code"], r["value"], _iso(r["date"]), strict=True):
            system, loinc, display, unit = OBSERVATION_CODES[code]
            self._emit(
                "Observation",
                {
                    "status": "final",
                    "subject": {"reference": f"Patient/{pid}"},
                    "code": {"coding": [{"system": system, "code": loinc, "display": display}]},
                    "valueQuantity": {"value": _fhir_value(code, value), "unit": unit, "system": UCUM, "code": unit},
                    "effectiveDateTime": date,
                },
            )
        for pid, smoking, date in smoking_rows:
            snomed, display = SMOKING_SNOMED[smoking]
            self._emit(
                "Observation",
                {
                    "status": "final",
                    "subject": {"reference": f"Patient/{pid}"},
                    "code": {"coding": [{"system": LOINC, "code": "72166-2", "display": "Tobacco smoking status"}]},
                    "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": snomed, "display": display}]},
                    "effectiveDateTime": date,
                },
            )

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
