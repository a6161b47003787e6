"""Tables: CSV/TSV in any common dialect and encoding, Parquet, Excel (hidden sheets too), JSON records and
sites-only VCFs. Three questions, each over every row (streamed, never sampled):

1. Is it individual-level? Pseudonym-shaped ids, identifier columns (NHS number, MRN, name, date of birth, full
   postcode, e-mail, ...), or one row per person (many rows, per-row measurements and exact quasi-identifiers, no
   counts) block.
2. Does it disclose small counts? Statistical disclosure control on count columns (ACRO's rules): cells under the
   policy threshold block, zeros and cells recoverable from totals go to review, suppressed cells ("<10",
   "[REDACTED]") are fine; ACRO's own results.json is accepted as evidence for tables it made.
3. Does any cell hold an identifier? Each column's distinct values are screened once (Presidio and known
   identifiers); numeric columns only where a number could be an identifier; a column stops at its first block.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from output_checks.checks.base import Context, Subject, finding
from output_checks.screening.text import Segment
from output_checks.sniff import HEAD, decode_text, text_encoding
from output_checks.verdicts import Finding, Verdict

CHUNK_ROWS = 50_000
DISTINCT_CAP = 200_000  # distinct values remembered per column (memory stays flat); past it, values are screened
# chunk by chunk without cross-chunk dedup, and the column counts as high-cardinality
NUMBER = re.compile(r"^\s*[-+]?(\d{1,3}(,\d{3})+(\.\d*)?|\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*%?\s*$")
INTEGER = re.compile(r"^\s*\+?(\d{1,3}(,\d{3})+|\d+)(\.0+)?\s*$")
# "Table 1" cells: a count with its percentage, "245 (59.5%)", "12/345 (3.5%)", "1,204 (61%)".
COUNT_PERCENT = re.compile(r"^\s*(\d{1,3}(?:,\d{3})+|\d+)\s*(?:/\s*[\d,]+\s*)?[\[(]\s*[\d.]+\s*%\s*[\])]\s*$")
SMALL_MARKER = re.compile(r"^\s*(<|≤|<=)\s*\d+\s*$")
DATE = re.compile(r"^\s*(\d{4}-\d{2}-\d{2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{4})([ T]\d{2}:\d{2}(:\d{2})?)?\s*$")
PSEUDONYM = re.compile(r"P-[A-Z2-7]{16}")
LONG_INTEGER = re.compile(r"^\s*\+?\d{9,19}\s*$")  # could be an id or a phone number; decimals cannot
NHS_SHAPE = re.compile(r"^\s*\d{3}[ -]?\d{3}[ -]?\d{4}\s*$")
VARIANT = re.compile(r"^(rs\d+|(chr)?[0-9XYM]{1,2}[:_]\d+([:_][ACGTN]+[:_/>][ACGTN]+)?)$", re.IGNORECASE)

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
FULL_POSTCODE = re.compile(r"^\s*[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\s*$", re.IGNORECASE)


def _words(header: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", header.lower()) if w]


def _key(header: str) -> str:
    return "_".join(_words(header))


# ------------------------------------------------------------------------------------------------ readers


@dataclass
class TableSource:
    name: str  # "" for a single-table file, else the sheet or table name
    chunks: Iterator[pd.DataFrame]  # every value a string ("" for empty), columns are the header
    note: str = ""


def _csv_dialect(sample: str) -> tuple[str, bool]:
    lines = [line for line in sample.splitlines()[:40] if line.strip()]
    if len(sample) >= HEAD - 1:
        lines = lines[:-1]
    text = "\n".join(lines)
    try:
        dialect = csv.Sniffer().sniff(text, delimiters=",;\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    try:
        header = csv.Sniffer().has_header(text)
    except csv.Error:
        header = True
    first = next(csv.reader([lines[0]], delimiter=delimiter)) if lines else []
    if not header and first and not any(NUMBER.match(c) for c in first):
        header = True  # an all-text first row over text columns is still a header
    return delimiter, header


def read_delimited(path: Path) -> Iterator[TableSource]:
    with path.open("rb") as fh:
        head = fh.read(HEAD)
    encoding = text_encoding(head)
    sample = decode_text(head) or ""
    delimiter, header = _csv_dialect(sample.lstrip("\ufeff"))
    chunks = pd.read_csv(
        path,
        sep=delimiter,
        encoding=encoding,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        header=0 if header else None,
        chunksize=CHUNK_ROWS,
        engine="c" if len(delimiter) == 1 else "python",
        skip_blank_lines=True,
        encoding_errors="replace",
    )

    def named() -> Iterator[pd.DataFrame]:
        with chunks as reader:
            for chunk in reader:
                if not header:
                    chunk.columns = [f"column {i + 1}" for i in range(chunk.shape[1])]
                yield chunk

    yield TableSource("", named())


def read_parquet(path: Path) -> Iterator[TableSource]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)

    def chunks() -> Iterator[pd.DataFrame]:
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
            frame = batch.to_pandas()
            yield frame.astype(str).where(frame.notna(), "")

    yield TableSource("", chunks())


def read_xlsx(path: Path) -> Iterator[TableSource]:
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        for sheet in workbook.worksheets:
            hidden = sheet.sheet_state != "visible"
            rows = sheet.iter_rows(values_only=True)
            yield TableSource(
                f"sheet {sheet.title!r}",
                _rows_to_chunks(rows),
                note="hidden sheet: its content is checked like any other, but a reviewer may not see it"
                if hidden
                else "",
            )
    finally:
        workbook.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _rows_to_chunks(rows: Iterator[tuple[Any, ...]] | list[list[str]]) -> Iterator[pd.DataFrame]:
    rows = iter(rows)
    header = None
    for first in rows:
        if any(v not in (None, "") for v in first):
            header = [_cell(v) or f"column {i + 1}" for i, v in enumerate(first)]
            break
    if header is None:
        return
    batch: list[list[str]] = []
    for row in rows:
        cells = [_cell(v) for v in row][: len(header)]
        cells += [""] * (len(header) - len(cells))
        batch.append(cells)
        if len(batch) >= CHUNK_ROWS:
            yield pd.DataFrame(batch, columns=_unique(header))
            batch = []
    if batch:
        yield pd.DataFrame(batch, columns=_unique(header))


def _unique(header: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for h in header:
        seen[h] = seen.get(h, 0) + 1
        out.append(h if seen[h] == 1 else f"{h}.{seen[h] - 1}")
    return out


def json_records(data: Any) -> list[dict[str, Any]] | None:
    """A JSON table: a list of flat objects, {"data": [...]}, or pandas' orient="split"/"columns" shapes."""
    if isinstance(data, dict):
        if isinstance(data.get("columns"), list) and isinstance(data.get("data"), list):
            cols = [str(c) for c in data["columns"]]
            return [dict(zip(cols, row, strict=False)) for row in data["data"] if isinstance(row, list)]
        for key in ("data", "records", "rows", "results"):
            if isinstance(data.get(key), list):
                return json_records(data[key])
        if data and all(isinstance(v, dict) for v in data.values()):
            inner = list(data.values())
            if all(set(v) == set(inner[0]) for v in inner) and len(inner[0]) > 0:
                index = list(next(iter(inner)).keys())
                return [{"column": k, **{i: v.get(i) for i in index}} for k, v in data.items()]
        return None
    flat = isinstance(data, list) and data and all(isinstance(r, dict) for r in data)
    if flat and all(not isinstance(v, dict | list) for r in data[:100] for v in r.values()):
        return data
    return None


def read_json(path: Path) -> Iterator[TableSource]:
    from output_checks.sniff import open_text

    with open_text(path) as fh:
        data = json.load(fh)
    records = json_records(data)
    if records is None:
        return
    columns = list(dict.fromkeys(k for r in records for k in r))
    rows = [[_cell(r.get(c)) for c in columns] for r in records]
    yield TableSource("", iter([pd.DataFrame(rows, columns=_unique([str(c) for c in columns]))] if rows else []))


def read_vcf_sites(path: Path) -> Iterator[TableSource]:
    from output_checks.sniff import open_text

    def chunks() -> Iterator[pd.DataFrame]:
        with open_text(path) as fh:
            header: list[str] | None = None
            batch: list[dict[str, str]] = []
            for line in fh:
                if line.startswith("##"):
                    continue
                if line.startswith("#CHROM"):
                    header = line.lstrip("#").rstrip("\r\n").split("\t")
                    continue
                if header is None or not line.strip():
                    continue
                fields = line.rstrip("\r\n").split("\t")
                row = dict(zip(header, fields, strict=False))
                info = row.pop("INFO", "")
                for item in info.split(";"):
                    key, _, value = item.partition("=")
                    if key in ("AC", "AN", "AF", "NS", "DP", "AC_Hom", "AC_Het", "nhomalt"):
                        row[key] = value.split(",")[0]
                batch.append(row)
                if len(batch) >= CHUNK_ROWS:
                    yield pd.DataFrame(batch).fillna("")
                    batch = []
            if batch:
                yield pd.DataFrame(batch).fillna("")

    yield TableSource("", chunks())


READERS = {
    "csv": read_delimited,
    "tsv": read_delimited,
    "parquet": read_parquet,
    "xlsx": read_xlsx,
    "json": read_json,
    "vcf-sites": read_vcf_sites,
}


# ------------------------------------------------------------------------------------------------ profiling


@dataclass
class ColumnProfile:
    name: str
    values: int = 0
    empty: int = 0
    numeric: int = 0
    integer: int = 0
    suppressed: int = 0
    dates: int = 0
    pseudonyms: int = 0
    count_percent: int = 0
    variants: int = 0
    full_postcodes: int = 0
    distinct: set[str] = field(default_factory=set)
    distinct_overflow: bool = False
    examples: list[str] = field(default_factory=list)  # the first distinct values, for shape tests
    blocked: bool = False
    first_row: dict[str, int] = field(default_factory=dict)

    @property
    def filled(self) -> int:
        return self.values - self.empty

    @property
    def kind(self) -> str:
        real = self.filled - self.suppressed
        if real <= 0:
            return "empty"
        if self.numeric == real:
            return "integer" if self.integer == real else "number"
        if self.count_percent + self.numeric >= real * 0.5 and self.count_percent:  # Table 1: n (%) and mean (SD)
            return "count-percent"
        if self.dates >= real * 0.9:
            return "date"
        return "text"

    @property
    def distinct_ratio(self) -> float:
        if self.distinct_overflow:
            return 1.0
        return len(self.distinct) / self.filled if self.filled else 0.0


def _is_suppressed(value: str, markers: list[str]) -> bool:
    v = value.strip()
    return bool(SMALL_MARKER.match(v)) or v in markers or v.lower() in (m.lower() for m in markers)


@dataclass
class TableState:
    name: str
    location: str
    ctx: Context
    rows: int = 0
    profiles: dict[str, ColumnProfile] = field(default_factory=dict)
    head: list[pd.DataFrame] = field(default_factory=list)
    head_rows: int = 0
    findings: list[Finding] = field(default_factory=list)

    infer_crosstab: bool = True  # off for tables recovered from printed text, whose index looks like counts
    header_flagged: bool = False  # the header itself holds an identifier: name columns by number only

    def where(self, column: str | None = None, row: int | None = None) -> str:
        label = ""
        if column is not None:
            number = list(self.profiles).index(column) + 1 if column in self.profiles else 0
            short = column if len(column) <= 40 else column[:37] + "..."
            label = f"column {number}" if self.header_flagged else f"column {short!r}"
        parts = [p for p in (self.location, label) if p]
        if row is not None:
            parts.append(f"row {row}")
        return ", ".join(parts)


def _profile_chunk(state: TableState, chunk: pd.DataFrame, screen_new: dict[str, list[tuple[int, str]]]) -> None:
    markers = state.ctx.policy.suppression_markers
    start = state.rows
    for column in chunk.columns:
        profile = state.profiles.setdefault(str(column), ColumnProfile(str(column)))
        series = chunk[column].astype(str)
        profile.values += len(series)
        stripped = series.str.strip()
        empty = stripped.eq("") | stripped.str.lower().isin(("na", "nan", "none", "null", "nat"))
        profile.empty += int(empty.sum())
        filled = stripped[~empty]
        if filled.empty:
            continue
        suppressed = filled.map(lambda v: _is_suppressed(v, markers))
        profile.suppressed += int(suppressed.sum())
        real = filled[~suppressed]
        numeric = real.str.match(NUMBER)
        profile.numeric += int(numeric.sum())
        profile.integer += int(real[numeric].str.match(INTEGER).sum())
        nonnum = real[~numeric]
        if not nonnum.empty:
            profile.count_percent += int(nonnum.str.match(COUNT_PERCENT).sum())
            profile.dates += int(nonnum.str.match(DATE).sum())
            profile.pseudonyms += int(nonnum.str.contains(PSEUDONYM).sum())
            profile.variants += int(nonnum.str.match(VARIANT).sum())
            profile.full_postcodes += int(nonnum.str.match(FULL_POSTCODE).sum())
        if profile.blocked:
            continue
        uniques = pd.unique(real.to_numpy())
        new = [u for u in uniques if u not in profile.distinct]
        if len(profile.examples) < 200:
            profile.examples.extend(new[: 200 - len(profile.examples)])
        if new:
            if not profile.distinct_overflow:
                if len(profile.distinct) + len(new) > DISTINCT_CAP:
                    profile.distinct_overflow = True
                    profile.distinct.clear()
                else:
                    profile.distinct.update(new)
            positions = real.index
            first = {}
            wanted = set(new)
            for idx, value in zip(positions, real.to_numpy(), strict=True):
                if value in wanted and value not in first:
                    first[value] = start + int(idx - chunk.index[0]) + 1
            screen_new.setdefault(str(column), []).extend((first[v], v) for v in new)
    state.rows += len(chunk)


def _screen_values(state: TableState, new: dict[str, list[tuple[int, str]]]) -> None:
    """Identifier screening of each column's newly seen values, a column stopping at its first block."""
    ctx = state.ctx
    for column, values in new.items():
        profile = state.profiles[column]
        if profile.blocked:
            continue
        kind = profile.kind
        if kind in ("integer", "number"):
            # Numbers are identifiers only in identifier shapes (NHS numbers, phone numbers, long ids).
            values = [(r, v) for r, v in values if NHS_SHAPE.match(v) or LONG_INTEGER.match(v)]
        if not values:
            continue
        segments = (Segment(state.where(column, row), value) for row, value in values)
        for f in ctx.screen(segments, "identifiers"):
            state.findings.append(f)
            if f.verdict is Verdict.BLOCK:
                profile.blocked = True
                break


# ------------------------------------------------------------------------------------------------ rules


def _count_columns(state: TableState, frame: pd.DataFrame) -> list[str]:
    """Columns holding counts: named as counts, or every integer column of a labelled cross-tabulation."""
    profiles = state.profiles
    integer_cols = [
        c for c in frame.columns if profiles[str(c)].kind in ("integer", "empty") and profiles[str(c)].filled
    ]
    with_percent = [c for c in frame.columns if profiles[str(c)].kind == "count-percent"]
    if with_percent:
        return with_percent + [c for c in integer_cols if set(_words(str(c))) & COUNT_WORDS]
    named = []
    for c in integer_cols:
        words = set(_words(str(c)))
        if words & NOT_COUNT_WORDS or TOTAL_LABEL.match(str(c)):
            continue
        if words & COUNT_WORDS or str(c).strip().lower() in ("n", "k"):
            named.append(c)
    if named:
        return named + [c for c in integer_cols if TOTAL_LABEL.match(str(c))]
    if not state.infer_crosstab:
        return []
    labels = [c for c in frame.columns if profiles[str(c)].kind == "text"]
    numbers = [c for c in frame.columns if profiles[str(c)].kind in ("integer", "number")]
    candidates = [c for c in integer_cols if not set(_words(str(c))) & NOT_COUNT_WORDS]
    if labels and numbers and len(candidates) == len(numbers) and len(frame) <= state.ctx.policy.max_table_rows:
        ints = pd.concat([pd.to_numeric(frame[c].str.strip(), errors="coerce") for c in candidates])
        if (ints.dropna() >= 0).all() and not _looks_like_years(ints):
            return candidates
    return []


def _looks_like_years(values: pd.Series) -> bool:
    v = values.dropna()
    return len(v) > 0 and bool(((v >= 1900) & (v <= 2100)).all())


def count_value(cell: object) -> float:
    """The count in a cell ("12", "1,234", "245 (59.5%)"), or NaN for anything else (suppressed, text, empty)."""
    text = str(cell).strip()
    match = COUNT_PERCENT.match(text)
    if match:
        text = match[1]
    text = text.replace(",", "")
    if text.endswith("%"):
        return float("nan")
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _sdc(state: TableState, frame: pd.DataFrame, acro: str | None) -> Iterator[Finding]:
    policy = state.ctx.policy
    if acro:
        yield finding("tables", Verdict.REVIEW if acro == "review" else Verdict.BLOCK, f"ACRO marked this table {acro}")
    yield from _dominance(state, frame)
    counts = _count_columns(state, frame)
    if not counts:
        return
    base = policy.rounding_base
    numeric = {c: frame[c].map(count_value) for c in counts}
    rounded = base is not None and all(((s.dropna() % base) == 0).all() for s in numeric.values())
    label_col = next((c for c in frame.columns if state.profiles[str(c)].kind == "text"), None)
    small: list[str] = []
    zeros: list[str] = []
    for c, series in numeric.items():
        for idx, value in series.items():
            if pd.isna(value):
                continue
            row = int(idx) + 1
            if value == 0:
                zeros.append(state.where(str(c), row))
            elif 0 < value < policy.min_cell_count and not rounded:
                small.append(state.where(str(c), row))
    if small:
        yield finding(
            "tables",
            Verdict.BLOCK,
            f"{len(small)} count cell(s) below the minimum of {policy.min_cell_count} (suppress them, e.g. '<"
            f"{policy.min_cell_count}', and any that totals would reveal)",
            "; ".join(small[:10]) + (f"; and {len(small) - 10} more" if len(small) > 10 else ""),
        )
    if zeros and policy.zeros != "pass":
        yield finding(
            "tables",
            Verdict(policy.zeros),
            f"{len(zeros)} zero count(s): a zero can disclose (everyone or no one in a group)",
            "; ".join(zeros[:10]),
        )
    yield from _recoverable(state, frame, counts, label_col)


MAGNITUDE_TOTAL = re.compile(r"^(sum|total)([ _-]|$)|([ _-])(sum|total)$", re.IGNORECASE)
LARGEST = re.compile(r"^(max|largest|top|max1|largest1)([ _-]|$)|([ _-])(max|largest)$", re.IGNORECASE)
SECOND = re.compile(r"^(max2|second|second[ _-]largest|largest2)([ _-]|$)", re.IGNORECASE)


def _dominance(state: TableState, frame: pd.DataFrame) -> Iterator[Finding]:
    """ACRO's magnitude rules, where a table carries what they need: a cell's total and its largest (and second
    largest) contributions. N-K: the largest n contributors may not hold more than k of the total. P-ratio: what
    is left after the two largest must be at least p of the largest, or the largest can be estimated."""
    policy = state.ctx.policy
    columns = [str(c) for c in frame.columns]
    total = next((c for c in columns if MAGNITUDE_TOTAL.search(c)), None)
    largest = next((c for c in columns if LARGEST.search(c)), None)
    if total is None or largest is None:
        return
    second = next((c for c in columns if SECOND.search(c)), None)
    values = {c: frame[c].map(count_value) for c in (total, largest, second) if c}
    dominated: list[str] = []
    for idx in frame.index:
        t, first = values[total][idx], values[largest][idx]
        two = values[second][idx] if second else float("nan")
        if pd.isna(t) or pd.isna(first) or t <= 0:
            continue
        top = first + (two if not pd.isna(two) and policy.nk_n >= 2 else 0)
        nk_fails = top > policy.nk_k * t
        p_fails = not pd.isna(two) and (t - first - two) < policy.p_ratio * first
        if nk_fails or p_fails:
            dominated.append(state.where(total, int(idx) + 1))
    if dominated:
        yield finding(
            "tables",
            Verdict.BLOCK,
            f"{len(dominated)} cell(s) dominated by their largest contributor(s) (ACRO N-K {policy.nk_n},"
            f"{policy.nk_k:g} / p-ratio {policy.p_ratio:g})",
            "; ".join(dominated[:10]),
        )


def _recoverable(state: TableState, frame: pd.DataFrame, counts: list[str], label_col: str | None) -> Iterator[Finding]:
    """A suppressed cell is recoverable when it is the only one hidden in a row or column whose total is shown."""
    markers = state.ctx.policy.suppression_markers
    hidden = {c: frame[c].map(lambda v: _is_suppressed(str(v), markers)) for c in counts}
    if not any(h.any() for h in hidden.values()):
        return
    total_cols = [c for c in counts if TOTAL_LABEL.match(str(c))]
    body_cols = [c for c in counts if c not in total_cols]
    found: list[str] = []
    for total in total_cols:
        for idx in frame.index:
            suppressed = [c for c in body_cols if hidden[c][idx]]
            if len(suppressed) == 1 and not hidden[total][idx]:
                found.append(state.where(str(suppressed[0]), int(idx) + 1))
    if label_col is not None:
        total_rows = frame.index[frame[label_col].astype(str).str.match(TOTAL_LABEL)]
        body_rows = [i for i in frame.index if i not in set(total_rows)]
        for t in total_rows:
            for c in counts:
                suppressed = [i for i in body_rows if hidden[c][i]]
                if len(suppressed) == 1 and not hidden[c][t]:
                    found.append(state.where(str(c), int(suppressed[0]) + 1))
    if found:
        cells = sorted(set(found))
        yield finding(
            "tables",
            Verdict.REVIEW,
            f"{len(cells)} suppressed cell(s) can be recovered by subtraction from a total: suppress a second cell",
            "; ".join(cells[:10]),
        )


def _individual(state: TableState) -> Iterator[Finding]:
    policy = state.ctx.policy
    profiles = state.profiles
    for name, p in profiles.items():
        if p.pseudonyms:
            yield finding(
                "tables",
                Verdict.BLOCK,
                f"{p.pseudonyms} pseudonym-shaped patient id(s): individual-level data",
                state.where(name),
            )
            return
    for name, p in profiles.items():
        if not p.filled or p.kind == "empty":
            continue
        what = IDENTIFIER_HEADERS.get(_key(name))
        if what is None:
            continue
        if what == "postcodes" and not p.full_postcodes:
            continue  # districts ("LS6") are aggregates
        if what == "names" and p.kind != "text":
            continue
        if what in ("NHS numbers", "hospital numbers") or p.distinct_ratio > 0.5 or p.kind == "date":
            yield finding("tables", Verdict.BLOCK, f"a column of {what}: individual-level data", state.where(name))
            return
    rows = state.rows
    if rows < policy.individual_min_rows:
        return
    variant_rows = any(p.variants >= p.filled * 0.5 and p.filled for p in profiles.values())
    if variant_rows:
        return  # one row per variant (GWAS results, allele frequencies), not per person
    has_counts = any(set(_words(n)) & COUNT_WORDS for n in profiles)
    if has_counts:
        return
    keys = {n: set(_words(n)) for n in profiles}
    measures = [
        n for n, p in profiles.items()
        if p.kind == "number" and p.distinct_ratio >= 0.3 and not keys[n] & AGGREGATE_WORDS
    ]  # fmt: skip
    exact_quasi = [
        n for n, p in profiles.items()
        if (_key(n) in QUASI_HEADERS or keys[n] & {"date", "age", "sex", "gender", "ethnicity"})
        and not keys[n] & AGGREGATE_WORDS and not keys[n] & {"band", "group", "range", "category"}
    ]  # fmt: skip
    ids = [n for n, p in profiles.items() if p.kind == "text" and p.distinct_ratio >= 0.95 and p.filled >= rows * 0.9
           and not keys[n] & {"label", "description", "term", "variable", "name", "group", "category", "model"}
           and _id_like(p)]  # fmt: skip
    if ids:
        yield finding(
            "tables", Verdict.BLOCK, "a unique id on every row: one row per person (individual-level data)",
            state.where(ids[0]),
        )  # fmt: skip
        return
    if measures and exact_quasi and _unique_share(state, exact_quasi + measures) >= policy.unique_row_fraction:
        yield finding(
            "tables",
            Verdict.BLOCK,
            f"{rows} rows of per-row measurements with quasi-identifiers ({', '.join(exact_quasi[:4])}): "
            "looks like one row per person",
            state.location,
        )


def _unique_share(state: TableState, columns: list[str]) -> float:
    """Share of rows (in the first rows kept in memory) whose values in `columns` no other row has."""
    if not state.head:
        return 0.0
    frame = pd.concat(state.head, ignore_index=True)
    present = [c for c in columns if c in frame.columns]
    if not present:
        return 0.0
    return float((~frame.duplicated(subset=present, keep=False)).mean())


def _id_like(p: ColumnProfile) -> bool:
    sample = p.examples
    return bool(sample) and sum(1 for v in sample if re.search(r"\d", v) and " " not in v.strip()) >= len(sample) * 0.8


def _limits(state: TableState) -> Iterator[Finding]:
    policy = state.ctx.policy
    if state.rows > policy.max_table_rows:
        yield finding(
            "tables",
            Verdict.REVIEW,
            f"{state.rows:,} rows: more than the policy's {policy.max_table_rows:,} per table",
            state.location,
        )


# ------------------------------------------------------------------------------------------------ driver


def check_table(
    source: TableSource, location: str, ctx: Context, acro: str | None = None, *, infer_crosstab: bool = True
) -> Iterator[Finding]:
    state = TableState(source.name, location, ctx, infer_crosstab=infer_crosstab)
    if source.name:  # a sheet title is text the file controls
        state.findings.extend(ctx.screen([Segment(location, source.name)], "identifiers"))
    if source.note:
        state.findings.append(finding("tables", Verdict.REVIEW, source.note, location))
    keep = ctx.policy.max_table_rows + 1
    for chunk in source.chunks:
        chunk = chunk.reset_index(drop=True)
        if state.head_rows < keep:
            state.head.append(chunk.iloc[: keep - state.head_rows])
            state.head_rows += min(len(chunk), keep - state.head_rows)
        new: dict[str, list[tuple[int, str]]] = {}
        # Headers are text too: a column named after a patient is a finding.
        if state.rows == 0:
            header = " | ".join(str(c) for c in chunk.columns)
            flagged = list(ctx.screen([Segment(state.where() or "header", header)], "identifiers"))
            state.header_flagged = bool(flagged)
            state.findings.extend(flagged)
        _profile_chunk(state, chunk, new)
        _screen_values(state, new)
        yield from state.findings
        state.findings.clear()
    yield from _individual(state)
    yield from _limits(state)
    if "tables" in ctx.policy.checks and state.head:
        frame = pd.concat(state.head, ignore_index=True).astype(str)
        yield from _sdc(state, frame, acro)


def check_rows(rows: list[list[str]], location: str, ctx: Context, *, infer_crosstab: bool = True) -> Iterator[Finding]:
    """A table held as rows of strings (from HTML, markdown or a notebook output)."""
    yield from check_table(TableSource("", _rows_to_chunks(rows)), location, ctx, infer_crosstab=infer_crosstab)


def acro_evidence(path: Path, sha256: str) -> str | None:
    """ACRO's verdict ("pass", "fail", "review") on this exact file, from a results.json written beside it by
    `acro.finalise`, or None. Evidence counts only if ACRO's recorded checksum matches the file's bytes."""
    results = path.parent / "results.json"
    if not results.is_file() or results.stat().st_size > 16 * 2**20:
        return None
    try:
        data = json.loads(results.read_text())
    except (OSError, ValueError):
        return None
    recorded = path.parent / "checksums" / f"{path.name}.txt"
    try:
        checksum = recorded.read_text().strip().split()[0]
    except (OSError, IndexError):
        return None
    if checksum.lower() != sha256:
        return None
    for output in (data.get("results") or {}).values():
        for item in output.get("files", []) if isinstance(output, dict) else []:
            if isinstance(item, dict) and item.get("name") == path.name:
                return str(output.get("status", "")).lower() or None
    return None


class TableCheck:
    name: ClassVar[str] = "tables"
    kinds: ClassVar[frozenset[str] | None] = frozenset(READERS)

    def run(self, subject: Subject, ctx: Context) -> Iterator[Finding]:
        acro = None
        if subject.depth == 0 and (subject.path.parent / "results.json").is_file():
            from output_checks.engine import sha256_of

            status = acro_evidence(subject.path, sha256_of(subject.path))
            # ACRO's pass adds nothing to Enclave's own rules (they still run); its fail or review is kept.
            acro = status if status in ("fail", "review") else None
        for source in READERS[subject.kind](subject.path):
            yield from check_table(source, source.name, ctx, acro=acro)
