"""Is a table individual-level, judged by its structure: rows of people (per-row measurements, 0/1 flags, categories
that repeat, no real count, about as many rows as the cohort) block, even without any identifier, a constant count
column or sample ids as column headers; clean aggregates of every common shape (GWAS results, coefficients, Table 1,
incidence, deciles, prevalence, model performance, time series, codelists, long counts, correlation matrices,
per-site aggregates) raise nothing from these rules.

Tables are generated with fixed seeds and read through the real CSV reader and table driver (`check_table`), with
identifier screening off so that only the structural rules speak; a few go through the whole engine as well."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from output_checks.checks.base import Context
from output_checks.checks.tables import READERS, check_rows, check_table
from output_checks.policy import load_policy
from output_checks.verdicts import Finding, Verdict
from tests.airlock_helpers import check_one, messages

pytestmark = pytest.mark.unit

STRUCTURAL = ("one row per person", "genotype", "sample ids")


def _no_screener():
    raise AssertionError("identifier screening is off in these tests")


def context(cohort_size: int | None = None) -> Context:
    policy = load_policy()
    checks = [c for c in policy.checks if c not in ("identifiers", "known_identifiers")]
    known = SimpleNamespace(cohort_size=cohort_size) if cohort_size else None
    return Context(policy.model_copy(update={"checks": checks}), _no_screener, known=known)


def run_table(tmp_path: Path, frame: pd.DataFrame, *, cohort_size: int | None = None, index: bool = False):
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=index)
    ctx = context(cohort_size)
    return [f for source in READERS["csv"](path) for f in check_table(source, "table.csv", ctx)]


def persons(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if any(s in f.message for s in STRUCTURAL)]


def worst(findings: list[Finding]) -> Verdict:
    return Verdict.worst(f.verdict for f in findings)


def text(findings: list[Finding]) -> str:
    return "\n".join(f"{f.verdict}: {f.message} [{f.location}]" for f in findings)


# ------------------------------------------------------------------------------------------------- rows of people
def heart_failure(n: int = 299, seed: int = 1) -> pd.DataFrame:
    """Shaped like the public heart-failure clinical records: one row per patient, no names, no ids."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.choice(np.arange(40, 96), n),
            "anaemia": rng.integers(0, 2, n),
            "creatinine_phosphokinase": np.round(np.exp(rng.normal(5.6, 1.0, n))).astype(int) + 20,
            "diabetes": rng.integers(0, 2, n),
            "ejection_fraction": rng.choice([14, 15, 17, 20, 25, 30, 35, 38, 40, 45, 50, 55, 60, 62, 65, 70, 80], n),
            "high_blood_pressure": rng.integers(0, 2, n),
            "platelets": np.round(rng.normal(263000, 97000, n).clip(25000), 2),
            "serum_creatinine": np.round(rng.lognormal(0.2, 0.4, n), 1),
            "serum_sodium": rng.integers(113, 149, n),
            "sex": rng.integers(0, 2, n),
            "smoking": rng.integers(0, 2, n),
            "time": np.sort(rng.integers(4, 286, n)),
            "DEATH_EVENT": rng.integers(0, 2, n),
        }
    )


def cleveland(n: int = 303, seed: int = 2) -> pd.DataFrame:
    """Shaped like the Cleveland heart-disease table: coded categories beside a few measurements."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(29, 78, n),
            "sex": rng.integers(0, 2, n),
            "cp": rng.integers(0, 4, n),
            "trestbps": rng.integers(94, 201, n),
            "chol": rng.integers(126, 565, n),
            "fbs": rng.integers(0, 2, n),
            "restecg": rng.integers(0, 3, n),
            "thalach": rng.integers(71, 203, n),
            "exang": rng.integers(0, 2, n),
            "oldpeak": np.round(rng.exponential(1.0, n), 1),
            "slope": rng.integers(0, 3, n),
            "ca": rng.integers(0, 4, n),
            "thal": rng.integers(1, 4, n),
            "target": rng.integers(0, 2, n),
        }
    )


def km_input(n: int = 180, seed: int = 3, *, r_coding: bool = False) -> pd.DataFrame:
    """Kaplan-Meier input: follow-up time, event, group and age per patient."""
    rng = np.random.default_rng(seed)
    event = rng.integers(0, 2, n)
    return pd.DataFrame(
        {
            "time": np.round(rng.exponential(400, n), 1),
            "status" if r_coding else "event": event + 1 if r_coding else event,
            "group": rng.choice([1, 2], n) if r_coding else rng.choice(["treatment", "control"], n),
            "age": rng.integers(35, 90, n),
        }
    )


def measurements(n: int = 250, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(30, 90, n),
            "sex": rng.choice(["F", "M"], n),
            "sbp": rng.integers(95, 190, n),
            "ldl": np.round(rng.normal(3.2, 0.9, n), 2),
            "bmi": np.round(rng.normal(27, 4.5, n), 1),
        }
    )


PEOPLE = {
    "heart failure records": heart_failure,
    "Cleveland heart disease": cleveland,
    "Kaplan-Meier input": km_input,
    "Kaplan-Meier input, R coding": lambda: km_input(r_coding=True),
    "measurements": measurements,
}


@pytest.mark.parametrize("name", list(PEOPLE))
def test_rows_of_people_without_identifiers_block(tmp_path, name):
    findings = persons(run_table(tmp_path, PEOPLE[name]()))
    assert worst(findings) is Verdict.BLOCK, text(findings)
    assert "one row per person" in text(findings)
    assert "rows with per-row measurements (" in text(findings)


def test_message_names_the_signals(tmp_path):
    message = text(persons(run_table(tmp_path, heart_failure())))
    assert "299 rows" in message
    assert "0/1 flags (anaemia" in message
    assert "no count column" in message


def test_a_constant_count_column_does_not_turn_the_rule_off(tmp_path):
    frame = measurements()
    frame["n"] = 11
    findings = persons(run_table(tmp_path, frame))
    assert worst(findings) is Verdict.BLOCK, text(findings)
    assert "a count column with the same value on every row (n)" in text(findings)


@pytest.mark.parametrize("values", ["ones", "tiny", "negative", "fractions"])
def test_an_implausible_count_column_does_not_turn_the_rule_off(tmp_path, values):
    frame = heart_failure(seed=7)
    rng = np.random.default_rng(8)
    frame["n"] = {
        "ones": np.ones(len(frame), dtype=int) + (np.arange(len(frame)) == 5),
        "tiny": rng.integers(1, 4, len(frame)),
        "negative": rng.integers(-20, 40, len(frame)),
        "fractions": np.round(rng.uniform(10, 50, len(frame)), 2),
    }[values]
    findings = persons(run_table(tmp_path, frame))
    assert worst(findings) is Verdict.BLOCK, text(findings)


def test_a_count_column_summing_far_past_the_cohort_is_not_a_count(tmp_path):
    frame = heart_failure(seed=9)
    frame["n"] = np.random.default_rng(10).integers(10, 60, len(frame))
    assert worst(persons(run_table(tmp_path, frame, cohort_size=320))) is Verdict.BLOCK
    # Without the cohort the count column is plausible; rows of people beside it still go to a reviewer.
    assert worst(persons(run_table(tmp_path, frame))) is Verdict.REVIEW


def test_rows_about_the_cohort_size_are_a_signal(tmp_path):
    rng = np.random.default_rng(11)
    ethnicity = rng.choice(["Asian", "Black", "Mixed", "White", "Other"], 410)
    frame = pd.DataFrame({"hba1c": np.round(rng.normal(48, 9, 410), 1), "ethnicity": ethnicity})
    assert worst(persons(run_table(tmp_path, frame))) is Verdict.REVIEW
    findings = persons(run_table(tmp_path, frame, cohort_size=420))
    assert worst(findings) is Verdict.BLOCK
    assert "420 patients" in text(findings)


def test_rows_of_people_with_event_dates_block(tmp_path):
    rng = np.random.default_rng(16)
    n = 300
    admitted = pd.to_datetime(rng.integers(16500, 19000, n), unit="D").strftime("%Y-%m-%d")
    frame = pd.DataFrame({"age": rng.integers(30, 95, n), "sex": rng.choice(["F", "M"], n),
                          "admission_date": admitted, "troponin_ng_l": rng.integers(5, 20000, n)})  # fmt: skip
    findings = persons(run_table(tmp_path, frame))
    assert worst(findings) is Verdict.BLOCK, text(findings)
    assert "admission_date" in text(findings)


def test_numbered_row_labels_are_not_groups(tmp_path):
    frame = measurements()
    frame.insert(0, "group", [f"g{i}" for i in range(1, len(frame) + 1)])
    assert worst(persons(run_table(tmp_path, frame))) is Verdict.BLOCK
    frame["group"] = [f"Site {i}" for i in range(1, len(frame) + 1)]
    assert worst(persons(run_table(tmp_path, frame))) is Verdict.BLOCK


def test_labelled_rows_as_many_as_the_cohort_go_to_review(tmp_path):
    frame = measurements()
    frame["site"] = [f"R{chr(65 + i % 26)}{chr(65 + i // 26)}" for i in range(len(frame))]
    assert not persons(run_table(tmp_path, frame))  # labelled rows: groups, as far as the file shows
    findings = persons(run_table(tmp_path, frame, cohort_size=260))
    assert worst(findings) is Verdict.REVIEW
    assert "about one patient each" in text(findings)


def test_rows_of_categories_only_go_to_review_or_block_near_the_cohort(tmp_path):
    rng = np.random.default_rng(22)
    n = 400
    frame = pd.DataFrame({"sex": rng.choice(["F", "M"], n), "age_band": rng.choice(["18-39", "40-59", "60+"], n),
                          "region": rng.choice(["North", "South", "East", "West"], n),
                          "ethnicity": rng.choice(["White", "Asian", "Black", "Mixed", "Other"], n)})  # fmt: skip
    assert worst(persons(run_table(tmp_path, frame))) is Verdict.REVIEW
    assert worst(persons(run_table(tmp_path, frame, cohort_size=420))) is Verdict.BLOCK
    mapping = pd.DataFrame({"practice": [f"Practice {i:03d}A" for i in range(200)], "region": frame["region"][:200]})
    assert not persons(run_table(tmp_path, mapping))  # a lookup: one row per practice


def test_a_pandas_index_is_neither_an_id_nor_a_key(tmp_path):
    findings = persons(run_table(tmp_path, measurements(), index=True))
    assert worst(findings) is Verdict.BLOCK
    assert "Unnamed" not in text(findings)


def test_a_unique_id_column_with_rows_of_values_blocks(tmp_path):
    frame = measurements(n=60)
    frame.insert(0, "study_no", [f"HF{i:04d}X" for i in np.random.default_rng(12).permutation(60)])
    findings = persons(run_table(tmp_path, frame))
    assert worst(findings) is Verdict.BLOCK
    assert "an id on every row (study_no)" in text(findings)


def test_repeated_measures_keyed_by_a_person_number_block(tmp_path):
    rng = np.random.default_rng(17)
    people, visits = 120, 3
    frame = pd.DataFrame({"id": np.repeat(np.arange(1, people + 1), visits), "visit": np.tile([1, 2, 3], people),
                          "sbp": rng.integers(100, 170, people * visits),
                          "ldl": rng.normal(3, 0.8, people * visits).round(2)})  # fmt: skip
    findings = persons(run_table(tmp_path, frame))
    assert worst(findings) is Verdict.BLOCK, text(findings)


def test_years_disguised_as_counts_are_not_counts(tmp_path):
    rng = np.random.default_rng(18)
    n = 240
    frame = pd.DataFrame({"ref": ["".join(rng.choice(list("ABCDEFGHJKLMNPQRSTUVWXYZ234567"), 16)) for _ in range(n)],
                          "age_at_index": rng.integers(30, 90, n), "count": rng.integers(1930, 1990, n)})  # fmt: skip
    findings = persons(run_table(tmp_path, frame))
    assert worst(findings) is Verdict.BLOCK, text(findings)
    assert "holds years" in text(findings)


def test_per_person_predictions_block(tmp_path):
    rng = np.random.default_rng(19)
    n = 500
    frame = pd.DataFrame({"y_true": rng.integers(0, 2, n), "y_pred_proba": rng.uniform(0, 1, n).round(4),
                          "split": rng.choice(["train", "test"], n)})  # fmt: skip
    findings = persons(run_table(tmp_path, frame, index=True))
    assert worst(findings) is Verdict.BLOCK, text(findings)


def test_printed_rows_of_people_block(tmp_path):
    frame = km_input(n=40)
    rows = [list(frame.columns), *frame.astype(str).to_numpy().tolist()]
    findings = persons(list(check_rows(rows, "notebook cell 3 output", context(), infer_crosstab=False)))
    assert worst(findings) is Verdict.BLOCK, text(findings)


# -------------------------------------------------------------------------------------- per-sample (wide) genotypes
def genotype_wide(samples: list[str], *, dosage: bool, n: int = 120, seed: int = 13) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "chr": rng.integers(1, 23, n),
            "pos": np.sort(rng.integers(10**5, 10**8, n)),
            "rsid": [f"rs{v}" for v in rng.integers(10**5, 10**8, n)],
            "ref": rng.choice(list("ACGT"), n),
            "alt": rng.choice(list("ACGT"), n),
            "beta": np.round(rng.normal(0, 0.05, n), 4),
        }
    )
    maf = rng.uniform(0.05, 0.5, n)
    calls = rng.binomial(2, maf[:, None], (n, len(samples))).astype(float)
    if dosage:
        calls = np.round(np.clip(calls + rng.normal(0, 0.03, calls.shape), 0, 2), 3)
    wide = pd.DataFrame(calls if dosage else calls.astype(int), columns=samples)
    return pd.concat([frame, wide], axis=1)


@pytest.mark.parametrize(
    ("samples", "dosage"),
    [
        ([f"S{i:04d}" for i in range(1, 41)], False),
        ([f"HG{i:05d}" for i in range(96, 126)], True),
        ([f"NA{i}" for i in range(12878, 12890)], True),
        ([str(1000000 + 37 * i) for i in range(12)], False),
        ([f"sample_{i}" for i in range(1, 9)], False),
    ],
)
def test_sample_ids_as_column_headers_with_genotypes_block(tmp_path, samples, dosage):
    findings = persons(run_table(tmp_path, genotype_wide(samples, dosage=dosage)))
    assert worst(findings) is Verdict.BLOCK, text(findings)
    assert "named like sample ids hold genotypes" in text(findings)


def test_imputed_dosages_anywhere_in_zero_to_two_block_and_headers_stay_unnamed(tmp_path):
    rng = np.random.default_rng(20)
    samples = [f"CVD{v}" for v in rng.integers(10000, 99999, 30)]
    frame = genotype_wide(samples, dosage=False, n=60)
    frame[samples] = rng.uniform(0, 2, (60, len(samples))).round(3)
    findings = persons(run_table(tmp_path, frame))
    assert worst(findings) is Verdict.BLOCK, text(findings)
    assert not any(s in f.message or s in f.location for f in findings for s in samples)


def test_one_row_per_sample_with_variant_columns_blocks(tmp_path):
    rng = np.random.default_rng(14)
    n = 15  # fewer rows than the person rules need: the genotypes decide
    frame = pd.DataFrame({"FID": [f"F{i}" for i in range(n)], "IID": [f"F{i}_1" for i in range(n)],
                          "SEX": rng.integers(1, 3, n), "PHENOTYPE": rng.integers(1, 3, n)})  # fmt: skip
    for v in rng.integers(10**5, 10**8, 30):
        frame[f"rs{v}_A"] = rng.binomial(2, 0.3, n)
    findings = persons(run_table(tmp_path, frame))
    assert worst(findings) is Verdict.BLOCK, text(findings)
    assert "variants (one row per sample)" in text(findings)


def test_genotype_calls_as_text_block(tmp_path):
    rng = np.random.default_rng(15)
    frame = genotype_wide([f"S{i:03d}" for i in range(10)], dosage=False)
    for c in [f"S{i:03d}" for i in range(10)]:
        frame[c] = rng.choice(["0/0", "0/1", "1/1", "./."], len(frame))
    assert worst(persons(run_table(tmp_path, frame))) is Verdict.BLOCK


# ------------------------------------------------------------------------------------------ clean look-alikes pass
def gwas_summary(n: int = 800, seed: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "rsid": [f"rs{v}" for v in rng.integers(10**5, 10**8, n)],
            "chr": rng.integers(1, 23, n),
            "pos": rng.integers(10**5, 2 * 10**8, n),
            "effect_allele": rng.choice(list("ACGT"), n),
            "other_allele": rng.choice(list("ACGT"), n),
            "eaf": np.round(rng.uniform(0.01, 0.99, n), 3),
            "beta": np.round(rng.normal(0, 0.05, n), 4),
            "se": np.round(rng.uniform(0.01, 0.03, n), 4),
            "p": [f"{v:.3g}" for v in rng.uniform(0, 1, n)],
            "n": rng.integers(40000, 52000, n),
        }
    )


def allele_frequencies(n: int = 500, seed: int = 21) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    chrom, pos = rng.integers(1, 23, n), rng.integers(10**5, 10**8, n)
    ref, alt = rng.choice(list("ACGT"), n), rng.choice(list("ACGT"), n)
    frame = pd.DataFrame({"variant": [f"{c}:{p}:{r}:{a}" for c, p, r, a in zip(chrom, pos, ref, alt, strict=True)]})
    for pop in ("afr", "amr", "eas", "eur", "sas"):
        frame[f"af_{pop}"] = np.round(rng.beta(0.5, 3, n), 4)
    frame["an"] = 2 * rng.integers(4000, 5000, n)
    return frame


def regression(seed: int = 22) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    terms = ["(Intercept)", "age", "sex: male", "bmi", "smoking: current", "smoking: former", "ldl", "hdl", "sbp",
             "diabetes", "egfr", "statin", "aspirin", "imd quintile 2", "imd quintile 3", "imd quintile 4",
             "imd quintile 5", "region: north", "region: midlands", "region: south", "year", "af", "ckd"]  # fmt: skip
    est = rng.normal(0, 0.4, len(terms))
    se = rng.uniform(0.02, 0.2, len(terms))
    return pd.DataFrame({"term": terms, "estimate": est.round(3), "std.error": se.round(3),
                         "statistic": (est / se).round(2), "p.value": rng.uniform(0, 1, len(terms)).round(4),
                         "conf.low": (est - 1.96 * se).round(3), "conf.high": (est + 1.96 * se).round(3)})  # fmt: skip


def table_one(seed: int = 23) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(28):
        cells = []
        for total in (1204, 988):
            if i % 3 == 0:
                cells.append(f"{rng.normal(60, 10):.1f} ({rng.uniform(5, 15):.1f})")
            else:
                k = int(rng.integers(40, 600))
                cells.append(f"{k} ({100 * k / total:.1f}%)")
        rows.append([f"characteristic {i}", *cells])
    return pd.DataFrame(rows, columns=["characteristic", "cases (n=1204)", "controls (n=988)"])


def incidence_by_year(seed: int = 24) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    years = np.arange(1995, 2024)
    events = rng.integers(80, 400, len(years))
    pyears = rng.integers(50000, 90000, len(years))
    rate = 1000 * events / pyears
    return pd.DataFrame({"year": years, "events": events, "person_years": pyears, "rate_per_1000": rate.round(2),
                         "lower": (rate * 0.9).round(2), "upper": (rate * 1.1).round(2)})  # fmt: skip


def percentiles(seed: int = 25) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    q = np.arange(1, 100)
    return pd.DataFrame({"percentile": q, "bmi": np.sort(rng.normal(27, 4, 99)).round(1),
                         "sbp": np.sort(rng.normal(135, 18, 99)).round(0).astype(int),
                         "ldl": np.sort(rng.normal(3.2, 0.9, 99)).round(2)})  # fmt: skip


def deciles(seed: int = 26) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"decile": np.arange(1, 11), "n": rng.integers(900, 1100, 10),
                         "mean_predicted": np.sort(rng.uniform(0.01, 0.4, 10)).round(3),
                         "observed": np.sort(rng.uniform(0.01, 0.4, 10)).round(3)})  # fmt: skip


def prevalence(seed: int = 27) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for region in ["North East", "North West", "Yorkshire", "East Midlands", "West Midlands", "East", "London",
                   "South East", "South West"]:  # fmt: skip
        for year in range(2014, 2024):
            for sex in ("female", "male"):
                denominator = int(rng.integers(20000, 90000))
                cases = int(rng.integers(300, 3000))
                rows.append([region, year, sex, cases, denominator, round(100 * cases / denominator, 2)])
    return pd.DataFrame(rows, columns=["region", "year", "sex", "cases", "denominator", "prevalence_pct"])


def model_performance(seed: int = 28) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [[m, f, *rng.uniform(0.6, 0.9, 4).round(3)] for m in ("logistic", "lasso", "xgboost", "random forest")
            for f in range(1, 11)]  # fmt: skip
    return pd.DataFrame(rows, columns=["model", "fold", "auc", "sensitivity", "specificity", "brier"])


def bootstrap(seed: int = 29) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"replicate": np.arange(1, 201), "auc": rng.normal(0.78, 0.02, 200).round(4),
                         "calibration_slope": rng.normal(1.0, 0.08, 200).round(3),
                         "calibration_in_the_large": rng.normal(0.0, 0.05, 200).round(3)})  # fmt: skip


def weekly_counts(seed: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weeks = pd.date_range("2020-03-02", periods=156, freq="7D")
    admissions = rng.integers(40, 400, len(weeks))
    rolling = pd.Series(admissions).rolling(4, min_periods=1).mean().round(1)
    return pd.DataFrame(
        {"week_starting": weeks.strftime("%Y-%m-%d"), "admissions": admissions, "rolling_mean_4wk": rolling}
    )


def weekly_counts_by_number(seed: int = 31) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"iso_week": np.tile(np.arange(1, 53), 3), "season": np.repeat(["2021/22", "2022/23",
                         "2023/24"], 52), "consultations": rng.integers(100, 900, 156),
                         "ili_rate_per_100k": rng.uniform(1, 40, 156).round(2)})  # fmt: skip


def codelist(seed: int = 32) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    codes = [str(v) for v in rng.integers(10**14, 10**17, 45)]
    return pd.DataFrame({"code": codes, "term": [f"Heart failure finding {i}" for i in range(45)]})


def long_counts(seed: int = 33) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [[a, b, int(rng.integers(12, 900))] for a in ("0-17", "18-39", "40-59", "60-79", "80+")
            for b in ("Asian", "Black", "Mixed", "White", "Other", "Unknown")]  # fmt: skip
    return pd.DataFrame(rows, columns=["age_band", "ethnicity", "n"])


def long_aggregates(seed: int = 34) -> pd.DataFrame:
    """3,000 rows of aggregates (single year of age by sex by year): long, but every row a group."""
    rng = np.random.default_rng(seed)
    grid = pd.MultiIndex.from_product([range(100), (1, 2), range(2009, 2024)], names=["age", "sex", "year"])
    frame = grid.to_frame(index=False)
    frame["deaths"] = rng.integers(10, 400, len(frame))
    frame["population"] = rng.integers(20000, 60000, len(frame))
    frame["mortality_rate"] = (100000 * frame["deaths"] / frame["population"]).round(1)
    return frame


def correlation(labelled: bool, seed: int = 35) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = "age bmi sbp dbp ldl hdl tg hba1c egfr crp alt ast ggt uric sodium potassium urea albumin ferritin tsh"
    names = [*names.split(), "weight", "height", "waist", "hip"]
    data = pd.DataFrame(rng.normal(size=(500, len(names))), columns=names).corr().round(3)
    return data if labelled else data.reset_index(drop=True)


def per_site(seed: int = 36) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 36
    return pd.DataFrame({"site": [f"R{c}{d}" for c, d in zip("ABCDEFGHJKLM" * 3, np.repeat([1, 2, 3], 12),
                                                            strict=True)],
                         "patients": rng.integers(120, 4000, n), "mean_age": rng.normal(64, 3, n).round(1),
                         "pct_female": rng.uniform(35, 60, n).round(1),
                         "median_los_days": rng.uniform(3, 9, n).round(1),
                         "readmitted_30d": rng.integers(12, 300, n)})  # fmt: skip


def per_site_unnamed_stats(seed: int = 37) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 30
    return pd.DataFrame({"hospital": [f"Hospital {i}" for i in range(1, n + 1)],
                         "age": rng.normal(64, 3, n).round(1), "bmi": rng.normal(28, 1, n).round(1),
                         "sbp": rng.normal(138, 4, n).round(1)})  # fmt: skip


def km_summary(seed: int = 38) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 1800, 60)).round(0)
    at_risk = np.linspace(1200, 300, 60).astype(int)
    surv = np.linspace(0.99, 0.55, 60).round(3)
    return pd.DataFrame({"time": t, "n.risk": at_risk, "n.event": rng.integers(10, 30, 60), "surv": surv,
                         "lower": (surv - 0.03).round(3), "upper": (surv + 0.02).round(3)})  # fmt: skip


def roc_curve(seed: int = 39) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    fpr = np.sort(rng.uniform(0, 1, 80)).round(4)
    return pd.DataFrame({"threshold": np.sort(rng.uniform(0, 1, 80))[::-1].round(4), "fpr": fpr,
                         "tpr": np.sqrt(fpr).round(4)})  # fmt: skip


def rates_by_region(seed: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 40
    rate = rng.uniform(2, 40, n)
    return pd.DataFrame({"area": [f"E0600{i:04d}" for i in range(n)],
                         "rate": [f"{r:.1f}/1000" for r in rate],
                         "rate_95ci": [f"{r:.2f}({r * 0.8:.2f}-{r * 1.2:.2f})" for r in rate],
                         "registered": rng.integers(2000, 40000, n)})  # fmt: skip


def life_table(seed: int = 42) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": np.arange(0, 101), "lx": np.sort(rng.uniform(1e4, 1e5, 101))[::-1].round(0),
                         "qx": np.sort(rng.uniform(0, 0.5, 101)).round(5),
                         "ex": np.sort(rng.uniform(1, 80, 101))[::-1].round(2)})  # fmt: skip


def prescribing_by_practice(seed: int = 43) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    months = pd.date_range("2019-01-01", periods=36, freq="MS").strftime("%Y-%m-%d")
    rows = [[f"E8{1000 + p}", m, int(rng.integers(10, 500)), round(float(rng.uniform(100, 5000)), 2)]
            for p in range(40) for m in months]  # fmt: skip
    return pd.DataFrame(rows, columns=["ods", "month", "items", "actual_cost"])


def histogram(seed: int = 44) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    edges = np.arange(0, 300, 10)
    return pd.DataFrame({"lower_edge": edges, "upper_edge": edges + 10, "n": rng.integers(10, 900, len(edges))})


def data_dictionary(seed: int = 45) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 40
    return pd.DataFrame({"variable": [f"v{i}" for i in range(n)], "type": rng.choice(["num", "cat"], n),
                         "n_missing": rng.integers(10, 90, n), "mean": rng.normal(5, 1, n).round(2),
                         "sd": rng.uniform(1, 2, n).round(2), "min": rng.uniform(0, 1, n).round(1),
                         "max": rng.uniform(9, 10, n).round(1)})  # fmt: skip


def posterior_draws(seed: int = 46) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 4000
    return pd.DataFrame({"b_Intercept": rng.normal(0, 1, n).round(4), "b_age": rng.normal(0.03, 0.01, n).round(4),
                         "b_sexM": rng.normal(0.2, 0.1, n).round(4), "sigma": rng.gamma(5, 0.1, n).round(4),
                         "lp__": rng.normal(-500, 5, n).round(2)})  # fmt: skip


def daily_counts(seed: int = 47) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = pd.date_range("2020-03-01", periods=700).strftime("%d/%m/%Y")
    return pd.DataFrame({"date": days, "cases": rng.integers(10, 5000, 700), "deaths": rng.integers(10, 90, 700)})


def differential_expression(seed: int = 48) -> pd.DataFrame:
    """DESeq2 results as R writes them: gene ids in an unnamed first column."""
    rng = np.random.default_rng(seed)
    n = 300
    return pd.DataFrame({"": [f"ENSG{rng.integers(10**10, 10**11):011d}" for _ in range(n)],
                         "baseMean": rng.uniform(10, 1000, n).round(2), "log2FoldChange": rng.normal(0, 1, n).round(3),
                         "lfcSE": rng.uniform(0.1, 0.5, n).round(3), "stat": rng.normal(0, 2, n).round(3),
                         "pvalue": rng.uniform(0, 1, n), "padj": rng.uniform(0, 1, n)})  # fmt: skip


def ld_matrix(seed: int = 49) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = [f"rs{v}" for v in rng.integers(10**5, 10**8, 30)]
    return pd.DataFrame(np.clip(rng.uniform(0, 0.3, (30, 30)) + np.eye(30), 0, 1).round(3), columns=names)


def calibration(seed: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"mean_predicted": np.sort(rng.uniform(0, 1, 20)).round(3),
                         "observed_proportion": np.sort(rng.uniform(0, 1, 20)).round(3),
                         "n": rng.integers(100, 300, 20)})  # fmt: skip


CLEAN = {
    "GWAS summary statistics": gwas_summary,
    "allele frequencies": allele_frequencies,
    "regression coefficients": regression,
    "Table 1": table_one,
    "incidence by year": incidence_by_year,
    "percentiles": percentiles,
    "deciles": deciles,
    "prevalence by region and year": prevalence,
    "model performance per fold": model_performance,
    "bootstrap replicates": bootstrap,
    "weekly counts": weekly_counts,
    "weekly counts by week number": weekly_counts_by_number,
    "codelist": codelist,
    "long-format counts": long_counts,
    "long table of aggregates": long_aggregates,
    "correlation matrix": lambda: correlation(labelled=True),
    "correlation matrix without labels": lambda: correlation(labelled=False),
    "per-site aggregates": per_site,
    "per-hospital means": per_site_unnamed_stats,
    "Kaplan-Meier summary": km_summary,
    "ROC curve": roc_curve,
    "rates by area": rates_by_region,
    "life table": life_table,
    "prescribing by practice and month": prescribing_by_practice,
    "histogram": histogram,
    "data dictionary": data_dictionary,
    "posterior draws": posterior_draws,
    "daily counts": daily_counts,
    "differential expression": differential_expression,
    "LD matrix": ld_matrix,
    "calibration by bin": calibration,
}


@pytest.mark.parametrize("name", list(CLEAN))
def test_clean_aggregates_raise_nothing_from_the_person_rules(tmp_path, name):
    frame = CLEAN[name]()
    findings = run_table(tmp_path, frame, index=name == "correlation matrix")
    assert not persons(findings), text(findings)
    assert not [f for f in findings if "unique id" in f.message], text(findings)


@pytest.mark.parametrize("name", ["prevalence by region and year", "long table of aggregates", "per-site aggregates"])
def test_clean_aggregates_with_the_cohort_known_raise_nothing(tmp_path, name):
    findings = run_table(tmp_path, CLEAN[name](), cohort_size=1500)
    assert not persons(findings), text(findings)


def test_clean_aggregates_with_a_pandas_index_raise_nothing(tmp_path):
    for name in ("per-site aggregates", "incidence by year", "model performance per fold"):
        findings = run_table(tmp_path, CLEAN[name](), index=True)
        assert not persons(findings), f"{name}:\n{text(findings)}"


def test_wide_aggregates_by_year_or_week_are_not_samples(tmp_path):
    rng = np.random.default_rng(41)
    frame = pd.DataFrame({"region": [f"Region {i}" for i in range(12)]})
    for year in range(2010, 2024):
        frame[str(year)] = rng.uniform(0.2, 1.8, 12).round(2)  # prevalence (%) in [0, 2], like a dosage
    for week in range(1, 31):
        frame[f"wk{week:02d}"] = rng.uniform(0.5, 1.5, 12).round(2)
    findings = run_table(tmp_path, frame)
    assert not persons(findings), text(findings)


# ---------------------------------------------------------------------------------------------- through the engine
def test_engine_blocks_cardiac_cohort_and_passes_per_site_table(tmp_path):
    heart_failure().to_csv(tmp_path / "heart_failure_clinical_records.csv", index=False)
    report = check_one(tmp_path / "heart_failure_clinical_records.csv")
    assert report.verdict is Verdict.BLOCK, messages(report)
    assert "one row per person" in messages(report)
    per_site().to_csv(tmp_path / "site_summary.csv", index=False)
    clean = check_one(tmp_path / "site_summary.csv")
    assert clean.verdict is Verdict.PASS, messages(clean)


def test_engine_uses_the_projects_cohort_size(tmp_path):
    from output_checks.screening.known import KnownIdentifiers

    rng = np.random.default_rng(21)
    ethnicity = rng.choice(["Asian", "Black", "Mixed", "White", "Other"], 410)
    frame = pd.DataFrame({"hba1c": np.round(rng.normal(48, 9, 410), 1), "ethnicity": ethnicity})
    frame.to_csv(tmp_path / "hba1c.csv", index=False)
    alone = check_one(tmp_path / "hba1c.csv")
    assert "may be one row per person" in messages(alone)
    known = check_one(tmp_path / "hba1c.csv", known=KnownIdentifiers("demo", cohort_size=430))
    assert known.verdict is Verdict.BLOCK, messages(known)
    assert "430 patients" in messages(known)
