"""Columns named like sample ids (or variants, one row per sample) that hold genotypes: individual-level data
however the table's rows are keyed. Many such columns holding other numbers (expression, per-sample scores) go to
review."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from output_checks.checks.base import finding
from output_checks.checks.tables.person_columns import EMPTY, MAX_ROWS
from output_checks.checks.tables.profile import TableState
from output_checks.verdicts import Finding, Verdict

MAX_SAMPLE_COLUMNS = 200
GENOTYPE_MIN_COLUMNS = 5
SAMPLE_VALUES_MIN_COLUMNS = 20

# Headers shaped like sample ids: a short prefix and digits ("NA12878", "HG00096", "S0001", "sample_12",
# "1001_1001", a 7-digit eid); never a year, a week, a model number or a statistic ("p95", "q1").
SAMPLE_HEADER = re.compile(r"^(?P<prefix>[A-Za-z]{0,12})[-_.]?(?P<digits>\d{1,12})([-_.][A-Za-z0-9]{1,12})?$")
NOT_SAMPLE_PREFIX = {
    "wk", "week", "w", "m", "mo", "month", "q", "qtr", "quarter", "y", "yr", "year", "fy", "cy", "wave", "day", "d",
    "t", "time", "period", "lag", "model", "fold", "rep", "iter", "pc", "dim", "comp", "factor", "cluster", "group",
    "grp", "arm", "decile", "quintile", "percentile", "p", "age", "v", "var", "col", "column", "unnamed", "chr",
    "chrom", "pos", "beta", "se", "or", "hr", "af", "maf", "ac", "an", "n", "count", "total", "x", "level", "band",
    "site", "region", "ward", "h", "hour", "min", "sec", "icd", "f", "visit", "dose", "step", "lot", "batch", "cycle",
    "stage", "grade", "class", "type", "version", "r", "rank", "top", "bottom", "k", "c", "cat", "item",
}  # fmt: skip
SYNTHETIC_HEADER = re.compile(r"^column \d+$")  # the reader's names for a table without a header row
VARIANT_HEADER = re.compile(r"^(rs\d+|(chr)?[0-9XYMT]{1,2}[:_]\d+)([:_.][ACGTN]+)*$", re.IGNORECASE)
GENOTYPE_TEXT = re.compile(r"^([0-9.][/|][0-9.]|[ACGTN-][/|]?[ACGTN-])$", re.IGNORECASE)


def per_sample_columns(state: TableState, frame: pd.DataFrame) -> Finding | None:
    """Columns named like sample ids (or variants, one row per sample) holding genotypes: individual-level however
    the rows are keyed. Many sample-named columns of other values (expression, per-sample scores) go to review."""
    first = [str(v).strip() for v in frame.iloc[0]] if len(frame) > 1 else []
    if first and len(set(first)) == len(first) and all(SYNTHETIC_HEADER.match(str(c)) for c in frame.columns):
        # No header was recognised (numeric sample ids look like data): the first row may still be one.
        frame = frame.iloc[1:].set_axis(first, axis=1)
    named = [c for c in frame.columns if _sample_header(str(c)) or VARIANT_HEADER.match(str(c).strip())]
    if len(named) < GENOTYPE_MIN_COLUMNS:
        return None
    examined = named[:MAX_SAMPLE_COLUMNS]
    kinds = _genotype_kinds(frame[examined].iloc[:MAX_ROWS])
    genotype = [str(c) for c, kind in zip(examined, kinds, strict=True) if kind == "genotype"]
    numeric = [str(c) for c, kind in zip(examined, kinds, strict=True) if kind == "numeric"]
    numeric_samples = [c for c in numeric if _sample_header(c)]
    at_least = "at least " if len(named) > len(examined) else ""
    if len(genotype) >= GENOTYPE_MIN_COLUMNS:
        by_sample = sum(1 for c in genotype if _sample_header(c))
        what = "sample ids" if by_sample >= len(genotype) / 2 else "variants (one row per sample)"
        return finding(
            "tables",
            Verdict.BLOCK,
            f"{at_least}{len(genotype)} columns named like {what} hold genotypes (0/1/2 dosages or calls): "
            "individual-level genotype data",
            _column_number(state, frame, genotype[0]),
        )
    if len(numeric_samples) >= SAMPLE_VALUES_MIN_COLUMNS:
        return finding(
            "tables",
            Verdict.REVIEW,
            f"{at_least}{len(numeric_samples)} columns named like sample ids hold numbers: per-sample "
            "(individual-level) values unless the headers are groups",
            _column_number(state, frame, numeric_samples[0]),
        )
    return None


def _column_number(state: TableState, frame: pd.DataFrame, column: str) -> str:
    """Where a sample-named column is, by number: its header is a sample's id and is not repeated."""
    number = [str(c) for c in frame.columns].index(column) + 1
    return ", ".join(p for p in (state.location, f"column {number}") if p)


def _sample_header(header: str) -> bool:
    match = SAMPLE_HEADER.match(header.strip())
    if not match:
        return False
    prefix, digits = match["prefix"].lower(), match["digits"]
    if VARIANT_HEADER.match(header.strip()):
        return False
    if prefix in NOT_SAMPLE_PREFIX and not (len(prefix) == 1 and len(digits) >= 4):
        return False  # weeks, model numbers, percentiles ("p95"); "P0001" is still a sample
    if len(digits) == 1 and len(prefix) < 2:
        return False
    # Bare digits: column numbers and years are not samples; long numbers (a 7-digit eid) are.
    return bool(prefix) or (len(digits) >= 4 and not 1900 <= int(digits) <= 2100)


def _genotype_kinds(block: pd.DataFrame) -> list[str]:
    """Per column: "genotype" (0/1/2, dosages near them, calls like 0/1 or A/G), "numeric" or "other". One
    conversion over the whole block: a wide table has thousands of such columns."""
    shape = block.shape
    cells = pd.Series(block.to_numpy(dtype=object).ravel(), dtype=object)
    numbers = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=float)
    unparsed = np.isnan(numbers)
    text = cells[unparsed].astype(str).str.strip()
    empty = np.zeros(len(cells), dtype=bool)
    calls = np.zeros(len(cells), dtype=bool)
    empty[unparsed] = (text.str.lower().isin(EMPTY) | text.isin(("./.", ".|."))).to_numpy()
    calls[unparsed] = text.str.match(GENOTYPE_TEXT).to_numpy()
    calls &= ~empty  # "NA" is two letters, not a call
    numbers, parsed = numbers.reshape(shape), ~unparsed.reshape(shape)
    filled = (~empty.reshape(shape)).sum(axis=0)
    numeric = parsed.sum(axis=0)
    with np.errstate(invalid="ignore"):
        in_range = ((numbers >= 0) & (numbers <= 2)).sum(axis=0)
        near = (np.abs(np.round(numbers) - numbers) <= 0.1).sum(axis=0)
        spread = np.nanmax(np.where(parsed, numbers, -np.inf), axis=0) > np.nanmin(
            np.where(parsed, numbers, np.inf), axis=0
        )
    # Imputed dosages need not sit near 0, 1 and 2; a block of [0, 2] columns reaching past 1 is dosages too.
    columns_in_range = (in_range == numeric) & (numeric > 0)
    dosage_block = columns_in_range.sum() >= GENOTYPE_MIN_COLUMNS and bool(
        np.nanmax(np.where(parsed[:, columns_in_range], numbers[:, columns_in_range], -np.inf)) > 1
    )
    kinds = []
    for i in range(shape[1]):
        if not filled[i]:
            kinds.append("other")
        elif calls.reshape(shape)[:, i].sum() >= 0.9 * filled[i]:
            kinds.append("genotype")
        elif numeric[i] < 0.9 * filled[i]:
            kinds.append("other")
        elif in_range[i] == numeric[i] and spread[i] and (near[i] >= 0.6 * numeric[i] or dosage_block):
            kinds.append("genotype")
        else:
            kinds.append("numeric")
    return kinds
