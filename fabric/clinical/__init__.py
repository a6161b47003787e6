"""Clinical records: readers for each site export format, harmonised to one schema (fabric/clinical/schema.py)."""

from fabric.clinical.formats import FORMATS, open_site_clinical
from fabric.clinical.schema import TABLES

__all__ = ["FORMATS", "TABLES", "open_site_clinical"]
