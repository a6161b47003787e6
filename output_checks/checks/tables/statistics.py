"""Statistics other than counts (means, medians, quantiles, standard deviations, minima, maxima, sums): each cell
must rest on at least the policy's threshold of people, and a standard deviation on enough degrees of freedom
(ACRO's rules). The number behind a cell is read from the table wherever it says it: a count column on the same row
("count / F" beside "mean / F"), a count row (`describe()`'s "count", a long table's "n"), "N=412" in a header, or
the largest count in the same column (a Table 1). Where nothing in the file says it, the verdict is review."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd

from output_checks.checks.base import finding
from output_checks.checks.tables.headers import (
    AGGREGATE_WORDS,
    COUNT_WORDS,
    ESTIMATE_WORDS,
    NOT_COUNT_WORDS,
    RATE_WORDS,
    is_count_name,
    statistic_of,
    words,
)
from output_checks.checks.tables.layout import LEVEL_SEPARATOR
from output_checks.checks.tables.profile import TableState
from output_checks.checks.tables.roles import label_columns, named_as, numbers
from output_checks.verdicts import Finding, Verdict

HEADER_N = re.compile(r"\b[nN]\s*=\s*(\d{1,3}(?:,\d{3})+|\d+)")
NUMERIC_START = re.compile(r"^[-+]?\.?\d")
COUNT_ROW = {"count", "n", "nobs", "obs", "observations", "number", "size", "freq", "frequency", "n_obs", "total_n"}


@dataclass
class Cells:
    """Statistic cells found, by column: (row index, statistic) pairs."""

    by_column: dict[str, list[tuple[int, str]]]

    def __bool__(self) -> bool:
        return any(self.by_column.values())


def _stat_columns(state: TableState, frame: pd.DataFrame, skip: set[str]) -> dict[str, str]:
    out = {}
    for c in frame.columns:
        c = str(c)
        if c in skip or state.profiles[c].kind not in ("integer", "number"):
            continue
        stat = statistic_of(c)
        if stat:
            out[c] = stat
    return out


def _n_for_column(column: str, frame: pd.DataFrame, count_cols: list[str]) -> pd.Series | None:
    """Per-row N for a statistic column: its own level's count ("count / F" for "mean / F"), else the table's one
    count column."""
    if LEVEL_SEPARATOR in column:
        parts = column.split(LEVEL_SEPARATOR)
        for i, part in enumerate(parts):
            if statistic_of(part):
                for word in ("count", "n", "size", "nobs"):
                    twin = LEVEL_SEPARATOR.join([*parts[:i], word, *parts[i + 1 :]])
                    match = next((c for c in frame.columns if str(c).lower() == twin.lower()), None)
                    if match is not None:
                        return numbers(frame, match)
    named = [c for c in count_cols if is_count_name(c)]
    plain = [c for c in named if set(words(c)) <= COUNT_WORDS]  # "n", "count", "patients"; not "total_cost"
    # Several counts ("patients", "events"): a group's statistic rests on its population, not on its outcomes.
    population = [c for c in plain if set(words(c)) <= POPULATION_WORDS]
    for choice in (plain, population, named):
        if len(choice) == 1:
            return numbers(frame, choice[0])
    return None


# Count names that say how many people a row's group holds (the denominator), as opposed to its events or outcomes.
POPULATION_WORDS = frozenset({"n", "count", "size", "patients", "participants", "people", "persons", "individuals",
                              "subjects", "obs", "observations", "population", "cohort", "denominator", "total",
                              "nobs", "of"})  # fmt: skip


def _header_n(column: str) -> float | None:
    m = HEADER_N.search(column)
    return float(m[1].replace(",", "")) if m else None


def statistic_rules(state: TableState, frame: pd.DataFrame, counts: list[str], skip: set[str]) -> Iterator[Finding]:
    """Findings for statistic cells: block under the threshold, review where the number behind them is unknown."""
    policy = state.ctx.policy
    labels = label_columns(state, frame)
    small: list[str] = []
    low_dof: list[str] = []
    unknown: list[str] = []

    def judge(stat: str, n: float | None, where: str) -> None:
        if n is None or pd.isna(n):
            unknown.append(where)
        elif 0 < n < policy.min_cell_count:
            small.append(where)
        elif stat == "sd" and n > 0 and n - 1 < policy.safe_dof_threshold:
            low_dof.append(where)

    # 1. Statistics named by their column ("mean_age", "mean / inc").
    columns = _stat_columns(state, frame, skip | set(labels))
    for c, stat in columns.items():
        values = numbers(frame, c)
        per_row = _n_for_column(c, frame, counts)
        fixed = _header_n(c)
        for idx in values.index[values.notna()]:
            n = per_row[idx] if per_row is not None else fixed
            judge(stat, n, state.where(c, int(idx) + 1))
    dominated = _dominated_means(state, frame, columns, counts)
    # 2. Statistics named by their row (describe(), skimr, long "statistic,value" tables, Table 1 "Age, mean (SD)").
    label = _statistic_label(state, frame, labels)
    if label is not None:
        names = frame[label].astype(str).str.strip()
        stats = names.map(statistic_of)
        is_n = names.str.lower().isin(COUNT_ROW)
        values_cols = [
            str(c) for c in frame.columns
            if str(c) not in labels and str(c) not in skip and str(c) not in columns
            and state.profiles[str(c)].kind in ("integer", "number", "count-percent")
        ]  # fmt: skip
        others = [c for c in labels if c != label]
        groups = frame[others].astype(str).agg("|".join, axis=1) if others else pd.Series("", index=frame.index)
        stat_rows = stats.index[stats.notna()]
        for c in values_cols:
            nums = numbers(frame, c)
            n_by_group = nums[is_n].groupby(groups[is_n]).min()
            header_n = _header_n(c)
            in_column = nums[stats.isna() & ~is_n]
            # a group holds at least as many people as any count in it (a Table 1 column of "n (%)" cells)
            column_n = in_column.max() if c in counts and in_column.notna().any() else None
            cells = frame[c].astype(str).str.strip()
            for idx in stat_rows:
                if not NUMERIC_START.match(cells[idx]):
                    continue
                n = n_by_group.get(groups[idx])
                if n is None or pd.isna(n):
                    n = header_n if header_n is not None else column_n
                judge(str(stats[idx]), n, state.where(c, int(idx) + 1))
    # 3. Unlabelled decimals beside row labels: means or rates? Unknown unless a name says so.
    per_variant = any(p.variants and p.variants >= p.filled * 0.5 for p in state.profiles.values())
    named_rows = label is not None and bool(frame[label].astype(str).str.strip().map(statistic_of).notna().any())
    hinted_rates = bool(set(words(state.hint)) & RATE_WORDS)
    if not (columns or not labels or per_variant or hinted_rates or named_rows or _key_value(frame, labels)):
        unknown.extend(state.where(c) for c in _bare_decimals(state, frame, set(labels) | skip))
    yield from _report(state, small, low_dof, unknown)
    if dominated:
        yield finding(
            "tables",
            Verdict.BLOCK,
            f"{len(dominated)} cell(s) whose largest value is more than {policy.nk_k:.0%} of the group's total "
            f"(mean x N): dominated by one contributor (ACRO N-K {policy.nk_n},{policy.nk_k:g})",
            "; ".join(dominated[:10]),
        )


def _statistic_label(state: TableState, frame: pd.DataFrame, labels: list[str]) -> str | None:
    """The text column naming rows' statistics ("statistic": n, mean, sd), else the first text column."""
    text = [c for c in labels if state.profiles[c].kind == "text"]
    best, hits = None, 0
    for c in text:
        found = int(frame[c].astype(str).str.strip().map(statistic_of).notna().sum())
        if found > hits:
            best, hits = c, found
    return best or (text[0] if text else None)


def _dominated_means(state: TableState, frame: pd.DataFrame, columns: dict[str, str], counts: list[str]) -> list[str]:
    """ACRO's N-K rule where a table shows a group's mean (or sum), its N and its maximum: the largest value's share
    of the group total. (The usual layout, "mean_cost, max_cost, n", or pandas' "mean / x", "max / x", "count / x".)"""
    policy = state.ctx.policy
    out: list[str] = []
    by_stat: dict[str, list[str]] = {}
    for c, stat in columns.items():
        by_stat.setdefault(stat, []).append(c)
    for top in by_stat.get("max", []):
        rest = _strip_stat(top)
        # sums with their maxima are the magnitude rules' (counts._dominance); a mean needs its N
        partner = next((c for c in by_stat.get("mean", []) if _strip_stat(c) == rest), None)
        n = _n_for_column(partner, frame, counts) if partner is not None else None
        if partner is None or n is None:
            continue
        largest, total = numbers(frame, top), numbers(frame, partner) * n
        share = largest / total.where(total > 0)
        for idx in share.index[share > policy.nk_k]:
            out.append(state.where(top, int(idx) + 1))
    return out


def _strip_stat(column: str) -> str:
    """A statistic column's name without its statistic word: "max_cost" and "mean_cost" share "cost"."""
    return " ".join(w for w in words(column) if statistic_of(w) is None)


def _bare_decimals(state: TableState, frame: pd.DataFrame, skip: set[str]) -> list[str]:
    """Columns of decimals named by nothing that says what they are (categories of a cross-tabulation of means)."""
    known = RATE_WORDS | AGGREGATE_WORDS | NOT_COUNT_WORDS | ESTIMATE_WORDS
    out = []
    for c in map(str, frame.columns):
        if c in skip or state.profiles[c].kind != "number":
            continue
        if named_as(c, known, short_words=True) or (is_count_name(c) and len(c.strip()) > 2):
            continue
        if frame[c].astype(str).str.contains("%", regex=False).any():
            continue  # percentages
        out.append(c)
    return out


def _key_value(frame: pd.DataFrame, labels: list[str]) -> bool:
    """A model summary's "label:, value" layout (statsmodels, ACRO): its numbers are fit statistics, not means."""
    for c in labels:
        text = frame[c].astype(str).str.strip()
        if text.str.endswith(":").mean() >= 0.5:
            return True
    return False


def _report(state: TableState, small: list[str], low_dof: list[str], unknown: list[str]) -> Iterator[Finding]:
    policy = state.ctx.policy

    def places(cells: list[str]) -> str:
        return "; ".join(cells[:10]) + (f"; and {len(cells) - 10} more" if len(cells) > 10 else "")

    if small:
        yield finding(
            "tables",
            Verdict.BLOCK,
            f"{len(small)} statistic cell(s) (mean, median, extreme or sum) resting on fewer than "
            f"{policy.min_cell_count} people: with so few, individual values can be recovered",
            places(small),
        )
    if low_dof:
        yield finding(
            "tables",
            Verdict.BLOCK,
            f"{len(low_dof)} standard deviation(s) with fewer than {policy.safe_dof_threshold} degrees of freedom "
            "(ACRO's safe_dof_threshold)",
            places(low_dof),
        )
    if unknown:
        yield finding(
            "tables",
            Verdict.REVIEW,
            f"{len(unknown)} statistic cell(s) or column(s) whose number of contributors the file does not show "
            f"(no N or count beside them): a reviewer must confirm each rests on at least {policy.min_cell_count} "
            "people and is not dominated by one",
            places(unknown),
        )
