"""Profiling a table's columns as its chunks stream past: what each column holds (integers, numbers, counts with
percentages, dates, pseudonyms, variants, suppressed cells), its distinct values (capped), and identifier screening
of each newly seen value. `TableState` is what the rules read once every row has been seen."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from output_checks.checks.base import Context
from output_checks.screening.text import Segment
from output_checks.verdicts import Finding, Verdict
from workbench.view_contract import PSEUDONYM

DISTINCT_CAP = 200_000  # distinct values remembered per column (memory stays flat); past it, values are screened
# chunk by chunk without cross-chunk dedup, and the column counts as high-cardinality
NUMBER = re.compile(r"^\s*[-+]?(\d{1,3}(,\d{3})+(\.\d*)?|\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*%?\s*$")
INTEGER = re.compile(r"^\s*\+?(\d{1,3}(,\d{3})+|\d+)(\.0+)?\s*$")
# "Table 1" cells: a count with its percentage, "245 (59.5%)", "12/345 (3.5%)", "1,204 (61%)".
COUNT_PERCENT = re.compile(r"^\s*(\d{1,3}(?:,\d{3})+|\d+)\s*(?:/\s*[\d,]+\s*)?[\[(]\s*[\d.]+\s*%\s*[\])]\s*$")
# A statistic with its spread: "67.2 (10.1)", "4 (2-7)", "67.2 ± 10.1", "1.82 [1.41, 2.35]".
ESTIMATE_SPREAD = re.compile(
    r"^\s*[-+]?\d[\d,]*(\.\d+)?\s*(\(|\[|±|\+/-)\s*[-+]?[\d.,]+(\s*(-|–|to|,)\s*[-+]?[\d.,]+)?\s*[\])]?\s*$"
)
SMALL_MARKER = re.compile(r"^\s*(<|≤|<=)\s*\d+\s*$")
# One separator used twice ("12.3/1000" is a rate, not a date), a day or month of at most 31, a year from 1800.
DATE = re.compile(
    r"^\s*(\d{4}-\d{2}-\d{2}|(?:0?[1-9]|[12]\d|3[01])(?P<sep>[/.-])(?:0?[1-9]|[12]\d|3[01])(?P=sep)(?:1[89]|2\d)\d\d)"
    r"([ T]\d{2}:\d{2}(:\d{2})?)?\s*$"
)
LONG_INTEGER = re.compile(r"^\s*\+?\d{9,19}\s*$")  # could be an id or a phone number; decimals cannot
NHS_SHAPE = re.compile(r"^\s*\d{3}[ -]?\d{3}[ -]?\d{4}\s*$")
VARIANT = re.compile(r"^(rs\d+|(chr)?[0-9XYM]{1,2}[:_]\d+([:_][ACGTN]+[:_/>][ACGTN]+)?)$", re.IGNORECASE)
FULL_POSTCODE = re.compile(r"^\s*[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\s*$", re.IGNORECASE)


@dataclass
class ColumnProfile:
    name: str
    values: int = 0
    empty: int = 0
    numeric: int = 0
    integer: int = 0
    suppressed: int = 0
    dates: int = 0
    pseudonyms: int = 0
    count_percent: int = 0
    spread: int = 0
    variants: int = 0
    full_postcodes: int = 0
    distinct: set[str] = field(default_factory=set)
    distinct_overflow: bool = False
    examples: list[str] = field(default_factory=list)  # the first distinct values, for shape tests
    blocked: bool = False
    first_row: dict[str, int] = field(default_factory=dict)

    @property
    def filled(self) -> int:
        return self.values - self.empty

    @property
    def kind(self) -> str:
        real = self.filled - self.suppressed
        if real <= 0:
            return "empty"
        if self.numeric == real:
            return "integer" if self.integer == real else "number"
        described = self.count_percent + self.spread
        if described + self.numeric >= real * 0.5 and described:  # Table 1: n (%) and mean (SD)
            return "count-percent"
        if self.dates >= real * 0.9:
            return "date"
        return "text"

    @property
    def distinct_ratio(self) -> float:
        if self.distinct_overflow:
            return 1.0
        return len(self.distinct) / self.filled if self.filled else 0.0


def is_suppressed(value: str, markers: list[str]) -> bool:
    v = value.strip()
    return bool(SMALL_MARKER.match(v)) or v in markers or v.lower() in (m.lower() for m in markers)


@dataclass
class TableState:
    name: str
    location: str
    ctx: Context
    rows: int = 0
    profiles: dict[str, ColumnProfile] = field(default_factory=dict)
    head: list[pd.DataFrame] = field(default_factory=list)
    head_rows: int = 0
    findings: list[Finding] = field(default_factory=list)

    infer_crosstab: bool = True  # off for tables recovered from printed text, whose index looks like counts
    header_flagged: bool = False  # the header itself holds an identifier: name columns by number only
    declared_counts: tuple[str, ...] | None = None  # count columns the format defines (a VCF's allele counts)
    hint: str = ""  # the file's name: "rates_by_region.csv" says what unlabelled numbers are

    def where(self, column: str | None = None, row: int | None = None) -> str:
        label = ""
        if column is not None:
            number = list(self.profiles).index(column) + 1 if column in self.profiles else 0
            short = column if len(column) <= 40 else column[:37] + "..."
            label = f"column {number}" if self.header_flagged else f"column {short!r}"
        parts = [p for p in (self.location, label) if p]
        if row is not None:
            parts.append(f"row {row}")
        return ", ".join(parts)


def profile_chunk(state: TableState, chunk: pd.DataFrame, screen_new: dict[str, list[tuple[int, str]]]) -> None:
    lowered_markers = {m.strip().lower() for m in state.ctx.policy.suppression_markers}
    start = state.rows
    for column in chunk.columns:
        profile = state.profiles.setdefault(str(column), ColumnProfile(str(column)))
        series = chunk[column].astype(str)
        profile.values += len(series)
        stripped = series.str.strip()
        lowered = stripped.str.lower()
        empty = stripped.eq("") | lowered.isin(("na", "nan", "none", "null", "nat"))
        profile.empty += int(empty.sum())
        filled = stripped[~empty]
        if filled.empty:
            continue
        # is_suppressed, for a whole column at once (one Python call per cell was most of a large table's time)
        suppressed = filled.str.match(SMALL_MARKER) | lowered[~empty].isin(lowered_markers)
        profile.suppressed += int(suppressed.sum())
        real = filled[~suppressed]
        numeric = real.str.match(NUMBER)
        profile.numeric += int(numeric.sum())
        profile.integer += int(real[numeric].str.match(INTEGER).sum())
        nonnum = real[~numeric]
        if not nonnum.empty:
            profile.count_percent += int(nonnum.str.match(COUNT_PERCENT).sum())
            profile.spread += int(nonnum.str.match(ESTIMATE_SPREAD).sum())
            profile.dates += int(nonnum.str.match(DATE).sum())
            profile.pseudonyms += int(nonnum.str.contains(PSEUDONYM).sum())
            profile.variants += int(nonnum.str.match(VARIANT).sum())
            profile.full_postcodes += int(nonnum.str.match(FULL_POSTCODE).sum())
        if profile.blocked:
            continue
        uniques = pd.unique(real.to_numpy())
        new = [u for u in uniques if u not in profile.distinct]
        if len(profile.examples) < 200:
            profile.examples.extend(new[: 200 - len(profile.examples)])
        if new:
            if not profile.distinct_overflow:
                if len(profile.distinct) + len(new) > DISTINCT_CAP:
                    profile.distinct_overflow = True
                    profile.distinct.clear()
                else:
                    profile.distinct.update(new)
            positions = real.index
            first = {}
            wanted = set(new)
            for idx, value in zip(positions, real.to_numpy(), strict=True):
                if value in wanted and value not in first:
                    first[value] = start + int(idx - chunk.index[0]) + 1
            screen_new.setdefault(str(column), []).extend((first[v], v) for v in new)
    state.rows += len(chunk)


def screen_values(state: TableState, new: dict[str, list[tuple[int, str]]]) -> None:
    """Identifier screening of each column's newly seen values, a column stopping at its first block."""
    ctx = state.ctx
    for column, values in new.items():
        profile = state.profiles[column]
        if profile.blocked:
            continue
        kind = profile.kind
        if kind in ("integer", "number"):
            # Numbers are identifiers only in identifier shapes (NHS numbers, phone numbers, long ids).
            values = [(r, v) for r, v in values if NHS_SHAPE.match(v) or LONG_INTEGER.match(v)]
        if not values:
            continue
        segments = (Segment(state.where(column, row), value) for row, value in values)
        for f in ctx.screen(segments, "identifiers"):
            state.findings.append(f)
            if f.verdict is Verdict.BLOCK:
                profile.blocked = True
                break


def count_value(cell: object) -> float:
    """The count in a cell ("12", "1,234", "245 (59.5%)"), or NaN for anything else (suppressed, text, empty)."""
    text = str(cell).strip()
    match = COUNT_PERCENT.match(text)
    if match:
        text = match[1]
    text = text.replace(",", "")
    if text.endswith("%"):
        return float("nan")
    try:
        return float(text)
    except ValueError:
        return float("nan")
