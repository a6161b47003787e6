"""Count detection that does not depend on layout: categories named like counts, numeric row labels, the header
rows pandas writes for multi-level columns, spanning two-row headers, tab-separated files named .csv, long and wide
layouts of the same numbers, allele counts in a sites-only VCF; and the index, group-number, rate and code columns
that are not counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from output_checks.verdicts import Verdict
from tests.airlock_helpers import check_one, messages, write

pytestmark = pytest.mark.unit


def verdict(path):
    return check_one(path).verdict


# -- categories named like counts -------------------------------------------------------------------------------


def test_a_category_named_n_is_one_count_column_among_others(tmp_path):
    # "N" is "no grant" here: every category column is a count column, not only the one named like a count
    table = "year,N,R,W,Y\n2010,30,1,28,31\n2011,26,2,38,29\n2012,37,1,42,35\n"
    report = check_one(write(tmp_path, "grants.csv", table))
    assert report.verdict is Verdict.BLOCK
    assert "column 'R', row 1" in messages(report)


def test_yes_no_crosstab_with_a_total_named_n(tmp_path):
    table = "region,Yes,No,n\nNorth,40,3,43\nSouth,52,31,83\nEast,61,25,86\n"
    report = check_one(write(tmp_path, "answers.csv", table))
    assert report.verdict is Verdict.BLOCK
    assert "column 'No', row 1" in messages(report)


@pytest.mark.parametrize("categories", ["SE,NW", "OR,CA", "C,P"])
def test_short_category_names_are_not_read_as_statistics(tmp_path, categories):
    first, second = categories.split(",")
    table = f"year,{first},{second}\n2019,40,4\n2020,35,51\n"
    assert verdict(write(tmp_path, "regions.csv", table)) is Verdict.BLOCK


# -- numeric row labels -----------------------------------------------------------------------------------------


def test_a_year_column_does_not_switch_crosstab_detection_off(tmp_path):
    table = "year,female,male\n2019,40,4\n2020,35,51\n2021,38,44\n"
    report = check_one(write(tmp_path, "by_year.csv", table))
    assert report.verdict is Verdict.BLOCK
    assert "column 'male', row 1" in messages(report) and "year" not in messages(report)


def test_ordinal_age_band_numbers_label_rows(tmp_path):
    table = "age_band,F,M\n1,40,30\n2,5,60\n3,71,66\n"
    report = check_one(write(tmp_path, "bands.csv", table))
    assert report.verdict is Verdict.BLOCK
    assert "column 'F', row 2" in messages(report) and "age_band" not in messages(report)
    clean = "age_band,F,M\n1,40,30\n2,15,60\n3,71,66\n"
    assert verdict(write(tmp_path, "bands_ok.csv", clean)) is Verdict.PASS


# -- header rows --------------------------------------------------------------------------------------------------


def _multilevel(value: int, rows: int = 15) -> pd.DataFrame:
    columns = pd.MultiIndex.from_product([["a", "b", "c", "d"], ["F", "M"], ["x", "y", "z"]], names=["g", "s", "t"])
    index = pd.Index([f"site {i}" for i in range(rows)], name="site")
    return pd.DataFrame(np.full((rows, len(columns)), value), index=index, columns=columns)


def test_pandas_multilevel_column_header_is_parsed(tmp_path):
    path = tmp_path / "wide.csv"
    _multilevel(4).to_csv(path)  # three header rows and the index-name row, then 15 x 24 cells of 4
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK
    assert "360 count cell(s)" in messages(report)
    _multilevel(40).to_csv(tmp_path / "wide_ok.csv")
    assert verdict(tmp_path / "wide_ok.csv") is Verdict.PASS, messages(check_one(tmp_path / "wide_ok.csv"))


def test_pandas_multilevel_header_with_numeric_row_labels(tmp_path):
    frame = pd.crosstab(
        pd.Series([2019, 2019, 2020, 2020] * 20, name="year"),
        [pd.Series(["a", "b", "b", "a"] * 20, name="grp")],
        margins=True,
    )
    frame.columns = pd.MultiIndex.from_tuples([("grant", c) for c in frame.columns])
    frame.to_csv(tmp_path / "year_ml.csv")
    assert verdict(tmp_path / "year_ml.csv") is Verdict.PASS, messages(check_one(tmp_path / "year_ml.csv"))
    frame.iloc[0, 0] = 3
    frame.to_csv(tmp_path / "year_ml_small.csv")
    assert verdict(tmp_path / "year_ml_small.csv") is Verdict.BLOCK


def test_spanning_two_row_header(tmp_path):
    table = "site,Deaths,,Admissions,\n,F,M,F,M\nA,12,3,40,50\nB,22,31,45,57\n"
    report = check_one(write(tmp_path, "span.csv", table))
    assert report.verdict is Verdict.BLOCK
    assert "Deaths / M" in messages(report)
    clean = table.replace(",3,", ",13,")
    assert verdict(write(tmp_path, "span_ok.csv", clean)) is Verdict.PASS


def test_subheader_with_group_sizes(tmp_path):
    table = (
        "characteristic,cases,controls\n,N=412,N=1204\nMale sex,245 (59.5%),702 (58.3%)\nSmoker,3 (0.7%),190 (15.8%)\n"
    )
    report = check_one(write(tmp_path, "table1.csv", table))
    assert report.verdict is Verdict.BLOCK
    assert "row 2" in messages(report)


def test_tab_separated_file_named_csv(tmp_path):
    text = "site\tdiagnosis\tn\nA\tI25\t120\nB\tI25\t45\n"
    assert verdict(write(tmp_path, "tabs.csv", text)) is Verdict.PASS
    assert verdict(write(tmp_path, "tabs_small.csv", text + "C\tI42\t4\n")) is Verdict.BLOCK


# -- the same numbers, long or wide ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cells", [[120, 45, 60, 33], [120, 4, 60, 33], [12, 45, 60, 10]])
def test_long_and_wide_layouts_get_the_same_verdict(tmp_path, cells):
    long = "year,sex,n\n" + "".join(
        f"{y},{s},{v}\n" for (y, s), v in zip([(2019, "F"), (2019, "M"), (2020, "F"), (2020, "M")], cells, strict=True)
    )
    wide = f"year,F,M\n2019,{cells[0]},{cells[1]}\n2020,{cells[2]},{cells[3]}\n"
    frame = pd.DataFrame([[cells[0], cells[1]], [cells[2], cells[3]]], columns=["F", "M"], index=[2019, 2020])
    frame.columns = pd.MultiIndex.from_tuples([("sex", "F"), ("sex", "M")])
    frame.index.name = "year"
    frame.to_csv(tmp_path / "multi.csv")
    verdicts = {
        verdict(write(tmp_path, "long.csv", long)),
        verdict(write(tmp_path, "wide.csv", wide)),
        verdict(tmp_path / "multi.csv"),
    }
    assert len(verdicts) == 1, verdicts


# -- columns that are not counts ----------------------------------------------------------------------------------


def test_pandas_index_column_is_not_a_count(tmp_path):
    frame = pd.DataFrame({"site": ["A", "B", "C", "D"], "n": [120, 45, 60, 33]})
    frame.to_csv(tmp_path / "indexed.csv")  # "" header, then 0, 1, 2, 3
    assert verdict(tmp_path / "indexed.csv") is Verdict.PASS, messages(check_one(tmp_path / "indexed.csv"))


@pytest.mark.parametrize(
    "table",
    [
        "group,n\n1,40\n2,55\n3,61\n",
        "cluster,patients\n1,140\n2,55\n3,61\n",
        "region,events,rate_per_1000\nNorth,120,3\nSouth,80,2\n",
        "region,rate\nNorth,3.2\nSouth,1.1\n",
        "imd_quintile,n\n1,240\n2,210\n3,199\n4,180\n5,150\n",
        "code,term\n22298006,Myocardial infarction\n401303003,Acute ST segment elevation myocardial infarction\n",
        "snomed_code,description,patients\n22298006,Myocardial infarction,120\n44054006,Diabetes mellitus type 2,301\n",
        "year,incidence_per_100k,lower_ci,upper_ci\n2015,12.3,10.1,14.8\n2016,13.0,10.9,15.2\n",
        "rsid,chr,pos,ref,alt,af\nrs123,1,10583,G,A,0.144\nrs456,2,10611,C,G,0.012\n",
        "model,auc,brier,calibration_slope\nlogistic,0.81,0.12,0.97\nboosted,0.84,0.11,1.02\n",
        "region,pct_female\nNorth,51.2%\nSouth,49.8%\n",
        "stage,grade,n\n1,2,140\n2,3,75\n",
        "site,n\nA,<10\nB,[REDACTED]\nC,120\nD,88\n",
    ],
)
def test_clean_aggregates_pass(tmp_path, table):
    path = write(tmp_path, "clean.csv", table)
    assert verdict(path) is Verdict.PASS, messages(check_one(path))


# -- allele counts in a sites-only VCF --------------------------------------------------------------------------------

VCF_HEAD = (
    '##fileformat=VCFv4.2\n##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count">\n'
    '##INFO=<ID=AN,Number=1,Type=Integer,Description="Allele number">\n'
    '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
)


def _vcf(tmp_path, name, acs):
    lines = [
        f"1\t{10_000 + i * 17}\trs{100 + i}\tG\tA\t.\tPASS\tAC={ac};AN=2000;AF={int(ac.split(',')[0]) / 2000:.4f}"
        for i, ac in enumerate(acs)
    ]
    return write(tmp_path, name, VCF_HEAD + "\n".join(lines) + "\n")


def test_small_allele_counts_in_a_sites_vcf_block(tmp_path):
    report = check_one(_vcf(tmp_path, "sites.vcf", ["120", "3", "45"]))
    assert report.type == "vcf-sites"
    assert report.verdict is Verdict.BLOCK
    assert "row 2" in messages(report)


def test_second_allele_small_count_blocks(tmp_path):
    assert verdict(_vcf(tmp_path, "multi.vcf", ["120,2", "45"])) is Verdict.BLOCK


def test_sites_vcf_with_large_allele_counts_passes(tmp_path):
    path = _vcf(tmp_path, "ok.vcf", ["120", "45", "0", "33"])  # AC=0: an allele no one carries
    assert verdict(path) is Verdict.PASS, messages(check_one(path))


def test_categories_named_like_levels_are_counts_in_a_crosstab(tmp_path):
    # "band 0 / group 3": the levels of two categories as a cross-tab's columns, not columns named for a role
    bands = [f"band {b}" for b in range(6)]
    frame = pd.DataFrame(4, index=[f"practice {p:02d}" for p in range(15)], columns=pd.MultiIndex.from_product(
        [bands, [f"group {g}" for g in range(4)]], names=["band", "group"]))  # fmt: skip
    frame.index.name = "practice"
    path = tmp_path / "wide.csv"
    frame.to_csv(path)
    report = check_one(path)
    assert report.verdict is Verdict.BLOCK and "360 count cell(s)" in messages(report), messages(report)
    clean = write(tmp_path, "clean.csv", "decile,group 1,group 2\n1,120,131\n2,98,104\n3,143,150\n")
    assert verdict(clean) is Verdict.PASS


def test_whole_numbers_written_as_decimals_are_counts_or_sums(tmp_path):
    # pandas writes a crosstab of sums (aggfunc=sum) as decimals: no small count shows, but no contributors either
    sums = write(tmp_path, "s.csv", "region,Female,Male\nEast,780098.0,862564.0\nIsles,115795.0,86796.0\n")
    report = check_one(sums)
    assert report.verdict is Verdict.REVIEW and "written as decimals" in messages(report)
    small = write(tmp_path, "t.csv", "region,Female,Male\nEast,120.0,131.0\nIsles,4.0,86.0\n")
    assert verdict(small) is Verdict.BLOCK
    named = write(tmp_path, "n.csv", "region,n\nEast,120.0\nIsles,86.0\n")
    assert verdict(named) is Verdict.PASS  # named as counts: counts that passed through floats


def test_odds_ratio_tables_are_coefficient_tables(tmp_path):
    table = "term,odds_ratio,p\nconst,1.2,0.99\nage,1.03,0.01\nsex_Male,0.8,0.2\n"
    report = check_one(write(tmp_path, "or.csv", table))
    assert report.verdict is Verdict.REVIEW and "coefficient table" in messages(report), messages(report)
