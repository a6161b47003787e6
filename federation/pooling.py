"""Pooling what the sites released, at the coordinator: one-shot meta-analysis of model estimates (fixed effect and
random effects, through statsmodels' `combine_effects`), pooled tables of sums and means (n-weighted), and the
released-estimates CSV a site notebook writes. Pooled counts with suppression that stays safe across sites are in
`federation.pooled_counts`, the forest plot in `federation.forest_plot`, a result's site coverage in
`federation.coverage`; they are re-exported here. Every pooled result carries its `Coverage`.

Meta-analysis, per coefficient (term): the fixed-effect estimate is the inverse-variance weighted mean of the sites'
estimates; the random-effects estimate adds the between-site variance tau² to each site's variance before weighting,
tau² estimated by DerSimonian–Laird (`random_method="dl"`, the default, truncated at 0 as the method defines it:
statsmodels 0.15 leaves it negative) or Paule–Mandel (`"pm"`). Confidence intervals are Wald intervals on the normal
distribution; heterogeneity is Cochran's Q with its chi² p-value on k-1 degrees of freedom, I² = max(0, (Q-df)/Q)
and tau². A term some sites did not estimate is pooled over the sites that did and names the others.

The released-estimates CSV (`read_estimates_table`): a header `term,estimate,std_error,n` (these four columns, in
any order, each once) then one row per coefficient: `term` its name (unique, 1-200 printable characters), `estimate`
and `std_error` finite decimal numbers (std_error > 0), `n` the number of observations the model was fitted on (a
whole number >= 1, the same on every row). UTF-8, at most 1 MiB. `write_estimates_table` writes it from a fit.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from federation.coverage import Coverage, CoverageError, SiteOutcome, SiteStatus, coverage_for
from federation.forest_plot import forest_plot
from federation.pooled_counts import HIDDEN, SUPPRESSION_MARKERS, PooledCounts, Shown, pool_counts, read_count
from federation.pooling_errors import PoolingError
from output_checks.checks.tables.profile import is_suppressed

__all__ = [
    "HIDDEN",
    "SUPPRESSION_MARKERS",
    "Coverage",
    "CoverageError",
    "Pooled",
    "PooledCounts",
    "PooledEstimate",
    "PooledTable",
    "PooledTerm",
    "PoolingError",
    "Shown",
    "SiteEstimate",
    "SiteOutcome",
    "SiteStatus",
    "forest_plot",
    "meta_analyse",
    "pool_counts",
    "pool_tables",
    "read_estimates_table",
    "write_estimates_table",
]

ESTIMATE_COLUMNS = ("term", "estimate", "std_error", "n")
MAX_ESTIMATES_BYTES = 1 << 20
MAX_TERM = 200
METHODS = ("fixed", "random", "both")
RANDOM_METHODS = {"dl": "DerSimonian-Laird", "pm": "Paule-Mandel"}


@dataclass(frozen=True)
class SiteEstimate:
    """One site's fitted coefficients (term -> estimate), their standard errors, and the observations fitted on."""

    coef: Mapping[str, float]
    se: Mapping[str, float]
    n: int

    def __post_init__(self) -> None:
        if set(self.coef) != set(self.se):
            raise PoolingError("bad-estimate", "every coefficient has a standard error and no other")
        if not self.coef:
            raise PoolingError("bad-estimate", "a site estimate has at least one coefficient")
        for term in self.coef:
            _check_term(term)
            if not _finite(self.coef[term]):
                raise PoolingError("bad-estimate", f"term {term}: the estimate is not a finite number")
            if not _finite(self.se[term]) or float(self.se[term]) <= 0:
                raise PoolingError("bad-estimate", f"term {term}: the standard error is not a finite number > 0")
        if isinstance(self.n, bool) or not isinstance(self.n, int | np.integer) or self.n < 1:
            raise PoolingError("bad-estimate", "n is a whole number of at least 1")
        object.__setattr__(self, "coef", {t: float(v) for t, v in self.coef.items()})
        object.__setattr__(self, "se", {t: float(self.se[t]) for t in self.coef})
        object.__setattr__(self, "n", int(self.n))

    @classmethod
    def from_fit(cls, result: Any) -> SiteEstimate:
        """From a fitted statsmodels result (its `params`, `bse` and `nobs`)."""
        return cls(dict(result.params), dict(result.bse), int(result.nobs))


def _finite(value: object) -> bool:
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _check_term(term: object) -> None:
    if not isinstance(term, str) or not 0 < len(term) <= MAX_TERM or not term.isprintable() or term != term.strip():
        raise PoolingError("bad-estimate", f"a term is 1-{MAX_TERM} printable characters without edge spaces")


# ------------------------------------------------------------------------------------------------ the CSV


def write_estimates_table(path: Path, estimate: SiteEstimate) -> None:
    """Write `estimate` as the released-estimates CSV (the format of this module's docstring)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ESTIMATE_COLUMNS)
    for term, coef in estimate.coef.items():
        writer.writerow([term, repr(coef), repr(estimate.se[term]), estimate.n])
    path.write_text(out.getvalue(), encoding="utf-8")


def read_estimates_table(path: Path) -> SiteEstimate:
    """A site's released-estimates CSV, checked; PoolingError naming the line and column of the first problem."""
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_ESTIMATES_BYTES + 1)
    except OSError as exc:
        raise PoolingError(
            "malformed-table", f"{path}: cannot be read ({exc.strerror or type(exc).__name__})"
        ) from None
    if len(raw) > MAX_ESTIMATES_BYTES:
        raise PoolingError("too-large", f"{path}: an estimates table is at most {MAX_ESTIMATES_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PoolingError("malformed-table", f"{path}: not UTF-8 text") from None
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error:
        raise PoolingError("malformed-table", f"{path}: not a readable CSV") from None
    if not rows:
        raise PoolingError("malformed-table", f"{path}: empty; the header is {','.join(ESTIMATE_COLUMNS)}")
    header = [c.strip() for c in rows[0]]
    if sorted(header) != sorted(ESTIMATE_COLUMNS):
        raise PoolingError(
            "malformed-table", f"{path}: the header is {','.join(ESTIMATE_COLUMNS)} (each once, no other)"
        )
    at = {name: header.index(name) for name in ESTIMATE_COLUMNS}
    coef: dict[str, float] = {}
    se: dict[str, float] = {}
    sizes: set[int] = set()
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path} line {line}"
        if len(row) != len(header):
            raise PoolingError("malformed-table", f"{where}: {len(header)} values expected")
        term = row[at["term"]].strip()
        try:
            _check_term(term)
        except PoolingError as exc:
            raise PoolingError("malformed-table", f"{where}, term: {exc.detail}") from None
        if term in coef:
            raise PoolingError("malformed-table", f"{where}, term: the term is listed twice")
        coef[term] = _number(row[at["estimate"]], f"{where}, estimate")
        se[term] = _number(row[at["std_error"]], f"{where}, std_error")
        if se[term] <= 0:
            raise PoolingError("malformed-table", f"{where}, std_error: a standard error is > 0")
        size = row[at["n"]].strip()
        if not size.isdigit() or int(size) < 1:
            raise PoolingError("malformed-table", f"{where}, n: a whole number of at least 1")
        sizes.add(int(size))
    if not coef:
        raise PoolingError("malformed-table", f"{path}: no coefficient rows")
    if len(sizes) != 1:
        raise PoolingError("malformed-table", f"{path}: n differs between rows (one model, one n)")
    return SiteEstimate(coef, se, sizes.pop())


def _number(text: str, where: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise PoolingError("malformed-table", f"{where}: not a number") from None
    if not math.isfinite(value):
        raise PoolingError("malformed-table", f"{where}: not a finite number (NaN or infinity)")
    return value


# ------------------------------------------------------------------------------------------------ meta-analysis


@dataclass(frozen=True)
class Pooled:
    """One method's pooled estimate of a term."""

    method: str  # fixed, or random (DerSimonian-Laird / Paule-Mandel)
    estimate: float
    se: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class PooledTerm:
    """A term pooled over `sites` (those that estimated it; `missing_at` those that did not). The heterogeneity
    statistics are None when a single site estimated it."""

    term: str
    sites: tuple[str, ...]
    missing_at: tuple[str, ...]
    site_estimates: Mapping[str, tuple[float, float]]  # site -> (estimate, se)
    n: int  # observations over the sites used
    fixed: Pooled | None
    random: Pooled | None
    q: float | None
    q_df: int | None
    q_p: float | None
    i2: float | None
    tau2: float | None


@dataclass(frozen=True)
class PooledEstimate:
    terms: Mapping[str, PooledTerm]
    coverage: Coverage
    method: str
    random_method: str
    alpha: float
    notes: tuple[str, ...] = field(default=())

    def table(self) -> pd.DataFrame:
        """One row a term: sites used, each method's estimate, se and CI, and the heterogeneity statistics."""
        rows = []
        for t in self.terms.values():
            row: dict[str, object] = {"term": t.term, "sites": len(t.sites), "n": t.n}
            for name, pooled in (("fixed", t.fixed), ("random", t.random)):
                if pooled is not None:
                    row |= {
                        f"{name}_estimate": pooled.estimate,
                        f"{name}_se": pooled.se,
                        f"{name}_ci_low": pooled.ci_low,
                        f"{name}_ci_high": pooled.ci_high,
                    }
            row |= {"q": t.q, "q_df": t.q_df, "q_p": t.q_p, "i2": t.i2, "tau2": t.tau2}
            row["missing_at"] = ", ".join(t.missing_at)
            rows.append(row)
        return pd.DataFrame(rows)


def meta_analyse(
    estimates: Mapping[str, SiteEstimate],
    *,
    method: Literal["fixed", "random", "both"] = "both",
    random_method: Literal["dl", "pm"] = "dl",
    alpha: float = 0.05,
    coverage: Coverage | None = None,
) -> PooledEstimate:
    """Pool each term over the sites that estimated it (site -> SiteEstimate, in the consortium's order)."""
    from statsmodels.stats.meta_analysis import combine_effects  # the module takes a second to import

    if method not in METHODS:
        raise PoolingError("malformed-request", f"method is one of {', '.join(METHODS)}")
    if random_method not in RANDOM_METHODS:
        raise PoolingError("malformed-request", f"random_method is one of {', '.join(RANDOM_METHODS)}")
    if not 0 < alpha < 1:
        raise PoolingError("malformed-request", "alpha is between 0 and 1")
    for site, estimate in estimates.items():
        if not isinstance(estimate, SiteEstimate):
            raise PoolingError("bad-estimate", f"site {site}: a SiteEstimate is expected")
    try:
        coverage = coverage_for(estimates, coverage)
    except CoverageError as exc:
        raise PoolingError("coverage", str(exc)) from None
    estimates = {site: estimates[site] for site in coverage.contributed}  # in the consortium's order
    crit = float(stats.norm.isf(alpha / 2))
    terms = list(dict.fromkeys(t for e in estimates.values() for t in e.coef))
    pooled: dict[str, PooledTerm] = {}
    notes = []
    for term in terms:
        sites = tuple(s for s, e in estimates.items() if term in e.coef)
        missing = tuple(s for s in estimates if s not in sites)
        if missing:
            notes.append(
                f"{term}: pooled over {len(sites)} of {len(estimates)} sites (not estimated at {', '.join(missing)})"
            )
        eff = np.array([estimates[s].coef[term] for s in sites])
        var = np.array([estimates[s].se[term] ** 2 for s in sites])
        k = len(sites)
        if k == 1:
            fixed = _pooled("fixed", float(eff[0]), float(np.sqrt(var[0])), crit)
            random = _pooled(f"random ({RANDOM_METHODS[random_method]})", fixed.estimate, fixed.se, crit)
            q = q_df = q_p = i2 = tau2 = None
        else:
            with np.errstate(all="ignore"):  # statsmodels takes square roots of its untruncated tau² on the way
                res = combine_effects(eff, var, method_re=random_method, row_names=list(sites), alpha=alpha)
            fixed = _pooled("fixed", float(res.mean_effect_fe), float(res.sd_eff_w_fe), crit)
            tau2 = max(0.0, float(res.tau2))
            if tau2 > 0:
                random = _pooled(
                    f"random ({RANDOM_METHODS[random_method]})", float(res.mean_effect_re), float(res.sd_eff_w_re), crit
                )
            else:  # tau² = 0: the random-effects model is the fixed-effect one
                random = _pooled(f"random ({RANDOM_METHODS[random_method]})", fixed.estimate, fixed.se, crit)
            q, q_df = float(res.q), k - 1
            q_p = float(stats.chi2.sf(q, q_df))
            i2 = max(0.0, (q - q_df) / q) if q > 0 else 0.0
        pooled[term] = PooledTerm(
            term=term,
            sites=sites,
            missing_at=missing,
            site_estimates={s: (estimates[s].coef[term], estimates[s].se[term]) for s in sites},
            n=sum(estimates[s].n for s in sites),
            fixed=fixed if method in ("fixed", "both") else None,
            random=random if method in ("random", "both") else None,
            q=q,
            q_df=q_df,
            q_p=q_p,
            i2=i2,
            tau2=tau2,
        )
    return PooledEstimate(pooled, coverage, method, random_method, alpha, tuple(notes))


def _pooled(method: str, estimate: float, se: float, crit: float) -> Pooled:
    return Pooled(method, estimate, se, estimate - crit * se, estimate + crit * se)


# ------------------------------------------------------------------------------------------------ pooled tables


@dataclass(frozen=True)
class PooledTable:
    """Pooled rows: the index columns, `n` (over the sites that gave the row), each sum column summed and each mean
    column weighted by n, `sites` (how many gave the row) and `missing_at` (the contributing sites that did not: the
    row lacked or suppressed its n or a value there). A row of fewer than `min_cell` people is withheld whole."""

    rows: pd.DataFrame
    index: tuple[str, ...]
    min_cell: int
    coverage: Coverage


def pool_tables(
    tables: Mapping[str, pd.DataFrame],
    *,
    index: str | Sequence[str],
    n: str = "n",
    means: Sequence[str] = (),
    sums: Sequence[str] = (),
    min_cell: int = 10,
    coverage: Coverage | None = None,
) -> PooledTable:
    """Pool per-site tables of sums and means, one row per group (site -> DataFrame with the index columns, the
    count column `n`, and the `means` and `sums` columns). A site's row counts only when its n and every value are
    released (a suppression marker or NaN leaves that site out of that row, and the row names it)."""
    dims = (index,) if isinstance(index, str) else tuple(index)
    values = (*means, *sums)
    if not dims or not values or len({*dims, n, *values}) != len(dims) + 1 + len(values):
        raise PoolingError("malformed-request", "index, n, means and sums name distinct columns (at least one value)")
    if isinstance(min_cell, bool) or not isinstance(min_cell, int) or min_cell < 1:
        raise PoolingError("malformed-request", "min_cell is a whole number of at least 1")
    try:
        coverage = coverage_for(tables, coverage)
    except CoverageError as exc:
        raise PoolingError("coverage", str(exc)) from None
    # group -> the sites that released it whole: site -> (n, column -> value)
    gathered: dict[tuple[str, ...], dict[str, tuple[int, dict[str, float]]]] = {}
    listed: dict[str, set[tuple[str, ...]]] = {}
    for site, frame in tables.items():
        if not isinstance(frame, pd.DataFrame):
            raise PoolingError("malformed-table", f"site {site}: a table is a pandas DataFrame")
        absent = [c for c in (*dims, n, *values) if c not in frame.columns]
        if absent:
            raise PoolingError("malformed-table", f"site {site}: the table has no column {', '.join(absent)}")
        listed[site] = set()
        for position, row in enumerate(frame.to_dict("records"), start=1):
            where = f"site {site} row {position}"
            if any(pd.isna(row[d]) for d in dims):
                raise PoolingError("malformed-table", f"{where}: an index value is empty")
            key = tuple(str(row[d]) for d in dims)
            if key in listed[site]:
                raise PoolingError("malformed-table", f"{where}: the row is listed twice")
            listed[site].add(key)
            try:
                size = read_count(row[n])
            except PoolingError as exc:
                raise PoolingError(exc.reason, f"{where}, {n}: {exc.detail}") from None
            read = {c: _released_value(row[c], f"{where}, {c}") for c in values}
            whole = {c: v for c, v in read.items() if v is not None}
            gathered.setdefault(key, {})
            if size is not None and len(whole) == len(values):
                gathered[key][site] = (size, whole)
    out = []
    for key, given in gathered.items():
        missing = [s for s in tables if s not in given]
        total = sum(size for size, _ in given.values())
        row: dict[str, object] = dict(zip(dims, key, strict=True))
        if total < min_cell:
            row |= {n: None, **dict.fromkeys(values)}
            row["shown"] = Shown.SUPPRESSED.value
        else:
            row[n] = total
            for c in means:
                row[c] = sum(size * v[c] for size, v in given.values()) / total
            for c in sums:
                row[c] = sum(v[c] for _, v in given.values())
            row["shown"] = Shown.EXACT.value
        row["sites"] = len(given)
        row["missing_at"] = ", ".join(missing)
        out.append(row)
    frame = pd.DataFrame(out).astype({n: "Int64"})
    return PooledTable(frame, dims, min_cell, coverage)


def _released_value(value: object, where: str) -> float | None:
    """A released mean or sum, or None when suppressed."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text or is_suppressed(text, list(SUPPRESSION_MARKERS)):
            return None
        try:
            value = float(text)
        except ValueError:
            raise PoolingError("bad-value", f"{where}: a value is a number or a suppression marker") from None
    if not _finite(value) or not isinstance(value, int | float | np.integer | np.floating):
        raise PoolingError("bad-value", f"{where}: a value is a finite number")
    return float(value)
