"""What a reviewer sees of a file: the first rows of a table, the start of a text, the rendered notebook, or the
image itself, always read from the request's verified snapshot (never the live file). Everything returned here is
data; the templates escape it."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from output_checks.sniff import sniff

TABLE_ROWS = 200
CELL_CHARS = 500
TEXT_BYTES = 256 * 1024
IMAGE_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "svg": "image/svg+xml",  # served under a sandbox CSP, so any script in it never runs
}
TEXT_KINDS = frozenset({"text", "markdown", "json", "html", "xml", "utf-8", "vcf-sites"})


@dataclass
class Preview:
    kind: str  # notebook | table | text | image | none
    file_type: str
    html: str = ""  # notebook: nbconvert's sanitised HTML
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    text: str = ""
    truncated: bool = False
    content_type: str = ""  # image
    reason: str = ""  # none: why there is no preview


def preview(path: Path) -> Preview:
    """The preview of the snapshot at `path` (already verified against its hash by the caller)."""
    file_type = sniff(path)
    try:
        if file_type == "ipynb":
            from output_checks.preview import render_notebook

            return Preview("notebook", file_type, html=render_notebook(path))
        if file_type in ("csv", "tsv"):
            columns, rows, more = _delimited(path, "\t" if file_type == "tsv" else ",")
            return Preview("table", file_type, columns=columns, rows=rows, truncated=more)
        if file_type == "parquet":
            columns, rows, more = _parquet(path)
            return Preview("table", file_type, columns=columns, rows=rows, truncated=more)
        if file_type in IMAGE_TYPES:
            return Preview("image", file_type, content_type=IMAGE_TYPES[file_type])
        if file_type in TEXT_KINDS:
            with path.open("rb") as fh:
                head = fh.read(TEXT_BYTES + 1)
            return Preview("text", file_type, text=head[:TEXT_BYTES].decode("utf-8", "replace"),
                           truncated=len(head) > TEXT_BYTES)  # fmt: skip
    except (ValueError, OSError, csv.Error) as exc:
        return Preview("none", file_type, reason=f"the file could not be read for a preview ({type(exc).__name__})")
    return Preview("none", file_type, reason=f"no preview for {file_type} files: judge them by the checks' findings")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…"


def _delimited(path: Path, delimiter: str) -> tuple[list[str], list[list[str]], bool]:
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        header = [_cell(c) for c in next(reader, [])]
        rows = []
        for row in reader:
            if len(rows) == TABLE_ROWS:
                return header, rows, True
            rows.append([_cell(c) for c in row])
    return header, rows, False


def _parquet(path: Path) -> tuple[list[str], list[list[str]], bool]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
        batch = next(table.iter_batches(batch_size=TABLE_ROWS), None)
    except Exception as exc:  # pyarrow raises its own error types for damaged files
        raise ValueError(type(exc).__name__) from None
    columns = [_cell(name) for name in table.schema_arrow.names]
    if batch is None:
        return columns, [], False
    rows = [[_cell(v) for v in row.values()] for row in batch.to_pylist()]
    return columns, rows, table.metadata.num_rows > len(rows)
