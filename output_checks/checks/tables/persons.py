"""Is a table individual-level? Markers first (pseudonym-shaped ids, identifier columns: NHS number, MRN, name, date
of birth, full postcode, ...), then structure: columns named like sample ids (or variants) holding genotypes, and
whether the rows describe groups (a label or grid key, real counts, statistics) or people (per-row measurements and
0/1 flags whose categories repeat, no real count, about as many rows as the project's cohort)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from math import prod

import numpy as np
import pandas as pd

from output_checks.checks.base import finding
from output_checks.checks.tables.headers import (
    AGGREGATE_WORDS,
    COUNT_WORDS,
    IDENTIFIER_HEADERS,
    NOT_COUNT_WORDS,
    header_key,
    words,
)
from output_checks.checks.tables.profile import SMALL_MARKER, TableState
from output_checks.verdicts import Finding, Verdict

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
MAX_SAMPLE_COLUMNS = 200
MAX_DIMS = 12  # grouping columns tried as a key, alone and in twos and threes (the first eight in fours)
MEASURE_MIN_DISTINCT = 8
GRID_SLACK = 4  # a key of several grouping columns: at most this many possible combinations per row (a grid)
NUMBERED_UNITS = 100  # "Site 1" ... "Site 36" are units; "Site 1" ... "Site 250" number rows
GENOTYPE_MIN_COLUMNS = 5
SAMPLE_VALUES_MIN_COLUMNS = 20

# Headers shaped like sample ids: a short prefix and digits ("NA12878", "HG00096", "S0001", "sample_12",
# "1001_1001", a 7-digit eid); never a year, a week, a model number or a statistic ("p95", "q1").
SAMPLE_HEADER = re.compile(r"^(?P<prefix>[A-Za-z]{0,12})[-_.]?(?P<digits>\d{1,12})([-_.][A-Za-z0-9]{1,12})?$")
NOT_SAMPLE_PREFIX = {
    "wk", "week", "w", "m", "mo", "month", "q", "qtr", "quarter", "y", "yr", "year", "fy", "cy", "wave", "day", "d",
    "t", "time", "period", "lag", "model", "fold", "rep", "iter", "pc", "dim", "comp", "factor", "cluster", "group",
    "grp", "arm", "decile", "quintile", "percentile", "p", "age", "v", "var", "col", "column", "unnamed", "chr",
    "chrom", "pos", "beta", "se", "or", "hr", "af", "maf", "ac", "an", "n", "count", "total", "x", "level", "band",
    "site", "region", "ward", "h", "hour", "min", "sec", "icd", "f", "visit", "dose", "step", "lot", "batch", "cycle",
    "stage", "grade", "class", "type", "version", "r", "rank", "top", "bottom", "k", "c", "cat", "item",
}  # fmt: skip
ONS_GEOGRAPHY = re.compile(r"^[a-z]{2,5}\d{2}(cd|nm)$")  # LSOA11CD, LAD22NM: an area's code or name
CAMEL = re.compile(r"([a-z0-9])([A-Z])")
SYNTHETIC_HEADER = re.compile(r"^column \d+$")  # the reader's names for a table without a header row
VARIANT_HEADER = re.compile(r"^(rs\d+|(chr)?[0-9XYMT]{1,2}[:_]\d+)([:_.][ACGTN]+)*$", re.IGNORECASE)
GENOTYPE_TEXT = re.compile(r"^([0-9.][/|][0-9.]|[ACGTN-][/|]?[ACGTN-])$", re.IGNORECASE)
ID_SHAPE = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9]+([-_/.][A-Za-z0-9]+)*$")
HEX_ID = re.compile(r"^[0-9a-fA-F]{16,}$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-")
NUMERIC_TEXT = re.compile(r"^[-+]?[\d.,]+(e[-+]?\d+)?%?$", re.IGNORECASE)  # "1.2e-05", "12.3%": never an id


# ------------------------------------------------------------------------------------------- entry and markers
def individual_level(state: TableState) -> Iterator[Finding]:
    """Findings that a table holds individual-level records: markers, per-sample columns, or rows of people."""
    marker = _markers(state)
    if marker is not None:
        yield marker
        return
    if not state.head:
        return
    frame = pd.concat(state.head, ignore_index=True)
    per_sample = _per_sample_columns(state, frame)
    if per_sample is not None:
        yield per_sample
        if per_sample.verdict is Verdict.BLOCK:
            return
    if state.rows < state.ctx.policy.individual_min_rows:
        return
    verdict = _rows_of_people(state, frame)
    if verdict is not None:
        yield verdict


def _markers(state: TableState) -> Finding | None:
    for name, p in state.profiles.items():
        if p.pseudonyms:
            return finding(
                "tables",
                Verdict.BLOCK,
                f"{p.pseudonyms} pseudonym-shaped patient id(s): individual-level data",
                state.where(name),
            )
    for name, p in state.profiles.items():
        if not p.filled or p.kind == "empty":
            continue
        what = IDENTIFIER_HEADERS.get(header_key(name))
        if what is None:
            continue
        if what == "postcodes" and not p.full_postcodes:
            continue  # districts ("LS6") are aggregates
        if what == "names" and p.kind != "text":
            continue
        if what in ("NHS numbers", "hospital numbers") or p.distinct_ratio > 0.5 or p.kind == "date":
            return finding("tables", Verdict.BLOCK, f"a column of {what}: individual-level data", state.where(name))
    return None


# --------------------------------------------------------------------------------------------- per-sample columns
def _per_sample_columns(state: TableState, frame: pd.DataFrame) -> Finding | None:
    """Columns named like sample ids (or variants, one row per sample) holding genotypes: individual-level however
    the rows are keyed. Many sample-named columns of other values (expression, per-sample scores) go to review."""
    first = [str(v).strip() for v in frame.iloc[0]] if len(frame) > 1 else []
    if first and len(set(first)) == len(first) and all(SYNTHETIC_HEADER.match(str(c)) for c in frame.columns):
        # No header was recognised (numeric sample ids look like data): the first row may still be one.
        frame = frame.iloc[1:].set_axis(first, axis=1)
    named = [c for c in frame.columns if _sample_header(str(c)) or VARIANT_HEADER.match(str(c).strip())]
    if len(named) < GENOTYPE_MIN_COLUMNS:
        return None
    examined = named[:MAX_SAMPLE_COLUMNS]
    kinds = _genotype_kinds(frame[examined].iloc[:MAX_ROWS])
    genotype = [str(c) for c, kind in zip(examined, kinds, strict=True) if kind == "genotype"]
    numeric = [str(c) for c, kind in zip(examined, kinds, strict=True) if kind == "numeric"]
    numeric_samples = [c for c in numeric if _sample_header(c)]
    at_least = "at least " if len(named) > len(examined) else ""
    if len(genotype) >= GENOTYPE_MIN_COLUMNS:
        by_sample = sum(1 for c in genotype if _sample_header(c))
        what = "sample ids" if by_sample >= len(genotype) / 2 else "variants (one row per sample)"
        return finding(
            "tables",
            Verdict.BLOCK,
            f"{at_least}{len(genotype)} columns named like {what} hold genotypes (0/1/2 dosages or calls): "
            "individual-level genotype data",
            _column_number(state, frame, genotype[0]),
        )
    if len(numeric_samples) >= SAMPLE_VALUES_MIN_COLUMNS:
        return finding(
            "tables",
            Verdict.REVIEW,
            f"{at_least}{len(numeric_samples)} columns named like sample ids hold numbers: per-sample "
            "(individual-level) values unless the headers are groups",
            _column_number(state, frame, numeric_samples[0]),
        )
    return None


def _column_number(state: TableState, frame: pd.DataFrame, column: str) -> str:
    """Where a sample-named column is, by number: its header is a sample's id and is not repeated."""
    number = [str(c) for c in frame.columns].index(column) + 1
    return ", ".join(p for p in (state.location, f"column {number}") if p)


def _sample_header(header: str) -> bool:
    match = SAMPLE_HEADER.match(header.strip())
    if not match:
        return False
    prefix, digits = match["prefix"].lower(), match["digits"]
    if VARIANT_HEADER.match(header.strip()):
        return False
    if prefix in NOT_SAMPLE_PREFIX and not (len(prefix) == 1 and len(digits) >= 4):
        return False  # weeks, model numbers, percentiles ("p95"); "P0001" is still a sample
    if len(digits) == 1 and len(prefix) < 2:
        return False
    # Bare digits: column numbers and years are not samples; long numbers (a 7-digit eid) are.
    return bool(prefix) or (len(digits) >= 4 and not 1900 <= int(digits) <= 2100)


def _genotype_kinds(block: pd.DataFrame) -> list[str]:
    """Per column: "genotype" (0/1/2, dosages near them, calls like 0/1 or A/G), "numeric" or "other". One
    conversion over the whole block: a wide table has thousands of such columns."""
    shape = block.shape
    cells = pd.Series(block.to_numpy(dtype=object).ravel(), dtype=object)
    numbers = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=float)
    unparsed = np.isnan(numbers)
    text = cells[unparsed].astype(str).str.strip()
    empty = np.zeros(len(cells), dtype=bool)
    calls = np.zeros(len(cells), dtype=bool)
    empty[unparsed] = (text.str.lower().isin(EMPTY) | text.isin(("./.", ".|."))).to_numpy()
    calls[unparsed] = text.str.match(GENOTYPE_TEXT).to_numpy()
    calls &= ~empty  # "NA" is two letters, not a call
    numbers, parsed = numbers.reshape(shape), ~unparsed.reshape(shape)
    filled = (~empty.reshape(shape)).sum(axis=0)
    numeric = parsed.sum(axis=0)
    with np.errstate(invalid="ignore"):
        in_range = ((numbers >= 0) & (numbers <= 2)).sum(axis=0)
        near = (np.abs(np.round(numbers) - numbers) <= 0.1).sum(axis=0)
        spread = np.nanmax(np.where(parsed, numbers, -np.inf), axis=0) > np.nanmin(
            np.where(parsed, numbers, np.inf), axis=0
        )
    # Imputed dosages need not sit near 0, 1 and 2; a block of [0, 2] columns reaching past 1 is dosages too.
    columns_in_range = (in_range == numeric) & (numeric > 0)
    dosage_block = columns_in_range.sum() >= GENOTYPE_MIN_COLUMNS and bool(
        np.nanmax(np.where(parsed[:, columns_in_range], numbers[:, columns_in_range], -np.inf)) > 1
    )
    kinds = []
    for i in range(shape[1]):
        if not filled[i]:
            kinds.append("other")
        elif calls.reshape(shape)[:, i].sum() >= 0.9 * filled[i]:
            kinds.append("genotype")
        elif numeric[i] < 0.9 * filled[i]:
            kinds.append("other")
        elif in_range[i] == numeric[i] and spread[i] and (near[i] >= 0.6 * numeric[i] or dosage_block):
            kinds.append("genotype")
        else:
            kinds.append("numeric")
    return kinds


# --------------------------------------------------------------------------------------------------- rows of people
@dataclass
class Column:
    name: str
    role: str  # index, constant, binary, count, statistic, code, time, dim, sequence, id, measure, category, label
    distinct: int
    ratio: float
    integer: bool = False
    numbers: pd.Series | None = None


def _rows_of_people(state: TableState, frame: pd.DataFrame) -> Finding | None:
    head = frame.iloc[:MAX_ROWS, :MAX_COLUMNS]
    rows = len(head)
    columns = [c for c in (_classify(state, str(name), head[name]) for name in head.columns) if c is not None]
    by_role: dict[str, list[Column]] = {}
    for c in columns:
        by_role.setdefault(c.role, []).append(c)
    measures = by_role.get("measure", []) + by_role.get("date", [])
    binary = by_role.get("binary", [])
    ids = by_role.get("id", [])
    # Beside an id, anything but statistics describes whoever the id names (genes' ids beside p-values do not).
    descriptive = [c for c in columns if c.role not in ("index", "constant", "id", "statistic", "count")]
    if not (measures or binary or (ids and descriptive)):
        return _categories_only(state, head, columns)

    real_counts, false_counts = _counts(state, by_role.get("count", []))
    for c in by_role.get("constant", []):
        if _count_named(c.name):  # "n = 11" on every row, meant to switch the rule off
            false_counts.append(f"a count column with the same value on every row ({_name(state, c.name)})")
    key = _key(head, columns, rows)
    statistics = by_role.get("statistic", [])
    # Evidence that the rows are groups: firm (a key, variants, a curve, a correlation matrix) or weak
    # (counts and statistics, which a table of people can carry too).
    firm: list[str] = []
    weak: list[str] = []
    if key:
        firm.append(f"rows keyed by {_names(state, key)}")
    vcf_sites = getattr(state, "declared_counts", None) is not None  # a sites-only VCF declares its allele counts
    if vcf_sites or any(p.variants >= 0.5 * p.filled > 0 for p in state.profiles.values()):
        firm.append("one row per variant")
    if len(measures) >= 2 and all(c.numbers is not None and _monotone(c.numbers) for c in measures):
        firm.append("every measure ordered (a curve or quantiles)")
    if _correlation_matrix(columns, rows):
        firm.append("a correlation matrix")
    if real_counts:
        weak.append(f"a count column ({_names(state, real_counts)})")
    if statistics and len(statistics) >= len(measures):
        weak.append(f"statistics ({_names(state, statistics)})")

    cohort = getattr(state.ctx.known, "cohort_size", None)
    near_cohort = bool(cohort) and 0.5 * cohort <= state.rows <= 1.05 * cohort
    person: list[str] = []
    if measures:
        person.append(f"per-row measurements ({_names(state, measures)})")
    if binary:
        person.append(f"0/1 flags ({_names(state, binary)})")
    if ids:
        person.append(f"an id on every row ({_names(state, ids)})")
    if not key:
        repeats = _repeated_categories(head, columns)
        person.append(f"categories that repeat across rows ({_names(state, repeats)})" if repeats else "no row label")
    if near_cohort:
        person.append(f"about as many rows as the project's {cohort:,} patients")
    if false_counts:
        person.extend(false_counts)
    elif not real_counts:
        person.append("no count column")
    strong = len(measures) >= 2 or bool(measures and binary) or len(binary) >= 3 or bool(ids) or near_cohort
    what = f"{state.rows:,} rows with " + ", ".join(person)
    people = f"{what}: one row per person (individual-level data)"

    if ids and not (firm or weak):
        return finding("tables", Verdict.BLOCK, people, state.location)
    if key and not ids:
        if near_cohort and len(firm) == 1 and not weak:  # as many labelled rows as patients
            message = f"{what}; {firm[0]}, but groups of about one patient each: may be one row per person"
            return finding("tables", Verdict.REVIEW, message, state.location)
        return None
    if firm:
        return None
    if not weak:
        if strong:
            return finding("tables", Verdict.BLOCK, people, state.location)
        message = f"{what}: may be one row per person; nothing marks the rows as groups"
        return finding("tables", Verdict.REVIEW, message, state.location)
    if strong:  # counts or statistics beside unlabelled rows of people's values
        message = f"{what}, but also {'; '.join(weak)}: may be one row per person"
        return finding("tables", Verdict.REVIEW, message, state.location)
    return None


def _categories_only(state: TableState, head: pd.DataFrame, columns: list[Column]) -> Finding | None:
    """Rows of nothing but categories, the same combinations again and again, with no number at all: microdata
    (sex, age band, region per person). A table of groups carries a count or a statistic beside its labels."""
    if any(c.numbers is not None or c.role in ("statistic", "count", "time", "code") for c in columns):
        return None
    categories = [c for c in columns if c.role in ("category", "label")]
    if len(categories) < 2 or _key(head, columns, len(head)):
        return None
    repeated = float(head.duplicated(subset=[c.name for c in categories], keep=False).mean())
    if repeated < 0.5:
        return None
    cohort = getattr(state.ctx.known, "cohort_size", None)
    near_cohort = bool(cohort) and 0.5 * cohort <= state.rows <= 1.05 * cohort
    what = (
        f"{state.rows:,} rows of categories only ({_names(state, categories)}), the same combinations repeated, "
        "no label, no count"
    )
    if near_cohort:
        return finding(
            "tables", Verdict.BLOCK,
            f"{what}, about as many rows as the project's {cohort:,} patients: one row per person (individual-level "
            "data)", state.location,
        )  # fmt: skip
    return finding("tables", Verdict.REVIEW, f"{what}: may be one row per person", state.location)


def _classify(state: TableState, name: str, column: pd.Series) -> Column | None:
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
    if _count_named(col.name):
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


def _monotone(values: pd.Series | None) -> bool:
    return values is not None and (values.is_monotonic_increasing or values.is_monotonic_decreasing)


def _leading_counts(text: pd.Series) -> pd.Series:
    return pd.to_numeric(text.str.extract(r"^\s*([\d,]+)")[0].str.replace(",", ""), errors="coerce").dropna()


def _id_like(text: pd.Series) -> bool:
    """Identifier-shaped values: letters and digits in one token ("P0012", "S-1023-A") or a long hex string; never a
    number, a rate or an estimate with its interval."""
    sample = text.iloc[:500]
    shaped = (sample.str.match(ID_SHAPE) | sample.str.match(HEX_ID)) & ~sample.str.match(NUMERIC_TEXT)
    return bool(shaped.mean() >= 0.8)


def _count_named(header: str) -> bool:
    named = _words(header)
    found = set(named)
    if named and named[0] in COUNT_PREFIXES:  # "n_risk", "number at risk", "n.event"
        return True
    if header_key(header) in ("n", "k"):
        return True
    return bool(found & (COUNT_WORDS | DENOMINATOR_WORDS) and not found & NOT_COUNT_WORDS)


def _counts(state: TableState, candidates: list[Column]) -> tuple[list[Column], list[str]]:
    """Count-named columns that hold real counts (non-negative whole numbers that vary, mostly at or above the
    threshold, none above the project's cohort) and why the others do not count."""
    policy = state.ctx.policy
    cohort = getattr(state.ctx.known, "cohort_size", None)
    real: list[Column] = []
    why: list[str] = []
    for c in candidates:
        values = c.numbers
        if values is None or values.empty:
            continue
        name = _names(state, [c])
        if (values < 0).any() or not c.integer:
            why.append(f"a count column that is not whole non-negative numbers ({name})")
        elif values.between(1900, 2100).all():
            why.append(f"a count column that holds years ({name})")
        elif values.value_counts(normalize=True).iloc[0] >= 0.9:
            why.append(f"a count column that does not vary ({name})")
        elif (values >= policy.min_cell_count).mean() < 0.5:
            why.append(f"a count column mostly under {policy.min_cell_count} ({name})")
        elif cohort and values.max() > cohort:
            why.append(f"a count column with values above the project's {cohort:,} patients ({name})")
        elif cohort and len(values) >= 0.5 * cohort and values.sum() > 2 * cohort:
            # About as many groups as patients, each of them large: the groups cannot be the cohort's.
            why.append(f"a count column summing to {values.sum() / cohort:.0f} times the project's patients ({name})")
        else:
            real.append(c)
    return real, why


def _key(head: pd.DataFrame, columns: list[Column], rows: int) -> list[Column]:
    """The grouping columns (at most four) whose values tell every row apart, as a label or a grid: rows of groups.
    Combinations far sparser than a grid (a few rows among many possible) are people's values, not a key."""
    nominal = ("label", "code", "time", "dim", "sequence")
    singles = [c for c in columns if c.role in nominal] + [
        c for c in columns if c.role == "measure" and c.integer and _monotone(c.numbers)
    ]
    for c in singles:
        if _unique(head, [c]):
            return [c]
    dims = [c for c in columns if c.role in (*nominal, "binary", "category") or (c.role == "measure" and c.integer)]
    # Each side of a grid repeats: a column nearly unique by itself is a value, not a dimension.
    dims = sorted((c for c in dims if c.distinct <= rows / 2), key=lambda c: c.distinct)[:MAX_DIMS]
    for size in (2, 3, 4):
        for group in combinations(dims[: MAX_DIMS if size < 4 else 8], size):
            cells = prod(c.distinct for c in group)
            if cells < rows * 0.98 or cells > GRID_SLACK * rows:
                continue  # too few combinations to tell the rows apart, or too many to be a grid
            if _unique(head, list(group)):
                return list(group)
    return []


def _unique(head: pd.DataFrame, group: list[Column]) -> bool:
    names = [c.name for c in group]
    return float(head.duplicated(subset=names, keep=False).mean()) <= 0.02


def _repeated_categories(head: pd.DataFrame, columns: list[Column]) -> list[Column]:
    categories = [c for c in columns if c.role in ("binary", "category") or (c.role == "label" and c.ratio < 0.5)]
    if categories and head.duplicated(subset=[c.name for c in categories], keep=False).mean() >= 0.5:
        return categories
    return []


def _correlation_matrix(columns: list[Column], rows: int) -> bool:
    numeric = [c for c in columns if c.numbers is not None and c.role not in ("index", "sequence")]
    if not numeric or abs(len(numeric) - rows) > 1:
        return False
    values = pd.concat([c.numbers for c in numeric])
    return bool(values.between(-1, 1).all() and (values == 1).sum() >= min(rows, len(numeric)))


def _names(state: TableState, columns: list[Column], limit: int = 4) -> str:
    names = [_name(state, c.name) for c in columns[:limit]]
    more = f" and {len(columns) - limit} more" if len(columns) > limit else ""
    return ", ".join(names) + more


def _name(state: TableState, column: str) -> str:
    if state.header_flagged:
        number = list(state.profiles).index(column) + 1 if column in state.profiles else 0
        return f"column {number}"
    return column if len(column) <= 40 else column[:37] + "..."
