"""Statistics other than counts (means, medians, SDs, extremes, sums) judged by the number of people behind each
cell, wherever the table shows it, and review where it does not; coefficient tables judged by their model's
residual degrees of freedom (ACRO's safe_dof_threshold)."""

from __future__ import annotations

import pandas as pd
import pytest

from output_checks.verdicts import Verdict
from tests.airlock_helpers import check_one, messages, write

pytestmark = pytest.mark.unit


def verdict(path):
    return check_one(path).verdict


# -- statistics with their N -------------------------------------------------------------------------------------


def test_means_with_large_groups_pass(tmp_path):
    table = "group,n,mean_age,sd_age,median_los\nA,40,61.2,9.1,4\nB,55,63.0,8.7,5\nC,31,59.4,10.2,3\n"
    path = write(tmp_path, "means.csv", table)
    assert verdict(path) is Verdict.PASS, messages(check_one(path))


def test_means_of_small_groups_block(tmp_path):
    table = "group,n,mean_age,sd_age\nA,40,61.2,9.1\nB,4,63.0,8.7\nC,31,59.4,10.2\n"
    report = check_one(write(tmp_path, "means.csv", table))
    assert report.verdict is Verdict.BLOCK
    assert "statistic cell(s)" in messages(report) and "column 'mean_age', row 2" in messages(report)


def test_median_with_an_n_column_that_is_not_named_first(tmp_path):
    table = "region,median_los,patients\nNorth,4,30\nSouth,5,8\n"
    report = check_one(write(tmp_path, "los.csv", table))
    assert report.verdict is Verdict.BLOCK
    assert "column 'median_los', row 2" in messages(report)


def test_standard_deviation_needs_degrees_of_freedom(tmp_path):
    low = "group,n,sd_cost\nA,10,120.5\nB,40,98.1\n"  # n=10: 9 degrees of freedom
    report = check_one(write(tmp_path, "sd.csv", low))
    assert report.verdict is Verdict.BLOCK and "degrees of freedom" in messages(report)
    ok = "group,n,sd_cost\nA,11,120.5\nB,40,98.1\n"
    assert verdict(write(tmp_path, "sd_ok.csv", ok)) is Verdict.PASS


def test_pandas_multilevel_count_and_mean(tmp_path):
    frame = pd.DataFrame(
        {"a": ["x"] * 4 + ["y"] * 30 + ["x"] * 20, "b": ["p"] * 4 + ["q"] * 30 + ["q"] * 20, "v": range(54)}
    )
    table = frame.groupby(["a", "b"])["v"].agg(["count", "mean"]).unstack()
    table.to_csv(tmp_path / "agg.csv")  # ",count,count,mean,mean" / "b,p,q,p,q" / "a,,,," / rows
    report = check_one(tmp_path / "agg.csv")
    assert report.verdict is Verdict.BLOCK
    assert "column 'mean / p', row 1" in messages(report)


def test_describe_output_uses_its_count_row(tmp_path):
    small = pd.DataFrame({"age": [61, 64, 70, 58, 77, 66, 69, 72]}).describe()
    small.to_csv(tmp_path / "describe.csv")
    report = check_one(tmp_path / "describe.csv")
    assert report.verdict is Verdict.BLOCK
    assert "statistic cell(s)" in messages(report)
    large = pd.DataFrame({"age": list(range(40, 90))}).describe()
    large.to_csv(tmp_path / "describe_ok.csv")
    assert verdict(tmp_path / "describe_ok.csv") is Verdict.PASS, messages(check_one(tmp_path / "describe_ok.csv"))


def test_long_statistics_layout_matches_wide(tmp_path):
    long = "group,statistic,value\nA,n,40\nA,mean,3.1\nB,n,6\nB,mean,2.2\n"
    wide = "group,n,mean\nA,40,3.1\nB,6,2.2\n"
    assert verdict(write(tmp_path, "long.csv", long)) is Verdict.BLOCK
    assert verdict(write(tmp_path, "wide.csv", wide)) is Verdict.BLOCK
    clean_long = long.replace("B,n,6", "B,n,60")
    path = write(tmp_path, "long_ok.csv", clean_long)
    assert verdict(path) is Verdict.PASS, messages(check_one(path))


def test_group_size_in_a_header(tmp_path):
    table = "characteristic,cases (N=412),controls (N=8)\nAge mean (SD),67.2 (10.1),64.8 (11.0)\n"
    report = check_one(write(tmp_path, "t1.csv", table))
    assert report.verdict is Verdict.BLOCK
    assert "controls" in messages(report) and "cases" not in messages(report)


def test_dominated_mean(tmp_path):
    table = "site,n,mean_cost,max_cost\nA,40,100,950\nB,25,400,9800\nC,30,120,300\n"
    report = check_one(write(tmp_path, "cost.csv", table))
    assert report.verdict is Verdict.BLOCK
    assert "dominated" in messages(report) and "row 2" in messages(report) and "row 1" not in messages(report)


# -- statistics without their N: review, never pass ----------------------------------------------------------------


def test_means_without_any_n_go_to_review(tmp_path):
    report = check_one(write(tmp_path, "m.csv", "site,mean_ldl,sd_ldl\na,3.1,0.9\nb,3.4,1.1\n"))
    assert report.verdict is Verdict.REVIEW
    assert "does not show" in messages(report)


def test_unlabelled_crosstab_of_means_goes_to_review(tmp_path):
    # ACRO's crosstab(..., aggfunc="mean") written by pandas: category columns of decimals, nothing says "mean"
    table = "year,N,R,W,Y\n2010,1791.03,371.77,1728.59,2400.53\n2011,2039.35,718.53,1834.15,1962.43\n"
    report = check_one(write(tmp_path, "output_2_0.csv", table))
    assert report.verdict is Verdict.REVIEW
    assert "does not show" in messages(report)


def test_acro_pivot_table_of_means_and_sds_goes_to_review(tmp_path):
    table = ",mean,std\n,inc,inc\nyear,,\n2010,1965.77,1382.89\n2011,1905.98,1389.65\n"
    report = check_one(write(tmp_path, "pivot.csv", table))
    assert report.verdict is Verdict.REVIEW
    assert "column 'mean / inc'" in messages(report)


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("incidence_by_region.csv", "region,2019,2020\nNorth,12.31,13.02\nSouth,11.85,12.64\n"),
        ("rates.csv", "region,North,South\n2019,12.31,13.02\n2020,11.85,12.64\n"),
        ("auc.csv", "model,auc,lower,upper\nlogistic,0.81,0.78,0.84\nboosted,0.84,0.81,0.87\n"),
    ],
)
def test_named_rates_and_ratios_pass(tmp_path, name, table):
    path = write(tmp_path, name, table)
    assert verdict(path) is Verdict.PASS, messages(check_one(path))


# -- regressions ------------------------------------------------------------------------------------------------


def test_coefficient_table_with_too_few_observations_blocks(tmp_path):
    table = "term,coef,se,p,nobs\nage,0.31,0.10,0.01,8\nconst,1.20,0.51,0.04,8\n"
    report = check_one(write(tmp_path, "model.csv", table))
    assert report.verdict is Verdict.BLOCK
    assert "residual degrees of freedom" in messages(report)


def test_coefficient_table_with_a_df_resid_row(tmp_path):
    small = "term,estimate,std_error,p_value\nage,0.031,0.004,0.001\nsex,0.22,0.08,0.006\ndf_resid,7,,\n"
    assert verdict(write(tmp_path, "small.csv", small)) is Verdict.BLOCK
    large = small.replace("df_resid,7", "df_resid,1201")
    path = write(tmp_path, "large.csv", large)
    assert verdict(path) is Verdict.PASS, messages(check_one(path))


def test_stargazer_observations_row(tmp_path):
    table = "term,(1),(2)\nage,0.031,0.029\n,(0.004),(0.005)\nObservations,9,9\n"
    # an estimate column named by model number: not recognisably a coefficient table, but the N still shows
    report = check_one(write(tmp_path, "sg.csv", table))
    assert report.verdict is not Verdict.PASS


def test_odds_ratios_without_the_model_size_go_to_review(tmp_path):
    table = "exposure,or,lower,upper,p\nsmoking,1.82,1.41,2.35,0.0001\nobesity,1.31,1.05,1.64,0.02\n"
    report = check_one(write(tmp_path, "or.csv", table))
    assert report.verdict is Verdict.REVIEW, messages(report)


def test_bare_coefficient_table_goes_to_review(tmp_path):
    table = ",coef,std err,t,P>|t|,[0.025,0.975]\nyear,269.6484,264.922,1.018,0.333,-320.635,859.932\n"
    report = check_one(write(tmp_path, "coef.csv", table))
    assert report.verdict is Verdict.REVIEW
    assert "residual degrees of freedom" in messages(report)


def test_model_summary_table_with_low_df_blocks(tmp_path):
    summary = (
        "Dep. Variable:,inc,R-squared:,0.094\nModel:,OLS,Adj. R-squared:,0.003\nNo. Observations:,{n},AIC:,195.1\n"
        "Df Residuals:,{df},BIC:,196.1\nDf Model:,1,,\n"
    )
    assert verdict(write(tmp_path, "s1.csv", summary.format(n=6, df=4))) is Verdict.BLOCK
    assert check_one(write(tmp_path, "s2.csv", summary.format(n=300, df=298))).verdict is not Verdict.BLOCK


def test_acro_coefficients_read_the_summary_beside_them(tmp_path):
    coefficients = ",coef,std err,t,P>|t|,[0.025,0.975]\nyear,269.6,264.9,1.018,0.333,-320.6,859.9\n"
    summary = "Dep. Variable:,inc,R-squared:,0.094\nNo. Observations:,{n},AIC:,195.1\nDf Residuals:,{df},BIC:,196\n"
    small = tmp_path / "small"
    write(small, "output_3_0.csv", summary.format(n=7, df=5))
    assert verdict(write(small, "output_3_1.csv", coefficients)) is Verdict.BLOCK
    large = tmp_path / "large"
    write(large, "output_3_0.csv", summary.format(n=300, df=298))
    path = write(large, "output_3_1.csv", coefficients)
    assert verdict(path) is Verdict.PASS, messages(check_one(path))


def test_gwas_results_are_not_a_coefficient_table(tmp_path):
    table = "rsid,chr,pos,beta,se,p\nrs1001,1,10583,0.031,0.012,0.009\nrs1002,1,20511,-0.011,0.010,0.27\n"
    path = write(tmp_path, "gwas.csv", table)
    assert verdict(path) is Verdict.PASS, messages(check_one(path))


def test_a_groups_statistic_rests_on_its_population_not_its_events(tmp_path):
    # The example notebook's table: patients and events per risk group, with rates and mean predicted risk.
    table = (
        "risk_group,patients,events,observed_rate_pct,mean_predicted_risk_pct\n"
        "1 of 4,250,20,8.0,7.5\n2 of 4,250,30,12.0,11.8\n3 of 4,250,45,18.0,17.9\n4 of 4,250,70,28.0,27.2\n"
    )
    assert check_one(write(tmp_path, "risk.csv", table)).verdict is Verdict.PASS
    small = table.replace("1 of 4,250,20,8.0", "1 of 4,6,20,8.0")
    assert check_one(write(tmp_path, "small.csv", small)).verdict is Verdict.BLOCK
