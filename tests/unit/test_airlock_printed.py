"""Counts and model sizes in printed output: pandas, R, tibble, skimr, Stata, SAS and statsmodels prints, in text
logs, Markdown code blocks, HTML tables and `<pre>` blocks and notebook outputs. Each family has a version with a
small count (block), a clean version (pass) and, where the layout allows one, an evasion."""

from __future__ import annotations

import pytest

from output_checks.checks.base import Context
from output_checks.checks.printed import code_blocks, html_tables, text_findings
from output_checks.checks.printed.layout import cut, numbered, spans
from output_checks.policy import load_policy
from output_checks.verdicts import Verdict

pytestmark = pytest.mark.unit


def _ctx(**policy) -> Context:
    base = load_policy()
    checks = [c for c in base.checks if c not in ("identifiers", "known_identifiers")]
    return Context(base.model_copy(update={"checks": checks, **policy}), lambda: None)


def judge(text: str, kind: str = "text", **policy) -> tuple[Verdict, str]:
    found = list(text_findings(text, kind, _ctx(**policy)))
    report = "\n".join(f"{f.verdict}: {f.message} [{f.location}]" for f in found)
    return Verdict.worst(f.verdict for f in found), report


# --- pandas -----------------------------------------------------------------------------------------------------

CROSSTAB = """\
sex          F       M      All
outcome     no yes  no yes
region
North East  24  23  29  21   97
South       31  19  20  24   94
West        27  27  34  21  109
All         82  69  83  66  300
"""

DESCRIBE = """\
                count       mean        std   min    25%   50%    75%   max
region     sex
North East F     47.0  54.319149  20.122566  24.0  38.00  52.0  74.00  89.0
           M     50.0  51.580000  18.605562  21.0  38.50  50.0  66.25  89.0
South      F     50.0  58.300000  20.539906  20.0  40.25  60.0  78.50  89.0
           M     44.0  51.636364  18.343101  22.0  36.75  48.0  65.00  87.0
"""

SERIES_DESCRIBE = """\
count    300.000000
mean      54.966667
std       19.760241
min       20.000000
25%       39.000000
50%       55.000000
75%       72.000000
max       89.000000
Name: age, dtype: float64
"""

VALUE_COUNTS = """\
sex  outcome
M    no         83
F    no         82
     yes        69
M    yes        66
Name: count, dtype: int64
"""


def fenced(body: str, lang: str = "") -> str:
    return f"# Results\n\nThe cross-tabulation below was produced in the TRE.\n\n```{lang}\n{body}```\n\nEnd.\n"


def test_pandas_crosstab_in_a_code_block():
    assert judge(fenced(CROSSTAB), "markdown")[0] is Verdict.PASS
    small = CROSSTAB.replace("South       31  19  20  24", "South       31  19  20   4")
    verdict, report = judge(fenced(small), "markdown")
    assert verdict is Verdict.BLOCK and "lines 6-12 (row 1 is line 9)" in report and "row 2" in report, report


def test_pandas_crosstab_in_an_indented_code_block_and_knitr_marks():
    small = CROSSTAB.replace("West        27  27  34", "West         3  27  34")
    indented = "# Tables\n\nSee below.\n\n" + "".join("    " + line + "\n" for line in small.splitlines()) + "\nEnd.\n"
    verdict, report = judge(indented, "markdown")
    assert verdict is Verdict.BLOCK and "row 1 is line 8" in report and "row 3" in report, report
    knitr = "```\n" + "".join("## " + line + "\n" for line in small.splitlines()) + "```\n"
    assert judge(knitr, "markdown")[0] is Verdict.BLOCK


def test_prose_outside_code_blocks_is_not_read_as_a_printed_table():
    text = "# Methods\n\nWe used R 4.3.1 (2023) and pandas 2.1.\n\n    pip install pandas==2.1.4\n\nSee table 2.\n"
    assert judge(text, "markdown")[0] is Verdict.PASS


def test_pandas_describe_count():
    assert judge(DESCRIBE)[0] is Verdict.PASS
    assert judge(SERIES_DESCRIBE)[0] is Verdict.PASS
    small = DESCRIBE.replace("M     44.0  51.636364", "M      6.0  51.636364")
    verdict, report = judge(small)
    assert verdict is Verdict.BLOCK and "line 6" in report and "count" in report, report
    small_series = SERIES_DESCRIBE.replace("count    300.000000", "count      7.000000")
    assert judge(small_series)[0] is Verdict.BLOCK


def test_pandas_value_counts_series():
    assert judge(VALUE_COUNTS)[0] is Verdict.PASS
    assert judge(VALUE_COUNTS.replace("yes        69", "yes         9"))[0] is Verdict.BLOCK


def test_means_table_with_row_numbers_and_its_counts():
    text = "   site    n  mean_ldl\n0     A  120      3.10\n1     B   98      3.31\n2     C  143      2.90\n"
    assert judge(text)[0] is Verdict.PASS  # the row numbers are not counts
    verdict, report = judge(text.replace("B   98", "B    8"))
    assert verdict is Verdict.BLOCK and "line 3, column 'n'" in report, report


# --- R ----------------------------------------------------------------------------------------------------------

R_LOG = """\
> table(cohort$sex)

Female   Male
   151    149
> table(cohort$region, cohort$outcome)

              no yes
  North East 53  44
  South      51  43
  West       61  48
> summary(cohort$smoker)
 current   former    never
      64       98      138
> t.test(ldl ~ sex, data = cohort)

	Welch Two Sample t-test

data:  ldl by sex
t = -1.2034, df = 296.4, p-value = 0.2298
95 percent confidence interval:
 -0.31  0.07
sample estimates:
mean in group Female   mean in group Male
            3.101          3.222
"""


def test_clean_r_log_passes():
    verdict, report = judge(R_LOG)
    assert verdict is Verdict.PASS, report
    padded = "\n".join(line + " " for line in R_LOG.splitlines())  # R pads names and counts with a space
    assert judge(padded)[0] is Verdict.PASS
    assert judge(padded.replace("   151    149", "   151      4"))[0] is Verdict.BLOCK


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("   151    149", "   151      4", "line 4"),
        ("  West       61  48", "  West        2  48", "(row 1 is line 8), column 'no', row 3"),
        ("      64       98      138", "       6       98      138", "line 13"),
    ],
    ids=["one-way", "two-way", "summary-factor"],
)
def test_r_tables_with_small_counts_block(old, new, where):
    verdict, report = judge(R_LOG.replace(old, new))
    assert verdict is Verdict.BLOCK and where in report, report


R_SUMMARY_DF = """\
      age             sex          ldl
 Min.   :20.00   Female:151   Min.   :1.20
 1st Qu.:39.00   Male  :149   1st Qu.:2.61
 Median :55.00                Median :3.15
 Mean   :54.97                Mean   :3.16
 3rd Qu.:72.00                3rd Qu.:3.70
 Max.   :89.00                Max.   :5.90
"""


def test_r_summary_of_a_data_frame():
    assert judge(R_SUMMARY_DF)[0] is Verdict.PASS
    assert judge(R_SUMMARY_DF.replace("Male  :149", "Male  :  3"))[0] is Verdict.BLOCK
    missing = R_SUMMARY_DF.replace("Max.   :5.90", "Max.   :5.90  \n                              NA's   :3     ")
    assert judge(missing)[0] is Verdict.REVIEW


TIBBLE = """\
# A tibble: 4 × 4
  region     sex       n mean_ldl
  <chr>      <chr> <int>    <dbl>
1 North East F        47     3.12
2 North East M        50     3.20
3 South      F        50     3.09
4 South      M        44     3.25
"""


def test_tibble_counts():
    assert judge(TIBBLE)[0] is Verdict.PASS
    verdict, report = judge(TIBBLE.replace("M        44", "M         4"))
    assert verdict is Verdict.BLOCK and "line 7" in report, report


R_DATA_FRAME = """\
      region sex   n  pct
1 North East   F  47 15.7
2 North East   M  50 16.7
3      South   F  50 16.7
4      South   M  44 14.7
"""


def test_r_data_frame_print():
    assert judge(R_DATA_FRAME)[0] is Verdict.PASS
    assert judge(R_DATA_FRAME.replace("F  50 16.7", "F   5 16.7"))[0] is Verdict.BLOCK


SKIM = """\
── Data Summary ────────────────────────
                           Values
Name                       cohort
Number of rows             300
Number of columns          3

── Variable type: factor ───────────────────────────────────────────────────────
  skim_variable n_missing complete_rate ordered n_unique top_counts
1 sex                   0             1 FALSE          2 Fem: 151, Mal: 149
2 smoker                0             1 FALSE          3 nev: 138, for: 98

── Variable type: numeric ──────────────────────────────────────────────────────
  skim_variable n_missing complete_rate  mean    sd    p0   p25   p50   p75  p100 hist
1 age                   0         1     55.0  19.8  20    39    55    72    89   ▃▇▇▇▇
2 ldl                  12         0.96   3.16  0.8   1.2   2.61  3.15  3.7   5.9 ▂▅▇▅▁
"""


def test_skim_output():
    verdict, report = judge(SKIM)
    assert verdict is Verdict.PASS, report
    verdict, report = judge(SKIM.replace("Mal: 149", "Mal:   4"))
    assert verdict is Verdict.BLOCK and "line 9" in report, report
    assert judge(SKIM.replace("ldl                  12", "ldl                   3"))[0] is Verdict.REVIEW


# --- Stata ------------------------------------------------------------------------------------------------------

STATA_LOG = """\
. tabulate sex

        sex |      Freq.     Percent        Cum.
------------+-----------------------------------
     female |        151       50.33       50.33
       male |        149       49.67      100.00
------------+-----------------------------------
      Total |        300      100.00

. tabulate sex outcome

           |        outcome
       sex |         0          1 |     Total
-----------+----------------------+----------
    female |        84         67 |       151
      male |        80         69 |       149
-----------+----------------------+----------
     Total |       164        136 |       300

. summarize age ldl

    Variable |        Obs        Mean    Std. dev.       Min        Max
-------------+---------------------------------------------------------
         age |        300    54.96667    19.76024         20         89
         ldl |        288     3.16112    .8012345        1.2        5.9

. regress ldl age i.sex

      Source |       SS           df       MS      Number of obs   =       288
-------------+----------------------------------   F(2, 285)       =      4.56
       Model |  5.7912345         2  2.89561725   Prob > F        =    0.0112
    Residual |  180.98765       285  .635044386   R-squared       =    0.0310
-------------+----------------------------------   Adj R-squared   =    0.0242
       Total |  186.77888       287  .650797491   Root MSE        =    .79689

------------------------------------------------------------------------------
         ldl | Coefficient  Std. err.      t    P>|t|     [95% conf. interval]
-------------+----------------------------------------------------------------
         age |   .0061234   .0023456     2.61   0.009     .0015066    .0107402
             |
         sex |
       male  |   .1203456   .0941234     1.28   0.202    -.0649201    .3056113
       _cons |   2.7932345   .1412345    19.78   0.000     2.515241    3.071228
------------------------------------------------------------------------------
"""


def test_clean_stata_log_passes():
    verdict, report = judge(STATA_LOG)
    assert verdict is Verdict.PASS, report


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ("       male |        149       49.67", "       male |          8       49.67", 6, "tabulate"),
        ("      male |        80         69 |", "      male |        80          3 |", 16, "two-way"),
        ("         ldl |        288     3.16112", "         ldl |          6     3.16112", 25, "summarize"),
    ],
    ids=["tabulate", "two-way", "summarize"],
)
def test_stata_tables_with_small_counts_block(old, new, line, words):
    verdict, report = judge(STATA_LOG.replace(old, new))
    assert verdict is Verdict.BLOCK and f"line {line}" in report and words in report, report


def test_stata_regression_on_few_observations_blocks():
    small = STATA_LOG.replace("Number of obs   =       288", "Number of obs   =         8").replace(
        "F(2, 285)", "F(2, 5)  "
    )
    verdict, report = judge(small)
    assert verdict is Verdict.BLOCK and "fewer than 10 observations" in report and "residual degrees" in report


# --- SAS --------------------------------------------------------------------------------------------------------

SAS_FREQ = """\
                                   The SAS System         10:41 Monday, March 4, 2024   1

                                 The FREQ Procedure

                                                  Cumulative    Cumulative
                   smoker    Frequency     Percent     Frequency      Percent
                   ------------------------------------------------------------
                   current         64       21.33            64        21.33
                   former          98       32.67           162        54.00
                   never          138       46.00           300       100.00
"""

SAS_MEANS = """\
                                 The MEANS Procedure

                               Analysis Variable : ldl

                 N
   sex         Obs     N            Mean         Std Dev         Minimum         Maximum
   ---------------------------------------------------------------------------------------
   Female      151   147       3.1012345       0.8123456       1.2000000       5.9000000

   Male        149   141       3.2212345       0.7912345       1.4000000       5.7000000
   ---------------------------------------------------------------------------------------
"""

SAS_CROSSTAB = """\
                             Table of sex by outcome

                      sex       outcome

                      Frequency|
                      Percent  |
                      Row Pct  |
                      Col Pct  |no      |yes     |  Total
                      ---------+--------+--------+
                      Female   |     84 |     67 |    151
                               |  28.00 |  22.33 |  50.33
                               |  55.63 |  44.37 |
                               |  51.22 |  49.26 |
                      ---------+--------+--------+
                      Male     |     80 |     69 |    149
                               |  26.67 |  23.00 |  49.67
                               |  53.69 |  46.31 |
                               |  48.78 |  50.74 |
                      ---------+--------+--------+
                      Total         164      136      300
                                  54.67    45.33   100.00
"""


def test_sas_listings():
    for listing in (SAS_FREQ, SAS_MEANS, SAS_CROSSTAB):
        verdict, report = judge(listing)
        assert verdict is Verdict.PASS, report
    verdict, report = judge(SAS_FREQ.replace("current         64", "current          4"))
    assert verdict is Verdict.BLOCK and "line 8" in report and "Frequency" in report, report
    verdict, report = judge(SAS_MEANS.replace("Male        149   141", "Male          9     7"))
    assert verdict is Verdict.BLOCK and "line 10" in report, report
    verdict, report = judge(SAS_CROSSTAB.replace("Male     |     80 |     69", "Male     |     80 |      6"))
    assert verdict is Verdict.BLOCK and "line 15" in report, report


# --- regression summaries ---------------------------------------------------------------------------------------

STATSMODELS = """\
                            OLS Regression Results
==============================================================================
Dep. Variable:                    ldl   R-squared:                       0.031
Model:                            OLS   Adj. R-squared:                  0.024
Method:                 Least Squares   F-statistic:                     4.563
Date:                Mon, 04 Mar 2024   Prob (F-statistic):             0.0112
Time:                        10:41:07   Log-Likelihood:                -341.21
No. Observations:                 288   AIC:                             688.4
Df Residuals:                     285   BIC:                             699.4
Df Model:                           2
Covariance Type:            nonrobust
==============================================================================
                 coef    std err          t      P>|t|      [0.025      0.975]
------------------------------------------------------------------------------
const          2.7932      0.141     19.777      0.000       2.515       3.071
age            0.0061      0.002      2.611      0.009       0.002       0.011
==============================================================================
"""

R_LM = """\
Call:
lm(formula = ldl ~ age + sex, data = cohort)

Residuals:
     Min       1Q   Median       3Q      Max
-1.95012 -0.53210  0.00123  0.54012  2.71234

Coefficients:
             Estimate Std. Error t value Pr(>|t|)
(Intercept) 2.793234   0.141234  19.777   <2e-16 ***
age         0.006123   0.002346   2.611   0.0095 **
sexMale     0.120346   0.094123   1.279   0.2021
---
Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1

Residual standard error: 0.7969 on 285 degrees of freedom
  (12 observations deleted due to missingness)
Multiple R-squared:  0.03099,	Adjusted R-squared:  0.02419
F-statistic: 4.557 on 2 and 285 DF,  p-value: 0.01124
"""

R_GLM_TAIL = """\
(Dispersion parameter for binomial family taken to be 1)

    Null deviance: 412.35  on 299  degrees of freedom
Residual deviance: 398.12  on 297  degrees of freedom
AIC: 404.12
"""


def test_clean_model_summaries_pass():
    for text in (STATSMODELS, R_LM, R_GLM_TAIL):
        verdict, report = judge(text)
        assert verdict is Verdict.PASS, report


def test_models_on_few_observations_block():
    small = STATSMODELS.replace("Observations:                 288", "Observations:                   8")
    verdict, report = judge(small.replace("Residuals:                     285", "Residuals:                       5"))
    assert verdict is Verdict.BLOCK and "line 8" in report and "line 9" in report, report
    verdict, report = judge(R_LM.replace("on 285 degrees", "on 6 degrees").replace("2 and 285 DF", "2 and 6 DF"))
    assert verdict is Verdict.BLOCK and "line 16" in report and "line 19" in report, report
    verdict, report = judge(R_GLM_TAIL.replace("on 299", "on 7").replace("on 297", "on 5"))
    assert verdict is Verdict.BLOCK and "fewer than 10 observations" in report, report
    verdict, _ = judge(R_LM.replace("(12 observations", "(3 observations"))
    assert verdict is Verdict.REVIEW


def test_model_summary_quoted_in_markdown_prose_is_read():
    text = "# Model\n\nResidual standard error: 0.41 on 4 degrees of freedom.\n"
    assert judge(text, "markdown")[0] is Verdict.BLOCK


# --- HTML -------------------------------------------------------------------------------------------------------

TO_HTML = """<table border="1" class="dataframe">
  <thead>
    <tr><th>sex</th><th colspan="2" halign="left">F</th><th colspan="2" halign="left">M</th><th>All</th></tr>
    <tr><th>outcome</th><th>no</th><th>yes</th><th>no</th><th>yes</th><th></th></tr>
    <tr><th>region</th><th></th><th></th><th></th><th></th><th></th></tr>
  </thead>
  <tbody>
    <tr><th>North East</th><td>24</td><td>23</td><td>29</td><td>21</td><td>97</td></tr>
    <tr><th>South</th><td>31</td><td>19</td><td>20</td><td>24</td><td>94</td></tr>
    <tr><th>All</th><td>55</td><td>42</td><td>49</td><td>45</td><td>191</td></tr>
  </tbody>
</table>"""

ROWSPAN = """<table><thead><tr><th rowspan="2">region</th><th rowspan="2">sex</th><th colspan="2">outcome</th></tr>
<tr><th>no</th><th>yes</th></tr></thead>
<tbody><tr><td rowspan="2">North</td><td>F</td><td>24</td><td>23</td></tr><tr><td>M</td><td>29</td><td>21</td></tr>
</tbody></table>"""


def test_html_tables_flatten_headers_and_spans():
    (table,) = html_tables(TO_HTML).tables
    assert table[0] == ["sex outcome region", "F no", "F yes", "M no", "M yes", "All"]
    assert table[2] == ["South", "31", "19", "20", "24", "94"]
    (spanned,) = html_tables(ROWSPAN).tables
    assert spanned[0] == ["region", "sex", "outcome no", "outcome yes"]
    assert spanned[2] == ["North", "M", "29", "21"]


def test_html_pre_blocks_are_collected():
    found = html_tables("<html><body><pre><code>" + CROSSTAB + "</code></pre></body></html>")
    assert found.pre and "North East" in found.pre[0]


# --- layout -----------------------------------------------------------------------------------------------------


def test_columns_come_from_alignment_not_single_spaces():
    lines = ["North East  24  23", "South       31  19", "West        27  27"]
    columns = spans(lines)
    cells = [cut(line, columns) for line in lines]
    assert cells == [["North East", "24", "23"], ["South", "31", "19"], ["West", "27", "27"]]


def test_code_blocks_keep_line_numbers():
    text = "# T\n\n```\na  1\nb  2\n```\n\n    c  3\n"
    assert [(ln.number, ln.text) for ln in code_blocks(text) if ln.text] == [(4, "a  1"), (5, "b  2"), (8, "c  3")]
    assert numbered("x\ny", first=3)[1].number == 4


def test_rounding_base_protects_printed_counts():
    rounded = STATA_LOG.replace("       male |        149       49.67", "       male |          5       49.67")
    assert judge(rounded)[0] is Verdict.BLOCK
