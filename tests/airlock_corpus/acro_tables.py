"""Tables made with ACRO's own functions (suppression off) from generated data, saved the way a researcher saves
them (`table.to_csv(path)`, a printed model summary), without ACRO's results.json: the measuring stick for
"the checker alone is at least as strict as ACRO".

`build_acro_tables(folder)` writes every table and returns one `AcroTable` per file with ACRO's status for the
output it came from. Data are generated with fixed seeds; ACRO's thresholds are its defaults (counts and residual
degrees of freedom 10, N-K 2/90%, p-ratio 10%, zeros disclosive).
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REGIONS = ("North East", "North West", "Yorkshire", "Midlands", "East", "London", "South East", "South West")


@dataclass(frozen=True)
class AcroTable:
    """One saved output: its file name, ACRO's status for it and what kind of statistic it holds."""

    name: str
    acro_status: str  # "pass", "fail" or "review" as ACRO recorded it
    kind: str  # counts | statistics | regression
    layout: str


def cohort(n: int, seed: int, *, rare_region: int = 0) -> pd.DataFrame:
    """Generated people: year, region, sex, grant (Y/N), age band, income (skewed) and an outcome."""
    rng = np.random.default_rng(seed)
    region = rng.choice(REGIONS[:6], n)
    if rare_region:
        region[:rare_region] = "Isles"  # a region with fewer people than the threshold
    return pd.DataFrame(
        {
            "year": rng.integers(2016, 2023, n),
            "region": region,
            "sex": rng.choice(["Female", "Male"], n),
            "grant": rng.choice(["Y", "N"], n, p=[0.3, 0.7]),
            "age_band": rng.choice(["18-39", "40-59", "60-79"], n),
            "income": np.round(rng.lognormal(10.2, 0.5, n), 0),
            "ldl": np.round(rng.normal(3.0, 0.9, n), 2),
            "event": rng.binomial(1, 0.3, n),
        }
    )


def every_cell_four() -> pd.DataFrame:
    """15 row categories x (6 x 4) column categories, each combination exactly 4 people: a 15x24 table of 4s."""
    rows = [(f"practice {r:02d}", f"band {a}", f"group {b}") for r in range(15) for a in range(6) for b in range(4)]
    frame = pd.DataFrame(rows * 4, columns=["practice", "band", "group"])
    return frame.sort_values(list(frame.columns), ignore_index=True)


def _last_status(acro) -> str:
    return str(acro.results.get_index(-1).status)


def build_acro_tables(folder: Path) -> list[AcroTable]:
    """Writes every table under `folder` and returns them with ACRO's status."""
    from acro import ACRO, add_constant

    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):
        acro = ACRO(suppress=False)
    logging.getLogger("acro").setLevel(logging.ERROR)  # ACRO logs every output at INFO
    acro.suppress = False
    made: list[AcroTable] = []

    def save(name: str, table: pd.DataFrame, kind: str, layout: str, **to_csv) -> None:
        table.to_csv(folder / name, **to_csv)
        made.append(AcroTable(name, _last_status(acro), kind, layout))

    def run(fn, *args, **kw):
        with contextlib.redirect_stdout(io.StringIO()):
            return fn(*args, **kw)

    big = cohort(6000, 11)
    small = cohort(260, 12, rare_region=6)
    tiny = cohort(90, 13)

    # ---- counts, every layout pandas writes
    for tag, data in (("big", big), ("small", small)):
        t = run(acro.crosstab, data.region, data.sex)
        save(f"counts_region_sex_{tag}.csv", t, "counts", "one level")
        t = run(acro.crosstab, data.region, data.sex, margins=True)
        save(f"counts_region_sex_margins_{tag}.csv", t, "counts", "one level, margins")
        t = run(acro.crosstab, data.region, data.grant)
        save(f"counts_region_grant_{tag}.csv", t, "counts", "columns named Y and N")
        t = run(acro.crosstab, data.year, data.sex)
        save(f"counts_year_sex_{tag}.csv", t, "counts", "numeric row label")
        t = run(acro.crosstab, [data.region, data.sex], data.age_band)
        save(f"counts_region_sex_by_age_{tag}.csv", t, "counts", "two row levels")
        t = run(acro.crosstab, data.region, [data.sex, data.grant])
        save(f"counts_region_by_sex_grant_{tag}.csv", t, "counts", "two column levels (multi-line header)")
        t = run(acro.crosstab, [data.year, data.region], [data.sex, data.age_band], margins=True)
        save(f"counts_two_by_two_margins_{tag}.csv", t, "counts", "two row and two column levels, margins")
        t = run(acro.crosstab, data.region, [data.sex, data.grant])
        long = t.stack(level=[0, 1], future_stack=True).rename("n").reset_index()
        made_status = _last_status(acro)
        long.to_csv(folder / f"counts_long_{tag}.csv", index=False)
        made.append(AcroTable(f"counts_long_{tag}.csv", made_status, "counts", "long format"))
        long.to_csv(folder / f"counts_long_index_{tag}.csv")
        made.append(AcroTable(f"counts_long_index_{tag}.csv", made_status, "counts", "long format with index"))
        t = run(acro.pivot_table, data, index="region", columns="sex", values="ldl", aggfunc="count")
        save(f"pivot_count_{tag}.csv", t, "counts", "pivot_table count")

    t = run(acro.crosstab, tiny.year, tiny.sex)
    save("counts_year_sex_tiny.csv", t, "counts", "numeric row label")
    t = run(acro.crosstab, tiny.grant, tiny.sex)
    save("counts_grant_sex_tiny.csv", t, "counts", "row labels Y and N")

    fours = every_cell_four()
    t = run(acro.crosstab, fours.practice, [fours.band, fours.group])
    save("counts_15x24_all_four.csv", t, "counts", "two column levels, every cell 4")
    t = run(acro.crosstab, [fours.practice, fours.band], fours.group)
    save("counts_15x24_all_four_rows.csv", t, "counts", "two row levels, every cell 4")

    # ---- statistics: means, medians, SDs, sums (no N beside them, as ACRO writes them)
    for tag, data in (("big", big), ("small", small), ("tiny", tiny)):
        for agg in ("mean", "median", "std", "sum"):
            t = run(acro.crosstab, data.region, data.sex, values=data.income, aggfunc=agg)
            save(f"income_{agg}_{tag}.csv", t, "statistics", f"crosstab aggfunc={agg}")
        t = run(acro.pivot_table, data, index="region", columns="sex", values="income", aggfunc=["mean", "std"])
        save(f"pivot_mean_std_{tag}.csv", t, "statistics", "pivot_table two statistics (multi-line header)")
    dominated = big.copy()
    top = dominated.index[dominated.region == "London"][:1]
    dominated.loc[top, "income"] = dominated.income.sum()  # one person holds most of London's income
    t = run(acro.crosstab, dominated.region, dominated.sex, values=dominated.income, aggfunc="sum")
    save("income_sum_dominated.csv", t, "statistics", "sum with a dominated cell (N-K, p-ratio)")
    t = run(acro.pivot_table, dominated, index="region", values="income", aggfunc="mean")
    save("income_mean_dominated.csv", t, "statistics", "mean with a dominated cell")

    # ---- regressions
    for tag, data in (("fine", big.iloc[:400]), ("few_df", tiny.iloc[:14])):
        x = add_constant(pd.get_dummies(data[["age_band", "sex"]], drop_first=True, dtype=float))
        x["income_k"] = data.income / 1000
        x["year"] = data.year - 2016.0
        model = run(acro.ols, data.ldl, x)
        status = _last_status(acro)
        coef = pd.DataFrame({"coef": model.params, "se": model.bse, "p": model.pvalues})
        coef.to_csv(folder / f"ols_coefficients_{tag}.csv")
        made.append(AcroTable(f"ols_coefficients_{tag}.csv", status, "regression", "coefficient table"))
        (folder / f"ols_summary_{tag}.txt").write_text(str(model.summary()) + "\n")
        made.append(AcroTable(f"ols_summary_{tag}.txt", status, "regression", "printed summary"))
        record = acro.results.get_index(-1)
        record.output[0].to_csv(folder / f"ols_model_info_{tag}.csv")
        made.append(AcroTable(f"ols_model_info_{tag}.csv", status, "regression", "ACRO's model-info table"))
        model = run(acro.logit, data.event, x)
        status = _last_status(acro)
        coef = pd.DataFrame({"odds_ratio": np.exp(model.params), "p": model.pvalues})
        coef.to_csv(folder / f"logit_coefficients_{tag}.csv")
        made.append(AcroTable(f"logit_coefficients_{tag}.csv", status, "regression", "coefficient table"))
        (folder / f"logit_summary_{tag}.txt").write_text(str(model.summary()) + "\n")
        made.append(AcroTable(f"logit_summary_{tag}.txt", status, "regression", "printed summary"))
    return made
