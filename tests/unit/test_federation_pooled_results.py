"""A task's pooled results: each declared output pooled by its kind over the sites that released it, every file
carrying the coverage, a site that refused, failed or withheld the output named, and a bad table reported, not
pooled."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from federation.pooled_results import pool_task
from federation.tasks import DeclaredOutput

pytestmark = pytest.mark.unit

OUTPUTS = [DeclaredOutput("estimates.csv", "estimates"), DeclaredOutput("counts.csv", "counts"),
           DeclaredOutput("notes.txt", "text")]  # fmt: skip


def estimates(shift: float, n: int) -> bytes:
    return (f"term,estimate,std_error,n\nconst,{-2 + shift},0.5,{n}\nage_decades,{0.3 + shift},0.1,{n}\n").encode()


def counts(f_yes: str, m_yes: str) -> bytes:
    return f"sex,mace,n\nF,no,40\nF,yes,{f_yes}\nM,no,35\nM,yes,{m_yes}\n".encode()


STATES = {"a": ("released", ""), "b": ("released", ""), "c": ("released", ""), "d": ("refused", "project-not-approved"),
          "e": ("failed", "notebook-error")}  # fmt: skip


def test_each_output_is_pooled_by_its_kind_and_every_site_is_accounted_for() -> None:
    released = {
        "a": {"estimates.csv": estimates(0.0, 120), "counts.csv": counts("12", "15"), "notes.txt": b"fine"},
        "b": {"estimates.csv": estimates(0.05, 90), "counts.csv": counts("", "11")},  # F/yes suppressed at b
        "c": {"counts.csv": counts("14", "13")},  # c's checkers withheld its estimates
    }
    result = pool_task(released, OUTPUTS, STATES)
    assert result.problems == []
    summary = json.loads(result.files["pooled.json"])
    assert summary["coverage"].startswith("3 of 5 sites contributed")
    entry = summary["outputs"]["estimates.csv"]
    assert entry["sites"]["c"] == {"status": "refused", "reason": "withheld-by-site-checkers"}
    assert entry["sites"]["d"] == {"status": "refused", "reason": "project-not-approved"}
    assert entry["sites"]["e"] == {"status": "failed", "reason": "notebook-error"}

    pooled = pd.read_csv(io.BytesIO(result.files["pooled_estimates.csv"]))
    assert list(pooled["term"]) == ["const", "age_decades"] and set(pooled["sites"]) == {2}
    assert pooled["coverage"].iloc[0].startswith("2 of 5 sites contributed")
    fixed = pooled.set_index("term")["fixed_estimate"]
    assert 0.3 < fixed["age_decades"] < 0.35  # between the two sites' estimates
    assert {"forest_estimates_const.png", "forest_estimates_age_decades.png"} <= set(result.files)
    assert result.files["forest_estimates_const.png"].startswith(b"\x89PNG")

    cells = pd.read_csv(io.BytesIO(result.files["pooled_counts.csv"]), keep_default_na=False).set_index(["sex", "mace"])
    assert str(cells.loc[("F", "no"), "display"]) == "120"  # every site exact: the sum
    assert str(cells.loc[("F", "yes"), "display"]) != "26"  # b's suppressed cell keeps the pooled cell inexact
    assert result.files["a/notes.txt"] == b"fine"  # not pooled, kept as the site released it


def test_a_table_that_cannot_be_pooled_is_reported_and_the_rest_still_pooled() -> None:
    released = {"a": {"estimates.csv": b"term,estimate\nconst,1\n", "counts.csv": counts("12", "15")},
                "b": {"estimates.csv": estimates(0.0, 50), "counts.csv": counts("20", "15")}}  # fmt: skip
    result = pool_task(released, OUTPUTS[:2], {"a": ("released", ""), "b": ("released", "")})
    assert len(result.problems) == 1 and result.problems[0].startswith("estimates.csv (estimates)")
    assert "pooled_counts.csv" in result.files and "pooled_estimates.csv" not in result.files


def test_a_count_pandas_wrote_as_a_float_reads_as_the_whole_number_it_is() -> None:
    from federation.pooled_counts import read_count
    from federation.pooling_errors import PoolingError

    assert (read_count("14.0"), read_count("14"), read_count("")) == (14, 14, None)
    with pytest.raises(PoolingError):
        read_count("14.5")
