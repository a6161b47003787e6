"""Is a table individual-level? Markers first (pseudonym-shaped ids, identifier columns: NHS number, MRN, name, date
of birth, full postcode, ...), then structure: columns named like sample ids (or variants) holding genotypes, and
whether the rows describe groups (a label or grid key, real counts, statistics) or people (per-row measurements and
0/1 flags whose categories repeat, no real count, about as many rows as the project's cohort). Each column's role
comes from `person_columns`, the genotype columns' rule from `sample_columns`."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations
from math import prod

import pandas as pd

from output_checks.checks.base import finding
from output_checks.checks.tables.headers import IDENTIFIER_HEADERS, header_key
from output_checks.checks.tables.person_columns import (
    MAX_COLUMNS,
    MAX_ROWS,
    Column,
    classify,
    count_named,
    monotone,
)
from output_checks.checks.tables.profile import TableState
from output_checks.checks.tables.sample_columns import per_sample_columns
from output_checks.verdicts import Finding, Verdict

MAX_DIMS = 12  # grouping columns tried as a key, alone and in twos and threes (the first eight in fours)
GRID_SLACK = 4  # a key of several grouping columns: at most this many possible combinations per row (a grid)


# ------------------------------------------------------------------------------------------- entry and markers
def individual_level(state: TableState) -> Iterator[Finding]:
    """Findings that a table holds individual-level records: markers, per-sample columns, or rows of people."""
    marker = _markers(state)
    if marker is not None:
        yield marker
        return
    if not state.head:
        return
    frame = pd.concat(state.head, ignore_index=True)
    per_sample = per_sample_columns(state, frame)
    if per_sample is not None:
        yield per_sample
        if per_sample.verdict is Verdict.BLOCK:
            return
    if state.rows < state.ctx.policy.individual_min_rows:
        return
    verdict = _rows_of_people(state, frame)
    if verdict is not None:
        yield verdict


def _markers(state: TableState) -> Finding | None:
    for name, p in state.profiles.items():
        if p.pseudonyms:
            return finding(
                "tables",
                Verdict.BLOCK,
                f"{p.pseudonyms} pseudonym-shaped patient id(s): individual-level data",
                state.where(name),
            )
    for name, p in state.profiles.items():
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
            return finding("tables", Verdict.BLOCK, f"a column of {what}: individual-level data", state.where(name))
    return None


# --------------------------------------------------------------------------------------------------- rows of people
def _rows_of_people(state: TableState, frame: pd.DataFrame) -> Finding | None:
    head = frame.iloc[:MAX_ROWS, :MAX_COLUMNS]
    rows = len(head)
    columns = [c for c in (classify(state, str(name), head[name]) for name in head.columns) if c is not None]
    by_role: dict[str, list[Column]] = {}
    for c in columns:
        by_role.setdefault(c.role, []).append(c)
    measures = by_role.get("measure", []) + by_role.get("date", [])
    binary = by_role.get("binary", [])
    ids = by_role.get("id", [])
    # Beside an id, anything but statistics describes whoever the id names (genes' ids beside p-values do not).
    descriptive = [c for c in columns if c.role not in ("index", "constant", "id", "statistic", "count")]
    if not (measures or binary or (ids and descriptive)):
        return _categories_only(state, head, columns)

    real_counts, false_counts = _counts(state, by_role.get("count", []))
    for c in by_role.get("constant", []):
        if count_named(c.name):  # "n = 11" on every row, meant to switch the rule off
            false_counts.append(f"a count column with the same value on every row ({_name(state, c.name)})")
    key = _key(head, columns, rows)
    statistics = by_role.get("statistic", [])
    # Evidence that the rows are groups: firm (a key, variants, a curve, a correlation matrix) or weak
    # (counts and statistics, which a table of people can carry too).
    firm: list[str] = []
    weak: list[str] = []
    if key:
        firm.append(f"rows keyed by {_names(state, key)}")
    vcf_sites = getattr(state, "declared_counts", None) is not None  # a sites-only VCF declares its allele counts
    if vcf_sites or any(p.variants >= 0.5 * p.filled > 0 for p in state.profiles.values()):
        firm.append("one row per variant")
    if len(measures) >= 2 and all(c.numbers is not None and monotone(c.numbers) for c in measures):
        firm.append("every measure ordered (a curve or quantiles)")
    if _correlation_matrix(columns, rows):
        firm.append("a correlation matrix")
    if real_counts:
        weak.append(f"a count column ({_names(state, real_counts)})")
    if statistics and len(statistics) >= len(measures):
        weak.append(f"statistics ({_names(state, statistics)})")

    cohort = getattr(state.ctx.known, "cohort_size", None)
    near_cohort = bool(cohort) and 0.5 * cohort <= state.rows <= 1.05 * cohort
    person: list[str] = []
    if measures:
        person.append(f"per-row measurements ({_names(state, measures)})")
    if binary:
        person.append(f"0/1 flags ({_names(state, binary)})")
    if ids:
        person.append(f"an id on every row ({_names(state, ids)})")
    if not key:
        repeats = _repeated_categories(head, columns)
        person.append(f"categories that repeat across rows ({_names(state, repeats)})" if repeats else "no row label")
    if near_cohort:
        person.append(f"about as many rows as the project's {cohort:,} patients")
    if false_counts:
        person.extend(false_counts)
    elif not real_counts:
        person.append("no count column")
    strong = len(measures) >= 2 or bool(measures and binary) or len(binary) >= 3 or bool(ids) or near_cohort
    what = f"{state.rows:,} rows with " + ", ".join(person)
    people = f"{what}: one row per person (individual-level data)"

    if ids and not (firm or weak):
        return finding("tables", Verdict.BLOCK, people, state.location)
    if key and not ids:
        if near_cohort and len(firm) == 1 and not weak:  # as many labelled rows as patients
            message = f"{what}; {firm[0]}, but groups of about one patient each: may be one row per person"
            return finding("tables", Verdict.REVIEW, message, state.location)
        return None
    if firm:
        return None
    if not weak:
        if strong:
            return finding("tables", Verdict.BLOCK, people, state.location)
        message = f"{what}: may be one row per person; nothing marks the rows as groups"
        return finding("tables", Verdict.REVIEW, message, state.location)
    if strong:  # counts or statistics beside unlabelled rows of people's values
        message = f"{what}, but also {'; '.join(weak)}: may be one row per person"
        return finding("tables", Verdict.REVIEW, message, state.location)
    return None


def _categories_only(state: TableState, head: pd.DataFrame, columns: list[Column]) -> Finding | None:
    """Rows of nothing but categories, the same combinations again and again, with no number at all: microdata
    (sex, age band, region per person). A table of groups carries a count or a statistic beside its labels."""
    if any(c.numbers is not None or c.role in ("statistic", "count", "time", "code") for c in columns):
        return None
    categories = [c for c in columns if c.role in ("category", "label")]
    if len(categories) < 2 or _key(head, columns, len(head)):
        return None
    repeated = float(head.duplicated(subset=[c.name for c in categories], keep=False).mean())
    if repeated < 0.5:
        return None
    cohort = getattr(state.ctx.known, "cohort_size", None)
    near_cohort = bool(cohort) and 0.5 * cohort <= state.rows <= 1.05 * cohort
    what = (
        f"{state.rows:,} rows of categories only ({_names(state, categories)}), the same combinations repeated, "
        "no label, no count"
    )
    if near_cohort:
        return finding(
            "tables", Verdict.BLOCK,
            f"{what}, about as many rows as the project's {cohort:,} patients: one row per person (individual-level "
            "data)", state.location,
        )  # fmt: skip
    return finding("tables", Verdict.REVIEW, f"{what}: may be one row per person", state.location)


def _counts(state: TableState, candidates: list[Column]) -> tuple[list[Column], list[str]]:
    """Count-named columns that hold real counts (non-negative whole numbers that vary, mostly at or above the
    threshold, none above the project's cohort) and why the others do not count."""
    policy = state.ctx.policy
    cohort = getattr(state.ctx.known, "cohort_size", None)
    real: list[Column] = []
    why: list[str] = []
    for c in candidates:
        values = c.numbers
        if values is None or values.empty:
            continue
        name = _names(state, [c])
        if (values < 0).any() or not c.integer:
            why.append(f"a count column that is not whole non-negative numbers ({name})")
        elif values.between(1900, 2100).all():
            why.append(f"a count column that holds years ({name})")
        elif values.value_counts(normalize=True).iloc[0] >= 0.9:
            why.append(f"a count column that does not vary ({name})")
        elif (values >= policy.min_cell_count).mean() < 0.5:
            why.append(f"a count column mostly under {policy.min_cell_count} ({name})")
        elif cohort and values.max() > cohort:
            why.append(f"a count column with values above the project's {cohort:,} patients ({name})")
        elif cohort and len(values) >= 0.5 * cohort and values.sum() > 2 * cohort:
            # About as many groups as patients, each of them large: the groups cannot be the cohort's.
            why.append(f"a count column summing to {values.sum() / cohort:.0f} times the project's patients ({name})")
        else:
            real.append(c)
    return real, why


def _key(head: pd.DataFrame, columns: list[Column], rows: int) -> list[Column]:
    """The grouping columns (at most four) whose values tell every row apart, as a label or a grid: rows of groups.
    Combinations far sparser than a grid (a few rows among many possible) are people's values, not a key."""
    nominal = ("label", "code", "time", "dim", "sequence")
    singles = [c for c in columns if c.role in nominal] + [
        c for c in columns if c.role == "measure" and c.integer and monotone(c.numbers)
    ]
    for c in singles:
        if _unique(head, [c]):
            return [c]
    dims = [c for c in columns if c.role in (*nominal, "binary", "category") or (c.role == "measure" and c.integer)]
    # Each side of a grid repeats: a column nearly unique by itself is a value, not a dimension.
    dims = sorted((c for c in dims if c.distinct <= rows / 2), key=lambda c: c.distinct)[:MAX_DIMS]
    for size in (2, 3, 4):
        for group in combinations(dims[: MAX_DIMS if size < 4 else 8], size):
            cells = prod(c.distinct for c in group)
            if cells < rows * 0.98 or cells > GRID_SLACK * rows:
                continue  # too few combinations to tell the rows apart, or too many to be a grid
            if _unique(head, list(group)):
                return list(group)
    return []


def _unique(head: pd.DataFrame, group: list[Column]) -> bool:
    names = [c.name for c in group]
    return float(head.duplicated(subset=names, keep=False).mean()) <= 0.02


def _repeated_categories(head: pd.DataFrame, columns: list[Column]) -> list[Column]:
    categories = [c for c in columns if c.role in ("binary", "category") or (c.role == "label" and c.ratio < 0.5)]
    if categories and head.duplicated(subset=[c.name for c in categories], keep=False).mean() >= 0.5:
        return categories
    return []


def _correlation_matrix(columns: list[Column], rows: int) -> bool:
    numeric = [c for c in columns if c.numbers is not None and c.role not in ("index", "sequence")]
    if not numeric or abs(len(numeric) - rows) > 1:
        return False
    values = pd.concat([c.numbers for c in numeric])
    return bool(values.between(-1, 1).all() and (values == 1).sum() >= min(rows, len(numeric)))


def _names(state: TableState, columns: list[Column], limit: int = 4) -> str:
    names = [_name(state, c.name) for c in columns[:limit]]
    more = f" and {len(columns) - limit} more" if len(columns) > limit else ""
    return ", ".join(names) + more


def _name(state: TableState, column: str) -> str:
    if state.header_flagged:
        number = list(state.profiles).index(column) + 1 if column in state.profiles else 0
        return f"column {number}"
    return column if len(column) <= 40 else column[:37] + "..."
