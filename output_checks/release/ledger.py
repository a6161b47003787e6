"""The release ledger: what each project has released, as table cells keyed by the dimensions they are written
under, and the differencing rule that compares a new table with it.

A cell is stored as keyed hashes of its row label(s) and its column label (HMAC-SHA256 under a per-project key held
in the installation's secrets, so no label is kept in clear and none can be tested offline) with its value, which
left the enclave when it was released. Each column of whole numbers also gets a "sum of the rows" cell, so a table
re-released without one small group is caught through its total. A new table that shares cells with a released one
and differs from it by fewer than the policy's minimum count in some of them, while most shared cells agree, is the
classic "n and n-1" pair: its difference would publish a group smaller than the threshold. That is a review finding
naming the earlier release and the new table's cells, never a label or the exact difference."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, tuple_

from kernel import audit
from output_checks.release.models import LedgerCell, RequestFile

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from kernel.config import Paths

CHECK = "differencing"
TABLE_KINDS = frozenset({"csv", "tsv", "parquet"})  # what the preview reads as rows and columns
MAX_CELLS = 5000  # per table: the preview reads its first rows, and a ledger row is small
MAX_FINDINGS = 10  # cells named per released table
QUERY_BATCH = 400  # keys per IN (...) query, under every database's parameter limit
SUM_ROW = "\x00sum of the rows"

NUMBER = re.compile(r"^[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
COUNT_PERCENT = re.compile(r"^(\d{1,3}(?:,\d{3})+|\d+)\s*[(\[]")  # "245 (59.5%)": the count is the first number
EMPTY = frozenset({"", "na", "nan", "none", "null", "-", "."})
# Numeric columns that name a group rather than measure one: they are row labels, not cells.
LABEL_HEADER = re.compile(
    r"(?i)^(?:unnamed: ?\d+|index|year|yr|month|week|quarter|period|wave|age|age_?group|age_?band|band|group|"
    r"stratum|strata|code|id|region|site|level|category|decile|quintile|tertile|rank|order|cluster|visit)$"
)


@dataclass(frozen=True)
class Cell:
    """One cell of a table, keyed. `row` and `column` say where it is in the file being checked; they are used for
    a finding's location and never stored."""

    row_key: str
    column_key: str
    value: float
    row: int | None  # 1-based data row; None for a column's sum of the rows
    column: str


@dataclass(frozen=True)
class Released:
    """A released table a new one is compared with."""

    request_id: str
    path: str


def ledger_key(paths: Paths, project: str) -> bytes:
    """The project's ledger key, created on first use beside its pseudonym key (never inside a project folder)."""
    from fabric.pseudonyms import load_or_create_key

    return load_or_create_key(paths.secrets / f"ledger-{project}.key")


def _norm(label: str) -> str:
    return " ".join(label.split()).casefold()


def _h(key: bytes, domain: str, parts: Iterable[str]) -> str:
    text = domain + "\x00" + "\x1f".join(_norm(p) for p in parts)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def number(text: str) -> float | None:
    """The value a cell shows: a plain number (thousands commas allowed) or the count of an "n (%)" cell."""
    value = text.strip()
    if NUMBER.match(value):
        return float(value.replace(",", ""))
    if m := COUNT_PERCENT.match(value):
        return float(m[1].replace(",", ""))
    return None


def _value_columns(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    numeric = []
    for i, name in enumerate(columns):
        filled = [r[i] for r in rows if i < len(r) and r[i].strip().casefold() not in EMPTY]
        if filled and all(number(v) is not None for v in filled) and not LABEL_HEADER.match(name.strip()):
            numeric.append(i)
    if len(numeric) == len(columns) and len(columns) > 1:
        numeric = numeric[1:]  # no text column at all: the first column labels the rows
    return numeric


def keyed_cells(
    columns: Sequence[str], rows: Sequence[Sequence[str]], key: bytes, *, complete: bool = True
) -> list[Cell]:
    """The table's cells keyed by their row labels (every non-value column) and column label, plus, when `rows`
    are all of the table (`complete`), a sum of the rows for each column of whole numbers. Empty for a table with
    no value columns or no rows."""
    columns = [str(c) for c in columns]
    values = _value_columns(columns, rows)
    if not rows or not values:
        return []
    labels = [i for i in range(len(columns)) if i not in values]
    cells: list[Cell] = []
    sums: dict[int, float] = defaultdict(float)
    whole: dict[int, bool] = dict.fromkeys(values, True)
    for number_, row in enumerate(rows, start=1):
        row_labels = [row[i] if i < len(row) else "" for i in labels] or [f"#{number_}"]
        row_key = _h(key, "row", row_labels)
        for i in values:
            value = number(row[i]) if i < len(row) else None
            if value is None:
                whole[i] = False  # a suppressed or missing cell: the column's sum would not be the released total
                continue
            whole[i] = whole[i] and value.is_integer()
            sums[i] += value
            if len(cells) < MAX_CELLS:
                cells.append(Cell(row_key, _h(key, "column", [columns[i]]), value, number_, columns[i]))
    if complete and len(rows) > 1:
        sum_key = _h(key, "row", [SUM_ROW])
        cells += [Cell(sum_key, _h(key, "column", [columns[i]]), sums[i], None, columns[i]) for i in values if whole[i]]
    return cells


# ------------------------------------------------------------------------------------------------ the ledger


def has_entries(session: Session, project: str) -> bool:
    return session.scalar(select(LedgerCell.id).where(LedgerCell.project == project).limit(1)) is not None


def record(
    session: Session, *, project: str, request_id: str, file: RequestFile, cells: list[Cell], actor: str
) -> None:
    """Add a released table's cells to the project's ledger, with its audit event, in the release's transaction."""
    for c in cells:
        session.add(LedgerCell(project=project, request_id=request_id, file_id=file.id, row_key=c.row_key,
                               column_key=c.column_key, value=c.value))  # fmt: skip
    audit.record(session, actor=actor, action="airlock.ledger", target=f"request:{request_id}", project=project,
                 path=file.path, version=file.version, sha256=file.sha256, cells=len(cells))  # fmt: skip


def released_cells(
    session: Session, project: str, cells: Sequence[Cell], *, exclude_request: str | None = None
) -> dict[Released, dict[tuple[str, str], float]]:
    """The project's released cells under the same keys as `cells`, per released table."""
    keys = sorted({(c.row_key, c.column_key) for c in cells})
    out: dict[Released, dict[tuple[str, str], float]] = defaultdict(dict)
    for start in range(0, len(keys), QUERY_BATCH):
        batch = keys[start : start + QUERY_BATCH]
        query = (
            select(LedgerCell.request_id, RequestFile.path, LedgerCell.row_key, LedgerCell.column_key, LedgerCell.value)
            .join(RequestFile, RequestFile.id == LedgerCell.file_id)
            .where(LedgerCell.project == project, tuple_(LedgerCell.row_key, LedgerCell.column_key).in_(batch))
        )
        for request_id, path, row_key, column_key, value in session.execute(query):
            if request_id != exclude_request:
                out[Released(request_id, path)][(row_key, column_key)] = value
    return dict(out)


def _where(cell: Cell) -> str:
    short = cell.column if len(cell.column) <= 40 else cell.column[:37] + "..."
    return f"column {short!r}, " + (f"row {cell.row}" if cell.row is not None else "total of the rows")


def differencing_findings(
    cells: Sequence[Cell], released: dict[Released, dict[tuple[str, str], float]], min_cell_count: int
) -> list[dict[str, Any]]:
    """Review findings for each released table this one differs from by fewer than `min_cell_count` in some shared
    cells while most shared cells agree (the same table, slightly changed). Only whole numbers are compared: counts,
    not means. Tables that share no row (only a column's sum) are not the same table."""
    findings = []
    for which, old in sorted(released.items(), key=lambda item: (item[0].request_id, item[0].path)):
        shared = [c for c in cells if (c.row_key, c.column_key) in old and c.value.is_integer()
                  and float(old[(c.row_key, c.column_key)]).is_integer()]  # fmt: skip
        if not any(c.row is not None for c in shared):
            continue
        gaps = {id(c): abs(c.value - old[(c.row_key, c.column_key)]) for c in shared}
        small = [c for c in shared if 0 < gaps[id(c)] < min_cell_count]
        close = sum(1 for c in shared if gaps[id(c)] < min_cell_count)
        if not small or close * 2 < len(shared):
            continue
        named = "; ".join(_where(c) for c in small[:MAX_FINDINGS])
        more = f"; and {len(small) - MAX_FINDINGS} more" if len(small) > MAX_FINDINGS else ""
        findings.append(
            {
                "check": CHECK,
                "verdict": "review",
                "message": (
                    f"{len(small)} cell(s) differ by fewer than {min_cell_count} from the same cells of {which.path}, "
                    f"released in request {which.request_id}: the difference between the two releases would show "
                    f"a group smaller than the threshold (check that this table does not recover it)"
                ),
                "location": named + more,
            }
        )
    return findings
