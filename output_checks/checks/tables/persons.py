"""Is a table individual-level? Pseudonym-shaped ids, identifier columns (NHS number, MRN, name, date of birth,
full postcode, ...), a unique id on every row, or many rows of per-row measurements with exact quasi-identifiers
and no counts: one row per person."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pandas as pd

from output_checks.checks.base import finding
from output_checks.checks.tables.headers import (
    AGGREGATE_WORDS,
    COUNT_WORDS,
    IDENTIFIER_HEADERS,
    QUASI_HEADERS,
    header_key,
    words,
)
from output_checks.checks.tables.profile import ColumnProfile, TableState
from output_checks.verdicts import Finding, Verdict


def individual_level(state: TableState) -> Iterator[Finding]:
    policy = state.ctx.policy
    profiles = state.profiles
    for name, p in profiles.items():
        if p.pseudonyms:
            yield finding(
                "tables",
                Verdict.BLOCK,
                f"{p.pseudonyms} pseudonym-shaped patient id(s): individual-level data",
                state.where(name),
            )
            return
    for name, p in profiles.items():
        if not p.filled or p.kind == "empty":
            continue
        what = IDENTIFIER_HEADERS.get(header_key(name))
        if what is None:
            continue
        if what == "postcodes" and not p.full_postcodes:
            continue  # districts ("LS6") are aggregates
        if what == "names" and p.kind != "text":
            continue
        if what in ("NHS numbers", "hospital numbers") or p.distinct_ratio > 0.5 or p.kind == "date":
            yield finding("tables", Verdict.BLOCK, f"a column of {what}: individual-level data", state.where(name))
            return
    rows = state.rows
    if rows < policy.individual_min_rows:
        return
    variant_rows = any(p.variants >= p.filled * 0.5 and p.filled for p in profiles.values())
    if variant_rows:
        return  # one row per variant (GWAS results, allele frequencies), not per person
    has_counts = any(set(words(n)) & COUNT_WORDS for n in profiles)
    if has_counts:
        return
    keys = {n: set(words(n)) for n in profiles}
    measures = [
        n for n, p in profiles.items()
        if p.kind == "number" and p.distinct_ratio >= 0.3 and not keys[n] & AGGREGATE_WORDS
    ]  # fmt: skip
    exact_quasi = [
        n for n, p in profiles.items()
        if (header_key(n) in QUASI_HEADERS or keys[n] & {"date", "age", "sex", "gender", "ethnicity"})
        and not keys[n] & AGGREGATE_WORDS and not keys[n] & {"band", "group", "range", "category"}
    ]  # fmt: skip
    ids = [n for n, p in profiles.items() if p.kind == "text" and p.distinct_ratio >= 0.95 and p.filled >= rows * 0.9
           and not keys[n] & {"label", "description", "term", "variable", "name", "group", "category", "model"}
           and _id_like(p)]  # fmt: skip
    if ids:
        yield finding(
            "tables", Verdict.BLOCK, "a unique id on every row: one row per person (individual-level data)",
            state.where(ids[0]),
        )  # fmt: skip
        return
    if measures and exact_quasi and _unique_share(state, exact_quasi + measures) >= policy.unique_row_fraction:
        yield finding(
            "tables",
            Verdict.BLOCK,
            f"{rows} rows of per-row measurements with quasi-identifiers ({', '.join(exact_quasi[:4])}): "
            "looks like one row per person",
            state.location,
        )


def _unique_share(state: TableState, columns: list[str]) -> float:
    """Share of rows (in the first rows kept in memory) whose values in `columns` no other row has."""
    if not state.head:
        return 0.0
    frame = pd.concat(state.head, ignore_index=True)
    present = [c for c in columns if c in frame.columns]
    if not present:
        return 0.0
    return float((~frame.duplicated(subset=present, keep=False)).mean())


def _id_like(p: ColumnProfile) -> bool:
    sample = p.examples
    return bool(sample) and sum(1 for v in sample if re.search(r"\d", v) and " " not in v.strip()) >= len(sample) * 0.8
