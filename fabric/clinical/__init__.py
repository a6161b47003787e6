"""Clinical records: readers for each site export format, harmonised to one schema (fabric/clinical/schema.py)."""

from fabric.clinical.dialect import DEFAULT_DIALECT, CsvDialect
from fabric.clinical.formats import FORMATS, open_site_clinical
from fabric.clinical.schema import TABLES

__all__ = ["DEFAULT_DIALECT", "FORMATS", "TABLES", "CsvDialect", "open_site_clinical"]
