"""Clinical tables of a view (`clinical/<name>.parquet`) as Dask DataFrames."""

from __future__ import annotations

from pathlib import Path

import dask.dataframe as dd
import pyarrow.parquet as pq

from workbench.errors import InvalidInputError, WorkbenchError

SUFFIX = ".parquet"


def table_names(clinical_dir: Path) -> list[str]:
    """Names of the parquet tables under `clinical/` (files or dataset folders named `<name>.parquet`)."""
    if not clinical_dir.is_dir():
        return []
    return sorted(p.name.removesuffix(SUFFIX) for p in clinical_dir.iterdir() if p.name.endswith(SUFFIX))


def open_table(clinical_dir: Path, name: str, columns: list[str] | None = None) -> dd.DataFrame:
    """`clinical/<name>.parquet` as a Dask DataFrame; WorkbenchError naming the known tables if there is no such
    table."""
    names = table_names(clinical_dir)
    if name not in names:
        raise WorkbenchError(
            f"no clinical table {name!r} in {clinical_dir}; tables: {', '.join(names) or 'none (no clinical data)'}"
        )
    path = clinical_dir / f"{name}{SUFFIX}"
    try:
        schema = pq.read_schema(path) if path.is_file() else None
    except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) for a damaged footer
        raise InvalidInputError(path, f"is not a readable parquet file ({exc})") from exc
    if columns is not None and schema is not None and (missing := set(columns) - set(schema.names)):
        raise WorkbenchError(f"{path}: no column(s) {', '.join(sorted(missing))}; columns: {', '.join(schema.names)}")
    return dd.read_parquet(str(path), columns=columns)


def read_pseudonyms(path: Path) -> list[str]:
    """Distinct pseudonyms of a parquet table, sorted."""
    try:
        column = pq.read_table(path, columns=["pseudonym"]).column("pseudonym")
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidInputError(path, f"pseudonym column cannot be read ({exc})") from exc
    return sorted({str(v) for v in column.to_pylist() if v is not None})
