"""The words statistical packages print over their columns and rows: which name counts, which name counts of
missing values, which name statistics that are not counts. Data, not logic: the parsers look words up here."""

from __future__ import annotations

import re

# A column printed under one of these holds counts of people or records (after lower-casing and dropping
# punctuation other than "_"): Stata's Freq./Obs, SAS's Frequency/N/N Obs, pandas' count/size, R's n.
COUNT_HEADERS = frozenset({
    "n", "count", "counts", "freq", "frequency", "obs", "n obs", "nobs", "n_obs", "size", "number",
    "events", "cases", "deaths", "patients", "subjects", "participants", "persons", "people", "individuals",
    "num", "support", "n_patients", "n_people", "n_events", "n_cases", "n_deaths", "n_subjects", "count_n",
})  # fmt: skip
MISSING_HEADERS = frozenset({"n_missing", "missing", "nmiss", "n miss", "na's", "n_miss", "na", "missing n"})
# Words over a column of statistics that are not counts (a means table, a coefficient table, an ANOVA).
STAT_WORDS = frozenset({
    "mean", "std", "sd", "dev", "std.", "dev.", "min", "max", "minimum", "maximum", "median", "coef", "coef.",
    "err", "err.", "interval", "conf", "conf.", "ss", "df", "ms", "sum", "variance", "var", "percentiles", "z",
    "t", "p>|t|", "p>|z|", "ratio", "estimate", "se", "beta", "iqr", "p25", "p50", "p75", "skewness", "kurtosis",
    "weight", "cum.", "cumulative", "percent", "pct", "%",
})  # fmt: skip
# pandas describe() rows; "count" and "freq" are counts (freq: how many share the top value).
DESCRIBE_ROWS = frozenset({"count", "mean", "std", "min", "25%", "50%", "75%", "max", "unique", "top", "freq"})
DESCRIBE_COUNT_ROWS = frozenset({"count", "freq"})
# R's summary() of a numeric vector or data frame column: these labels are statistics, not levels of a factor.
R_SUMMARY_STATS = frozenset({"min.", "1st qu.", "median", "mean", "3rd qu.", "max.", "length", "class", "mode"})
R_SUMMARY_MISSING = frozenset({"na's"})
QUANTILE_LABEL = re.compile(r"^(\d+(\.\d+)?%|min\.?|max\.?|mean|median|sd|\d(st|nd|rd|th) qu\.?|q[1-4])$", re.I)


def header_key(label: str) -> str:
    """A printed header reduced for lookups: lower case, punctuation other than "_" and "'" dropped."""
    return " ".join(re.sub(r"[^a-z0-9_' ]+", " ", label.lower()).split())


def is_count_header(label: str) -> bool:
    key = header_key(label)
    return key in COUNT_HEADERS or bool(re.fullmatch(r"n\s*=?\s*[\d,]*", key))


def is_missing_header(label: str) -> bool:
    return header_key(label) in MISSING_HEADERS or label.strip().lower() in MISSING_HEADERS


def has_stat_words(labels: list[str]) -> bool:
    return any(w in STAT_WORDS for label in labels for w in label.lower().split())


# Column headers of a printed model's coefficients or residual quantiles (R, statsmodels, Stata, SAS).
MODEL_HEADER_WORDS = frozenset({
    "estimate", "std. error", "t value", "z value", "pr(>|t|)", "pr(>|z|)", "coef", "std err", "p>|t|", "p>|z|",
    "[0.025", "0.975]", "1q", "3q", "coefficient", "std. err.", "exp(coef)", "se(coef)", "odds ratio",
    "parameter estimate", "standard error", "pr > |t|", "hazard ratio", "df", "sum sq", "mean sq", "f value",
    "pr(>f)", "deviance", "resid. df", "resid. dev", "lower .95", "upper .95", "2.5 %", "97.5 %",
})  # fmt: skip


def is_model_table(labels: list[str]) -> bool:
    text = " ".join(label.lower() for label in labels)
    return sum(word in text for word in MODEL_HEADER_WORDS) >= 2 or ("min" in text and "1q" in text)


# What a model summary prints after its fixed keys: statsmodels' estimation method, model and covariance names,
# R's and Stata's method lines. Identifier screening must not read these as names ("Least Squares"); only these
# exact values after their key are hidden from it, so anything else written there is still screened.
SUMMARY_VALUES = {
    "Method": ["Least Squares", "MLE", "IRLS", "REML", "ML", "Maximum Likelihood", "Newton-Raphson", "newton",
               "bfgs", "lbfgs", "nm", "Quantile Regression", "Robust Regression"],
    "Model": ["OLS", "WLS", "GLS", "GLSAR", "GLM", "Logit", "Probit", "MNLogit", "Poisson", "NegativeBinomial",
              "MixedLM", "QuantReg", "RLM", "PHReg", "ARIMA", "SARIMAX", "Least Squares"],
    "Model Family": ["Binomial", "Gaussian", "Poisson", "Gamma", "NegativeBinomial", "InverseGaussian", "Tweedie"],
    "Link Function": ["Logit", "Log", "Identity", "Probit", "CLogLog", "InversePower", "inverse_power", "log",
                      "identity", "logit", "Inverse Squared", "Power", "cloglog"],
    "Covariance Type": ["nonrobust", "HC0", "HC1", "HC2", "HC3", "HAC", "cluster", "robust", "opg", "approx"],
    "Scale Est.": ["HuberScale", "mad"],
    "Norm": ["HuberT", "TukeyBiweight", "Hampel", "AndrewWave", "LeastSquares", "RamsayE", "TrimmedMean"],
    "Cov Type": ["H1", "H2", "H3"],
}  # fmt: skip
