"""Regression outputs as tables: a coefficient table (estimates with standard errors, test statistics, p-values or
confidence limits, one row per term) must come from a model with at least ACRO's `safe_dof_threshold` residual
degrees of freedom. The residual df, or the number of observations, is read from the table (a column or row such as
`nobs`, `df_resid`, "Observations", or a "Df Residuals:" cell beside its value, as statsmodels and ACRO write their
summary tables) or from the summary table ACRO wrote beside it; without either the verdict is review."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from output_checks.checks.base import finding
from output_checks.checks.tables.headers import COUNT_WORDS, ESTIMATE_WORDS, is_count_name, words
from output_checks.checks.tables.profile import TableState, count_value
from output_checks.verdicts import Finding, Verdict

UNCERTAINTY_WORDS = {"se", "std", "stderr", "err", "error", "t", "z", "p", "pvalue", "pval", "ci", "lower", "upper",
                     "lci", "uci", "conf", "025", "975", "0", "5", "wald", "chisq", "statistic"}  # fmt: skip
VARIANT_WORDS = {"rsid", "snp", "chr", "chrom", "chromosome", "pos", "bp", "variant", "marker", "allele"}
# Labels of the residual degrees of freedom and of the number of observations, as model summaries print them.
RESIDUAL_DF = re.compile(r"^\s*(df[ ._]?resid(ual)?s?|resid(ual)?[ ._]?(df|d\.?f\.?|degrees of freedom)"
                         r"|degrees of freedom[ ,(]*resid(ual)?s?\)?|dof)\s*:?\s*$", re.IGNORECASE)  # fmt: skip
OBSERVATIONS = re.compile(r"^\s*(no\.? ?(of )?observations|observations|n ?obs|nobs|num\.? ?obs\.?|n|"
                          r"number of obs(ervations)?|obs\.?|sample size)\s*:?\s*$", re.IGNORECASE)  # fmt: skip
# Unambiguous names for a model's observations, trusted in any table (a bare "N" row may be a count category).
STATED_OBSERVATIONS = re.compile(r"^\s*(no\.? ?(of )?observations|observations|nobs|num\.? ?obs\.?|"
                                 r"number of obs(ervations)?)\s*:?\s*$", re.IGNORECASE)  # fmt: skip
SCAN_LIMIT = 300  # rows of a table scanned cell by cell for "label: value" pairs (model summaries are short)


def is_coefficient_table(state: TableState, frame: pd.DataFrame) -> bool:
    columns = [str(c) for c in frame.columns]
    keys = [set(words(c)) for c in columns]
    if any(k & VARIANT_WORDS for k in keys) or any(p.variants for p in state.profiles.values()):
        return False  # per-variant association results (GWAS), not one model's terms
    numeric = [c for c in columns if state.profiles[c].kind in ("integer", "number")]
    estimate = any(_names(c, ESTIMATE_WORDS) for c in numeric)
    spread = sum(1 for c in numeric if _names(c, UNCERTAINTY_WORDS))
    terms = any(state.profiles[c].kind == "text" for c in columns)
    return estimate and spread >= 1 and terms


def _names(column: str, vocabulary: set[str]) -> bool:
    """A word of `vocabulary` in the name; a word of one or two letters ("b", "t", "or") only as the whole name,
    since short words are also category labels."""
    tokens = [w if w in vocabulary else w.rstrip("0123456789") for w in words(column)]  # "lower95" is "lower"
    return any(w in vocabulary and (len(w) > 2 or len(tokens) == 1) for w in tokens) or (
        "std err" in column.lower() or "[0.025" in column or "0.975]" in column
    )


def _labelled_values(frame: pd.DataFrame, label: re.Pattern[str]) -> list[float]:
    """Numbers given for `label`: a column so named, or a cell so labelled with the number to its right."""
    found: list[float] = []
    for c in frame.columns:
        if label.match(str(c)):
            values = frame[c].map(count_value).dropna()
            if len(values):
                found.append(float(values.max()))  # per-term counts are at most the model's
    if len(frame) > SCAN_LIMIT or frame.empty:
        return found
    cells = frame.astype(str).to_numpy()
    if not pd.Series(cells.ravel()).str.match(label).any():
        return found
    for row in cells:
        for j, cell in enumerate(row[:-1]):
            if label.match(cell):
                value = next((count_value(v) for v in row[j + 1 :] if str(v).strip()), float("nan"))
                if not pd.isna(value):
                    found.append(value)
    return found


def residual_df(frame: pd.DataFrame, terms: int) -> float | None:
    """The smallest residual df a table shows, from df_resid or from observations less the number of terms."""
    df = _labelled_values(frame, RESIDUAL_DF)
    if df:
        return min(df)
    nobs = _labelled_values(frame, OBSERVATIONS)
    if nobs:
        return min(nobs) - max(terms, 1)
    for column in frame.columns:  # "patients", "n", "events" beside each estimate
        if is_count_name(str(column)) and set(words(str(column))) <= COUNT_WORDS:
            values = frame[column].map(count_value).dropna()
            if len(values):
                # one N for every term: one model with that many terms; N varying by row: one model per row
                return float(values.min()) - (max(terms, 1) if values.nunique() == 1 else 1)
    return None


def _sibling_df(path: Path | None) -> float | None:
    """ACRO writes a model's summary as output_K_0.csv, coefficients as output_K_1.csv: read the df beside it."""
    if path is None or not re.match(r"^.+_\d+\.csv$", path.name):
        return None
    stem = path.name.rsplit("_", 1)[0]
    found: list[float] = []
    for sibling in sorted(path.parent.glob(f"{stem}_*.csv"))[:5]:
        if sibling == path or not sibling.is_file() or sibling.stat().st_size > 64 * 1024:
            continue
        try:
            rows = [line.split(",") for line in sibling.read_text(errors="replace").splitlines()[:60]]
        except OSError:
            continue
        width = max((len(r) for r in rows), default=0)
        frame = pd.DataFrame([r + [""] * (width - len(r)) for r in rows])
        df = _labelled_values(frame, RESIDUAL_DF)
        found.extend(df)
    return min(found) if found else None


def regression_rules(state: TableState, frame: pd.DataFrame, path: Path | None = None) -> Iterator[Finding]:
    policy = state.ctx.policy
    threshold = policy.safe_dof_threshold
    coefficients = is_coefficient_table(state, frame)
    if coefficients:
        df = residual_df(frame, len(frame))
        if df is None:
            df = _sibling_df(path)
    else:  # a model summary's "Df Residuals:" cell, wherever the table holds it
        stated = _labelled_values(frame, RESIDUAL_DF)
        df = min(stated) if stated else None
        observed = _labelled_values(frame, STATED_OBSERVATIONS)
        if observed and 0 < min(observed) < policy.min_cell_count:
            yield finding(
                "tables",
                Verdict.BLOCK,
                f"a model or summary of {min(observed):g} observations, fewer than {policy.min_cell_count}",
                state.location,
            )
    if df is not None and df < threshold:
        yield finding(
            "tables",
            Verdict.BLOCK,
            f"a model with {max(df, 0):g} residual degrees of freedom, fewer than {threshold} (ACRO's "
            "safe_dof_threshold): its estimates can disclose individual values",
            state.location,
        )
    elif df is None and coefficients:
        yield finding(
            "tables",
            Verdict.REVIEW,
            "a coefficient table without the model's number of observations or residual degrees of freedom: a "
            f"reviewer must confirm the model had at least {threshold} residual df (add a row or column 'nobs' or "
            "'df_resid')",
            state.location,
        )
