"""The patient truth and consent trails: planted effects, plausible values and dates, consent shape."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthetic_sites import consent, phenotypes

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def truth() -> phenotypes.Chunk:
    return phenotypes.simulate(np.random.default_rng(11), 0, 8000)


def test_planted_effects_in_the_truth(truth: phenotypes.Chunk) -> None:
    p = truth.patients
    ldlr = p["carrier_LDLR_FH"]
    assert p.loc[ldlr, "ldl"].mean() - p.loc[~ldlr & ~p["carrier_APOB_FH"] & ~p["carrier_PCSK9_GOF"], "ldl"].mean() > 2
    ttn = p["carrier_TTN_TV"]
    assert p.loc[ttn, "lvef"].mean() < p.loc[~ttn, "lvef"].mean() - 15
    assert p.loc[ttn, "ntprobnp"].median() > 4 * p.loc[~ttn, "ntprobnp"].median()
    hcm_carrier = p["carrier_MYH7_HCM"] | p["carrier_MYBPC3_HCM"]
    assert p.loc[hcm_carrier, "lvmass"].mean() > p.loc[~hcm_carrier, "lvmass"].mean() + 50
    dx = truth.diagnoses
    assert set(dx.loc[dx["icd10"] == "I42.1", "pid"]) <= set(p.loc[p["hcm"], "pid"])
    assert set(dx.loc[dx["icd10"] == "I42.0", "pid"]) == set(p.loc[p["dcm"], "pid"])
    # LPA risk allele → more MIs.
    mi = set(truth.events.loc[truth.events["event"] == "MI", "pid"])
    has_mi = p["pid"].isin(mi)
    lpa = p["carrier_LPA_RISK"]
    assert has_mi[lpa].mean() > 1.3 * has_mi[~lpa].mean()


def test_planted_genotypes_match_carrier_status(truth: phenotypes.Chunk) -> None:
    from synthetic_sites.genomics import PLANTED

    g = truth.planted_genotypes
    for group in {v.group for v in PLANTED}:
        cols = [i for i, v in enumerate(PLANTED) if v.group == group]
        np.testing.assert_array_equal(g[:, cols].sum(axis=1) > 0, truth.patients[f"carrier_{group}"].to_numpy())


def test_values_and_dates_are_plausible(truth: phenotypes.Chunk) -> None:
    p = truth.patients
    assert p["lvef"].between(12, 78).all() and p["lvmass"].between(55, 400).all()
    assert (p["dbp"] < p["sbp"]).all()
    assert p["age"].between(24, 91).all()
    assert 0.2 < p["imaged"].mean() < 0.3 and 0.55 < p["sequenced"].mean() < 0.65
    assert 0.03 < p["multi_site"].mean() < 0.07
    events = truth.events.merge(p[["pid", "baseline", "death_date"]], on="pid")
    assert (events["date"] >= events["baseline"]).all()
    assert (events["date"] <= np.datetime64(phenotypes.CENSOR_DATE)).all()
    died = events["death_date"].notna()
    assert (events.loc[died, "date"] <= events.loc[died, "death_date"]).all()
    assert set(truth.events["event"]) <= set(phenotypes.EVENTS)
    assert truth.diagnoses["description"].notna().all()
    assert set(truth.results["code"]) == set(phenotypes.RESULT_UNITS)


def test_simulation_is_deterministic() -> None:
    a = phenotypes.simulate(np.random.default_rng(5), 100, 300)
    b = phenotypes.simulate(np.random.default_rng(5), 100, 300)
    assert a.patients.equals(b.patients) and a.results.equals(b.results) and a.diagnoses.equals(b.diagnoses)
    assert a.patients["pid"].tolist() == list(range(100, 400))


def test_consent_trails() -> None:
    n = 5000
    baseline = np.datetime64("2015-01-01") + (np.arange(n) % 1500).astype("timedelta64[D]")
    trails = consent.consent_lines(np.random.default_rng(2), [f"{9000000000 + i}" for i in range(n)], baseline)
    events = [[json.loads(line) for line in trail] for trail in trails]
    for trail in events:
        assert trail[0]["action"] == "grant" and trail[0]["purposes"]
        assert [e["date"] for e in trail] == sorted(e["date"] for e in trail)
        assert len({e["date"] for e in trail}) == len(trail)
        for e in trail:
            assert list(e) == ["nhs_number", "date", "action", "purposes", "modifiers"]
            assert set(e["purposes"]) <= {"GRU", "HMB", "DS-CVD"} and set(e["modifiers"]) <= {"NPU"}
    first = [t[0]["purposes"][0] for t in events]
    assert first.count("GRU") + first.count("HMB") > 0.7 * n and first.count("DS-CVD") > 0.05 * n
    withdrawn = sum(t[-1]["action"] == "withdraw" for t in events)
    assert 0.015 * n < withdrawn < 0.05 * n
    assert any(e["action"] == "narrow" for t in events for e in t)
    assert any(t[0]["modifiers"] == ["NPU"] for t in events)
