"""Tables: individual-level detection, statistical disclosure control (ACRO's rules) and identifier screening of
every cell, across CSV dialects and encodings, Parquet, Excel (hidden sheets) and JSON records."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from output_checks.policy import load_policy
from output_checks.verdicts import Verdict
from tests.airlock_helpers import check_one, messages, write

pytestmark = pytest.mark.unit


def verdict(path, **kw):
    return check_one(path, **kw).verdict


def test_counts_at_or_above_threshold_pass(tmp_path):
    path = write(tmp_path, "t.csv", "site,diagnosis,n\nA,I25,120\nB,I25,45\nC,I42,10\n")
    assert verdict(path) is Verdict.PASS, messages(check_one(path))


def test_small_count_blocks_and_names_the_cell(tmp_path):
    report = check_one(write(tmp_path, "t.csv", "site,diagnosis,n\nA,I25,120\nB,I25,3\nC,I42,40\n"))
    assert report.verdict is Verdict.BLOCK
    assert any("row 2" in f.location and "below the minimum of 10" in f.message for f in report.findings)


def test_crosstab_without_count_header_is_checked(tmp_path):
    path = write(tmp_path, "x.csv", "age_band,female,male\n40-49,120,98\n50-59,4,131\n60-69,88,97\n")
    assert verdict(path) is Verdict.BLOCK


def test_zero_goes_to_review(tmp_path):
    report = check_one(write(tmp_path, "t.csv", "group,count\na,50\nb,0\nc,31\n"))
    assert report.verdict is Verdict.REVIEW, messages(report)


@pytest.mark.parametrize("marker", ["<10", "[REDACTED]", "*", "<5"])
def test_suppressed_cells_are_fine(tmp_path, marker):
    path = write(tmp_path, "t.csv", f"site,n\nA,120\nB,{marker}\nC,{marker}\nD,75\n")
    assert verdict(path) is Verdict.PASS, messages(check_one(path))


def test_single_suppressed_cell_recoverable_from_total_goes_to_review(tmp_path):
    report = check_one(write(tmp_path, "t.csv", "site,n\nA,60\nB,55\nC,<10\nTotal,120\n"))
    assert report.verdict is Verdict.REVIEW
    assert "recovered by subtraction" in messages(report)


def test_declared_rounding_base_protects_small_counts(tmp_path):
    path = write(tmp_path, "t.csv", "site,n\nA,5\nB,120\nC,35\n")
    policy_file = write(tmp_path, "policy.yaml", "rounding_base: 5\n")
    assert verdict(path) is Verdict.BLOCK
    assert verdict(path, policy=load_policy(policy_file)) is Verdict.PASS


def test_means_and_regression_tables_pass(tmp_path):
    # Issue 11: a coefficient table must show how many observations the model had; with them it passes.
    path = write(
        tmp_path,
        "model.csv",
        "term,estimate,se,p_value,or_lower,or_upper\nage,0.031,0.004,1e-9,1.02,1.04\nldl,0.41,0.05,2e-12,1.3,1.7\n"
        "male,0.22,0.08,0.006,1.07,1.45\nObservations,1204,,,,\n",
    )
    assert verdict(path) is Verdict.PASS, messages(check_one(path))


def individual_rows(n: int, seed: int = 3) -> pd.DataFrame:
    rng = random.Random(seed)
    return pd.DataFrame(
        {
            "age": [rng.randint(30, 90) for _ in range(n)],
            "sex": [rng.choice("FM") for _ in range(n)],
            "ldl": [round(rng.gauss(3.2, 0.9), 2) for _ in range(n)],
            "icd10": [rng.choice(["I25.1", "I21.0", "E78.0"]) for _ in range(n)],
        }
    )


def test_one_row_per_person_blocks_without_any_identifier(tmp_path):
    path = tmp_path / "rows.csv"
    individual_rows(400).to_csv(path, index=False)
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK
    assert "one row per person" in messages(report)


def test_pseudonym_column_blocks(tmp_path):
    rows = "\n".join(
        f"P-{''.join(random.Random(i).choices('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', k=16))},{i % 90}" for i in range(50)
    )
    report = check_one(write(tmp_path, "ids.csv", "pid,age\n" + rows + "\n"))
    assert report.verdict is Verdict.BLOCK
    assert "pseudonym" in messages(report)


@pytest.mark.parametrize(
    ("header", "values"),
    [("nhs_number", ["9434765919", "4010232137"]), ("date_of_birth", ["1956-03-14", "1961-07-02"])],
)
def test_identifier_columns_block(tmp_path, header, values):
    body = "\n".join(f"{v},{i}" for i, v in enumerate(values))
    assert verdict(write(tmp_path, "t.csv", f"{header},x\n{body}\n")) is Verdict.BLOCK


def test_one_identifier_in_two_thousand_rows_is_found(tmp_path):
    rng = random.Random(5)
    lines = ["region,year,note,n"]
    for i in range(2000):
        note = "stable" if i != 1836 else "Mrs Margaret Thompson NHS 943 476 5919"
        lines.append(f"R{rng.randint(1, 9)},{2015 + i % 7},{note},{rng.randint(10, 500)}")
    report = check_one(write(tmp_path, "big.csv", "\n".join(lines) + "\n"))
    assert report.verdict is Verdict.BLOCK
    assert any("row 1837" in f.location for f in report.findings), messages(report)


@pytest.mark.parametrize(
    ("encoding", "sep"), [("utf-8", ";"), ("utf-8-sig", ","), ("utf-16", "\t"), ("latin-1", "|"), ("utf-8", ",")]
)
def test_dialects_and_encodings(tmp_path, encoding, sep):
    text = sep.join(["région", "n"]) + "\n" + "\n".join(sep.join([f"Zône {i}", str(20 + i)]) for i in range(5))
    clean = tmp_path / "clean.csv"
    clean.write_bytes((text + "\n").encode(encoding))
    assert verdict(clean) is Verdict.PASS, messages(check_one(clean))
    bad = tmp_path / "bad.csv"
    bad.write_bytes((text + "\n" + sep.join(["Zône 9", "3"]) + "\n").encode(encoding))
    assert verdict(bad) is Verdict.BLOCK


def test_parquet_and_json_records(tmp_path):
    frame = pd.DataFrame({"site": ["A", "B", "C"], "n": [120, 7, 45]})
    frame.to_parquet(tmp_path / "t.parquet")
    assert verdict(tmp_path / "t.parquet") is Verdict.BLOCK
    (tmp_path / "t.json").write_text(json.dumps(frame.to_dict(orient="records")))
    assert check_one(tmp_path / "t.json").type == "json"
    assert verdict(tmp_path / "t.json") is Verdict.BLOCK
    frame["n"] = [120, 70, 45]
    frame.to_parquet(tmp_path / "ok.parquet")
    assert verdict(tmp_path / "ok.parquet") is Verdict.PASS


def test_hidden_excel_sheet_is_checked(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["site", "n"])
    book.active.append(["A", 120])
    hidden = book.create_sheet("lookup")
    hidden.sheet_state = "hidden"
    hidden.append(["name", "nhs"])
    hidden.append(["Margaret Thompson", "943 476 5919"])
    book.save(tmp_path / "t.xlsx")
    report = check_one(tmp_path / "t.xlsx")
    assert report.type == "xlsx"
    assert report.verdict is Verdict.BLOCK
    assert "hidden sheet" in messages(report)


def test_gwas_summary_statistics_pass(tmp_path):
    rng = random.Random(2)
    lines = ["rsid,chr,pos,effect_allele,beta,se,p"]
    for _ in range(800):
        lines.append(f"rs{rng.randint(10**5, 10**8)},{rng.randint(1, 22)},{rng.randint(10**5, 2 * 10**8)},A,"
                     f"{rng.gauss(0, 0.05):.4f},{rng.uniform(0.01, 0.03):.4f},{rng.random():.3g}")  # fmt: skip
    path = write(tmp_path, "gwas.csv", "\n".join(lines) + "\n")
    assert verdict(path) is Verdict.PASS, messages(check_one(path))


def test_row_limit_goes_to_review(tmp_path):
    lines = ["rsid,beta"] + [f"rs{i},{i / 1e5:.5f}" for i in range(6000)]
    report = check_one(write(tmp_path, "long.csv", "\n".join(lines) + "\n"))
    assert report.verdict is Verdict.REVIEW
    assert "6,000 rows" in messages(report)


def test_acro_results_are_evidence(tmp_path):
    import numpy as np
    from acro import ACRO

    rng = np.random.default_rng(1)
    data = pd.DataFrame({"site": rng.choice(["a", "b", "c"], 300), "sex": rng.choice(["F", "M"], 300)})
    data.loc[0, "site"] = "d"
    acro = ACRO(suppress=False)
    acro.crosstab(data.site, data.sex)
    out = tmp_path / "acro"
    acro.finalise(str(out), "json")
    table = next(p for p in out.glob("output_*.csv"))
    report = check_one(table)
    assert report.verdict is Verdict.BLOCK
    assert "ACRO marked this table fail" in messages(report)
    # An edited table no longer matches ACRO's checksum: ACRO's fail no longer describes it, but the edit itself is
    # a finding (issue 11: never dropped silently), and Enclave's own rules still apply.
    table.write_text(table.read_text().replace("d,", "e,"))
    edited = messages(check_one(table))
    assert "ACRO marked this table fail" not in edited and "edited after ACRO checked it" in edited


def test_table_one_counts_with_percentages(tmp_path):
    table = (
        "characteristic,cases,controls\nMale sex,245 (59.5%),702 (58.3%)\nCurrent smoker,88 (21.4%),190 (15.8%)\n"
        "Age (mean SD),67.2 (10.1),64.8 (11.0)\n"
    )
    assert verdict(write(tmp_path, "t1.csv", table)) is Verdict.PASS
    small = table.replace("88 (21.4%)", "3 (0.7%)")
    report = check_one(write(tmp_path, "t1b.csv", small))
    assert report.verdict is Verdict.BLOCK and "column 'cases', row 2" in messages(report)


def test_thousands_separators_are_counts(tmp_path):
    assert verdict(write(tmp_path, "t.csv", 'site,n\nA,"1,204"\nB,"12,880"\n')) is Verdict.PASS
    assert verdict(write(tmp_path, "u.csv", 'site,n\nA,"1,204"\nB,4\n')) is Verdict.BLOCK


def test_markdown_tables_and_prose_counts(tmp_path):
    report = check_one(write(tmp_path, "r.md", "# Results\n\n| site | n |\n|---|--:|\n| A | 120 |\n| B | 3 |\n"))
    assert report.verdict is Verdict.BLOCK and "table at line 3" in messages(report)
    prose = check_one(write(tmp_path, "p.md", "# Outcomes\n\nOf the 1,204 patients, 3 patients died (n = 3).\n"))
    assert prose.verdict is Verdict.REVIEW
    fine = check_one(write(tmp_path, "f.md", "# Outcomes\n\nOf the 1,204 patients, 212 died across 5 sites.\n"))
    assert fine.verdict is Verdict.PASS, messages(fine)


def test_dominance_rules_where_contributions_are_shown(tmp_path):
    table = "site,n,total_cost,max_cost,second_cost\nA,40,1000,100,90\nB,25,1000,950,20\nC,30,1000,500,480\n"
    report = check_one(write(tmp_path, "cost.csv", table))
    assert report.verdict is Verdict.BLOCK
    assert "dominated" in messages(report) and "row 2" in messages(report) and "row 3" in messages(report)
    assert "row 1" not in messages(report)


def test_acro_fail_is_kept_for_tables_without_counts(tmp_path):
    from output_checks.checks.tables import acro_evidence

    table = write(tmp_path, "means.csv", "site,mean_ldl\na,3.1\nb,3.4\n")
    import hashlib

    digest = hashlib.sha256(table.read_bytes()).hexdigest()
    (tmp_path / "checksums").mkdir()
    (tmp_path / "checksums" / "means.csv.txt").write_text(digest)
    (tmp_path / "results.json").write_text(
        json.dumps({"results": {"output_0": {"status": "fail", "files": [{"name": "means.csv"}]}}})
    )
    assert acro_evidence(table, digest) == "fail"
    assert "ACRO marked this table fail" in messages(check_one(table))
