"""Readers for the clinical export formats sites send (docs/reference/data-layout.md), each yielding the source
tables of fabric/clinical/schema.py in bounded chunks, with local codes and units harmonised: the fhir-ndjson
reader here, csv-local's in fabric/clinical/csv_local.py, and `open_site_clinical`, which picks one for a site."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from fabric.clinical.csv_local import CsvLocalReader
from fabric.clinical.dialect import CsvDialect, as_dialect
from fabric.clinical.harmonise import CHUNK_ROWS, harmonise_units
from fabric.clinical.schema import SOURCE_COLUMNS
from fabric.identifiers.schemes import FHIR_SYSTEMS
from kernel.documents import iter_ndjson
from kernel.errors import EnclaveError, InvalidInputError

__all__ = ["FORMATS", "CsvLocalReader", "FhirNdjsonReader", "SiteClinicalReader", "open_site_clinical"]


class SiteClinicalReader(Protocol):
    """One site's clinical export, read as the harmonised source tables."""

    def iter_table(self, table: str) -> Iterator[pd.DataFrame]: ...


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
            raise EnclaveError(f"unknown clinical table {table!r}")
        for chunk in self._chunked(rows(), table):
            if table == "measurements":
                chunk = harmonise_units(chunk, self.root / "Observation.ndjson")
            yield chunk


FORMATS = ("csv-local", "fhir-ndjson")


def open_site_clinical(
    root: Path, fmt: str, site_id: str, dialect: CsvDialect | Mapping[str, Any] | None = None
) -> SiteClinicalReader:
    """The reader for one site's clinical export folder; `dialect` is a csv-local site's `clinical_dialect` (None:
    the default layout)."""
    if not root.is_dir():
        raise InvalidInputError(root, "clinical export folder does not exist")
    if fmt == "csv-local":
        return CsvLocalReader(root, as_dialect(dialect, f"site {site_id}: clinical_dialect"))
    if fmt == "fhir-ndjson":
        return FhirNdjsonReader(root, site_id)
    raise EnclaveError(f"unknown clinical format {fmt!r}; known: {', '.join(FORMATS)}")
