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
