"""Statistical disclosure control on a table's cells, ACRO's rules: which columns hold counts, cells under the
policy's threshold, zeros, suppressed cells recoverable from totals, and dominance (N-K, p-ratio) where a table
carries each cell's total and largest contributions."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pandas as pd

from output_checks.checks.base import finding
from output_checks.checks.tables.headers import TOTAL_LABEL, is_count_name
from output_checks.checks.tables.profile import TableState, count_value, is_suppressed
from output_checks.checks.tables.roles import count_columns
from output_checks.verdicts import Finding, Verdict


def count_rules(state: TableState, frame: pd.DataFrame, acro: str | None) -> Iterator[Finding]:
    policy = state.ctx.policy
    if acro:
        yield finding("tables", Verdict.REVIEW if acro == "review" else Verdict.BLOCK, f"ACRO marked this table {acro}")
    yield from _dominance(state, frame)
    counts = count_columns(state, frame)
    if not counts:
        return
    base = policy.rounding_base
    numeric = {c: frame[c].map(count_value) for c in counts}
    rounded = base is not None and all(((s.dropna() % base) == 0).all() for s in numeric.values())
    label_col = next((c for c in frame.columns if state.profiles[str(c)].kind == "text"), None)
    small: list[str] = []
    zeros: list[str] = []
    for c, series in numeric.items():
        for idx, value in series.items():
            if pd.isna(value):
                continue
            row = int(idx) + 1
            if value == 0 and state.declared_counts is None:  # an allele no one carries is not a disclosure
                zeros.append(state.where(str(c), row))
            elif 0 < value < policy.min_cell_count and not rounded:
                small.append(state.where(str(c), row))
    if small:
        yield finding(
            "tables",
            Verdict.BLOCK,
            f"{len(small)} count cell(s) below the minimum of {policy.min_cell_count} (suppress them, e.g. '<"
            f"{policy.min_cell_count}', and any that totals would reveal)",
            "; ".join(small[:10]) + (f"; and {len(small) - 10} more" if len(small) > 10 else ""),
        )
    if zeros and policy.zeros != "pass":
        yield finding(
            "tables",
            Verdict(policy.zeros),
            f"{len(zeros)} zero count(s): a zero can disclose (everyone or no one in a group)",
            "; ".join(zeros[:10]),
        )
    yield from _recoverable(state, frame, counts, label_col)
    yield from _decimal_wholes(state, frame, counts, bool(small))


WHOLE_DECIMAL = re.compile(r"^\s*-?\d[\d,]*\.0+\s*$")


def _decimal_wholes(state: TableState, frame: pd.DataFrame, counts: list[str], small: bool) -> Iterator[Finding]:
    """Count cells that no name calls counts, every one written as a decimal ("780098.0"): pandas writes counts as
    integers, so these are counts that passed through floats (a missing cell) or sums of a measure (a crosstab with
    aggfunc=sum), whose contributors the table does not show. Small ones already block; the rest go to a reviewer."""
    if small:
        return
    inferred = [c for c in counts if not is_count_name(str(c)) and state.declared_counts is None]
    decimal = []
    for c in inferred:
        cells = frame[c].astype(str).str.strip()
        cells = cells[cells != ""]
        if len(cells) and cells.str.match(WHOLE_DECIMAL).all():
            decimal.append(str(c))
    if decimal:
        yield finding(
            "tables",
            Verdict.REVIEW,
            f"{len(decimal)} column(s) of whole numbers written as decimals and not named as counts: counts or sums "
            "of a measure (whose contributors the table does not show); a reviewer must confirm which",
            "; ".join(state.where(c) for c in decimal[:10]),
        )


MAGNITUDE_TOTAL = re.compile(r"^(sum|total)([ _-]|$)|([ _-])(sum|total)$", re.IGNORECASE)
LARGEST = re.compile(r"^(max|largest|top|max1|largest1)([ _-]|$)|([ _-])(max|largest)$", re.IGNORECASE)
SECOND = re.compile(r"^(max2|second|second[ _-]largest|largest2)([ _-]|$)", re.IGNORECASE)


def _dominance(state: TableState, frame: pd.DataFrame) -> Iterator[Finding]:
    """ACRO's magnitude rules, where a table carries what they need: a cell's total and its largest (and second
    largest) contributions. N-K: the largest n contributors may not hold more than k of the total. P-ratio: what
    is left after the two largest must be at least p of the largest, or the largest can be estimated."""
    policy = state.ctx.policy
    columns = [str(c) for c in frame.columns]
    total = next((c for c in columns if MAGNITUDE_TOTAL.search(c)), None)
    largest = next((c for c in columns if LARGEST.search(c)), None)
    if total is None or largest is None:
        return
    second = next((c for c in columns if SECOND.search(c)), None)
    values = {c: frame[c].map(count_value) for c in (total, largest, second) if c}
    dominated: list[str] = []
    for idx in frame.index:
        t, first = values[total][idx], values[largest][idx]
        two = values[second][idx] if second else float("nan")
        if pd.isna(t) or pd.isna(first) or t <= 0:
            continue
        top = first + (two if not pd.isna(two) and policy.nk_n >= 2 else 0)
        nk_fails = top > policy.nk_k * t
        p_fails = not pd.isna(two) and (t - first - two) < policy.p_ratio * first
        if nk_fails or p_fails:
            dominated.append(state.where(total, int(idx) + 1))
    if dominated:
        yield finding(
            "tables",
            Verdict.BLOCK,
            f"{len(dominated)} cell(s) dominated by their largest contributor(s) (ACRO N-K {policy.nk_n},"
            f"{policy.nk_k:g} / p-ratio {policy.p_ratio:g})",
            "; ".join(dominated[:10]),
        )


def _recoverable(state: TableState, frame: pd.DataFrame, counts: list[str], label_col: str | None) -> Iterator[Finding]:
    """A suppressed cell is recoverable when it is the only one hidden in a row or column whose total is shown."""
    markers = state.ctx.policy.suppression_markers
    hidden = {c: frame[c].map(lambda v: is_suppressed(str(v), markers)) for c in counts}
    if not any(h.any() for h in hidden.values()):
        return
    total_cols = [c for c in counts if TOTAL_LABEL.match(str(c))]
    body_cols = [c for c in counts if c not in total_cols]
    found: list[str] = []
    for total in total_cols:
        for idx in frame.index:
            suppressed = [c for c in body_cols if hidden[c][idx]]
            if len(suppressed) == 1 and not hidden[total][idx]:
                found.append(state.where(str(suppressed[0]), int(idx) + 1))
    if label_col is not None:
        total_rows = frame.index[frame[label_col].astype(str).str.match(TOTAL_LABEL)]
        body_rows = [i for i in frame.index if i not in set(total_rows)]
        for t in total_rows:
            for c in counts:
                suppressed = [i for i in body_rows if hidden[c][i]]
                if len(suppressed) == 1 and not hidden[c][t]:
                    found.append(state.where(str(c), int(suppressed[0]) + 1))
    if found:
        cells = sorted(set(found))
        yield finding(
            "tables",
            Verdict.REVIEW,
            f"{len(cells)} suppressed cell(s) can be recovered by subtraction from a total: suppress a second cell",
            "; ".join(cells[:10]),
        )
