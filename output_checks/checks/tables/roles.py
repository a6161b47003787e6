"""What each column of a table does, decided by layout rather than by one header word: labels rows (text, dates,
years, index and ordinal numbers, codes), counts people, or holds a statistic. A category that happens to be
named like a count ("N" for "no") is one of several count columns, not *the* count column."""

from __future__ import annotations

import pandas as pd

from output_checks.checks.tables.headers import (
    LABEL_WORDS,
    NOT_COUNT_WORDS,
    RATE_WORDS,
    TOTAL_LABEL,
    is_count_name,
    statistic_of,
    words,
)
from output_checks.checks.tables.profile import TableState, count_value


def numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column's cells as numbers (NaN where a cell is not one); "245 (59.5%)" is its count, 245."""
    text = frame[column].astype(str).str.strip()
    out = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
    described = out.isna() & text.str.contains("(", regex=False)
    if described.any():
        out[described] = text[described].map(count_value)
    return out.where(~text.str.endswith("%"))


def looks_like_years(values: pd.Series) -> bool:
    v = values.dropna()
    return len(v) > 0 and bool(((v >= 1900) & (v <= 2100)).all())


def _ordinal(values: pd.Series) -> bool:
    """0..n-1 or 1..n in order: an index or group numbers, not counts."""
    v = values.dropna()
    if len(v) < 2 or (v % 1 != 0).any():
        return False
    start = v.iloc[0]
    return start in (0, 1) and bool((v.diff().dropna() == 1).all())


LEVEL_WORDS = frozenset({"group", "band", "decile", "quintile", "quartile", "tertile", "centile", "percentile", "year",
                         "month", "week", "day", "quarter", "stage", "grade", "class", "category", "cluster", "arm",
                         "level", "wave", "visit", "round", "period", "age", "rank", "order"})  # fmt: skip


def named_as(column: str, vocabulary: set[str], short_words: bool) -> bool:
    """Whether a column's name holds a word of `vocabulary`. Words of one or two letters ("se", "or", "c", "p")
    are also the names of categories (regions, answers, grades), so they count only where `short_words`."""
    tokens = words(column)
    # "group 3", "band 0", "decile 10", "year 2019": a category's level (a cross-tab's column), not the column's role
    levels = {i for i, w in enumerate(tokens[:-1]) if w in LEVEL_WORDS and tokens[i + 1].isdigit()}
    found = (w if w in vocabulary else w.rstrip("0123456789") for i, w in enumerate(tokens) if i not in levels)
    return any(w in vocabulary and (short_words or len(w) > 2) for w in found)  # "lower95" is "lower"


def decimals_present(state: TableState) -> bool:
    """Any column of non-integer numbers: the table holds statistics, and short names like "se" mean what they say."""
    return any(p.kind == "number" for p in state.profiles.values())


def is_label_number(state: TableState, frame: pd.DataFrame, column: str, position: int) -> bool:
    """An integer column that labels rows or measures something other than people."""
    name = column.strip()
    if name.lower().startswith("unnamed") or not name:
        return True  # pandas' index column, or the row labels of a table whose index had no name
    if is_count_name(name) or statistic_of(name):
        return False
    if named_as(name, LABEL_WORDS | RATE_WORDS, decimals_present(state)):
        return True
    values = numbers(frame, column)
    if looks_like_years(values):
        return True
    return bool(position == 0 and _ordinal(values))


def label_columns(state: TableState, frame: pd.DataFrame) -> list[str]:
    """Columns that label rows: text and dates, and the integer columns `is_label_number` picks."""
    out = []
    for position, c in enumerate(frame.columns):
        kind = state.profiles[str(c)].kind
        if kind in ("text", "date") or (kind == "integer" and is_label_number(state, frame, str(c), position)):
            out.append(str(c))
    return out


def count_columns(state: TableState, frame: pd.DataFrame) -> list[str]:
    """Columns holding counts of people. Named counts always; every other integer column too where the table's
    numbers are all integers (a cross-tabulation: categories as columns, whatever they are called)."""
    if state.declared_counts is not None:
        return [c for c in state.declared_counts if c in frame.columns]
    profiles = state.profiles
    columns = [str(c) for c in frame.columns]
    labels = set(label_columns(state, frame))
    integer = [c for c in columns if profiles[c].kind in ("integer", "empty") and profiles[c].filled]
    with_percent = [c for c in columns if profiles[c].kind == "count-percent"]
    named = [c for c in integer if is_count_name(c) and c not in labels]
    if with_percent:
        return with_percent + named
    totals = [c for c in integer if TOTAL_LABEL.match(c) and c not in named and c not in labels]
    if not state.infer_crosstab:
        return named + totals
    short = decimals_present(state)
    candidates = [
        c for c in integer
        if c not in labels and statistic_of(c) is None and not named_as(c, NOT_COUNT_WORDS | RATE_WORDS, short)
    ]  # fmt: skip
    # Every numeric column that is neither a label nor named as a rate must be a candidate: one column of decimals
    # without a name (a mean) says the integers beside it may be means too.
    unnamed_numbers = [
        c for c in columns
        if profiles[c].kind in ("integer", "number") and c not in labels
        and not named_as(c, RATE_WORDS, short) and not is_count_name(c)
    ]  # fmt: skip
    crosstab = (
        candidates
        and set(unnamed_numbers) <= set(candidates) | set(totals)
        and (labels or state.rows <= 3)
        and len(frame) <= state.ctx.policy.max_table_rows
    )
    if crosstab:
        values = pd.concat([numbers(frame, c) for c in candidates])
        if not looks_like_years(values):
            return list(dict.fromkeys(named + candidates + totals))
    return named + totals
