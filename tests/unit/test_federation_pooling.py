"""Pooling at the coordinator (federation/pooling.py, pooled_counts.py, coverage.py, forest_plot.py): meta-analysis
against a hand-computed reference and against a logistic model fitted on the pooled data, heterogeneity, coverage,
the released-estimates CSV, pooled tables, the forest plot, and pooled counts attacked with a linear program that
knows everything published and every site's released table.

Tolerance of the one-shot meta-analysis against the pooled-data fit: with homogeneous sites of 2,000 people, the
inverse-variance (fixed-effect) estimate and the pooled maximum-likelihood estimate agree to O(1/n); the test asks
each coefficient to be within a quarter of the pooled fit's standard error of it and the standard errors to agree
within 5 %, and the 95 % intervals to overlap by at least 90 % of their width."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.optimize import linprog
from statsmodels.discrete.discrete_model import Logit
from statsmodels.tools.tools import add_constant

from federation.pooled_counts import HIDDEN
from federation.pooling import (
    Coverage,
    PooledCounts,
    PoolingError,
    SiteEstimate,
    SiteStatus,
    forest_plot,
    meta_analyse,
    pool_counts,
    pool_tables,
    read_estimates_table,
    write_estimates_table,
)

pytestmark = pytest.mark.unit

SITES = ("site-a", "site-b", "site-c", "site-d", "site-e")
TERMS = ("const", "age", "smoker")


def simulate(seed: int, slopes: dict[str, float] | None = None, n: int = 2000) -> dict[str, pd.DataFrame]:
    """Five sites of a logistic model: outcome ~ age (standardised) + smoker; `slopes` gives a site its own age
    effect (heterogeneous sites)."""
    rng = np.random.default_rng(seed)
    data = {}
    for site in SITES:
        age = rng.normal(0, 1, n)
        smoker = rng.binomial(1, 0.3, n)
        slope = (slopes or {}).get(site, 0.6)
        p = 1 / (1 + np.exp(-(-1.0 + slope * age + 0.8 * smoker)))
        data[site] = pd.DataFrame({"age": age, "smoker": smoker, "outcome": rng.binomial(1, p)})
    return data


def fit(frame: pd.DataFrame):
    exog = add_constant(frame[["age", "smoker"]])
    return Logit(frame["outcome"], exog).fit(disp=0)


def site_estimates(data: dict[str, pd.DataFrame]) -> dict[str, SiteEstimate]:
    return {site: SiteEstimate.from_fit(fit(frame)) for site, frame in data.items()}


# ------------------------------------------------------------------------------------------------ meta-analysis


def test_one_shot_meta_analysis_agrees_with_the_pooled_data_fit() -> None:
    data = simulate(seed=11)
    pooled = meta_analyse(site_estimates(data))
    reference = fit(pd.concat(data.values(), ignore_index=True))
    assert pooled.coverage.text() == "5 of 5 sites contributed"
    for term in TERMS:
        t = pooled.terms[term]
        ref, ref_se = reference.params[term], reference.bse[term]
        assert abs(t.fixed.estimate - ref) < 0.25 * ref_se, term
        assert abs(t.fixed.se / ref_se - 1) < 0.05, term
        low, high = reference.conf_int().loc[term]
        shared = min(high, t.fixed.ci_high) - max(low, t.fixed.ci_low)
        assert shared > 0.9 * (high - low), term
        assert t.sites == SITES and t.n == 10_000


def test_fixed_and_random_effects_match_the_textbook_formulas() -> None:
    effects = [0.10, 0.30, 0.35, 0.65, 0.45]
    ses = [0.10, 0.12, 0.08, 0.15, 0.11]
    estimates = {s: SiteEstimate({"x": e}, {"x": se}, 100) for s, e, se in zip(SITES, effects, ses, strict=True)}
    t = meta_analyse(estimates).terms["x"]

    y, v = np.array(effects), np.array(ses) ** 2
    w = 1 / v
    fixed = (w * y).sum() / w.sum()
    q = (w * (y - fixed) ** 2).sum()
    c = w.sum() - (w**2).sum() / w.sum()
    tau2 = max(0.0, (q - 4) / c)
    w_re = 1 / (v + tau2)
    random = (w_re * y).sum() / w_re.sum()
    assert t.fixed.estimate == pytest.approx(fixed) and t.fixed.se == pytest.approx(math.sqrt(1 / w.sum()))
    assert t.q == pytest.approx(q) and t.q_df == 4 and t.tau2 == pytest.approx(tau2) and tau2 > 0
    assert t.i2 == pytest.approx((q - 4) / q)
    assert t.random.estimate == pytest.approx(random) and t.random.se == pytest.approx(math.sqrt(1 / w_re.sum()))
    assert t.fixed.ci_low == pytest.approx(fixed - 1.959964 * t.fixed.se, abs=1e-6)
    assert t.q_p == pytest.approx(stats.chi2.sf(q, 4))
    pm = meta_analyse(estimates, random_method="pm").terms["x"]
    assert pm.tau2 > 0 and pm.random.method == "random (Paule-Mandel)" and pm.fixed == t.fixed


def test_dersimonian_laird_is_truncated_at_zero() -> None:
    # Q below its degrees of freedom: statsmodels 0.15 returns a negative tau², the method defines it as 0
    estimates = {s: SiteEstimate({"x": 0.2 + 0.001 * i}, {"x": 0.1}, 50) for i, s in enumerate(SITES)}
    t = meta_analyse(estimates).terms["x"]
    assert t.tau2 == 0 and t.i2 == 0
    assert t.random.estimate == t.fixed.estimate and t.random.se == t.fixed.se


def test_i2_tells_homogeneous_from_heterogeneous_sites() -> None:
    same = meta_analyse(site_estimates(simulate(seed=21))).terms["age"]
    slopes = {"site-a": 0.0, "site-b": 0.4, "site-c": 0.8, "site-d": 1.2, "site-e": 1.6}
    apart = meta_analyse(site_estimates(simulate(seed=21, slopes=slopes))).terms["age"]
    assert same.i2 < 0.4 and same.q_p > 0.05
    assert apart.i2 > 0.9 and apart.q_p < 1e-6 and apart.tau2 > 0.1
    assert apart.random.se > 2 * apart.fixed.se  # the random-effects interval widens with the heterogeneity


def test_coverage_names_the_sites_left_out() -> None:
    data = simulate(seed=31)
    estimates = site_estimates({s: data[s] for s in SITES[:4]})
    coverage = Coverage.of(SITES[:4], refused={"site-e": "not-for-this-site"}, order=SITES)
    pooled = meta_analyse(estimates, coverage=coverage)
    assert pooled.coverage.text() == "4 of 5 sites contributed; not included: site-e (refused: not-for-this-site)"
    assert str(pooled.coverage).startswith("4 of 5")
    backwards = meta_analyse(dict(reversed(list(estimates.items()))), coverage=coverage)
    assert backwards.terms["age"].sites == SITES[:4]  # the consortium's order, whatever order the results came in
    more = Coverage.of(SITES[:3], failed={"site-d": "kernel-error"}, too_small={"site-e": "under-min-n"}, order=SITES)
    assert more.text() == (
        "3 of 5 sites contributed; not included: site-d (failed: kernel-error), site-e (too-small: under-min-n)"
    )
    assert Coverage.of(["site-a"], pending={"site-b": ""}).missing["site-b"].status is SiteStatus.PENDING
    with pytest.raises(PoolingError) as refused:  # a site counted as contributing must have sent something
        meta_analyse({s: estimates[s] for s in SITES[:3]}, coverage=coverage)
    assert refused.value.reason == "coverage"
    with pytest.raises(ValueError):
        Coverage.of(["site-a"], refused={"site-b": "Free text with data 42"})


def test_a_term_missing_at_a_site_is_pooled_over_the_others_and_said() -> None:
    estimates = site_estimates(simulate(seed=41))
    e = estimates["site-c"]
    estimates["site-c"] = SiteEstimate(
        {k: v for k, v in e.coef.items() if k != "smoker"}, {"const": e.se["const"], "age": e.se["age"]}, e.n
    )
    pooled = meta_analyse(estimates)
    assert pooled.terms["smoker"].sites == ("site-a", "site-b", "site-d", "site-e")
    assert pooled.terms["smoker"].missing_at == ("site-c",)
    assert pooled.notes == ("smoker: pooled over 4 of 5 sites (not estimated at site-c)",)
    table = pooled.table().set_index("term")
    assert table.loc["smoker", "sites"] == 4 and table.loc["age", "sites"] == 5
    only = meta_analyse({"site-a": estimates["site-a"]}).terms["age"]
    assert only.i2 is None and only.fixed.estimate == estimates["site-a"].coef["age"]


def test_the_estimates_table_round_trips_and_bad_ones_are_refused(tmp_path) -> None:
    estimate = SiteEstimate.from_fit(fit(simulate(seed=51)["site-a"]))
    path = tmp_path / "estimates.csv"
    write_estimates_table(path, estimate)
    assert path.read_text().splitlines()[0] == "term,estimate,std_error,n"
    assert read_estimates_table(path) == estimate

    header = "term,estimate,std_error,n\n"
    bad = {
        "nan": (header + "age,nan,0.1,100\n", "line 2, estimate"),
        "inf": (header + "age,0.3,inf,100\n", "line 2, std_error"),
        "zero-se": (header + "age,0.3,0,100\n", "line 2, std_error"),
        "negative-se": (header + "age,0.3,-0.2,100\n", "line 2, std_error"),
        "text": (header + "const,1,0.1,100\nage,high,0.1,100\n", "line 3, estimate"),
        "twice": (header + "age,0.3,0.1,100\nage,0.2,0.1,100\n", "line 3, term"),
        "n-differs": (header + "age,0.3,0.1,100\nconst,0.2,0.1,99\n", "n differs"),
        "n-zero": (header + "age,0.3,0.1,0\n", "line 2, n"),
        "columns": ("term,estimate,se,n\nage,0.3,0.1,100\n", "the header is"),
        "short": (header + "age,0.3,0.1\n", "line 2"),
        "empty": (header, "no coefficient rows"),
    }
    for name, (text, where) in bad.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(text)
        with pytest.raises(PoolingError) as refused:
            read_estimates_table(path)
        assert where in str(refused.value), name
    with pytest.raises(PoolingError):
        SiteEstimate({"age": float("nan")}, {"age": 0.1}, 10)
    with pytest.raises(PoolingError):
        SiteEstimate({"age": 0.1}, {"age": 0.0}, 10)


def test_the_forest_plot_is_drawn_with_agg(tmp_path) -> None:
    estimates = site_estimates(simulate(seed=61))
    coverage = Coverage.of(SITES, refused={"site-f": "policy"})
    pooled = meta_analyse(estimates, coverage=coverage)
    fig = forest_plot(pooled, "age")
    assert type(fig.canvas).__name__ == "FigureCanvasAgg"
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [*SITES, "fixed", "random (DerSimonian-Laird)"]
    path = tmp_path / "forest.png"
    fig.savefig(path, format="png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(PoolingError):
        forest_plot(pooled, "no-such-term")


# ------------------------------------------------------------------------------------------------ pooled tables


def test_pool_tables_weights_means_by_n_and_withholds_small_rows() -> None:
    tables = {
        "site-a": pd.DataFrame(
            {"group": ["x", "y", "z"], "n": [100, 30, 4], "mean_age": [50.0, 60.0, 70.0], "cost": [10.0, 3.0, 1.0]}
        ),
        "site-b": pd.DataFrame(
            {"group": ["x", "y", "z"], "n": [300, "<10", 3], "mean_age": [54.0, "*", 71.0], "cost": [30.0, None, 1.0]}
        ),
    }
    pooled = pool_tables(tables, index="group", means=["mean_age"], sums=["cost"], min_cell=10)
    rows = pooled.rows.set_index("group")
    assert (
        rows.loc["x", "n"] == 400 and rows.loc["x", "mean_age"] == pytest.approx(53.0) and rows.loc["x", "cost"] == 40
    )
    assert rows.loc["y", "n"] == 30 and rows.loc["y", "missing_at"] == "site-b" and rows.loc["y", "sites"] == 1
    assert pd.isna(rows.loc["z", "n"]) and pd.isna(rows.loc["z", "mean_age"]) and rows.loc["z", "shown"] == "suppressed"
    assert pooled.coverage.text() == "2 of 2 sites contributed"
    with pytest.raises(PoolingError) as refused:
        pool_tables({"site-a": tables["site-a"].assign(mean_age=["a", 1, 2])}, index="group", means=["mean_age"])
    assert "site-a row 1, mean_age" in str(refused.value)


# ------------------------------------------------------------------------------------------------ pooled counts


def released(true: pd.DataFrame, site_min: int) -> pd.DataFrame:
    """A site's table as its airlock releases it: cells under its threshold shown as '<N' (zeros shown)."""
    return true.assign(n=[f"<{site_min}" if 0 < v < site_min else int(v) for v in true["n"]])


def random_tables(seed: int, dims: int) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """True and released count tables of five sites: 1 or 2 index columns, many small cells, some zeros."""
    rng = np.random.default_rng(seed)
    if dims == 1:
        keys = pd.DataFrame({"band": [f"b{i}" for i in range(int(rng.integers(3, 8)))]})
    else:
        rows, cols = int(rng.integers(2, 6)), int(rng.integers(2, 5))
        keys = pd.DataFrame([(f"r{r}", f"c{c}") for r in range(rows) for c in range(cols)], columns=["band", "outcome"])
    true, shown = {}, {}
    for site in SITES[: int(rng.integers(1, 6))]:  # one site alone at a threshold of 3 releases many small cells
        scale = rng.choice([1, 3, 25])
        counts = rng.poisson(scale, len(keys)) * rng.binomial(1, 0.9, len(keys))
        true[site] = keys.assign(n=counts)
        shown[site] = released(true[site], site_min=int(rng.choice([3, 5, 10])))
    return true, shown


def _lines(frame: pd.DataFrame, index: tuple[str, ...]) -> list[tuple[str, str, list[int]]]:
    lines = [("total", "", list(range(len(frame))))]
    if len(index) == 2:
        for kind, column in (("row", index[0]), ("column", index[1])):
            for key, group in frame.groupby(column, sort=False):
                lines.append((kind, str(key), list(group.index)))
    return lines


def attack_pooled(result: PooledCounts, targets: dict[str, list[int]]) -> dict[str, tuple[float, float]]:
    """What someone holding only the pooled table can say of each target (a list of cell positions whose sum is
    wanted): the least and greatest value consistent with every number published. Variables: the cells not shown
    exactly, >= 0 (or >= their shown lower bound)."""
    cells = result.cells.reset_index(drop=True)
    unknown = [i for i in range(len(cells)) if cells.loc[i, "shown"] != "exact"]
    col = {i: j for j, i in enumerate(unknown)}
    bounds = [
        (float(cells.loc[i, "lower_bound"]) if cells.loc[i, "shown"] == "lower-bound" else 0.0, None) for i in unknown
    ]
    known = {i: int(cells.loc[i, "count"]) for i in range(len(cells)) if cells.loc[i, "shown"] == "exact"}
    a_eq, b_eq, a_ub, b_ub = [], [], [], []
    margins = {(m.line, m.key): m for m in result.margins.itertuples()}
    for kind, key, members in _lines(cells, result.index):
        margin = margins[(kind, key)]
        row = np.zeros(len(unknown))
        for i in members:
            if i in col:
                row[col[i]] = 1
        rest = sum(known.get(i, 0) for i in members)
        if margin.shown == "exact":
            a_eq.append(row), b_eq.append(int(margin.count) - rest)
        elif margin.shown == "lower-bound":
            a_ub.append(-row), b_ub.append(rest - int(margin.lower_bound))
    found = {}
    for name, members in targets.items():
        objective = np.zeros(len(unknown))
        constant = 0.0
        for i in members:
            if i in col:
                objective[col[i]] = 1
            else:
                constant += known[i]
        ends = []
        for sign in (1, -1):
            res = linprog(
                sign * objective,
                A_ub=np.array(a_ub) if a_ub else None,
                b_ub=b_ub or None,
                A_eq=np.array(a_eq) if a_eq else None,
                b_eq=b_eq or None,
                bounds=bounds,
                method="highs",
            )
            ends.append(math.inf if res.status == 3 else sign * res.fun + constant)
        found[name] = (ends[0], ends[1])
    return found


def attack_with_site_tables(
    result: PooledCounts, shown: dict[str, pd.DataFrame], index: tuple[str, ...]
) -> dict[tuple[str, int], tuple[float, float]]:
    """What someone holding the pooled table and every site's released table can say of each cell a site
    suppressed: variables are those cells, >= 0 and below the '<N' the site showed."""
    cells = result.cells.reset_index(drop=True)
    position = {tuple(str(v) for v in row): i for i, row in enumerate(cells[list(index)].itertuples(index=False))}
    hidden: list[tuple[str, int]] = []
    bounds, constant = [], np.zeros(len(cells))
    by_cell: dict[int, list[int]] = {i: [] for i in range(len(cells))}
    for site, frame in shown.items():
        for row in frame.itertuples(index=False):
            i = position[tuple(str(getattr(row, c)) for c in index)]
            if isinstance(row.n, str):
                by_cell[i].append(len(hidden))
                hidden.append((site, i))
                bounds.append((0, int(row.n[1:]) - 1))
            else:
                constant[i] += row.n
    a_eq, b_eq, a_ub, b_ub = [], [], [], []

    def equation(members: list[int]) -> tuple[np.ndarray, float]:
        row = np.zeros(len(hidden))
        for i in members:
            for j in by_cell[i]:
                row[j] = 1
        return row, float(constant[members].sum())

    published = [([i], c.shown, c.count, c.lower_bound) for i, c in enumerate(cells.itertuples())]
    margins = {(m.line, m.key): m for m in result.margins.itertuples()}
    published += [
        (members, margins[(k, key)].shown, margins[(k, key)].count, margins[(k, key)].lower_bound)
        for k, key, members in _lines(cells, index)
    ]
    for members, how, count, lower in published:
        row, const = equation(members)
        if how == "exact":
            a_eq.append(row), b_eq.append(count - const)
        elif how == "lower-bound":
            a_ub.append(-row), b_ub.append(const - lower)
    found = {}
    tied = np.abs(np.array(a_eq + a_ub)).sum(axis=0) if a_eq or a_ub else np.zeros(len(hidden))
    for j, target in enumerate(hidden):
        if not tied[j]:  # in no published number: it ranges over its own bounds (and saves a linear program)
            found[target] = (float(bounds[j][0]), float(bounds[j][1]))
            continue
        objective = np.zeros(len(hidden))
        objective[j] = 1
        ends = []
        for sign in (1, -1):
            res = linprog(
                sign * objective,
                A_ub=np.array(a_ub) if a_ub else None,
                b_ub=b_ub or None,
                A_eq=np.array(a_eq) if a_eq else None,
                b_eq=b_eq or None,
                bounds=bounds,
                method="highs",
            )
            assert res.status == 0  # the truth is always feasible
            ends.append(sign * res.fun)
        found[target] = (ends[0], ends[1])
    return found


def recovered(interval: tuple[float, float]) -> bool:
    low, high = interval
    return high - low < 0.5


def check_published(result: PooledCounts, min_cell: int) -> None:
    for frame in (result.cells, result.margins):
        exact = frame.loc[frame["shown"] == "exact", "count"]
        assert not ((exact > 0) & (exact < min_cell)).any()  # nothing small shown as a total
        assert not (frame.loc[frame["shown"] == "lower-bound", "lower_bound"] < min_cell).any()
        assert set(frame.loc[frame["shown"] == "suppressed", "display"]) <= {HIDDEN}


@pytest.mark.parametrize("dims", [1, 2])
def test_the_attacker_recovers_no_suppressed_cell(dims: int) -> None:
    index = ("band",) if dims == 1 else ("band", "outcome")
    hidden_cells = site_hidden = 0
    for seed in range(16):
        true, shown = random_tables(seed, dims)
        result = pool_counts(shown, index=list(index), value="n", min_cell=10)
        check_published(result, 10)
        cells = result.cells.reset_index(drop=True)

        # 1. from the pooled table alone: no hidden cell and no hidden small total can be computed
        truth = sum(t["n"].to_numpy() for t in true.values())
        targets = {f"cell {i}": [i] for i in range(len(cells)) if cells.loc[i, "shown"] == "suppressed"}
        margins = {(m.line, m.key): m for m in result.margins.itertuples()}
        for kind, key, members in _lines(cells, index):
            if margins[(kind, key)].shown == "suppressed" and 0 < truth[members].sum() < 10:
                targets[f"{kind} {key}"] = members
        for name, interval in attack_pooled(result, targets).items():
            assert not recovered(interval), (seed, name, interval)
        hidden_cells += len(targets)

        # 2. from the pooled table and every site's released table: no cell a site suppressed can be computed
        for target, interval in attack_with_site_tables(result, shown, index).items():
            assert not recovered(interval), (seed, target, interval)
            site_hidden += 1
    assert hidden_cells > 20 and site_hidden > 50  # the attacks had plenty to try


def test_the_attacker_does_recover_from_naive_publications() -> None:
    """The attacks are not vacuous: a table with only primary suppression and its totals shown, or one whose
    coordinator knew the sites' true counts, gives cells away."""
    index = ("band", "outcome")
    true = pd.DataFrame({"band": ["a", "a", "b", "b"], "outcome": ["y", "n", "y", "n"], "n": [4, 30, 25, 40]})
    naive_cells = true.assign(
        count=[None, 30, 25, 40], lower_bound=None, shown=["suppressed", "exact", "exact", "exact"], display=""
    ).astype({"count": "Int64", "lower_bound": "Int64"})
    margins = pd.DataFrame(
        [("row", "a", 34), ("row", "b", 65), ("column", "y", 29), ("column", "n", 70), ("total", "", 99)],
        columns=["line", "key", "count"],
    ).assign(lower_bound=None, shown="exact", display="")
    naive = PooledCounts(naive_cells, margins, index, 10, Coverage.of(["site-a"]))
    low, high = attack_pooled(naive, {"cell": [0]})["cell"]
    assert low == high == 4

    ours = pool_counts({"site-a": released(true, 10)}, index=list(index), value="n")
    assert not recovered(attack_pooled(ours, {"cell": [0]})["cell"])
    assert (ours.cells["shown"] == "suppressed").sum() >= 2 or (ours.margins["shown"] != "exact").any()

    # a coordinator that (wrongly) held true totals and published them exactly gives a site's hidden cell away
    sites = {"site-a": released(true, 10), "site-b": released(true.assign(n=[20, 20, 20, 20]), 10)}
    leaky = PooledCounts(
        true.assign(count=[24, 50, 45, 60], lower_bound=None, shown="exact", display="").astype(
            {"count": "Int64", "lower_bound": "Int64"}
        ),
        margins.assign(count=[74, 105, 69, 110, 179]),
        index,
        10,
        Coverage.of(list(sites)),
    )
    assert recovered(attack_with_site_tables(leaky, sites, index)[("site-a", 0)])
    ours = pool_counts(sites, index=list(index), value="n")
    assert ours.cells.loc[0, "display"] == ">=20"  # the known part only
    assert not recovered(attack_with_site_tables(ours, sites, index)[("site-a", 0)])


def test_pooled_counts_show_totals_and_bounds() -> None:
    a = pd.DataFrame({"sex": ["F", "F", "M", "M"], "out": ["y", "n", "y", "n"], "n": [12, 40, "<10", 33]})
    b = pd.DataFrame({"sex": ["F", "F", "M", "M"], "out": ["y", "n", "y", "n"], "n": [20, 41, 15, 30]})
    result = pool_counts({"site-a": a, "site-b": b}, index=["sex", "out"], value="n")
    table = result.table()
    assert table.loc["F", "y"] == "32" and table.loc["M", "y"] == ">=15" and table.loc["F", "Total"] == "113"
    assert table.loc["M", "Total"] == ">=78" and table.loc["Total", "n"] == "144"
    assert table.loc["Total", "Total"] == ">=191"
    assert result.coverage.text() == "2 of 2 sites contributed"
    refused = Coverage.of(["site-a", "site-b"], refused={"site-c": "output-kind"})
    carried = pool_counts({"site-a": a, "site-b": b}, index=["sex", "out"], value="n", coverage=refused)
    assert carried.coverage.text() == "2 of 3 sites contributed; not included: site-c (refused: output-kind)"
    one = pool_counts({"site-a": a.iloc[:2].drop(columns="sex")}, index="out", value="n")
    assert list(one.table()["count"]) == ["12", "40", "52"]
    named_total = pool_counts({"site-a": pd.DataFrame({"g": ["Total", "x"], "n": [12, 40]})}, index="g", value="n")
    assert list(named_total.table().index) == ["Total", "x", "All"]  # a category called Total is not the total
    # a cell a site did not list is unknown there, not zero
    partial = pool_counts({"site-a": a.iloc[:3], "site-b": b}, index=["sex", "out"], value="n")
    assert partial.cells.loc[3, "display"] == ">=30"


def test_bad_count_tables_are_refused_without_their_values() -> None:
    good = pd.DataFrame({"g": ["x", "y"], "n": [12, 40]})
    cases = {
        "unknown marker": (good.assign(n=[12, "lots-4711"]), "bad-count", "site-b row 2"),
        "negative": (good.assign(n=[12, -4711]), "bad-count", "site-b row 2"),
        "fraction": (good.assign(n=[12.5, 40]), "bad-count", "site-b row 1"),
        "infinite": (good.assign(n=[12, math.inf]), "bad-count", "site-b row 2"),
        "true": (good.assign(n=[True, 40]), "bad-count", "site-b row 1"),
        "twice": (pd.DataFrame({"g": ["x", "x"], "n": [12, 40]}), "malformed-table", "site-b row 2"),
        "no column": (good.rename(columns={"n": "count"}), "malformed-table", "no column n"),
        "empty index": (good.assign(g=["x", None]), "malformed-table", "site-b row 2"),
        "not a frame": ({"g": ["x"], "n": [1]}, "malformed-table", "DataFrame"),
    }
    for name, (table, reason, where) in cases.items():
        with pytest.raises(PoolingError) as refused:
            pool_counts({"site-a": good, "site-b": table}, index="g", value="n")
        assert refused.value.reason == reason, name
        assert where in str(refused.value) and "4711" not in str(refused.value), name
    for markers in (["<10", "*"], ["[REDACTED]", None], ["suppressed", math.nan], ["~", ""]):
        result = pool_counts({"site-a": good.assign(n=markers)}, index="g", value="n")
        assert set(result.cells["shown"]) == {"suppressed"}
    with pytest.raises(PoolingError):
        pool_counts({"site-a": good}, index=["g", "g"], value="n")
    with pytest.raises(PoolingError):
        pool_counts({"site-a": good}, index="g", value="n", min_cell=0)
    with pytest.raises(PoolingError) as refused:
        pool_counts({}, index="g", value="n")
    assert refused.value.reason == "coverage"
