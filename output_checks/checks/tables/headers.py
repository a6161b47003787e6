"""The vocabulary of column headers: which words name counts, aggregates, identifiers and quasi-identifiers, and
how a header is reduced to words or a key for those lookups."""

from __future__ import annotations

import re

COUNT_WORDS = {"n", "count", "counts", "freq", "frequency", "number", "num", "patients", "cases", "events", "deaths",
               "admissions", "participants", "people", "persons", "individuals", "subjects", "records", "total",
               "controls", "carriers", "exposed", "unexposed", "size", "obs", "observations"}  # fmt: skip
NOT_COUNT_WORDS = {"year", "age", "chr", "chrom", "chromosome", "pos", "position", "bp", "start", "end", "id", "code",
                   "rank", "order", "index", "month", "day", "week", "quarter", "decile", "quintile", "band", "group",
                   "version", "zip", "postcode", "beta", "se", "p", "or", "hr", "rr", "mean", "median", "sd", "iqr",
                   "min", "max", "pct", "percent", "rate", "ratio", "estimate", "coef", "lower", "upper",
                   "ci"}  # fmt: skip
AGGREGATE_WORDS = {"mean", "median", "sd", "std", "iqr", "avg", "average", "sum", "rate", "percent", "pct", "prop",
                   "proportion", "prevalence", "incidence", "ci", "lower", "upper", "lci", "uci", "beta", "se", "or",
                   "hr", "rr", "p", "pvalue", "pval", "estimate", "coef", "coefficient", "z", "t", "stat", "q1", "q3",
                   "min", "max", "af", "maf", "freq", "frequency", "total", "auc", "loglik", "aic", "bic"}  # fmt: skip
IDENTIFIER_HEADERS = {
    "nhs": "NHS numbers", "nhs_number": "NHS numbers", "nhsnumber": "NHS numbers", "nhs_no": "NHS numbers",
    "mrn": "hospital numbers", "hospital_number": "hospital numbers", "hospital_no": "hospital numbers",
    "patient_id": "patient ids", "person_id": "person ids", "subject_id": "subject ids", "participant_id":
    "participant ids", "sample_id": "sample ids", "pseudonym": "pseudonyms", "eid": "participant ids",
    "name": "names", "patient_name": "names", "full_name": "names", "surname": "names", "forename": "names",
    "first_name": "names", "last_name": "names", "family_name": "names", "given_name": "names",
    "dob": "dates of birth", "date_of_birth": "dates of birth", "birth_date": "dates of birth", "birthdate":
    "dates of birth", "address": "addresses", "email": "e-mail addresses", "phone": "telephone numbers",
    "telephone": "telephone numbers", "mobile": "telephone numbers", "postcode": "postcodes",
    "post_code": "postcodes",
}  # fmt: skip
QUASI_HEADERS = {"age", "sex", "gender", "ethnicity", "ethnic_group", "race", "year_of_birth", "yob",
                 "postcode_district", "lsoa", "height", "weight", "bmi", "date", "admission_date", "death_date",
                 "diagnosis_date"}  # fmt: skip
TOTAL_LABEL = re.compile(r"^\s*(total|all|overall|sum|grand total)\b", re.IGNORECASE)


def words(header: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", header.lower()) if w]


def header_key(header: str) -> str:
    return "_".join(words(header))


# Integer columns that label rows or measure something other than people: never counts, whatever their values.
LABEL_WORDS = NOT_COUNT_WORDS | {"unnamed", "cluster", "stage", "grade", "level", "category", "class", "type", "wave",
                                 "visit", "cycle", "dose", "strata", "stratum", "score", "chapter", "period", "round",
                                 "tertile", "quartile", "centile", "percentile", "imd", "site", "region", "area",
                                 "ward", "practice", "arm", "cohort", "batch", "line", "mg", "ml", "kg", "cm", "mmhg",
                                 "duration", "los", "length", "weight", "height", "bmi", "value", "result", "per",
                                 "label", "term", "snomed", "icd", "icd10", "read", "ctv3", "opcs", "loinc", "dmd",
                                 "atc", "concept", "seq", "number_id", "chrom", "locus", "hour",
                                 "time"}  # fmt: skip
# Statistics summarising a group's values (ACRO's aggregation functions and what R/Stata/pandas print for them).
STATISTIC_WORDS = {"mean": "mean", "average": "mean", "avg": "mean", "median": "median", "p50": "median",
                   "sd": "sd", "std": "sd", "stdev": "sd", "stddev": "sd", "variance": "sd", "var": "sd",
                   "iqr": "median", "q1": "median", "q3": "median", "p25": "median", "p75": "median",
                   "min": "min", "minimum": "min", "max": "max", "maximum": "max", "range": "min",
                   "sum": "sum", "mode": "mode"}  # fmt: skip
QUANTILE = re.compile(r"^\s*(\d{1,2}(\.\d+)?)\s*%\s*$")  # describe()'s "25%", "50%", "75%" rows
# Words in a column name (or a file's name) that say its numbers are rates or proportions, not group statistics.
RATE_WORDS = {"rate", "rates", "per", "pct", "percent", "percentage", "prop", "proportion", "prevalence",
              "incidence", "risk", "ratio", "odds", "share", "af", "maf", "freq", "frequency", "ci", "lower",
              "upper", "lci", "uci", "p", "pvalue", "pval", "auc", "auroc", "sensitivity", "specificity", "ppv",
              "npv", "accuracy", "f1", "brier", "calibration", "cstat", "c", "r2", "rsquared", "se",
              "sem"}  # fmt: skip
COUNT_LIKE = {"ac", "ac_hom", "ac_het", "nhomalt", "n_cases", "n_controls", "carriers"}


def is_count_name(header: str) -> bool:
    """Named as a count of people ("n", "count", "deaths", "n_cases"), not a statistic about them."""
    key = words(header)
    if not key:
        return False
    if header_key(header) in COUNT_LIKE or header.strip().lower() in ("n", "k", "ac"):
        return True
    return bool(set(key) & COUNT_WORDS) and not set(key) & (set(STATISTIC_WORDS) | RATE_WORDS - {"freq", "frequency"})


def statistic_of(header: str) -> str | None:
    """The group statistic a column (or row) name names, or None: "mean_age" -> mean, "sd" -> sd, "75%" -> median."""
    if QUANTILE.match(header):
        return "median"
    for w in words(header):
        if w in STATISTIC_WORDS:
            return STATISTIC_WORDS[w]
    return None


# Words naming a model's estimates (a coefficient table's columns), not a group's statistics.
ESTIMATE_WORDS = {"coef", "coefficient", "coefficients", "estimate", "estimates", "beta", "b", "or", "hr", "rr",
                  "irr", "exp", "effect", "logor", "loghr", "odds", "hazard", "ratio", "slope", "marginal", "lnor",
                  "loghazard", "ame"}  # fmt: skip
