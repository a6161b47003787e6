"""Pooling the count tables that came back from the sites, with suppression that stays safe across sites.

Each site's table arrives already through that site's airlock: one row per cell, the `index` columns naming the cell
(one or two of them) and the `value` column its count, with the cells the site suppressed written as a suppression
marker. The markers accepted are the airlock's own (output_checks/policy.yaml `suppression_markers`: `*`, `[REDACTED]`,
`REDACTED`, `~`, `suppressed`, `[suppressed]`, `c`, `x`, `-`, and `<N` such as `<10`), an empty value and NaN. A cell a
site's table does not list counts as suppressed at that site (unknown), never as zero: a site notebook writes every
category, zeros included. Anything else (a negative count, a fraction, infinity, another string) refuses the table.

The rule, cell by cell (`min_cell` is the coordinator's threshold):

1. A pooled cell every contributing site released exactly is *exact*: its total is shown when it is 0 or at least
   `min_cell`, and hidden otherwise (primary suppression).
2. A pooled cell with a suppressed contributor at any site is never shown as a total: the coordinator does not hold
   the suppressed values and never guesses them (no site total is ever used to fill one in). It is shown as a lower
   bound, `>=L` with L the sum of the contributors released exactly, when L is at least `min_cell`, and hidden
   otherwise.
3. A row, column or grand total is exact only when every cell of its line is exact; it is then shown when it is 0 or
   at least `min_cell` (hidden otherwise, and protected like a cell). A line with a cell of rule 2 gets a lower bound
   made only of what is shown in the line (the shown totals and shown lower bounds), or is hidden when that is under
   `min_cell`.
4. Secondary suppression: while any hidden exact cell (or hidden small total) could be computed from the shown totals
   and cells, or a shown total's hidden cells add up to fewer than `min_cell`, one more shown cell of the lines
   involved is hidden: the one that closes it leaving the fewest exposures, then the smallest; when no cell can, the
   totals of those lines are withheld. The check is exact linear algebra: a hidden quantity is recoverable when it
   lies in the row space of the shown totals' equations over the hidden cells. Tables have at most MAX_CELLS cells.

Why it is safe: everything shown is a function of what the sites released (rule 2 shows only sums of released exact
cells), so someone holding every site's released table learns nothing more about a site's suppressed cell from the
pooled table than from the site's table, which that site's airlock judged safe. Someone holding only the pooled table
cannot compute a hidden pooled cell or small total (rule 4). Zeros are shown: a pooled zero means every site released
a zero, which each site's airlock reviewed. Which hidden cells are primary and which secondary is never shown (one
marker for all), so a hidden cell tells no one it is small. tests/unit/test_federation_pooling.py attacks both ways
with a linear program and finds no hidden value.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from federation.coverage import Coverage, CoverageError, coverage_for
from federation.pooling_errors import PoolingError
from output_checks.checks.tables.profile import is_suppressed
from output_checks.policy import default_values

SUPPRESSION_MARKERS: tuple[str, ...] = tuple(default_values()["suppression_markers"])
HIDDEN = "[suppressed]"  # the one marker every hidden pooled value is shown as
TOTAL = "Total"
MAX_CELLS = 2000  # the secondary suppression does linear algebra over the table (2,000 cells: about a second)
_INTEGER = re.compile(r"\d+")
_WHOLE_FLOAT = re.compile(r"\d{1,15}\.0+")
_TOL = 1e-8


class Shown(StrEnum):
    EXACT = "exact"
    LOWER_BOUND = "lower-bound"
    SUPPRESSED = "suppressed"


@dataclass(frozen=True)
class PooledCounts:
    """The pooled table as it may be shown. `cells`: the index columns, then `count` (the total, shown cells only),
    `lower_bound` (for cells shown as `>=L`), `shown` (exact, lower-bound, suppressed) and `display` (the text to
    publish). `margins`: `line` (row, column, total), `key` (the row's or column's value, '' for the grand total) and
    the same four columns. The hidden values themselves are not kept."""

    cells: pd.DataFrame
    margins: pd.DataFrame
    index: tuple[str, ...]
    min_cell: int
    coverage: Coverage

    def table(self) -> pd.DataFrame:
        """The table to publish, as text: one index column with a Total row, or two as rows x columns with a Total
        row and column."""
        categories = {str(v) for column in self.index for v in self.cells[column]}
        label = next(name for name in (TOTAL, "All", "Total (all)", "[Total]") if name not in categories)
        if len(self.index) == 1:
            body = self.cells.set_index(self.index[0])["display"]
            total = self.margins.loc[self.margins["line"] == "total", "display"].iloc[0]
            return pd.concat([body, pd.Series({label: total})]).rename("count").to_frame()
        rows, cols = self.index
        wide = self.cells.pivot(index=rows, columns=cols, values="display")
        wide = wide.reindex(index=_unique(self.cells[rows]), columns=_unique(self.cells[cols])).fillna(HIDDEN)
        by_line = {(m.line, m.key): m.display for m in self.margins.itertuples()}
        wide[label] = [by_line[("row", key)] for key in wide.index]
        wide.loc[label] = [by_line[("column", key)] for key in wide.columns[:-1]] + [by_line[("total", "")]]
        return wide


def _unique(series: pd.Series) -> list[object]:
    return list(dict.fromkeys(series))


# ------------------------------------------------------------------------------------------------ reading the tables


def read_count(value: object) -> int | None:
    """A released count, or None for a suppressed cell; PoolingError for anything else (the value is not repeated)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        raise PoolingError("bad-count", "a count is a whole number, not true/false")
    if isinstance(value, str):
        text = value.strip()
        if not text or is_suppressed(text, list(SUPPRESSION_MARKERS)):
            return None
        if _INTEGER.fullmatch(text):
            return int(text)
        if _WHOLE_FLOAT.fullmatch(text):  # pandas writes a column with blanks in it as floats: "14.0"
            return int(text.split(".")[0])
        raise PoolingError(
            "bad-count",
            "a count is a whole number or a suppression marker (<N, " + ", ".join(SUPPRESSION_MARKERS[1:]) + ")",
        )
    if isinstance(value, numbers.Integral):
        if value < 0:
            raise PoolingError("bad-count", "a count is not negative")
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise PoolingError("bad-count", "a count is finite")
        if number < 0 or not number.is_integer():
            raise PoolingError("bad-count", "a count is a whole number, not negative")
        return int(number)
    raise PoolingError("bad-count", "a count is a whole number or a suppression marker")


def _read_site(site: str, frame: object, index: tuple[str, ...], value: str) -> dict[tuple[object, ...], int | None]:
    if not isinstance(frame, pd.DataFrame):
        raise PoolingError("malformed-table", f"site {site}: a count table is a pandas DataFrame")
    missing = [c for c in (*index, value) if c not in frame.columns]
    if missing:
        raise PoolingError("malformed-table", f"site {site}: the table has no column {', '.join(missing)}")
    if frame.empty:
        raise PoolingError("malformed-table", f"site {site}: the table has no rows")
    cells: dict[tuple[object, ...], int | None] = {}
    for position, row in enumerate(frame[[*index, value]].itertuples(index=False), start=1):
        key = tuple(row[: len(index)])
        if any(k is None or (isinstance(k, float) and math.isnan(k)) for k in key):
            raise PoolingError("malformed-table", f"site {site} row {position}: an index value is empty")
        key = tuple(str(k) for k in key)  # categories compare as text across sites (1 and '1' are one category)
        if key in cells:
            raise PoolingError("malformed-table", f"site {site} row {position}: the cell is listed twice")
        try:
            cells[key] = read_count(row[-1])
        except PoolingError as exc:
            raise PoolingError(exc.reason, f"site {site} row {position}: {exc.detail}") from None
    return cells


# ------------------------------------------------------------------------------------------------ the rule


@dataclass
class _Cell:
    key: tuple[str, ...]
    exact: bool  # every contributor released it exactly
    value: int  # the total when exact, else the sum of the exact contributors (the lower bound)
    hidden: bool = False


@dataclass
class _Line:
    kind: str  # row, column, total
    key: str
    members: list[int]  # positions of its cells
    withheld: bool = False  # its exact total withheld to protect a hidden cell


def _lines(cells: list[_Cell], dims: int) -> list[_Line]:
    everything = _Line("total", "", list(range(len(cells))))
    if dims == 1:
        return [everything]
    lines: list[_Line] = []
    for kind, axis in (("row", 0), ("column", 1)):
        groups: dict[str, list[int]] = {}
        for position, cell in enumerate(cells):
            groups.setdefault(cell.key[axis], []).append(position)
        lines += [_Line(kind, key, members) for key, members in groups.items()]
    return [*lines, everything]


def _small(value: int, min_cell: int) -> bool:
    return 0 < value < min_cell


class _Suppression:
    """The cells and totals of one pooled table and the secondary suppression over them."""

    def __init__(self, cells: list[_Cell], lines: list[_Line], min_cell: int) -> None:
        self.cells, self.lines, self.min_cell = cells, lines, min_cell
        for cell in cells:
            cell.hidden = _small(cell.value, min_cell) if cell.exact else cell.value < min_cell

    def exact_line(self, line: _Line) -> bool:
        return all(self.cells[p].exact for p in line.members)

    def total(self, line: _Line) -> int:
        return sum(self.cells[p].value for p in line.members)

    def shown_total(self, line: _Line) -> bool:
        """An exact total shown: its line is all exact, it is 0 or not small, and it is not withheld."""
        return self.exact_line(line) and not line.withheld and not _small(self.total(line), self.min_cell)

    def exposures(self) -> list[_Line | list[int]]:
        """What is left unsafe: hidden values (a cell's position list, or a small total's line) that the shown totals
        determine, and shown totals whose hidden cells add up to a small group; empty when safe."""
        found: list[_Line | list[int]] = []
        hidden = [p for p, c in enumerate(self.cells) if c.hidden and c.exact]
        column = {p: i for i, p in enumerate(hidden)}
        shown = [line for line in self.lines if self.shown_total(line)]
        for line in shown:
            if _small(sum(self.cells[p].value for p in line.members if self.cells[p].hidden), self.min_cell):
                found.append(line)
        if not hidden:
            return found
        equations = np.zeros((len(shown), len(hidden)))
        for row, line in enumerate(shown):
            for p in line.members:
                if p in column:
                    equations[row, column[p]] = 1.0
        free = _null_space(equations)
        protected: list[tuple[_Line | list[int], np.ndarray]] = []
        for p in hidden:
            unit = np.zeros(len(hidden))
            unit[column[p]] = 1.0
            protected.append(([p], unit))
        for line in self.lines:
            if self.exact_line(line) and _small(self.total(line), self.min_cell):
                members = np.zeros(len(hidden))
                for p in line.members:
                    if p in column:
                        members[column[p]] = 1.0
                protected.append((line, members))
        for what, functional in protected:
            if not functional.any() or np.linalg.norm(free.T @ functional) < _TOL:
                found.append(what)
        return found

    def related(self, what: _Line | list[int]) -> list[_Line]:
        if isinstance(what, _Line):
            return [what]
        return [line for line in self.lines if what[0] in line.members and line.kind != "total"] or [
            line for line in self.lines if what[0] in line.members
        ]

    def secondary(self) -> None:
        """Hide cells (or withhold totals) until nothing is exposed. Each round takes the first exposure and hides
        the shown cell of its lines that closes it leaving the fewest exposures (then the smallest); every round
        hides something more, so it ends, at worst with every total withheld (then nothing ties the cells)."""
        while problems := self.exposures():
            what = problems[0]
            lines = self.related(what)
            nearby = {p for line in lines for p in line.members}
            shown = [p for p, c in enumerate(self.cells) if c.exact and not c.hidden]
            candidates = (
                sorted(
                    (p for p in shown if p in nearby), key=lambda p: (self.cells[p].value == 0, self.cells[p].value)
                )[:64]
                or sorted(shown, key=lambda p: (self.cells[p].value == 0, self.cells[p].value))[:64]
            )
            best: tuple[tuple[bool, int, bool, int], int] | None = None
            for p in candidates:
                self.cells[p].hidden = True
                after = self.exposures()
                self.cells[p].hidden = False
                score = (what in after, len(after), self.cells[p].value == 0, self.cells[p].value)
                if best is None or score < best[0]:
                    best = (score, p)
            if best is not None and (not best[0][0] or best[1] in nearby):
                self.cells[best[1]].hidden = True  # closes it, or at least adds a second hidden cell to its lines
                continue
            for line in lines:
                line.withheld = True
            for line in self.lines:  # still exposed through other totals: withhold them in turn until it is not
                if not self.exposures():
                    break
                line.withheld = True

    def shown_cell(self, cell: _Cell) -> tuple[Shown, int | None]:
        if cell.hidden:
            return Shown.SUPPRESSED, None
        return (Shown.EXACT if cell.exact else Shown.LOWER_BOUND), cell.value

    def shown_line(self, line: _Line) -> tuple[Shown, int | None]:
        if self.exact_line(line):
            return (Shown.EXACT, self.total(line)) if self.shown_total(line) else (Shown.SUPPRESSED, None)
        # only what is shown in the line adds up to its lower bound: it then tells no one anything more
        bound = sum(self.cells[p].value for p in line.members if not self.cells[p].hidden)
        return (Shown.LOWER_BOUND, bound) if bound >= self.min_cell else (Shown.SUPPRESSED, None)


def _null_space(matrix: np.ndarray) -> np.ndarray:
    """An orthonormal basis (columns) of the null space of `matrix`."""
    width = matrix.shape[1]
    if matrix.shape[0] == 0:
        return np.eye(width)
    _, singular, vt = np.linalg.svd(matrix)
    rank = int((singular > _TOL * max(1.0, singular.max(initial=0.0))).sum())
    return vt[rank:].T


def _display(shown: Shown, value: int | None) -> str:
    if shown is Shown.EXACT:
        return str(value)
    if shown is Shown.LOWER_BOUND:
        return f">={value}"
    return HIDDEN


def pool_counts(
    tables: Mapping[str, pd.DataFrame],
    *,
    index: str | Sequence[str],
    value: str,
    min_cell: int = 10,
    coverage: Coverage | None = None,
) -> PooledCounts:
    """Pool each site's released count table (site -> DataFrame, one row per cell) under the rule of this module's
    docstring; `coverage` says what became of the sites without a table (every site with one contributed)."""
    dims = (index,) if isinstance(index, str) else tuple(index)
    if len(dims) not in (1, 2) or len(set(dims)) != len(dims):
        raise PoolingError("malformed-request", "index names one or two distinct columns (pool each 2-way slice)")
    if value in dims:
        raise PoolingError("malformed-request", "the value column is not an index column")
    if isinstance(min_cell, bool) or not isinstance(min_cell, int) or min_cell < 1:
        raise PoolingError("malformed-request", "min_cell is a whole number of at least 1")
    try:
        coverage = coverage_for(tables, coverage)
    except CoverageError as exc:
        raise PoolingError("coverage", str(exc)) from None
    released = {site: _read_site(site, frame, dims, value) for site, frame in tables.items()}
    keys = list(dict.fromkeys(key for cells in released.values() for key in cells))
    if len(keys) > MAX_CELLS:
        raise PoolingError("too-large", f"a pooled count table has at most {MAX_CELLS} cells")
    cells = []
    for key in keys:
        values = [cells_at.get(key) for cells_at in released.values()]
        known = sum(v for v in values if v is not None)
        cells.append(_Cell(key, exact=all(v is not None for v in values), value=known))
    work = _Suppression(cells, _lines(cells, len(dims)), min_cell)
    work.secondary()

    cell_rows = []
    for cell in cells:
        shown, number = work.shown_cell(cell)
        cell_rows.append([*cell.key, *_columns(shown, number)])
    margin_rows = []
    for line in work.lines:
        shown, number = work.shown_line(line)
        margin_rows.append([line.kind, line.key, *_columns(shown, number)])
    shown_columns = ["count", "lower_bound", "shown", "display"]
    return PooledCounts(
        cells=_typed(pd.DataFrame(cell_rows, columns=[*dims, *shown_columns])),
        margins=_typed(pd.DataFrame(margin_rows, columns=["line", "key", *shown_columns])),
        index=dims,
        min_cell=min_cell,
        coverage=coverage,
    )


def _columns(shown: Shown, number: int | None) -> list[object]:
    return [
        number if shown is Shown.EXACT else None,
        number if shown is Shown.LOWER_BOUND else None,
        shown.value,
        _display(shown, number),
    ]


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({"count": "Int64", "lower_bound": "Int64"})
