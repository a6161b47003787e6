"""The `csv-local` reader: a PAS/EPR export of one CSV per table, read in the site's own dialect (file and column
names, date format, delimiter, decimal separator, encoding: fabric/clinical/dialect.py) into the harmonised source
tables, local codes mapped and units converted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from fabric.clinical.dialect import DEFAULT_COLUMNS, DEFAULT_DIALECT, CsvDialect
from fabric.clinical.harmonise import CHUNK_ROWS, harmonise_units, parse_dates
from kernel.errors import EnclaveError, InvalidInputError


class CsvLocalReader:
    """A PAS/EPR export: one CSV per table with the site's own column names and dates (dd/mm/yyyy by default)."""

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

    def __init__(self, root: Path, dialect: CsvDialect = DEFAULT_DIALECT) -> None:
        self.root = root
        self.dialect = dialect

    def _chunks(self, table: str) -> Iterator[pd.DataFrame]:
        """The table's chunks with the default layout's column names, whatever the site calls them."""
        path = self.root / self.dialect.file(table)
        if not path.is_file():
            raise InvalidInputError(path, "missing from the site's clinical export")
        names = self.dialect.header(table)
        try:
            reader = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                chunksize=CHUNK_ROWS,
                sep=self.dialect.delimiter,
                encoding=self.dialect.encoding,
            )
            for chunk in reader:
                missing = [c for c in names if c not in chunk.columns]
                if missing:
                    raise InvalidInputError(path, f"missing column(s) {', '.join(missing)}{self._hint(chunk)}")
                chunk = chunk[names]
                chunk.columns = list(DEFAULT_COLUMNS[table])
                yield chunk
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InvalidInputError(path, f"not a readable CSV ({type(exc).__name__})") from None

    def _hint(self, chunk: pd.DataFrame) -> str:
        """Why every column is missing when the file is split on another delimiter than the dialect's."""
        if len(chunk.columns) == 1:
            return f" (the header has one column: is the delimiter {self.dialect.delimiter!r}?)"
        return ""

    def _dates(self, chunk: pd.DataFrame, column: str, path: Path) -> pd.Series:
        return parse_dates(chunk[column], self.dialect.date_format, path, self.dialect.column(column))

    def _numbers(self, text: pd.Series) -> pd.Series:
        text = text.str.strip()
        if self.dialect.decimal == ",":
            # a point is a thousands separator where the comma is decimal: refused rather than guessed
            text = text.str.replace(",", ".", regex=False).mask(text.str.contains(".", regex=False), "")
        return pd.to_numeric(text, errors="coerce")

    def iter_table(self, table: str) -> Iterator[pd.DataFrame]:
        if table not in DEFAULT_COLUMNS:
            raise EnclaveError(f"unknown clinical table {table!r}")
        path = self.root / self.dialect.file(table)
        name = self.dialect.column
        if table == "patients":
            for c in self._chunks(table):
                smoking = c["SMOKER"].str.upper().map(self.SMOKER)
                if smoking.isna().any() and c["SMOKER"].ne("").any():
                    unknown = sorted(set(c.loc[smoking.isna(), "SMOKER"]) - {""})
                    if unknown:
                        raise InvalidInputError(path, f"unknown {name('SMOKER')} code(s) {unknown[:3]}")
                yield pd.DataFrame(
                    {
                        "mrn": c["MRN"],
                        "nhs_number": c["NHS_NO"].str.replace(" ", "", regex=False),
                        "surname": c["SURNAME"],
                        "forename": c["FORENAME"],
                        "birth_date": self._dates(c, "DOB", path),
                        "postcode": c["POSTCODE"],
                        "sex": c["SEX"].str.upper(),
                        "ethnicity": c["ETHNIC_GRP"].replace("", None),
                        "smoking": smoking,
                    }
                )
        elif table == "diagnoses":
            for c in self._chunks(table):
                yield pd.DataFrame(
                    {
                        "mrn": c["MRN"],
                        "icd10": c["ICD10"].str.upper(),
                        "description": c["DIAG_DESC"],
                        "diagnosis_date": self._dates(c, "DIAG_DATE", path),
                    }
                )
        elif table == "medications":
            for c in self._chunks(table):
                yield pd.DataFrame(
                    {
                        "mrn": c["MRN"],
                        "drug": c["DRUG"].str.lower(),
                        "dose": c["DOSE"],
                        "start_date": self._dates(c, "START_DATE", path),
                    }
                )
        elif table == "measurements":
            for c in self._chunks(table):
                measure = c["TEST_CODE"].str.upper().map(self.TEST_CODES)
                if measure.isna().any():
                    unknown = sorted(set(c.loc[measure.isna(), "TEST_CODE"]))
                    raise InvalidInputError(path, f"unknown {name('TEST_CODE')}(s) {unknown[:5]}")
                value = self._numbers(c["RESULT"])
                if value.isna().any():
                    raise InvalidInputError(
                        path,
                        f"{int(value.isna().sum())} {name('RESULT')} value(s) are not numbers "
                        f"with decimal separator {self.dialect.decimal!r}",
                    )
                frame = pd.DataFrame(
                    {
                        "mrn": c["MRN"],
                        "measure": measure,
                        "value": value,
                        "unit": c["UNITS"],
                        "measured_on": self._dates(c, "RESULT_DATE", path),
                    }
                )
                yield harmonise_units(frame, path)
        else:
            for c in self._chunks(table):
                event = c["EVENT"].str.upper().map(self.EVENTS)
                if event.isna().any():
                    unknown = sorted(set(c.loc[event.isna(), "EVENT"]))[:5]
                    raise InvalidInputError(path, f"unknown {name('EVENT')}(s) {unknown}")
                yield pd.DataFrame({"mrn": c["MRN"], "event": event, "event_date": self._dates(c, "EVENT_DATE", path)})
