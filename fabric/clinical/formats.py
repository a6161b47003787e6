"""Readers for the clinical export formats sites send (docs/reference/data-layout.md), each yielding the source
tables of fabric/clinical/schema.py in bounded chunks, with local codes and units harmonised."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pandas as pd

from fabric.clinical.schema import MEASURE_UNITS, SOURCE_COLUMNS
from fabric.documents import iter_ndjson
from fabric.errors import FabricError, InvalidInputError
from fabric.identifiers.schemes import FHIR_SYSTEMS

CHUNK_ROWS = 100_000

# (measure, unit as the site writes it) -> conversion to the harmonised unit of MEASURE_UNITS.
UNIT_CONVERSIONS: dict[tuple[str, str], Callable[[float], float]] = {
    ("ldl", "mmol/L"): lambda v: v,
    ("ldl", "mg/dL"): lambda v: v / 38.67,
    ("troponin_t", "ng/L"): lambda v: v,
    ("troponin_t", "ug/L"): lambda v: v * 1000.0,
    ("nt_probnp", "pg/mL"): lambda v: v,
    ("nt_probnp", "ng/L"): lambda v: v,
    ("hba1c", "mmol/mol"): lambda v: v,
    ("hba1c", "%"): lambda v: 10.929 * (v - 2.15),
    ("qtc", "ms"): lambda v: v,
    ("qrs", "ms"): lambda v: v,
    ("sbp", "mmHg"): lambda v: v,
    ("sbp", "mm[Hg]"): lambda v: v,
    ("dbp", "mmHg"): lambda v: v,
    ("dbp", "mm[Hg]"): lambda v: v,
    ("lvef", "%"): lambda v: v,
    ("lv_mass", "g"): lambda v: v,
}


class SiteClinicalReader(Protocol):
    """One site's clinical export, read as the harmonised source tables."""

    def iter_table(self, table: str) -> Iterator[pd.DataFrame]: ...


def harmonise_units(frame: pd.DataFrame, source: Path) -> pd.DataFrame:
    """Convert `value` to each measure's harmonised unit; an unknown measure/unit pair is an error."""
    out = []
    for (measure, unit), group in frame.groupby(["measure", "unit"], sort=False):
        convert = UNIT_CONVERSIONS.get((measure, unit))
        if convert is None:
            raise InvalidInputError(source, f"no conversion for measure {measure!r} in unit {unit!r}")
        group = group.copy()
        group["value"] = convert(group["value"].astype(float))
        group["unit"] = MEASURE_UNITS[measure]
        out.append(group)
    if not out:
        return frame.iloc[0:0]
    return pd.concat(out, ignore_index=True)[SOURCE_COLUMNS["measurements"]]


def _dates(series: pd.Series, fmt: str, source: Path, column: str) -> pd.Series:
    parsed = pd.to_datetime(series.replace("", None), format=fmt, errors="coerce")
    bad = parsed.isna() & series.fillna("").ne("")
    if bad.any():
        raise InvalidInputError(source, f"column {column}: {int(bad.sum())} value(s) are not dates in {fmt}")
    return parsed.dt.date


# ---------------------------------------------------------------------------------------------------- csv-local


class CsvLocalReader:
    """A PAS/EPR export: one CSV per table with the site's own column names and dd/mm/yyyy dates."""

    FILES = {
        "patients": "patients.csv",
        "diagnoses": "diagnoses.csv",
        "medications": "medications.csv",
        "measurements": "results.csv",
        "outcomes": "events.csv",
    }
    TEST_CODES = {
        "LDL": "ldl",
        "TROPT": "troponin_t",
        "NTPROBNP": "nt_probnp",
        "HBA1C": "hba1c",
        "QTC": "qtc",
        "QRS": "qrs",
        "SBP": "sbp",
        "DBP": "dbp",
        "LVEF": "lvef",
        "LVMASS": "lv_mass",
    }
    EVENTS = {
        "MI": "mi",
        "STROKE": "stroke",
        "HF_ADMISSION": "hf_admission",
        "REVASC": "revascularisation",
        "CV_DEATH": "cv_death",
    }
    SMOKER = {"N": "never", "EX": "ex", "Y": "current", "": None}

    def __init__(self, root: Path) -> None:
        self.root = root

    def _chunks(self, table: str, required: list[str]) -> Iterator[pd.DataFrame]:
        path = self.root / self.FILES[table]
        if not path.is_file():
            raise InvalidInputError(path, "missing from the site's clinical export")
        try:
            reader = pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=CHUNK_ROWS, encoding="utf-8")
            for chunk in reader:
                missing = [c for c in required if c not in chunk.columns]
                if missing:
                    raise InvalidInputError(path, f"missing column(s) {', '.join(missing)}")
                yield chunk
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InvalidInputError(path, f"not a readable CSV ({type(exc).__name__})") from None

    def iter_table(self, table: str) -> Iterator[pd.DataFrame]:
        path = self.root / self.FILES.get(table, table)
        if table == "patients":
            cols = ["MRN", "NHS_NO", "SURNAME", "FORENAME", "DOB", "SEX", "POSTCODE", "ETHNIC_GRP", "SMOKER"]
            for c in self._chunks(table, cols):
                smoking = c["SMOKER"].str.upper().map(self.SMOKER)
                if smoking.isna().any() and c["SMOKER"].ne("").any():
                    unknown = sorted(set(c.loc[smoking.isna(), "SMOKER"]) - {""})
                    if unknown:
                        raise InvalidInputError(path, f"unknown SMOKER code(s) {unknown[:3]}")
                yield pd.DataFrame(
                    {
                        "mrn": c["MRN"],
                        "nhs_number": c["NHS_NO"].str.replace(" ", "", regex=False),
                        "surname": c["SURNAME"],
                        "forename": c["FORENAME"],
                        "birth_date": _dates(c["DOB"], "%d/%m/%Y", path, "DOB"),
                        "postcode": c["POSTCODE"],
                        "sex": c["SEX"].str.upper(),
                        "ethnicity": c["ETHNIC_GRP"].replace("", None),
                        "smoking": smoking,
                    }
                )
        elif table == "diagnoses":
            for c in self._chunks(table, ["MRN", "ICD10", "DIAG_DESC", "DIAG_DATE"]):
                yield pd.DataFrame(
                    {
                        "mrn": c["MRN"],
                        "icd10": c["ICD10"].str.upper(),
                        "description": c["DIAG_DESC"],
                        "diagnosis_date": _dates(c["DIAG_DATE"], "%d/%m/%Y", path, "DIAG_DATE"),
                    }
                )
        elif table == "medications":
            for c in self._chunks(table, ["MRN", "DRUG", "DOSE", "START_DATE"]):
                yield pd.DataFrame(
                    {
                        "mrn": c["MRN"],
                        "drug": c["DRUG"].str.lower(),
                        "dose": c["DOSE"],
                        "start_date": _dates(c["START_DATE"], "%d/%m/%Y", path, "START_DATE"),
                    }
                )
        elif table == "measurements":
            for c in self._chunks(table, ["MRN", "TEST_CODE", "RESULT", "UNITS", "RESULT_DATE"]):
                measure = c["TEST_CODE"].str.upper().map(self.TEST_CODES)
                if measure.isna().any():
                    unknown = sorted(set(c.loc[measure.isna(), "TEST_CODE"]))
                    raise InvalidInputError(path, f"unknown TEST_CODE(s) {unknown[:5]}")
                value = pd.to_numeric(c["RESULT"], errors="coerce")
                if value.isna().any():
                    raise InvalidInputError(path, f"{int(value.isna().sum())} RESULT value(s) are not numbers")
                frame = pd.DataFrame(
                    {
                        "mrn": c["MRN"],
                        "measure": measure,
                        "value": value,
                        "unit": c["UNITS"],
                        "measured_on": _dates(c["RESULT_DATE"], "%d/%m/%Y", path, "RESULT_DATE"),
                    }
                )
                yield harmonise_units(frame, path)
        elif table == "outcomes":
            for c in self._chunks(table, ["MRN", "EVENT", "EVENT_DATE"]):
                event = c["EVENT"].str.upper().map(self.EVENTS)
                if event.isna().any():
                    raise InvalidInputError(path, f"unknown EVENT(s) {sorted(set(c.loc[event.isna(), 'EVENT']))[:5]}")
                yield pd.DataFrame(
                    {
                        "mrn": c["MRN"],
                        "event": event,
                        "event_date": _dates(c["EVENT_DATE"], "%d/%m/%Y", path, "EVENT_DATE"),
                    }
                )
        else:
            raise FabricError(f"unknown clinical table {table!r}")


# -------------------------------------------------------------------------------------------------- fhir-ndjson

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10"
LOINC_MEASURES = {
    "18262-6": "ldl",
    "13457-7": "ldl",
    "67151-1": "troponin_t",
    "6598-7": "troponin_t",
    "33762-6": "nt_probnp",
    "4548-4": "hba1c",
    "8636-3": "qtc",
    "8633-0": "qrs",
    "8480-6": "sbp",
    "8462-4": "dbp",
    "10230-1": "lvef",
    "lv-mass": "lv_mass",
}
SMOKING_LOINC = "72166-2"
SMOKING_SNOMED = {"266919005": "never", "8517006": "ex", "77176002": "current"}
# Follow-up (encounter-diagnosis) ICD-10 chapters -> outcome event.
EVENT_ICD10_PREFIX = {"I21": "mi", "I22": "mi", "I63": "stroke", "I50": "hf_admission", "Z95.5": "revascularisation"}


class FhirNdjsonReader:
    """A FHIR R4 bulk export: one NDJSON file per resource type."""

    def __init__(self, root: Path, site_id: str) -> None:
        self.root = root
        self.mrn_system = f"urn:enclave:site:{site_id}:mrn"
        self._mrn_by_resource_id: dict[str, str] | None = None

    def _resources(self, resource_type: str) -> Iterator[tuple[Path, int, dict]]:
        path = self.root / f"{resource_type}.ndjson"
        if not path.is_file():
            raise InvalidInputError(path, "missing from the site's FHIR export")
        for number, resource in iter_ndjson(path):
            if resource.get("resourceType") != resource_type:
                raise InvalidInputError(path, f"line {number} is not a {resource_type} resource")
            yield path, number, resource

    def _chunked(self, rows: Iterator[dict], table: str) -> Iterator[pd.DataFrame]:
        batch: list[dict] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= CHUNK_ROWS:
                yield pd.DataFrame(batch, columns=SOURCE_COLUMNS[table])
                batch = []
        if batch:
            yield pd.DataFrame(batch, columns=SOURCE_COLUMNS[table])

    def _subject_mrn(self, path: Path, number: int, resource: dict) -> str:
        if self._mrn_by_resource_id is None:
            self._mrn_by_resource_id = {}
            for p, n, patient in self._resources("Patient"):
                self._mrn_by_resource_id[patient.get("id", "")] = self._identifier(p, n, patient, self.mrn_system)
        ref = (resource.get("subject") or {}).get("reference", "")
        mrn = self._mrn_by_resource_id.get(ref.removeprefix("Patient/"))
        if mrn is None:
            raise InvalidInputError(path, f"line {number}: subject is not a Patient in this export")
        return mrn

    @staticmethod
    def _identifier(path: Path, number: int, patient: dict, system: str) -> str:
        for ident in patient.get("identifier") or []:
            if ident.get("system") == system and ident.get("value"):
                return str(ident["value"])
        raise InvalidInputError(path, f"line {number}: Patient has no identifier of system {system}")

    @staticmethod
    def _national_identifier(path: Path, number: int, patient: dict) -> str:
        """The patient's NHS number, or another scheme's national identifier (the catalogue checks that it is the
        scheme the site declares)."""
        for ident in patient.get("identifier") or []:
            if ident.get("system") in FHIR_SYSTEMS and ident.get("value"):
                return str(ident["value"])
        raise InvalidInputError(
            path, f"line {number}: Patient has no identifier of system {NHS_SYSTEM} or another scheme's"
        )

    @staticmethod
    def _date(path: Path, number: int, value: object, field: str):
        try:
            return pd.Timestamp(str(value)[:10]).date()
        except ValueError:
            raise InvalidInputError(path, f"line {number}: {field} is not a date") from None

    @staticmethod
    def _coding(path: Path, number: int, concept: dict | None) -> dict:
        codings = (concept or {}).get("coding") or []
        if not codings:
            raise InvalidInputError(path, f"line {number}: code has no coding")
        return codings[0]

    def _smoking_by_mrn(self) -> dict[str, str]:
        smoking = {}
        for path, number, obs in self._resources("Observation"):
            if self._coding(path, number, obs.get("code")).get("code") == SMOKING_LOINC:
                code = self._coding(path, number, obs.get("valueCodeableConcept")).get("code")
                smoking[self._subject_mrn(path, number, obs)] = SMOKING_SNOMED.get(code)
        return smoking

    def _patients(self) -> Iterator[dict]:
        smoking = self._smoking_by_mrn()
        for path, number, p in self._resources("Patient"):
            name = (p.get("name") or [{}])[0]
            address = (p.get("address") or [{}])[0]
            ethnicity = next(
                (e.get("valueString") for e in p.get("extension") or [] if e.get("url") == "urn:enclave:ethnicity"),
                None,
            )
            gender = p.get("gender")
            if gender not in ("male", "female"):
                raise InvalidInputError(path, f"line {number}: gender {gender!r} is not male or female")
            mrn = self._identifier(path, number, p, self.mrn_system)
            yield {
                "mrn": mrn,
                "nhs_number": self._national_identifier(path, number, p).replace(" ", ""),
                "surname": name.get("family"),
                "forename": (name.get("given") or [None])[0],
                "birth_date": self._date(path, number, p.get("birthDate"), "birthDate"),
                "postcode": address.get("postalCode"),
                "sex": "M" if gender == "male" else "F",
                "ethnicity": ethnicity,
                "smoking": smoking.get(mrn),
            }

    def _conditions(self, category: str) -> Iterator[tuple[Path, int, dict, dict]]:
        for path, number, c in self._resources("Condition"):
            cat = self._coding(path, number, (c.get("category") or [{}])[0]).get("code")
            if cat == category:
                yield path, number, c, self._coding(path, number, c.get("code"))

    def _diagnoses(self) -> Iterator[dict]:
        for path, number, c, coding in self._conditions("problem-list-item"):
            yield {
                "mrn": self._subject_mrn(path, number, c),
                "icd10": str(coding.get("code", "")).upper(),
                "description": coding.get("display"),
                "diagnosis_date": self._date(path, number, c.get("onsetDateTime"), "onsetDateTime"),
            }

    def _outcomes(self) -> Iterator[dict]:
        for path, number, c, coding in self._conditions("encounter-diagnosis"):
            code = str(coding.get("code", "")).upper()
            event = next((e for prefix, e in EVENT_ICD10_PREFIX.items() if code.startswith(prefix)), None)
            if event is None:
                raise InvalidInputError(path, f"line {number}: follow-up code {code!r} is not an outcome event")
            yield {
                "mrn": self._subject_mrn(path, number, c),
                "event": event,
                "event_date": self._date(path, number, c.get("onsetDateTime"), "onsetDateTime"),
            }
        for path, number, p in self._resources("Patient"):
            if p.get("deceasedDateTime"):
                yield {
                    "mrn": self._identifier(path, number, p, self.mrn_system),
                    "event": "cv_death",
                    "event_date": self._date(path, number, p["deceasedDateTime"], "deceasedDateTime"),
                }

    def _medications(self) -> Iterator[dict]:
        for path, number, m in self._resources("MedicationStatement"):
            yield {
                "mrn": self._subject_mrn(path, number, m),
                "drug": str((m.get("medicationCodeableConcept") or {}).get("text", "")).lower(),
                "dose": ((m.get("dosage") or [{}])[0]).get("text"),
                "start_date": self._date(path, number, (m.get("effectivePeriod") or {}).get("start"), "start"),
            }

    def _measurements(self) -> Iterator[dict]:
        for path, number, obs in self._resources("Observation"):
            code = self._coding(path, number, obs.get("code")).get("code")
            if code == SMOKING_LOINC:
                continue
            measure = LOINC_MEASURES.get(code)
            if measure is None:
                raise InvalidInputError(path, f"line {number}: unknown observation code {code!r}")
            quantity = obs.get("valueQuantity") or {}
            try:
                value = float(quantity["value"])
            except (KeyError, TypeError, ValueError):
                raise InvalidInputError(path, f"line {number}: valueQuantity.value is not a number") from None
            yield {
                "mrn": self._subject_mrn(path, number, obs),
                "measure": measure,
                "value": value,
                "unit": quantity.get("unit", ""),
                "measured_on": self._date(path, number, obs.get("effectiveDateTime"), "effectiveDateTime"),
            }

    def iter_table(self, table: str) -> Iterator[pd.DataFrame]:
        rows = {
            "patients": self._patients,
            "diagnoses": self._diagnoses,
            "medications": self._medications,
            "measurements": self._measurements,
            "outcomes": self._outcomes,
        }.get(table)
        if rows is None:
            raise FabricError(f"unknown clinical table {table!r}")
        for chunk in self._chunked(rows(), table):
            if table == "measurements":
                chunk = harmonise_units(chunk, self.root / "Observation.ndjson")
            yield chunk


FORMATS = ("csv-local", "fhir-ndjson")


def open_site_clinical(root: Path, fmt: str, site_id: str) -> SiteClinicalReader:
    """The reader for one site's clinical export folder."""
    if not root.is_dir():
        raise InvalidInputError(root, "clinical export folder does not exist")
    if fmt == "csv-local":
        return CsvLocalReader(root)
    if fmt == "fhir-ndjson":
        return FhirNdjsonReader(root, site_id)
    raise FabricError(f"unknown clinical format {fmt!r}; known: {', '.join(FORMATS)}")
