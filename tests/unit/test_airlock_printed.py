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


@pytest.mark.parametrize(
    "table",
    [
        "> xtabs(~ sex + outcome, data = cohort)\n        outcome\nsex       no yes\n"
        "  Female  84  67\n  Male    80  69\n",
        "> table(cohort$sex, cohort$outcome)\n        \n           0   1\n  Female  84  67\n  Male    80  69\n",
    ],
    ids=["named-dimnames", "numeric-levels"],
)
def test_r_two_way_tables(table):
    assert judge(table)[0] is Verdict.PASS
    verdict, report = judge(table.replace("80  69", "80   6"))
    assert verdict is Verdict.BLOCK and ("line 5, column 'yes'" in report or "column '1', row 2" in report), report


def test_r_table_with_numbers_out_of_alignment():
    # knitr output re-typed by hand: the counts no longer sit under their levels
    table = "          site\n lpa_band    BHC  LGI  RBH\n  <75     264  283  253\n  75-199    95   78   87\n"
    assert judge(fenced(table), "markdown")[0] is Verdict.PASS
    verdict, report = judge(fenced(table + "  200+        6    2    9\n"), "markdown")
    assert verdict is Verdict.BLOCK and "line 10, column 'site BHC'" in report, report


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


def test_r_summary_of_a_numeric_vector_is_statistics():
    text = (
        "   Min. 1st Qu.  Median    Mean 3rd Qu.    Max.    NA's\n"
        "   1.20    2.61    3.15    3.16    3.70    5.90      12\n"
    )
    assert judge(text)[0] is Verdict.PASS
    assert judge(text.replace("     12", "      3"))[0] is Verdict.REVIEW  # three values missing: a reviewer's call


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


KABLE_SIMPLE = """\
Characteristic   N = 300
---------------  -----------
Age (years)      55 (39, 72)
Sex
  Female         151 (50%)
  Male           149 (50%)
LDL (mmol/L)     3.2 (0.8)
"""


def test_gtsummary_table_printed_by_kable():
    verdict, report = judge(fenced(KABLE_SIMPLE), "markdown")
    assert verdict is Verdict.PASS, report
    verdict, report = judge(fenced(KABLE_SIMPLE.replace("149 (50%)", "  4 (1.3%)")), "markdown")
    assert verdict is Verdict.BLOCK and "line 11" in report, report


def test_raw_html_table_in_markdown():
    text = "# Table 2\n\n" + TO_HTML + "\n\nCounts below 10 are suppressed.\n"
    assert judge(text, "markdown")[0] is Verdict.PASS
    assert judge(text.replace("<td>24</td>", "<td>2</td>"), "markdown")[0] is Verdict.BLOCK


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


STATA_CODEBOOK = """\
-------------------------------------------------------------------------------
sex                                                                         Sex
-------------------------------------------------------------------------------

                  Type: Numeric (byte)
                 Label: sexlbl

                 Range: [1,2]                         Units: 1
         Unique values: 2                         Missing .: 0/300

            Tabulation: Freq.   Numeric  Label
                          151         1  Female
                          149         2  Male
"""


def test_stata_codebook_tabulation():
    assert judge(STATA_CODEBOOK)[0] is Verdict.PASS
    verdict, report = judge(STATA_CODEBOOK.replace("149         2", "  4         2"))
    assert verdict is Verdict.BLOCK and "line 13, column 'Freq.'" in report, report


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
    missing = SAS_FREQ + "\n                              Frequency Missing = 3\n"
    assert judge(missing)[0] is Verdict.REVIEW
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


# --- whole clean logs (look-alikes full of numbers that are not counts) ------------------------------------------

R_SESSION = """\
R version 4.3.1 (2023-06-16) -- "Beagle Scouts"
Copyright (C) 2023 The R Foundation for Statistical Computing
Platform: x86_64-pc-linux-gnu (64-bit)

> library(survival)
> dim(cohort)
[1] 1204   12
> str(cohort)
'data.frame':\t1204 obs. of  12 variables:
 $ age   : int  54 61 47 70 66 58 49 72 63 55 ...
 $ sex   : Factor w/ 2 levels "Female","Male": 1 2 2 1 1 2 1 2 2 1 ...
> quantile(cohort$age)
  0%  25%  50%  75% 100%
  20   39   55   72   89
> summary(cohort$age)
   Min. 1st Qu.  Median    Mean 3rd Qu.    Max.
  20.00   39.00   55.00   54.97   72.00   89.00
> chisq.test(table(cohort$sex, cohort$smoker))

\tPearson's Chi-squared test

data:  table(cohort$sex, cohort$smoker)
X-squared = 2.1345, df = 2, p-value = 0.3439

> anova(fit0, fit1)
Analysis of Variance Table

Model 1: ldl ~ age
Model 2: ldl ~ age + sex
  Res.Df    RSS Df Sum of Sq      F Pr(>F)
1   1190 752.31
2   1189 751.28  1    1.0312 1.6319 0.2017
> fit <- survfit(Surv(time, status) ~ group, data = cohort)
> fit
Call: survfit(formula = Surv(time, status) ~ group, data = cohort)

          n events median 0.95LCL 0.95UCL
group=A 602    145   2310    2105      NA
group=B 602    171   2011    1870    2290
> summary(coxph(Surv(time, status) ~ group + age, data = cohort))
Call:
coxph(formula = Surv(time, status) ~ group + age, data = cohort)

  n= 1204, number of events= 316

           coef exp(coef) se(coef)     z Pr(>|z|)
groupB 0.185123  1.203365 0.112345 1.648   0.0994 .
age    0.031234  1.031727 0.004123 7.575 3.59e-14 ***

       exp(coef) exp(-coef) lower .95 upper .95
groupB     1.203     0.8310    0.9655     1.500
age        1.032     0.9693    1.0234     1.040

Concordance= 0.641  (se = 0.016 )
Likelihood ratio test= 61.2  on 2 df,   p=5e-14
> cor(cohort[, c("age", "ldl", "bmi")])
          age        ldl        bmi
age 1.0000000 0.10123456 0.05123456
ldl 0.1012346 1.00000000 0.21234567
bmi 0.0512346 0.21234567 1.00000000
> sessionInfo()
R version 4.3.1 (2023-06-16)
Platform: x86_64-pc-linux-gnu (64-bit)
Running under: Ubuntu 22.04.3 LTS

attached base packages:
[1] stats     graphics  grDevices utils     datasets  methods   base

other attached packages:
[1] survival_3.5-7 dplyr_1.1.3    ggplot2_3.4.4
"""

STATA_SESSION = """\
-------------------------------------------------------------------------------
      name:  <unnamed>
       log:  /project/outputs/analysis.log
  log type:  text
 opened on:   4 Mar 2024, 10:41:07

. use cohort, clear
(Cardiac cohort extract, March 2024)

. describe

Contains data from cohort.dta
 Observations:         1,204                  Cardiac cohort extract
    Variables:            12                  4 Mar 2024 10:40
-------------------------------------------------------------------------------
Variable      Storage   Display    Value
    name         type    format    label      Variable label
-------------------------------------------------------------------------------
age             int     %8.0g                 Age at baseline (years)
sex             byte    %8.0g      sexlbl     Sex
ldl             float   %9.0g                 LDL cholesterol (mmol/L)
-------------------------------------------------------------------------------
Sorted by:

. ttest ldl, by(sex)

Two-sample t test with equal variances
------------------------------------------------------------------------------
   Group |     Obs        Mean    Std. err.   Std. dev.   [95% conf. interval]
---------+--------------------------------------------------------------------
  Female |     602    3.101234    .0321234    .7881234    3.038123    3.164345
    Male |     602    3.222345    .0331234    .8121234    3.157321    3.287369
---------+--------------------------------------------------------------------
Combined |   1,204    3.161789    .0231234    .8012345    3.116432    3.207146
---------+--------------------------------------------------------------------
    diff |           -.1211111    .0461234               -.2116012   -.0306210
------------------------------------------------------------------------------
    diff = mean(Female) - mean(Male)                              t =  -2.6258
H0: diff = 0                                     Degrees of freedom =     1202

. logistic outcome age i.sex

Logistic regression                                     Number of obs =  1,204
                                                        LR chi2(2)    =  61.23
                                                        Prob > chi2   = 0.0000
Log likelihood = -712.34567                             Pseudo R2     = 0.0412

------------------------------------------------------------------------------
     outcome | Odds ratio   Std. err.      z    P>|z|     [95% conf. interval]
-------------+----------------------------------------------------------------
         age |   1.031727   .0042567     7.58   0.000     1.023419    1.040104
             |
         sex |
       Male  |   1.203365   .1351894     1.65   0.099     .9655123    1.499811
       _cons |   .0512345   .0123456   -12.34   0.000     .0319876    .0820567
------------------------------------------------------------------------------

. tab smoker, missing

     smoker |      Freq.     Percent        Cum.
------------+-----------------------------------
    current |        254       21.10       21.10
     former |        398       33.06       54.15
      never |        540       44.85       99.00
          . |         12        1.00      100.00
------------+-----------------------------------
      Total |      1,204      100.00

. log close
      name:  <unnamed>
       log:  /project/outputs/analysis.log
  log type:  text
 closed on:   4 Mar 2024, 10:41:52
-------------------------------------------------------------------------------
"""

PYTHON_SESSION = """\
Python 3.11.7; pandas 2.1.4; numpy 1.26.2; scikit-learn 1.3.2

>>> df.info()
<class 'pandas.core.frame.DataFrame'>
RangeIndex: 1204 entries, 0 to 1203
Data columns (total 4 columns):
 #   Column   Non-Null Count  Dtype
---  ------   --------------  -----
 0   region   1204 non-null   object
 1   sex      1204 non-null   object
 2   age      1204 non-null   int64
 3   ldl      1192 non-null   float64
dtypes: float64(1), int64(1), object(2)
memory usage: 37.8+ KB

>>> print(classification_report(y_test, y_pred))
              precision    recall  f1-score   support

           0       0.92      0.95      0.93       250
           1       0.80      0.71      0.75        48

    accuracy                           0.89       298
   macro avg       0.86      0.83      0.84       298
weighted avg       0.89      0.89      0.89       298

>>> df.groupby("year").ldl.agg(["mean", "median"]).round(2)
      mean  median
year
2019  3.21    3.18
2020  3.15    3.12
2021  3.09    3.05
2022  3.02    2.99

>>> df.pivot_table(index="year", columns="sex", values="id", aggfunc="count")
sex     Female  Male
year
2019       151   149
2020       160   142
2021       148   155
2022       150   149
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [(R_SESSION, Verdict.REVIEW), (STATA_SESSION, Verdict.PASS), (PYTHON_SESSION, Verdict.REVIEW)],
    ids=["R", "Stata", "Python"],
)
def test_clean_sessions_pass_or_ask_only_about_statistics(text, expected):
    # A clean session is never blocked. The R and Python sessions also print means and medians with no N beside
    # them: as in a CSV (the verdict must not depend on the layout), a reviewer confirms their group sizes.
    verdict, report = judge(text)
    assert verdict is expected, report
    lines = [line for line in report.splitlines() if line]
    assert all("number of contributors the file does not show" in line for line in lines), report


@pytest.mark.parametrize(
    ("text", "old", "new", "words"),
    [
        (R_SESSION, "group=B 602    171", "group=B   7      5", "line 39, column 'n'"),
        (R_SESSION, "number of events= 316", "number of events= 6", "fewer than 10 events"),
        (R_SESSION, "1   1190 752.31", "1      4 752.31", "line 31, column 'Res.Df'"),
        (STATA_SESSION, "          . |         12        1.00", "          . |          4        1.00", "line 65"),
        (STATA_SESSION, "    Male |     602    3.222345", "    Male |       8    3.222345", "column 'Obs'"),
        (STATA_SESSION, "Number of obs =  1,204", "Number of obs =      9", "fewer than 10 observations"),
        (PYTHON_SESSION, "0.75        48", "0.75         8", "column 'support'"),
        (PYTHON_SESSION, "2021       148   155", "2021       148     5", "(row 1 is line 37), column 'Male', row 3"),
    ],
    ids=["survfit", "coxph", "anova", "stata-missing", "ttest", "logistic", "sklearn", "pivot"],
)
def test_small_versions_of_clean_sessions_block(text, old, new, words):
    assert old in text
    verdict, report = judge(text.replace(old, new))
    assert verdict is Verdict.BLOCK and words in report, report


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


# --- through the checks engine (sniffing, identifier screening and the table rules included) ---------------------


def _ols_summary_html(n: int) -> str:
    residual = n - 3
    rows = [
        ("Dep. Variable:", "ldl", "R-squared:", "0.031"),
        ("Model:", "OLS", "Adj. R-squared:", "0.024"),
        ("Method:", "Least Squares", "F-statistic:", "4.563"),
        ("No. Observations:", f"{n:>6}", "AIC:", "688.4"),
        ("Df Residuals:", f"{residual:>6}", "BIC:", "699.4"),
        ("Covariance Type:", "nonrobust", "", ""),
    ]
    head = "".join(f"<tr><th>{a}</th><td>{b}</td><th>{c}</th><td>{d}</td></tr>\n" for a, b, c, d in rows)
    coef = (
        "<tr><td></td><th>coef</th><th>std err</th><th>t</th><th>P>|t|</th><th>[0.025</th><th>0.975]</th></tr>\n"
        "<tr><th>const</th><td>2.7932</td><td>0.141</td><td>19.777</td><td>0.000</td><td>2.515</td><td>3.071</td></tr>"
    )
    return (
        "<html><body><h2>Model</h2><table class='simpletable'><caption>OLS Regression Results</caption>\n"
        f"{head}</table>\n<table class='simpletable'>{coef}</table></body></html>\n"
    )


def test_engine_reads_logs_markdown_and_html(tmp_path):
    import html

    from tests.airlock_helpers import check_one, messages, write

    report = check_one(write(tmp_path, "analysis.log", STATA_SESSION))
    assert report.type == "text" and report.verdict is Verdict.PASS, messages(report)
    small = STATA_SESSION.replace("          . |         12", "          . |          4")
    report = check_one(write(tmp_path, "small.log", small))
    assert report.verdict is Verdict.BLOCK and "line 65, column 'Freq.'" in messages(report), messages(report)

    crosstab = CROSSTAB.replace("West        27  27  34", "West         3  27  34")
    report = check_one(write(tmp_path, "report.md", fenced(crosstab, "text")))
    assert report.verdict is Verdict.BLOCK and "row 1 is line 9" in messages(report), messages(report)
    assert check_one(write(tmp_path, "clean.md", fenced(CROSSTAB))).verdict is Verdict.PASS

    page = "<html><body><h1>Table 2</h1>" + TO_HTML.replace("<td>19</td>", "<td>4</td>") + "</body></html>"
    report = check_one(write(tmp_path, "t2.html", page))
    assert report.verdict is Verdict.BLOCK and "column 'F yes'" in messages(report), messages(report)
    assert check_one(write(tmp_path, "t2clean.html", page.replace("<td>4</td>", "<td>19</td>"))).verdict is Verdict.PASS

    printed = html.escape(TIBBLE.replace("M        44", "M         4"))  # R Markdown escapes "<chr>"
    pre = f"<html><body><h1>Output</h1><pre><code>{printed}</code></pre></body></html>"
    report = check_one(write(tmp_path, "rmd.html", pre))
    assert report.verdict is Verdict.BLOCK and "HTML <pre> block 1, line 7" in messages(report), messages(report)


def test_engine_reads_model_summaries_in_html_without_naming_least_squares(tmp_path):
    from tests.airlock_helpers import check_one, messages, write

    clean = check_one(write(tmp_path, "ols.html", _ols_summary_html(288)))
    assert clean.verdict is Verdict.PASS, messages(clean)
    small = check_one(write(tmp_path, "ols8.html", _ols_summary_html(8)))
    assert small.verdict is Verdict.BLOCK and "HTML table 1, row 4" in messages(small), messages(small)
    assert "person" not in messages(small).lower()


def test_engine_reads_notebook_outputs(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    from tests.airlock_helpers import check_one, messages

    def notebook(*cells):
        path = tmp_path / "analysis.ipynb"
        nbformat.write(new_notebook(cells=list(cells)), path)
        return check_one(path)

    stream = new_code_cell("table(x)", outputs=[new_output("stream", name="stdout", text=R_LOG)])
    summary = new_code_cell(
        "fit.summary()",
        outputs=[
            new_output(
                "execute_result",
                {"text/plain": STATSMODELS, "text/html": _ols_summary_html(288)},
                execution_count=1,
            )
        ],
    )
    note = new_markdown_cell("Counts below 10 are suppressed.\n\n```\n" + CROSSTAB + "```\n")
    report = notebook(stream, summary, note)
    assert report.verdict is Verdict.PASS, messages(report)
    small = new_code_cell(
        "table(x)", outputs=[new_output("stream", name="stdout", text=R_LOG.replace("   151    149", "   151      4"))]
    )
    report = notebook(small, summary, note)
    assert report.verdict is Verdict.BLOCK and "cell 1 (code) output 1 (stdout), line 4" in messages(report)
    hidden = new_markdown_cell("```\n" + CROSSTAB.replace("West        27", "West         2") + "```\n")
    report = notebook(stream, hidden)
    assert report.verdict is Verdict.BLOCK and "cell 2 (markdown) source" in messages(report), messages(report)
