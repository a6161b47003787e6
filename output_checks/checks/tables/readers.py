"""Table readers: CSV/TSV in any common dialect and encoding, Parquet, Excel (hidden sheets too), JSON records and
sites-only VCFs. Each yields `TableSource`s whose chunks are frames of strings, streamed, never sampled."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from output_checks.checks.tables.layout import unique_header, with_header
from output_checks.checks.tables.profile import NUMBER
from output_checks.sniff import HEAD, decode_text, text_encoding

CHUNK_ROWS = 50_000


@dataclass
class TableSource:
    name: str  # "" for a single-table file, else the sheet or table name
    chunks: Iterator[pd.DataFrame]  # every value a string ("" for empty), columns are the header
    note: str = ""
    # Columns the format itself defines as counts of people (a VCF's allele counts); None: inferred from the table
    count_columns: tuple[str, ...] | None = None


def _csv_dialect(sample: str) -> tuple[str, bool]:
    lines = [line for line in sample.splitlines()[:40] if line.strip()]
    if len(sample) >= HEAD - 1:
        lines = lines[:-1]
    text = "\n".join(lines)
    try:
        dialect = csv.Sniffer().sniff(text, delimiters=",;\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    try:
        header = csv.Sniffer().has_header(text)
    except csv.Error:
        header = True
    first = next(csv.reader([lines[0]], delimiter=delimiter)) if lines else []
    if not header and first and not any(NUMBER.match(c) for c in first):
        header = True  # an all-text first row over text columns is still a header
    return delimiter, header


def read_delimited(path: Path) -> Iterator[TableSource]:
    with path.open("rb") as fh:
        head = fh.read(HEAD)
    encoding = text_encoding(head)
    sample = decode_text(head) or ""
    delimiter, header = _csv_dialect(sample.lstrip("\ufeff"))
    chunks = pd.read_csv(
        path,
        sep=delimiter,
        encoding=encoding,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        header=None,  # the header may span several rows: `layout.with_header` finds where it ends
        chunksize=CHUNK_ROWS,
        engine="c" if len(delimiter) == 1 else "python",
        skip_blank_lines=True,
        encoding_errors="replace",
    )

    def raw() -> Iterator[pd.DataFrame]:
        with chunks as reader:
            yield from reader

    yield TableSource("", with_header(raw(), header))


def read_parquet(path: Path) -> Iterator[TableSource]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)

    def chunks() -> Iterator[pd.DataFrame]:
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
            frame = batch.to_pandas()
            yield frame.astype(str).where(frame.notna(), "")

    yield TableSource("", chunks())


def read_xlsx(path: Path) -> Iterator[TableSource]:
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        for sheet in workbook.worksheets:
            hidden = sheet.sheet_state != "visible"
            rows = sheet.iter_rows(values_only=True)
            yield TableSource(
                f"sheet {sheet.title!r}",
                rows_to_chunks(rows),
                note="hidden sheet: its content is checked like any other, but a reviewer may not see it"
                if hidden
                else "",
            )
    finally:
        workbook.close()


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def rows_to_chunks(rows: Iterator[tuple[Any, ...]] | list[list[str]]) -> Iterator[pd.DataFrame]:
    """Rows of cells, the header rows first (leading empty rows skipped), as chunks with their column names."""
    return with_header(_raw_rows(rows))


def _raw_rows(rows: Iterator[tuple[Any, ...]] | list[list[str]]) -> Iterator[pd.DataFrame]:
    rows = iter(rows)
    width = 0
    batch: list[list[str]] = []
    for first in rows:
        if any(v not in (None, "") for v in first):
            batch.append([cell_text(v) for v in first])
            width = len(batch[0])
            break
    if not width:
        return
    for row in rows:
        cells = [cell_text(v) for v in row][:width]
        cells += [""] * (width - len(cells))
        batch.append(cells)
        if len(batch) >= CHUNK_ROWS:
            yield pd.DataFrame(batch)
            batch = []
    if batch:
        yield pd.DataFrame(batch)


def json_records(data: Any) -> list[dict[str, Any]] | None:
    """A JSON table: a list of flat objects, {"data": [...]}, or pandas' orient="split"/"columns" shapes."""
    if isinstance(data, dict):
        if isinstance(data.get("columns"), list) and isinstance(data.get("data"), list):
            cols = [str(c) for c in data["columns"]]
            return [dict(zip(cols, row, strict=False)) for row in data["data"] if isinstance(row, list)]
        for key in ("data", "records", "rows", "results"):
            if isinstance(data.get(key), list):
                return json_records(data[key])
        if data and all(isinstance(v, dict) for v in data.values()):
            inner = list(data.values())
            if all(set(v) == set(inner[0]) for v in inner) and len(inner[0]) > 0:
                index = list(next(iter(inner)).keys())
                return [{"column": k, **{i: v.get(i) for i in index}} for k, v in data.items()]
        return None
    flat = isinstance(data, list) and data and all(isinstance(r, dict) for r in data)
    if flat and all(not isinstance(v, dict | list) for r in data[:100] for v in r.values()):
        return data
    return None


def read_json(path: Path) -> Iterator[TableSource]:
    from output_checks.sniff import open_text

    with open_text(path) as fh:
        data = json.load(fh)
    records = json_records(data)
    if records is None:
        return
    columns = list(dict.fromkeys(k for r in records for k in r))
    rows = [[cell_text(r.get(c)) for c in columns] for r in records]
    yield TableSource("", iter([pd.DataFrame(rows, columns=unique_header([str(c) for c in columns]))] if rows else []))


def read_vcf_sites(path: Path) -> Iterator[TableSource]:
    from output_checks.sniff import open_text

    def chunks() -> Iterator[pd.DataFrame]:
        with open_text(path) as fh:
            header: list[str] | None = None
            batch: list[dict[str, str]] = []
            for line in fh:
                if line.startswith("##"):
                    continue
                if line.startswith("#CHROM"):
                    header = line.lstrip("#").rstrip("\r\n").split("\t")
                    continue
                if header is None or not line.strip():
                    continue
                fields = line.rstrip("\r\n").split("\t")
                row = dict(zip(header, fields, strict=False))
                info = row.pop("INFO", "")
                for item in info.split(";"):
                    key, _, value = item.partition("=")
                    if key in ALLELE_COUNTS:
                        row[key] = _smallest(value)  # one count per alternate allele: the smallest discloses most
                    elif key in ("AN", "AF", "NS", "DP"):
                        row[key] = value.split(",")[0]
                batch.append(row)
                if len(batch) >= CHUNK_ROWS:
                    yield pd.DataFrame(batch).fillna("")
                    batch = []
            if batch:
                yield pd.DataFrame(batch).fillna("")

    yield TableSource("", chunks(), count_columns=ALLELE_COUNTS)


# INFO keys counting the people who carry an allele (gnomAD's and bcftools' names): AC=3 is three carriers at most.
ALLELE_COUNTS = ("AC", "AC_Hom", "AC_Het", "AC_Hemi", "nhomalt", "AC_XX", "AC_XY", "AC_male", "AC_female")


def _smallest(value: str) -> str:
    numbers = []
    for part in value.split(","):
        try:
            numbers.append(int(part))
        except ValueError:
            continue
    positive = [n for n in numbers if n > 0]
    return str(min(positive or numbers)) if numbers else value


READERS = {
    "csv": read_delimited,
    "tsv": read_delimited,
    "parquet": read_parquet,
    "xlsx": read_xlsx,
    "json": read_json,
    "vcf-sites": read_vcf_sites,
}
