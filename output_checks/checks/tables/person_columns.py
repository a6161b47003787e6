"""The row-per-person rule's reading of a column: its role (label, code, time, id, per-row measurement, 0/1 flag,
count, statistic, row index, ...), decided from its header's words and its values, and the vocabulary (data) that
decides it. `roles` answers a different question: which column holds the counts the small-count rules judge."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from output_checks.checks.tables.headers import AGGREGATE_WORDS, COUNT_WORDS, NOT_COUNT_WORDS, header_key, words
from output_checks.checks.tables.profile import SMALL_MARKER, TableState

# ---------------------------------------------------------------------------------------------- vocabulary (data)
# Numbers that summarise groups (beyond the header vocabulary's aggregate words): model performance, curves, tests.
STATISTIC_WORDS = AGGREGATE_WORDS | {
    "sensitivity", "specificity", "accuracy", "precision", "recall", "f1", "brier", "npv", "ppv", "auroc", "auprc",
    "roc", "cstat", "cindex", "rmse", "mae", "mse", "r2", "rsq", "loss", "kappa", "variance", "var", "quantile",
    "percentile", "centile", "lcl", "ucl", "est", "effect", "irr", "sir", "smr", "ratio", "density", "cumulative",
    "cum", "surv", "survival", "hazard", "risk", "odds", "prob", "probability", "corr", "correlation", "r", "rho",
    "cov", "tau", "chisq", "chi2", "df", "fstat", "power", "fdr", "qvalue", "logp", "mlog10p", "lod", "h2", "rg",
    "tpr", "fpr", "sd1", "stderr", "std_err", "se1", "expected", "observed", "share", "percentage",
    "per", "average", "weighted", "adjusted", "crude", "standardised", "standardized", "lower95", "upper95", "cil",
    "ciu", "low", "high", "uncertainty", "b", "intercept", "sigma", "lp", "mu", "theta", "alpha", "phi",
    "posterior", "prior", "loading", "shap", "importance", "gain", "bias", "coverage",
    "padj", "lfc", "fc", "change", "logfc", "ave", "expr", "adj", "bonferroni", "qval", "tstat", "zscore",
}  # fmt: skip
# A column so named holds the units the rows describe: a unique one is a key, never a person's id.
GROUP_WORDS = {
    "site", "sites", "region", "practice", "hospital", "trust", "ccg", "icb", "stp", "lsoa", "msoa", "lad", "country",
    "area", "ward", "provider", "centre", "center", "clinic", "board", "district", "county", "state", "nation",
    "cohort", "arm", "stratum", "strata", "cluster", "group", "category", "level", "subgroup",
    "label", "description", "term", "variable", "model", "characteristic", "outcome", "exposure",
    "measure", "metric", "parameter", "covariate", "feature", "predictor", "item", "question", "domain", "type",
    "class", "unit", "condition", "disease", "diagnosis", "drug", "medication", "procedure", "test", "band",
    "stratification", "analysis", "scenario", "setting", "specialty", "organisation", "organization", "dataset",
    "geography", "geo", "ods", "org", "gp", "pcn", "source", "database", "registry",
}  # fmt: skip
CODE_WORDS = {
    "code", "codes", "concept", "conceptid", "snomed", "snomedct", "sctid", "icd", "icd10", "icd9", "read", "readcode",
    "ctv3", "opcs", "opcs4", "loinc", "dmd", "atc", "bnf", "hgnc", "gene", "symbol", "ensembl", "transcript",
    "variant", "snp", "rsid", "rs", "marker", "probe", "cpg", "locus", "allele", "pos", "position", "bp", "chr",
    "chrom", "chromosome", "start", "end",
}  # fmt: skip
TIME_WORDS = {"year", "yr", "month", "week", "wk", "day", "date", "quarter", "period", "season", "fy", "wave",
              "calendar", "epiweek", "isoweek", "weekstart", "week_start", "month_start"}  # fmt: skip
# Rows that are replicates of an analysis (folds, bootstrap draws, bins) are results, not people.
REPLICATE_WORDS = {"fold", "rep", "replicate", "iteration", "iter", "draw", "bootstrap", "boot", "simulation", "sim",
                   "chain", "seed", "run", "split", "permutation", "perm", "epoch", "step", "bin", "decile",
                   "quintile", "quartile", "tertile", "centile", "percentile", "quantile", "lag",
                   "horizon"}  # fmt: skip
COUNT_PREFIXES = {"n", "no", "num", "number", "count", "total"}
DENOMINATOR_WORDS = {"population", "pop", "denominator", "registered", "headcount", "list_size"}
ID_WORDS = {"id", "ids", "iid", "fid", "eid", "pid", "patid", "patient", "person", "subject", "participant",
            "individual", "pseudonym", "record", "mrn", "uid", "uuid", "guid"}  # fmt: skip
INDEX_KEYS = {"", "index", "level_0", "row", "rownames", "row_names", "rowid", "x", "1"}
BINARY_TEXT = {"yes", "no", "y", "n", "true", "false", "t", "f"}
EMPTY = {"", "na", "nan", "none", "null", "nat", "n/a", "."}

MAX_COLUMNS = 200  # structure is judged on the first columns and rows kept in memory: enough to tell
MAX_ROWS = 2000  # groups from people, and the checker runs on every file of every request
MEASURE_MIN_DISTINCT = 8
NUMBERED_UNITS = 100  # "Site 1" ... "Site 36" are units; "Site 1" ... "Site 250" number rows
ONS_GEOGRAPHY = re.compile(r"^[a-z]{2,5}\d{2}(cd|nm)$")  # LSOA11CD, LAD22NM: an area's code or name
CAMEL = re.compile(r"([a-z0-9])([A-Z])")
ID_SHAPE = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9]+([-_/.][A-Za-z0-9]+)*$")
HEX_ID = re.compile(r"^[0-9a-fA-F]{16,}$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-")
NUMERIC_TEXT = re.compile(r"^[-+]?[\d.,]+(e[-+]?\d+)?%?$", re.IGNORECASE)  # "1.2e-05", "12.3%": never an id


@dataclass
class Column:
    name: str
    role: str  # index, constant, binary, count, statistic, code, time, dim, sequence, id, measure, category, label
    distinct: int
    ratio: float
    integer: bool = False
    numbers: pd.Series | None = None


def classify(state: TableState, name: str, column: pd.Series) -> Column | None:
    found = set(_words(name))
    key = header_key(name)
    profile = state.profiles.get(name)
    numbers = pd.to_numeric(column, errors="coerce")  # the fast path: most cells of most columns are plain numbers
    parsed = numbers.notna()
    rest = column[~parsed].astype(str).str.strip()
    percent = 0
    if len(rest):
        markers = state.ctx.policy.suppression_markers
        missing = rest.str.lower().isin(EMPTY) | rest.isin(markers) | rest.str.match(SMALL_MARKER)
        rest = rest[~missing]
        # "1,204" and "12.5%" are numbers too
        cleaned = rest.str.replace(r"(?<=\d),(?=\d{3}(\D|$))", "", regex=True)
        more = pd.to_numeric(cleaned.str.rstrip("%").str.strip(), errors="coerce")
        percent = int((cleaned.str.endswith("%") & more.notna()).sum())
        numbers = pd.concat([numbers[parsed], more]).sort_index()
    else:
        numbers = numbers[parsed]
    filled = len(numbers)
    if not filled:
        return None
    if profile is not None and profile.kind == "count-percent":
        text = column.astype(str).str.strip()
        return Column(name, "count", int(text.nunique()), 1.0, integer=True, numbers=_leading_counts(text))
    if numbers.notna().mean() >= 0.95:
        numbers = numbers.dropna()
        distinct = int(numbers.nunique())
        if distinct == 1:
            return Column(name, "constant", 1, 1 / filled)
        integer = bool((numbers == numbers.round()).all())
        col = Column(name, "measure", distinct, distinct / filled, integer=integer, numbers=numbers)
        col.role = _numeric_role(col, found, key, percent >= 0.5 * filled)
        return col
    text = pd.concat([column[parsed].astype(str).str.strip(), rest]).sort_index()
    distinct = int(text.nunique())
    ratio = distinct / filled
    if distinct == 1:
        return Column(name, "constant", distinct, ratio)
    if found & (STATISTIC_WORDS - COUNT_WORDS):
        return Column(name, "statistic", distinct, ratio)  # "12.3/1000", "0.52 (0.31-0.77)": never an id
    if profile is not None and profile.kind == "date":
        return Column(name, "time" if _calendar(text) else "date", distinct, ratio)
    if distinct == 2 and set(text.str.lower().unique()) <= BINARY_TEXT:
        return Column(name, "binary", distinct, ratio)
    if profile is not None and profile.variants >= 0.5 * profile.filled:
        return Column(name, "code", distinct, ratio)
    numbered = _numbered_rows(text)  # "g1", "g2", ... in order: row numbers, unless a few dozen named units
    if found & (GROUP_WORDS | CODE_WORDS | REPLICATE_WORDS | TIME_WORDS) or ONS_GEOGRAPHY.match(key):
        return Column(name, "index" if numbered and filled > NUMBERED_UNITS else "label", distinct, ratio)
    if numbered:
        return Column(name, "index", distinct, ratio)
    if found & ID_WORDS and (ratio >= 0.5 or distinct >= MEASURE_MIN_DISTINCT):
        return Column(name, "id", distinct, ratio)
    if ratio >= 0.95 and _id_like(text):
        return Column(name, "id", distinct, ratio)
    return Column(name, "category" if ratio < 0.5 else "label", distinct, ratio)


def _numeric_role(col: Column, found: set[str], key: str, percent: bool) -> str:
    values = col.numbers
    assert values is not None
    sequence = col.integer and _sequence(values)
    if (key in INDEX_KEYS or key.startswith("unnamed")) and sequence:
        return "index"  # a pandas or R row index: not an id, not a person signal
    if col.distinct == 2 and col.integer and values.between(0, 9).all():
        return "binary"
    named = _words(col.name)
    counted = bool(named) and named[0] in COUNT_PREFIXES  # "n_risk", "number at risk", "n.event"
    if not counted and (percent or found & (STATISTIC_WORDS - COUNT_WORDS)):
        return "statistic"
    if count_named(col.name):
        return "count" if col.integer else "statistic"
    if found & REPLICATE_WORDS or found & GROUP_WORDS:
        return "dim"
    if found & CODE_WORDS:
        return "code"
    if found & TIME_WORDS or (col.integer and values.between(1900, 2100).all() and "age" not in found):
        return "time"
    if found & ID_WORDS and (col.ratio >= 0.5 or col.distinct >= MEASURE_MIN_DISTINCT):
        return "id"  # a person's number, once per row or repeated over their visits
    if sequence:
        return "sequence"
    if col.distinct >= MEASURE_MIN_DISTINCT:
        return "measure"
    return "category"


def _calendar(text: pd.Series) -> bool:
    """Dates that are a time axis (days, weeks, months, years at a steady step, each as often as the others), not
    the dates of people's events."""
    iso = text.str.match(r"^\d{4}-").mean() >= 0.9
    dates = pd.to_datetime(text, errors="coerce", dayfirst=not iso, format="ISO8601" if iso else "mixed").dropna()
    if dates.nunique() < 3:
        return True
    if dates.value_counts().value_counts(normalize=True).iloc[0] < 0.9:
        return False  # some dates far more often than others: events, not an axis
    steps = pd.Series(sorted(dates.unique())).diff().dropna().dt.days
    middle = steps.median()
    return bool((steps - middle).abs().le(0.15 * middle + 3).mean() >= 0.8)


def _numbered_rows(text: pd.Series) -> bool:
    parts = text.str.extract(r"^(\D*?)[ _-]?(\d+)$")
    if parts[1].isna().any() or parts[0].nunique() != 1:
        return False
    return _sequence(pd.to_numeric(parts[1]))


def _words(header: str) -> list[str]:
    """A header's words, camelCase split too ("log2FoldChange", "baseMean", "lfcSE")."""
    return words(CAMEL.sub(r"\1_\2", header))


def _sequence(values: pd.Series) -> bool:
    """0..n-1 or 1..n in order: row numbers."""
    n = len(values)
    if n < 2:
        return False
    first = values.iloc[0]
    return first in (0, 1) and bool((values.diff().iloc[1:] == 1).all())


def monotone(values: pd.Series | None) -> bool:
    return values is not None and (values.is_monotonic_increasing or values.is_monotonic_decreasing)


def _leading_counts(text: pd.Series) -> pd.Series:
    return pd.to_numeric(text.str.extract(r"^\s*([\d,]+)")[0].str.replace(",", ""), errors="coerce").dropna()


def _id_like(text: pd.Series) -> bool:
    """Identifier-shaped values: letters and digits in one token ("P0012", "S-1023-A") or a long hex string; never a
    number, a rate or an estimate with its interval."""
    sample = text.iloc[:500]
    shaped = (sample.str.match(ID_SHAPE) | sample.str.match(HEX_ID)) & ~sample.str.match(NUMERIC_TEXT)
    return bool(shaped.mean() >= 0.8)


def count_named(header: str) -> bool:
    named = _words(header)
    found = set(named)
    if named and named[0] in COUNT_PREFIXES:  # "n_risk", "number at risk", "n.event"
        return True
    if header_key(header) in ("n", "k"):
        return True
    return bool(found & (COUNT_WORDS | DENOMINATOR_WORDS) and not found & NOT_COUNT_WORDS)
