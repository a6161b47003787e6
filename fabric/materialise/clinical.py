"""The clinical part of a project's view: every site's clinical dataset harmonised into one Parquet file per
table, consented patients only, under their pseudonyms, with direct identifiers dropped."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fabric.clinical import open_site_clinical
from fabric.clinical.schema import DRUG_CLASSES, IDENTIFYING, VIEW_SCHEMAS
from fabric.materialise.plan import DatasetPlan


def _view_frame(table: str, chunk, plan: DatasetPlan) -> pa.Table:
    """One source chunk -> rows of the view table: consented patients only, pseudonymised, identifiers dropped."""
    mapping = {local: pseudo for local, (_pid, pseudo) in plan.members.items()}
    chunk = chunk[chunk["mrn"].isin(mapping.keys())].copy()
    chunk.insert(0, "pseudonym", chunk["mrn"].map(mapping))
    chunk.insert(1, "site", plan.site)
    if table == "patients":
        chunk["year_of_birth"] = [d.year if d is not None else None for d in chunk["birth_date"]]
    if table == "medications":
        chunk["drug_class"] = chunk["drug"].map(DRUG_CLASSES).fillna("unclassified")
    chunk = chunk.drop(columns=[c for c in chunk.columns if c in IDENTIFYING])
    schema = VIEW_SCHEMAS[table]
    return pa.Table.from_pandas(chunk[schema.names], schema=schema, preserve_index=False)


def write_clinical(out: Path, plans: list[DatasetPlan]) -> None:
    """Harmonise every clinical dataset into one Parquet file per table, streaming chunk by chunk."""
    out.mkdir(parents=True)
    clinical = [p for p in plans if p.modality == "clinical"]
    for table, schema in VIEW_SCHEMAS.items():
        with pq.ParquetWriter(out / f"{table}.parquet", schema, compression="zstd") as writer:
            for plan in clinical:
                reader = open_site_clinical(plan.location, plan.format, plan.site, plan.dialect)
                for chunk in reader.iter_table(table):
                    writer.write_table(_view_frame(table, chunk, plan))
