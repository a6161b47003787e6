"""The CSV dialect of a site's `csv-local` export: its file and column names, date format, delimiter, decimal
separator and encoding, declared in site.yaml's `clinical_dialect` block (docs/reference/data-layout.md). Names are
keyed by the default layout's (today's English export), which is what a site without the block is read as."""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kernel.documents import describe
from kernel.errors import SpecError

# The default layout: source table -> (file name, its columns in order).
DEFAULT_FILES: dict[str, str] = {
    "patients": "patients.csv",
    "diagnoses": "diagnoses.csv",
    "medications": "medications.csv",
    "measurements": "results.csv",
    "outcomes": "events.csv",
}
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("MRN", "NHS_NO", "SURNAME", "FORENAME", "DOB", "SEX", "POSTCODE", "ETHNIC_GRP", "SMOKER"),
    "diagnoses": ("MRN", "ICD10", "DIAG_DESC", "DIAG_DATE"),
    "medications": ("MRN", "DRUG", "DOSE", "START_DATE"),
    "measurements": ("MRN", "TEST_CODE", "RESULT", "UNITS", "RESULT_DATE"),
    "outcomes": ("MRN", "EVENT", "EVENT_DATE"),
}
KNOWN_COLUMNS = frozenset(c for columns in DEFAULT_COLUMNS.values() for c in columns)
_SAMPLE_DAY = date(2001, 12, 31)  # day, month and year all distinct, so a format that drops or swaps one fails


class CsvDialect(BaseModel):
    """How one site writes its csv-local tables; every field defaults to the default layout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    files: dict[str, str] = Field(default_factory=dict, description="source table -> the site's file name")
    columns: dict[str, str] = Field(default_factory=dict, description="default column name -> the site's name")
    date_format: str = Field(default="%d/%m/%Y", description="strftime format of every date column")
    delimiter: str = ","
    decimal: str = "."
    encoding: str = "utf-8"

    @field_validator("files")
    @classmethod
    def _known_files(cls, files: dict[str, str]) -> dict[str, str]:
        for table, name in files.items():
            if table not in DEFAULT_FILES:
                raise ValueError(f"unknown table {table!r}; the tables are {', '.join(DEFAULT_FILES)}")
            if not name or "/" in name or "\\" in name or name.startswith("."):
                raise ValueError(f"file name for {table} must be a plain file name in the clinical folder")
        names = [files.get(t, default) for t, default in DEFAULT_FILES.items()]
        if len(set(names)) != len(names):
            raise ValueError("two tables would be read from the same file")
        return files

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, columns: dict[str, str]) -> dict[str, str]:
        for column, name in columns.items():
            if column not in KNOWN_COLUMNS:
                raise ValueError(f"unknown column {column!r}; the columns are the default layout's, e.g. MRN, NHS_NO")
            if not name.strip():
                raise ValueError(f"the site's name for {column} is empty")
        for table, defaults in DEFAULT_COLUMNS.items():
            names = [columns.get(c, c) for c in defaults]
            if len(set(names)) != len(names):
                raise ValueError(f"two columns of {table} would have the same name")
        return columns

    @field_validator("date_format")
    @classmethod
    def _date_format(cls, fmt: str) -> str:
        if not all(d in fmt for d in ("%d", "%m", "%Y")):
            raise ValueError(f"date_format {fmt!r} needs %d, %m and %Y (day, month, four-digit year)")
        try:
            round_trip = datetime.strptime(_SAMPLE_DAY.strftime(fmt), fmt).date()
        except (ValueError, re.error):  # re.error: a directive given twice
            round_trip = None
        if round_trip != _SAMPLE_DAY:
            raise ValueError(f"date_format {fmt!r} does not read back the dates it writes")
        return fmt

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        if len(value) != 1 or value.isalnum() or value in "\"'\r\n. ":
            raise ValueError(f"delimiter {value!r} must be one character such as ',', ';', '|' or a tab")
        return value

    @field_validator("decimal")
    @classmethod
    def _decimal(cls, value: str) -> str:
        if value not in (".", ","):
            raise ValueError(f"decimal {value!r} must be '.' or ','")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        try:
            info = codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        if ",".encode(info.name) != b",":  # UTF-16 and the like: not a byte-wise CSV
            raise ValueError(f"encoding {value!r} is not ASCII-compatible")
        return value

    @model_validator(mode="after")
    def _separators_differ(self) -> CsvDialect:
        if self.delimiter == self.decimal:
            raise ValueError("delimiter and decimal separator must differ")
        return self

    # -------------------------------------------------------------------------------------------- names

    def file(self, table: str) -> str:
        return self.files.get(table, DEFAULT_FILES[table])

    def column(self, default: str) -> str:
        """The site's name for the default layout's column `default`."""
        return self.columns.get(default, default)

    def header(self, table: str) -> list[str]:
        return [self.column(c) for c in DEFAULT_COLUMNS[table]]

    def is_default(self) -> bool:
        return self == DEFAULT_DIALECT


DEFAULT_DIALECT = CsvDialect()


def as_dialect(value: CsvDialect | Mapping[str, Any] | None, where: str = "clinical_dialect") -> CsvDialect:
    """A dialect from site.yaml's block or the registry's copy of it; None is the default layout."""
    if value is None:
        return DEFAULT_DIALECT
    if isinstance(value, CsvDialect):
        return value
    try:
        return CsvDialect.model_validate(dict(value))
    except ValidationError as exc:
        raise SpecError(f"{where}: {describe(exc)}") from None
