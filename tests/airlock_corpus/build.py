"""The labelled airlock corpus: outputs a cardiovascular researcher might try to take out of a workspace.

`build_corpus(out)` writes every file under `out` (deterministically: fixed seeds, fixed timestamps) and returns one
`LabelledFile` per file, carrying the verdict it should get (`label`), the verdicts a checker may give without being
wrong (`acceptable`, always including the label), why, and the identifiers planted in it (which no report may
repeat in full). `python -m tests.airlock_corpus OUT` writes OUT/corpus and OUT/labels.json for manual runs.

Labels follow DESIGN.md ("Contracts", "Policy defaults"): `block` for direct identifiers, individual-level records,
raw genomic or imaging data, counts of 1-9; `review` for figures, binaries, archives whose members all pass, zero
cells, small counts recoverable by subtraction, unreadable or malformed files; `pass` for ordinary aggregate
outputs, which the checker must not cry wolf on. All identifiers are synthetic: NHS numbers pass the modulus-11
check but start with 9 (never issued to patients), phone numbers are in Ofcom's drama ranges, e-mail addresses use
reserved example domains, postcodes are well-formed.

Categories and label counts (tests check that this table matches what is built):

| category | pass | review | block | total |
| --- | --- | --- | --- | --- |
| text | 7 | 1 | 13 | 21 |
| table | 40 | 8 | 31 | 79 |
| notebook | 4 | 1 | 5 | 10 |
| raw | 1 | 0 | 13 | 14 |
| archive | 0 | 5 | 4 | 9 |
| figure | 0 | 5 | 4 | 9 |
| other | 4 | 12 | 1 | 17 |
| report | 13 | 0 | 12 | 25 |
| interchange | 2 | 0 | 10 | 12 |
| encoded | 0 | 2 | 11 | 13 |
| all | 71 | 34 | 104 | 209 |

- text: markdown, plain text and HTML reports. Pass: methods and results citing authors, drugs, genes, ICD-10 codes,
  rs ids, p-values, study periods, run timestamps. Block: named patients with NHS numbers, a case narrative with
  address and date of birth, patient e-mail and phone, a date of birth in words, an MRN, EU national identifiers
  (Spanish NIF, Italian codice fiscale, Polish PESEL, Finnish HETU, French NIR). Review: HTML with an embedded image.
- table: CSV in four dialects and four encodings, TSV, UTF-16 text, Parquet, Excel, JSON. Pass: counts all >= 10
  (one exactly 10), suppressed cells ("<10", "[REDACTED]", "*"), means, regression tables (one at full float
  precision), GWAS summary statistics, allele frequencies, deciles, incidence by year. Block: counts 1-9 (one of
  9), individual-level rows, NHS numbers, dates of birth, one bad row in 2,000, per-row pseudonyms, identifiers
  only in a hidden or very hidden sheet, latin-1 and UTF-16 files with identifiers. Review: a zero cell, small
  counts recoverable from totals.
- notebook: nbformat v4. Pass: aggregate analyses (one with cleared outputs). Block: head() of patient rows (HTML
  and text), a traceback with an NHS number, a markdown cell naming a patient, printed pseudonymised rows. Review:
  an embedded PNG plot.
- raw: DICOM (as .dcm, renamed .png and .bin, no extension, no preamble), SAM, BAM, FASTQ (plain, gzip), VCF with
  samples (plain, bgzip, as .txt), BCF: all block. A sites-only VCF of allele frequencies passes.
- archive: clean zip, tar.gz and .gz (review); a zip with a path-traversal member name (review); a zip bomb (must
  not pass); zips and a tar.gz holding a VCF with samples, a table of names, a bad zip inside a zip (block).
- figure: matplotlib PNG, PDF, SVG and a JPEG of aggregates (review); PNG with a patient's name as large text (OCR),
  PDF with a name in its text layer (matplotlib and hand-written), SVG whose title is a patient (block).
- other: pickles (one whose unpickling prints a sentinel), .npy, an empty file, truncated PNG / zip / parquet,
  invalid notebook JSON, random bytes as .bin and .xlsx, a binary .csv (review); a DICOM named .csv (block).

Files shaped like real release requests (`realworld=True`, 98 of them; tests/airlock_corpus/realworld.py) add to
the categories above and fill three more:

- table (real-world): block: a 299-row heart-failure cohort, Kaplan-Meier input, per-person measurements with a
  constant `n = 11`, a GWAS table with sample ids as dosage columns, repeated measures keyed by an ordinal id,
  per-person model predictions, re-keyed pseudonyms (reversed without prefix with the birth year as `count`,
  zero-width-space split), a two-row header CSV and a TSV named .csv with small counts, `AC=` 1-9 in a sites-only
  VCF, a coefficient table with n = 14, means/medians/sums by group with N under 10, ACRO's DONT_RELEASE session
  summary. Review: means with no N, coefficients with no N or df, truncated aggregate JSON, a table edited after
  ACRO checked it. Pass: SNOMED CT (Verhoeff-valid), ICD-10, OPCS-4, LOINC, ATC/dm+d codelists, prevalence by
  SNOMED id, Table 1 "n (%)", GWAS Catalog SSF and PLINK 2 results, OpenSAFELY-style measures, incidence and rates
  per 1,000, means with N, a pandas `Unnamed: 0` index column, a clean two-row header, ACRO's checksum files.
- report: printed output. Block: a crosstab in a Markdown code block, R `table()` (.Rout), Stata `tabulate`,
  SAS PROC FREQ, skimr, grouped `describe()`, Quarto and R Markdown HTML tables with small counts, R `summary(lm)`
  with 6 residual df, a statsmodels summary of 15 observations, R `summary(survfit())` with small event and
  at-risk counts, a gtsummary Table 1 with an 8-patient column. Pass: the same shapes with counts >= 10 (R, Stata
  and SAS logs, skimr, describe, code-block crosstab, Quarto, survfit, gtsummary and Markdown Table 1s), a
  statsmodels summary of 1,842 observations, R sessionInfo(), release notes naming Kaplan-Meier, Cox and Least
  Squares with checksums and a git hash.
- interchange: block: FHIR NDJSON Patient and Observation exports, NDJSON per-person records, FHIR Bundles with a
  Patient (named, and with no identifiers), HL7 v2 ADT^A01 (.hl7) and ORU^R01 (.txt), truncated JSON of
  patients, PLINK .ped, a Synthea-style patients.csv. Pass: a FHIR MeasureReport, NDJSON of code usage counts.
- encoded: block: base64 and hex text of a patient table, base64 cells, a gzip table as base64 in JSON, numeric
  "coefficients" spelling a table's bytes (review tolerated), a FHIR DocumentReference attachment, PNG tEXt, iTXt
  and zTXt chunks, a zip after a PNG's IEND and after a PDF's %%EOF. Review: unknown bytes after IEND and %%EOF.

The corpus check runs without a project, so known-identifier matching (which needs the project's registry) is not
exercised here: re-keyed pseudonyms are labelled block because their structure (one row per opaque id, pseudonym
shapes) is individual-level; matching the project's own pseudonyms through those transforms is a unit-test matter.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import pickle
import re
import sys
import tarfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

VERDICTS = ("pass", "review", "block")
CATEGORIES = ("text", "table", "notebook", "raw", "archive", "figure", "other", "report", "interchange", "encoded")
ZIP_DATE = (2024, 5, 2, 12, 0, 0)
FIXED_DATETIME = datetime(2024, 5, 2, 12, 0, 0)
FIXED_EPOCH = 1714651200  # 2024-05-02T12:00:00Z
UNPICKLE_SENTINEL = "AIRLOCK-CORPUS-UNPICKLED-SENTINEL"
BOMB_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class LabelledFile:
    """One corpus file: where it is (relative to the corpus root), what verdict it should get and why."""

    relpath: str
    label: str
    category: str
    why: str
    acceptable: frozenset[str] = frozenset()
    planted: tuple[str, ...] = ()
    realworld: bool = False  # shaped like a real release request (tests/airlock_corpus/realworld.py)

    def __post_init__(self) -> None:
        if self.label not in VERDICTS or self.category not in CATEGORIES:
            raise ValueError(f"{self.relpath}: bad label {self.label!r} or category {self.category!r}")
        if not self.acceptable:
            object.__setattr__(self, "acceptable", frozenset({self.label}))
        if self.label not in self.acceptable or not self.acceptable <= set(VERDICTS):
            raise ValueError(f"{self.relpath}: acceptable {sorted(self.acceptable)} must include {self.label!r}")

    def to_json(self) -> dict:
        """The manifest entry (no planted identifiers: the manifest is meant to be shared)."""
        return {
            "path": self.relpath,
            "label": self.label,
            "acceptable": [v for v in VERDICTS if v in self.acceptable],
            "category": self.category,
            "realworld": self.realworld,
            "why": self.why,
        }


# ---------------------------------------------------------------------------------------------------- identifiers


def nhs_check_digit(body: str) -> int | None:
    """Modulus 11 over weights 10..2; 11 becomes 0 and 10 means the body is never issued."""
    check = 11 - sum(int(d) * w for d, w in zip(body, range(10, 1, -1), strict=True)) % 11
    return 0 if check == 11 else None if check == 10 else check


def nhs_number(rng: np.random.Generator) -> str:
    """A valid 10-digit NHS number in the 9xx range the NHS never issues to patients."""
    while True:
        body = str(int(rng.integers(900_000_000, 1_000_000_000)))
        check = nhs_check_digit(body)
        if check is not None:
            return f"{body}{check}"


def spaced(nhs: str) -> str:
    return f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"


def nhs_forms(nhs: str) -> tuple[str, ...]:
    return (nhs, spaced(nhs), f"{nhs[:3]}-{nhs[3:6]}-{nhs[6:]}")


def spanish_nif(number: int) -> str:
    return f"{number:08d}{'TRWAGMYFPDXBNJZSQVHLCKE'[number % 23]}"


_CF_ODD_VALUES = "1 0 5 7 9 13 15 17 19 21 1 0 5 7 9 13 15 17 19 21 2 4 18 20 11 3 6 8 12 14 16 10 22 25 24 23"
_CF_ODD = dict(zip("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", map(int, _CF_ODD_VALUES.split()), strict=True))


def italian_fiscal_code(first15: str) -> str:
    """Appends the check letter: odd positions (1-based) use the odd table, even ones the letter/digit ordinal."""
    total = 0
    for i, ch in enumerate(first15):
        if i % 2 == 0:
            total += _CF_ODD[ch]
        else:
            total += int(ch) if ch.isdigit() else ord(ch) - ord("A")
    return first15 + chr(ord("A") + total % 26)


def polish_pesel(first10: str) -> str:
    total = sum(int(d) * w for d, w in zip(first10, (1, 3, 7, 9, 1, 3, 7, 9, 1, 3), strict=True))
    return f"{first10}{(10 - total % 10) % 10}"


def finnish_hetu(ddmmyy: str, century: str, individual: str) -> str:
    return f"{ddmmyy}{century}{individual}{'0123456789ABCDEFHJKLMNPRSTUVWXY'[int(ddmmyy + individual) % 31]}"


def french_nir(first13: str) -> str:
    key = 97 - int(first13) % 97
    s = first13
    return f"{s[0]} {s[1:3]} {s[3:5]} {s[5:7]} {s[7:10]} {s[10:13]} {key:02d}"


@dataclass(frozen=True)
class Person:
    """A synthetic patient with the direct identifiers a leak would carry."""

    title: str
    first: str
    last: str
    dob: date
    nhs: str
    address: str = ""
    postcode: str = ""
    email: str = ""
    phone: str = ""
    mrn: str = ""
    extra: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def dob_long(self) -> str:
        return f"{self.dob.day} {MONTHS[self.dob.month - 1]} {self.dob.year}"

    @property
    def dob_uk(self) -> str:
        return f"{self.dob:%d/%m/%Y}"

    def planted(self) -> tuple[str, ...]:
        values = [self.name, f"{self.last}, {self.first}", f"{self.last.upper()}^{self.first.upper()}"]
        values += [*nhs_forms(self.nhs), self.dob_long, self.dob_uk, self.dob.isoformat()]
        values += [v for v in (self.address, self.postcode, self.email, self.phone, self.mrn) if v]
        return (*values, *self.extra)


MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
FIRST_NAMES = (
    "Margaret",
    "Oluwaseun",
    "Priya",
    "Gareth",
    "Siobhan",
    "Mohammed",
    "Eleanor",
    "Tomasz",
    "Aisha",
    "Graham",
    "Hannah",
    "Rajesh",
    "Catherine",
    "Kwame",
    "Fiona",
    "Stephen",
    "Nasreen",
    "Declan",
    "Beverley",
    "Imran",
    "Joan",
    "Callum",
    "Bronwen",
    "Ifeoma",
    "Keith",
    "Anjali",
    "Malcolm",
    "Teresa",
)
LAST_NAMES = (
    "Thompson",
    "Hughes",
    "Okafor",
    "Patel",
    "Evans",
    "O'Brien",
    "Rahman",
    "Whitfield",
    "Kowalski",
    "Begum",
    "Sutcliffe",
    "Lloyd",
    "Sharma",
    "Doyle",
    "Mensah",
    "MacLeod",
    "Ashworth",
    "Chaudhry",
    "Gallagher",
    "Pemberton",
    "Nwosu",
    "Fairbairn",
    "Iqbal",
    "Thornton",
    "Adeyemi",
    "Lockwood",
)
STREETS = ("Acacia Avenue", "Victoria Road", "Church Lane", "Mill Street", "Park Crescent", "Station Road")
SITES = (
    "Royal Brompton Hospital",
    "Barts Heart Centre",
    "Leeds General Infirmary",
    "Freeman Hospital",
    "Queen Elizabeth Hospital Birmingham",
)
DIAGNOSES = (
    "Coronary artery disease",
    "Heart failure",
    "Atrial fibrillation",
    "Familial hypercholesterolaemia",
    "Hypertrophic cardiomyopathy",
)
TREATMENTS = ("Atorvastatin", "Rosuvastatin", "Ezetimibe", "Evolocumab", "Inclisiran")
GENES = ("LDLR", "PCSK9", "APOB", "MYH7", "TTN", "LPA", "APOE", "CETP", "HMGCR", "ANGPTL3", "MYBPC3", "SORT1")
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def random_person(rng: np.random.Generator, **kw) -> Person:
    first = FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))]
    last = LAST_NAMES[int(rng.integers(len(LAST_NAMES)))]
    dob = date(1935, 1, 1) + timedelta(days=int(rng.integers(0, 365 * 45)))
    title = "Mr" if first in {"Oluwaseun", "Gareth", "Mohammed", "Tomasz", "Graham", "Rajesh", "Kwame"} else "Ms"
    return Person(title, first, last, dob, nhs_number(rng), **kw)


def pseudonym(rng: np.random.Generator) -> str:
    return "P-" + "".join(BASE32[int(i)] for i in rng.integers(0, 32, 16))


# ---------------------------------------------------------------------------------------------------- writers


def csv_bytes(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    newline: str = "\n",
) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode(encoding)


def zip_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def gzip_bytes(data: bytes, name: str = "") -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename=name, mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def tar_gz_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), FIXED_EPOCH, 0o644
            info.uname = info.gname = "researcher"
            info.uid = info.gid = 1000
            tar.addfile(info, io.BytesIO(data))
    return gzip_bytes(raw.getvalue())


def parquet_bytes(columns: dict[str, list]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf, compression="snappy")
    return buf.getvalue()


def xlsx_bytes(sheets: Sequence[tuple[str, Sequence[Sequence[object]], str]]) -> bytes:
    """Sheets as (title, rows with header first, state: visible | hidden | veryHidden); timestamps fixed."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for title, rows, state in sheets:
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(list(row))
        ws.sheet_state = state
    wb.properties.creator = wb.properties.lastModifiedBy = "researcher"
    wb.properties.created = wb.properties.modified = FIXED_DATETIME
    buf = io.BytesIO()
    wb.save(buf)
    buf.seek(0)

    def fix(name: str, data: bytes) -> bytes:
        if name == "docProps/core.xml":
            stamp = FIXED_DATETIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
            data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", lambda m: m.group(1) + stamp, data)
        return data

    with zipfile.ZipFile(buf) as zf:
        members = [(info.filename, fix(info.filename, zf.read(info))) for info in zf.infolist()]
    return zip_bytes(members)


def notebook_bytes(cells: list, name: str) -> bytes:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python", "version": "3.11.7"},
    }
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name}-{i:02d}"
    nbformat.validate(nb)
    return (nbformat.writes(nb) + "\n").encode()


def md_cell(source: str):
    import nbformat

    return nbformat.v4.new_markdown_cell(source)


def code_cell(source: str, n: int | None, outputs: Sequence = ()):
    import nbformat

    return nbformat.v4.new_code_cell(source, execution_count=n, outputs=list(outputs))


def out_stream(text: str):
    import nbformat

    return nbformat.v4.new_output("stream", name="stdout", text=text)


def out_result(n: int, data: dict):
    import nbformat

    return nbformat.v4.new_output("execute_result", data=data, execution_count=n)


def out_display(data: dict):
    import nbformat

    return nbformat.v4.new_output("display_data", data=data)


def out_error(ename: str, evalue: str, traceback: list[str]):
    import nbformat

    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=traceback)


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]], index: bool = True) -> str:
    head = "".join(f"<th>{h}</th>" for h in (([""] if index else []) + list(header)))
    body = "".join(
        "<tr>" + (f"<th>{i}</th>" if index else "") + "".join(f"<td>{c}</td>" for c in row) + "</tr>\n"
        for i, row in enumerate(rows)
    )
    return f'<table border="1" class="dataframe">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>'


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[j]) for r in cells) for j in range(len(header))]
    lines = ["    " + "  ".join(h.rjust(w) for h, w in zip(cells[0], widths, strict=True))]
    for i, row in enumerate(cells[1:]):
        lines.append(f"{i:<4}" + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def minimal_pdf(lines: Sequence[str]) -> bytes:
    """A one-page PDF 1.4 with a Helvetica text stream: the smallest thing a PDF text extractor reads."""
    text = ["BT", "/F1 12 Tf", "14 TL", "72 760 Td"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        text.append(f"({escaped}) Tj T*")
    text.append("ET")
    stream = "\n".join(text).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Title (Discharge summary) /Producer (Enclave corpus) /CreationDate (D:20240502120000Z) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# ---------------------------------------------------------------------------------------------------- the corpus


class Corpus:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[LabelledFile] = []

    def add(
        self,
        relpath: str,
        content: bytes | Callable[[Path], None],
        label: str,
        category: str,
        why: str,
        *,
        acceptable: Iterable[str] = (),
        planted: Iterable[str] = (),
        realworld: bool = False,
    ) -> Path:
        if any(f.relpath == relpath for f in self.files):
            raise ValueError(f"duplicate corpus path {relpath}")
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content(path)
        entry = LabelledFile(
            relpath, label, category, why, frozenset(acceptable), tuple(dict.fromkeys(planted)), realworld
        )
        self.files.append(entry)
        return path


# Shared content, built once and reused inside archives.


def counts_crosstab(rng: np.random.Generator, *, low: int = 12) -> list[list[object]]:
    rows = [[site, *(int(x) for x in rng.integers(low, 640, len(DIAGNOSES)))] for site in SITES]
    return rows


def vcf_with_samples(rng: np.random.Generator, samples: Sequence[str], n: int = 120) -> bytes:
    lines = [
        "##fileformat=VCFv4.2",
        "##source=GATK HaplotypeCaller 4.4",
        "##reference=GRCh38",
        "##contig=<ID=chr19,length=58617616>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
        "#" + "\t".join(["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]),
    ]
    positions = np.sort(rng.choice(np.arange(11_089_000, 11_134_000), n, replace=False))
    for pos in positions:
        ref, alt = rng.choice(list("ACGT"), 2, replace=False)
        gts = [f"{rng.choice(['0/0', '0/1', '1/1'], p=[0.6, 0.3, 0.1])}:{int(rng.integers(12, 60))}" for _ in samples]
        lines.append("\t".join(["chr19", str(pos), ".", ref, alt, "50", "PASS", ".", "GT:DP", *gts]))
    return ("\n".join(lines) + "\n").encode()


def sites_only_vcf(rng: np.random.Generator, n: int = 300) -> bytes:
    lines = [
        "##fileformat=VCFv4.2",
        "##reference=GRCh38",
        "##contig=<ID=chr1,length=248956422>",
        "##contig=<ID=chr19,length=58617616>",
        '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency in the project cohort">',
        '##INFO=<ID=AN,Number=1,Type=Integer,Description="Total number of alleles called">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    for chrom, start in (("chr1", 55_039_000), ("chr19", 11_089_000)):
        positions = np.sort(rng.choice(np.arange(start, start + 40_000), n // 2, replace=False))
        for pos in positions:
            ref, alt = rng.choice(list("ACGT"), 2, replace=False)
            af = float(rng.uniform(0.01, 0.5))
            rsid = f"rs{int(rng.integers(1_000_000, 900_000_000))}"
            lines.append(
                f"{chrom}\t{pos}\t{rsid}\t{ref}\t{alt}\t.\tPASS\tAF={af:.4f};AN={int(rng.integers(3200, 3700))}"
            )
    return ("\n".join(lines) + "\n").encode()


def build_corpus(out: Path, labels: Path | None = None) -> list[LabelledFile]:
    """Writes the corpus under `out` (created; must be empty or absent) and returns its labels.

    With `labels`, also writes the manifest there as JSON; it must lie outside `out`, which is what gets checked.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty")
    if labels is not None and Path(labels).resolve().is_relative_to(out.resolve()):
        raise ValueError("the labels manifest must lie outside the corpus folder")
    out.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(out)
    _text(corpus, np.random.default_rng(101))
    _tables(corpus, np.random.default_rng(202))
    _notebooks(corpus, np.random.default_rng(303))
    _raw(corpus, np.random.default_rng(404))
    _archives(corpus, np.random.default_rng(505))
    _figures(corpus, np.random.default_rng(606))
    _other(corpus, np.random.default_rng(707))
    from tests.airlock_corpus.realworld import add_realworld

    add_realworld(corpus, np.random.default_rng(808))
    if labels is not None:
        Path(labels).write_text(json.dumps([f.to_json() for f in corpus.files], indent=1) + "\n")
    return corpus.files


def planted_identifiers(files: Iterable[LabelledFile]) -> list[str]:
    return sorted({p for f in files for p in f.planted})


def corpus_table(files: Sequence[LabelledFile]) -> str:
    """The category × label markdown table in this module's docstring."""
    counts = Counter((f.category, f.label) for f in files)
    lines = ["| category | pass | review | block | total |", "| --- | --- | --- | --- | --- |"]
    for cat in [*CATEGORIES, "all"]:
        row = [sum(n for (c, lab), n in counts.items() if lab == v and cat in (c, "all")) for v in VERDICTS]
        lines.append(f"| {cat} | " + " | ".join(str(n) for n in [*row, sum(row)]) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- free text


def _text(c: Corpus, rng: np.random.Generator) -> None:
    cat = "text"
    c.add(
        "reports/methods.md",
        b"""# Methods

## Study population

We included adults with a first recorded diagnosis of chronic ischaemic heart disease (ICD-10 I25.1) or familial
hypercholesterolaemia (E78.0) between January 2015 and March 2021 at three NHS trusts. Patients with
homozygous FH (E78.0 with two pathogenic LDLR or APOB variants) were excluded. Follow-up ended on 31 March 2022.

## Exposures

Lipid-lowering therapy was classified from prescriptions: high-intensity statin (atorvastatin 40-80 mg or
rosuvastatin 20-40 mg), ezetimibe, and PCSK9 inhibitors (evolocumab, alirocumab) or inclisiran. Carriers of the
PCSK9 loss-of-function variant rs11591147 (p.Arg46Leu) and of rare variants in LDLR, APOB, MYH7 and TTN were
identified from exome sequencing (GRCh38, GATK 4.4).

## Statistical analysis

Cox models estimated the association of on-treatment LDL-C with major adverse cardiovascular events (MACE; I21-I22,
I63, cardiovascular death). Each 1 mmol/L lower LDL-C was associated with a hazard ratio of 0.78 (95% CI 0.66-0.92;
p = 0.003). rs11591147 carriers had lower LDL-C (beta -0.43 mmol/L, SE 0.06, p = 2.1e-12) and lower odds of
coronary disease (OR 0.72, 95% CI 0.58-0.89). Analyses used R 4.3.1 (survival 3.5-7) and Python 3.11.

## References

1. Smith J, Jones A. Lipid lowering and cardiovascular outcomes in routine care. Lancet 2019;393:407-15.
2. Sabatine MS, Giugliano RP, Keech AC, et al. Evolocumab and clinical outcomes in patients with cardiovascular
   disease. N Engl J Med 2017;376:1713-22. doi:10.1056/NEJMoa1615664
3. Cohen JC, Boerwinkle E, Mosley TH, Hobbs HH. Sequence variations in PCSK9, low LDL, and protection against
   coronary heart disease. N Engl J Med 2006;354:1264-72. PMID: 16554528
""",
        "pass",
        cat,
        "methods text: author names in references, drugs, genes, ICD-10 codes, an rs id and a study period are not "
        "identifiers",
    )
    c.add(
        "reports/results_summary.txt",
        b"""Results summary (project cvd-risk, data freeze 2023-11-30)

Of 18,412 eligible patients, 6,954 (37.8%) were women; the median age was 64 years (IQR 55-72). During a median
follow-up of 4.2 years there were 1,873 MACE events (incidence 24.3 per 1,000 person-years).

Patients on evolocumab or alirocumab (n = 412) reached a mean LDL-C of 1.4 mmol/L (SD 0.6), compared with 2.3
mmol/L (SD 0.9) on atorvastatin monotherapy (n = 9,870). In the PCSK9 rs11591147 T-allele carriers (n = 311) the
adjusted odds ratio for premature coronary disease was 0.74 (95% CI 0.59-0.93, p = 0.009).

The association was consistent across age bands (40-49, 50-59, 60-69, 70-79 years) and across sites (p for
heterogeneity = 0.41). Results for the MYH7 and TTN rare-variant burden tests are in Supplementary Table 3.
""",
        "pass",
        cat,
        "aggregate results: percentages, counts >= 10, ORs, CIs, a data-freeze date",
    )
    c.add(
        "reports/README.md",
        b"""# Outputs for release request: LDL-C targets after ACS

Prepared on 2 May 2024 by the cvd-risk analysis team for submission to the ESC Congress 2024.

| file | contents |
| --- | --- |
| tables/counts_by_site.csv | patients per site and diagnosis (all cells >= 10) |
| tables/cox_model.csv | hazard ratios from the primary Cox model |
| figures/ldl_by_site.png | mean LDL-C by site with 95% CIs |

Software: Python 3.11.7, pandas 2.2, lifelines 0.28, R 4.3.1. Code: https://github.com/example-org/ldl-targets
(commit 4f2a9c1). Contact the analysis team through the project mailbox in the Enclave portal.
""",
        "pass",
        cat,
        "a release README: a preparation date, URLs, versions and a commit hash are not identifiers",
    )
    c.add(
        "reports/acknowledgements.md",
        b"""## Acknowledgements

We thank Dr Sarah Whitmore (statistical advice) and Prof. Anil Mehta (clinical adjudication) of the study
steering committee, and the patients and staff of the participating NHS trusts. Funded by the British Heart
Foundation (grant RG/19/6/34387). The funders had no role in the analysis.
""",
        "pass",
        cat,
        "investigators' names in acknowledgements are published names, not patients; review is tolerable",
        acceptable={"pass", "review"},
    )
    c.add(
        "reports/analysis_log.txt",
        b"""2024-05-02 10:31:12 INFO  loading project view cvd-risk (build 2024-04-28T09:00:00Z)
2024-05-02 10:31:15 INFO  1,842 participants after exclusions (age < 18: 37; missing LDL-C: 121)
2024-05-02 10:31:40 INFO  fitting Cox model: ldl_c + age + sex + diabetes + smoking + site
2024-05-02 10:32:07 INFO  converged after 6 iterations; concordance 0.71
2024-05-02 10:32:07 WARN  proportional hazards: p = 0.06 for site (see Schoenfeld residuals)
2024-05-02 10:32:09 INFO  wrote tables/cox_model.csv (7 rows) and figures/km_curve.pdf
""",
        "pass",
        cat,
        "log timestamps and build dates are not dates of birth; the counts shown are >= 10 or exclusion counts "
        "of 37 and 121",
    )
    c.add(
        "reports/supplementary_note.md",
        b"""## Supplementary note 2: variant curation

Pathogenic variants were curated to ACMG/AMP criteria. The commonest LDLR variants were c.1775G>A (p.Gly592Glu)
and c.681C>G (p.Asp227Glu); the APOB variant c.10580G>A (p.Arg3527Gln; rs5742904) accounted for 9.8% of FH
carriers. MYH7 and MYBPC3 truncating variants were counted in the hypertrophic cardiomyopathy subgroup only.
LPA KIV-2 copy number was not called from exome data. Variants are reported on GRCh38 (chr19:11,089,462 for the
first LDLR exon). GWAS Catalog accession GCST90012345; summary statistics are in tables/gwas_sumstats.tsv.
""",
        "pass",
        cat,
        "HGVS variant names, rs ids, genomic coordinates and accession numbers are not identifiers",
    )
    c.add(
        "reports/summary_report.html",
        b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LDL-C after acute coronary syndrome</title>
<style>table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}</style></head>
<body>
<h1>LDL-C after acute coronary syndrome: summary report</h1>
<p>Patients admitted with ACS (I21) between January 2015 and March 2021; lipid-lowering therapy at discharge.</p>
<table>
<thead><tr><th>Therapy</th><th>Patients</th><th>Mean LDL-C (mmol/L)</th><th>SD</th></tr></thead>
<tbody>
<tr><td>Atorvastatin 80 mg</td><td>4,212</td><td>1.9</td><td>0.7</td></tr>
<tr><td>Rosuvastatin 20-40 mg</td><td>2,118</td><td>1.8</td><td>0.7</td></tr>
<tr><td>Statin + ezetimibe</td><td>845</td><td>1.6</td><td>0.6</td></tr>
<tr><td>Evolocumab</td><td>102</td><td>1.1</td><td>0.5</td></tr>
</tbody></table>
<h2>References</h2>
<ol><li>Ray KK, Wright RS, Kallend D, et al. Two phase 3 trials of inclisiran in patients with elevated LDL
cholesterol. N Engl J Med 2020;382:1507-19.</li></ol>
</body></html>
""",
        "pass",
        cat,
        "an HTML report of aggregates with a reference list",
    )

    thompson = Person(
        "Mrs",
        "Margaret",
        "Thompson",
        date(1956, 3, 14),
        nhs_number(rng),
        address="12 Acacia Avenue, Leeds",
        postcode="LS6 2QT",
    )
    c.add(
        "reports/case_narrative.md",
        f"""## Case 3: late presentation of familial hypercholesterolaemia

Mrs {thompson.name}, born {thompson.dob_long}, of {thompson.address} {thompson.postcode} (NHS number
{spaced(thompson.nhs)}), presented with exertional angina. Her LDL-C was 7.9 mmol/L on atorvastatin 80 mg and
cascade testing identified the LDLR variant c.1775G>A in two of her children.
""".encode(),
        "block",
        cat,
        "a case narrative naming a patient with address, postcode, date of birth and NHS number",
        planted=thompson.planted(),
    )
    okafor = Person(
        "Mr",
        "Oluwaseun",
        "Okafor",
        date(1961, 8, 2),
        nhs_number(rng),
        email="seun.okafor61@example.org",
        phone="07700 900461",
    )
    c.add(
        "reports/recall_list.txt",
        f"""Recall for repeat lipid profile (cascade screening)

- {okafor.name}: mobile {okafor.phone}, e-mail {okafor.email}; prefers morning appointments.
""".encode(),
        "block",
        cat,
        "a patient's name, mobile number and e-mail address",
        planted=okafor.planted(),
    )
    c.add(
        "reports/contact_note.txt",
        b"""Follow-up: please ask the participant to call back on 0113 496 0734 or write to
j.baptiste.home@example.net about the missing 12-month echo.
""",
        "block",
        cat,
        "a participant's phone number and e-mail address without a name",
        planted=("0113 496 0734", "j.baptiste.home@example.net"),
    )
    hughes = Person("Mr", "Gareth", "Hughes", date(1948, 7, 23), nhs_number(rng), extra=("twenty-third of July 1948",))
    c.add(
        "reports/dob_in_words_named.txt",
        f"""Index case: {hughes.title} {hughes.name} was born on the twenty-third of July 1948 and was diagnosed with
hypertrophic cardiomyopathy (MYH7 p.Arg403Gln) at the age of 41.
""".encode(),
        "block",
        cat,
        "a named patient with a date of birth written in words",
        planted=hughes.planted(),
    )
    c.add(
        "reports/dob_in_words.txt",
        b"""Pedigree note: the proband was born on the fourteenth of March 1956 in Harrogate and had a first myocardial
infarction at 44; her brother died suddenly aged 38.
""",
        "block",
        cat,
        "a date of birth written in words (with birthplace and family history); hard to detect, so review is "
        "the tolerable minimum",
        acceptable={"block", "review"},
        planted=("fourteenth of March 1956",),
    )
    c.add(
        "reports/data_quality.md",
        b"""## Data quality

Two records were excluded: MRN: RBH0048213 had a duplicated admission on 2019-06-03, and an LDL-C of 0.0 mmol/L.
""",
        "block",
        cat,
        "a hospital medical record number",
        planted=("RBH0048213",),
    )
    dup = nhs_number(rng)
    c.add(
        "reports/linkage_issues.txt",
        f"""Linkage issues: NHS number {dup} appears in two sites' extracts with different dates of death; resolved
in favour of the HES record.
""".encode(),
        "block",
        cat,
        "an NHS number written without spaces",
        planted=nhs_forms(dup),
    )
    nif = spanish_nif(48291736)
    cf = italian_fiscal_code("BNCGLI62L63F205")
    pesel = polish_pesel("5811040458")
    hetu = finnish_hetu("040553", "-", "164")
    nir = french_nir("2560375112005")
    c.add(
        "reports/collaborators_eu.md",
        f"""## Withdrawals received from partner sites (ERN GUARD-Heart)

- Hospital Clinic Barcelona: participant with DNI {nif} withdrew on 2023-02-14.
- Ospedale Niguarda, Milan: codice fiscale {cf}, withdrawal confirmed by post.
- Warsaw: PESEL {pesel}, samples to be destroyed.
""".encode(),
        "block",
        cat,
        "EU national identifiers Presidio recognises: a Spanish NIF, an Italian codice fiscale, a Polish PESEL",
        planted=(nif, cf, pesel),
    )
    c.add(
        "reports/collaborators_fi.txt",
        f"Helsinki site: participant {hetu} consented to recontact for the TTN substudy.\n".encode(),
        "block",
        cat,
        "a Finnish personal identity code (HETU, Presidio FI_PERSONAL_IDENTITY_CODE)",
        planted=(hetu,),
    )
    c.add(
        "reports/collaborators_fr.txt",
        f"Lyon site: NIR {nir} (numero de securite sociale) must be removed from the shared extract.\n".encode(),
        "block",
        cat,
        "a French social security number (NIR, 15 digits with a mod-97 key): not a Presidio built-in, needs a "
        "pattern of its own",
        planted=(nir, nir.replace(" ", "")),
    )
    evans = random_person(rng)
    c.add(
        "reports/outliers.html",
        f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Outliers</title></head><body>
<h2>Extreme LDL-C values</h2>
<table><tr><th>Patient</th><th>NHS number</th><th>LDL-C</th></tr>
<tr><td>{evans.name}</td><td>{spaced(evans.nhs)}</td><td>12.4</td></tr></table>
</body></html>
""".encode(),
        "block",
        cat,
        "an HTML table naming a patient with NHS number",
        planted=evans.planted(),
    )
    png = _bar_chart_png()
    c.add(
        "reports/report_with_figure.html",
        (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>LDL-C by site</title></head><body>\n'
            "<h1>Mean LDL-C by site</h1>\n<p>Means with 95% confidence intervals; every site has over 300 patients.</p>"
            f'\n<img alt="bar chart" src="data:image/png;base64,{base64.b64encode(png).decode()}">\n</body></html>\n'
        ).encode(),
        "review",
        cat,
        "clean HTML with an embedded figure: images cannot be judged automatically",
    )


# ---------------------------------------------------------------------------------------------------- tables


def _tables(c: Corpus, rng: np.random.Generator) -> None:
    cat = "table"
    header = ["site", *DIAGNOSES]
    rows = counts_crosstab(rng)
    rows[2][3] = 10
    c.add(
        "tables/counts_by_site.csv",
        csv_bytes(header, rows),
        "pass",
        cat,
        "site x diagnosis counts, all >= 10 (one exactly 10, the threshold)",
    )
    eu_rows = [[r[0], *(f"{x / 7:.1f}".replace(".", ",") for x in r[1:])] for r in counts_crosstab(rng)]
    c.add(
        "tables/rates_semicolon.csv",
        csv_bytes(["centre", *(f"{d} per 1000" for d in DIAGNOSES)], eu_rows, delimiter=";"),
        "pass",
        cat,
        "semicolon dialect with decimal commas: rates, not counts",
    )
    c.add(
        "tables/counts_by_site.tsv",
        csv_bytes(header, counts_crosstab(rng), delimiter="\t"),
        "pass",
        cat,
        "tab-separated counts, all >= 10",
    )
    c.add(
        "tables/counts_pipe.csv",
        csv_bytes(header, counts_crosstab(rng), delimiter="|"),
        "pass",
        cat,
        "pipe-delimited counts, all >= 10",
    )
    c.add(
        "tables/counts_excel_bom.csv",
        csv_bytes(header, counts_crosstab(rng), encoding="utf-8-sig", newline="\r\n"),
        "pass",
        cat,
        "UTF-8 with BOM and CRLF (Excel 'CSV UTF-8'), counts >= 10",
    )
    c.add(
        "tables/counts_utf16.csv",
        csv_bytes(header, counts_crosstab(rng), encoding="utf-16", newline="\r\n"),
        "pass",
        cat,
        "UTF-16 with BOM, counts >= 10",
    )
    c.add(
        "tables/counts_unicode_text.txt",
        csv_bytes(header, counts_crosstab(rng), delimiter="\t", encoding="utf-16-le", newline="\r\n"),
        "pass",
        cat,
        "Excel 'Unicode Text' export: UTF-16LE without BOM, tab-delimited, counts >= 10",
        acceptable={"pass", "review"},
    )
    eu_sites = ["Hôpital Européen Georges-Pompidou", "Universitätsspital Zürich", "Hospital Clínic", "Skåne"]
    c.add(
        "tables/counts_latin1.csv",
        csv_bytes(
            ["centre", "patients", "fh_carriers"],
            [[s, int(rng.integers(200, 900)), int(rng.integers(20, 90))] for s in eu_sites],
            encoding="latin-1",
        ),
        "pass",
        cat,
        "latin-1 encoded (accented centre names), counts >= 10",
    )
    for name, mark in (("suppressed_lt10", "<10"), ("suppressed_redacted", "[REDACTED]"), ("suppressed_star", "*")):
        sup = counts_crosstab(rng)
        sup[1][2] = sup[3][4] = sup[4][1] = mark
        c.add(
            f"tables/{name}.csv",
            csv_bytes(header, sup),
            "pass",
            cat,
            f"small counts suppressed as {mark!r}, no totals to recover them from",
        )
    groups = ["Female 40-59", "Female 60-79", "Male 40-59", "Male 60-79", "All"]
    c.add(
        "tables/ldl_means.csv",
        csv_bytes(
            ["group", "n", "mean_ldl_mmol_l", "sd_ldl", "median_age", "missing_hdl_pct"],
            [
                [
                    g,
                    int(rng.integers(120, 2000)),
                    f"{rng.uniform(2.0, 3.4):.2f}",
                    f"{rng.uniform(0.6, 1.1):.2f}",
                    int(rng.integers(45, 75)),
                    "NA" if g == "All" else f"{rng.uniform(1, 9):.1f}",
                ]
                for g in groups
            ],
        ),
        "pass",
        cat,
        "means and SDs by group with n >= 10; small non-count numbers (percent missing, NA) are fine",
    )
    terms = ["ldl_c_per_mmol", "age_per_10y", "male", "diabetes", "current_smoker", "ckd_stage3plus", "statin"]
    est = rng.normal(0, 0.3, len(terms))
    se = rng.uniform(0.03, 0.12, len(terms))
    c.add(
        "tables/cox_model.csv",
        csv_bytes(
            ["term", "hr", "lower95", "upper95", "p", "events", "patients"],
            [
                [
                    t,
                    f"{np.exp(b):.2f}",
                    f"{np.exp(b - 1.96 * s):.2f}",
                    f"{np.exp(b + 1.96 * s):.2f}",
                    f"{rng.uniform(0, 0.2):.3g}",
                    1873,
                    18412,
                ]
                for t, b, s in zip(terms, est, se, strict=True)
            ],
        ),
        "pass",
        cat,
        "a regression table: hazard ratios, CIs, p-values, event and patient counts >= 10",
    )
    full = [
        [t, repr(float(np.exp(b))), repr(float(s)), repr(float(rng.uniform(0, 1))), 1873, 18412]
        for t, b, s in zip(terms, est, se, strict=True)
    ]
    c.add(
        "tables/cox_model_full_precision.csv",
        csv_bytes(["term", "hr", "se_log_hr", "p", "events", "n"], full),
        "pass",
        cat,
        "full float precision (17 digits): long digit runs inside decimals are not NHS numbers; the model's events "
        "and N are shown",
    )
    n_gwas = 2500
    chroms = np.sort(rng.integers(1, 23, n_gwas))
    gwas = []
    for i in range(n_gwas):
        ea, oa = rng.choice(list("ACGT"), 2, replace=False)
        beta = rng.normal(0, 0.03)
        se_ = rng.uniform(0.005, 0.02)
        gwas.append(
            [
                f"rs{int(rng.integers(1_000, 900_000_000))}",
                int(chroms[i]),
                int(rng.integers(10_000, 240_000_000)),
                ea,
                oa,
                f"{rng.uniform(0.01, 0.99):.4f}",
                f"{beta:.4f}",
                f"{se_:.4f}",
                f"{rng.uniform(1e-12, 1):.3g}",
                int(rng.integers(380_000, 420_000)),
            ]
        )
    c.add(
        "tables/gwas_sumstats.tsv",
        csv_bytes(
            ["rsid", "chr", "pos", "effect_allele", "other_allele", "eaf", "beta", "se", "p", "n"], gwas, delimiter="\t"
        ),
        "pass",
        cat,
        "GWAS summary statistics (2,500 variants): rs ids, chromosome numbers 1-9 and positions are not counts or "
        "identifiers",
    )
    afs = []
    for _ in range(1500):
        ref, alt = rng.choice(list("ACGT"), 2, replace=False)
        afs.append(
            [
                int(rng.integers(1, 23)),
                int(rng.integers(10_000, 240_000_000)),
                f"rs{int(rng.integers(1_000, 900_000_000))}",
                ref,
                alt,
                f"{rng.uniform(0.001, 0.5):.4f}",
                int(rng.integers(3200, 3700)),
            ]
        )
    afs.sort(key=lambda r: (r[0], r[1]))
    c.add(
        "tables/allele_frequencies.csv",
        csv_bytes(["chrom", "pos", "id", "ref", "alt", "af", "an"], afs),
        "pass",
        cat,
        "sites-only allele frequencies (AF, AN): no genotypes, no samples",
    )
    c.add(
        "tables/ldl_by_decile.csv",
        csv_bytes(
            ["ldl_decile", "patients", "mean_ldl_mmol_l", "mace_events"],
            [[d, 1841 + (d % 2), f"{1.2 + 0.35 * d:.2f}", int(90 + 11 * d)] for d in range(1, 11)],
        ),
        "pass",
        cat,
        "a decile index 1-10 is a label, not a count; every count is >= 90",
    )
    c.add(
        "tables/incidence_by_year.csv",
        csv_bytes(
            ["year", "events", "person_years", "rate_per_1000"],
            [
                [
                    y,
                    e := int(rng.integers(180, 320)),
                    py := round(float(rng.uniform(9000, 11000)), 1),
                    f"{1000 * e / py:.2f}",
                ]
                for y in range(2015, 2022)
            ],
        ),
        "pass",
        cat,
        "incidence by calendar year: years are not counts, events >= 10",
    )
    c.add(
        "tables/counts.parquet",
        parquet_bytes({"treatment": list(TREATMENTS), "patients": [int(x) for x in rng.integers(50, 4000, 5)]}),
        "pass",
        cat,
        "parquet: patients per treatment, all >= 10",
    )
    c.add(
        "tables/ldl_means.parquet",
        parquet_bytes(
            {
                "sex": ["female", "male"],
                "n": [6954, 11458],
                "mean_ldl": [2.71, 2.58],
                "sd_ldl": [0.93, 0.88],
            }
        ),
        "pass",
        cat,
        "parquet: means by sex with n >= 10",
    )
    c.add(
        "tables/summary.xlsx",
        xlsx_bytes(
            [
                ("Counts", [header, *counts_crosstab(rng)], "visible"),
                (
                    "Model",
                    [
                        ["term", "hr", "lower95", "upper95", "events", "n"],
                        ["ldl_c_per_mmol", 0.78, 0.66, 0.92, 1873, 18412],
                    ],
                    "visible",
                ),
            ]
        ),
        "pass",
        cat,
        "Excel workbook of aggregates on two visible sheets (the model sheet shows its events and N)",
    )
    c.add(
        "tables/counts_by_year.json",
        (
            json.dumps(
                [
                    {"year": y, "admissions": int(rng.integers(300, 700)), "deaths": int(rng.integers(20, 60))}
                    for y in range(2015, 2022)
                ],
                indent=1,
            )
            + "\n"
        ).encode(),
        "pass",
        cat,
        "JSON records of yearly counts, all >= 10",
    )

    # ---- review
    zero = counts_crosstab(rng)
    zero[3][5] = 0
    c.add(
        "tables/zero_cell.csv",
        csv_bytes(header, zero),
        "review",
        cat,
        "one zero cell, others >= 10: policy flags zeros for review",
    )
    c.add(
        "tables/recoverable_from_total.csv",
        csv_bytes(
            ["sex", "statin", "ezetimibe", "pcsk9_inhibitor", "total"],
            [["Female", 60, 55, "<10", 120], ["Male", 140, 96, 22, 258]],
        ),
        "review",
        cat,
        "the suppressed cell is recoverable: 120 - 60 - 55 = 5; block is defensible too",
        acceptable={"review", "block"},
    )
    c.add(
        "tables/recoverable_from_margin.csv",
        csv_bytes(
            ["age_band", "events"],
            [["40-49", 34], ["50-59", 81], ["60-69", "<10"], ["70-79", 112], ["Total", 233]],
        ),
        "review",
        cat,
        "one cell suppressed with the column total shown: 233 - 34 - 81 - 112 = 6; block is defensible too",
        acceptable={"review", "block"},
    )
    c.add(
        "tables/zero_cell.parquet",
        parquet_bytes({"diagnosis": list(DIAGNOSES), "deaths": [41, 0, 27, 15, 33]}),
        "review",
        cat,
        "parquet count table with a zero",
    )

    # ---- block
    small = counts_crosstab(rng)
    small[2][4] = 3
    c.add(
        "tables/site_diagnosis_crosstab.csv",
        csv_bytes(header, small),
        "block",
        cat,
        "one cell of 3 in a site x diagnosis crosstab",
    )
    nine = counts_crosstab(rng)
    nine[0][1] = 9
    c.add(
        "tables/counts_with_nine.tsv",
        csv_bytes(header, nine, delimiter="\t"),
        "block",
        cat,
        "one cell of 9, just under the threshold of 10",
    )
    c.add(
        "tables/small_counts.parquet",
        parquet_bytes({"treatment": list(TREATMENTS), "patients": [812, 455, 97, 4, 61]}),
        "block",
        cat,
        "parquet: 4 patients on one treatment",
    )
    c.add(
        "tables/small_counts.xlsx",
        xlsx_bytes(
            [
                (
                    "Events",
                    [["site", "mi", "stroke"], *[[s, 45 + i, 7 if i == 3 else 31 + i] for i, s in enumerate(SITES)]],
                    "visible",
                )
            ]
        ),
        "block",
        cat,
        "Excel: a stroke count of 7",
    )
    n_ind = 400
    ages = rng.integers(35, 90, n_ind)
    individual = [
        [
            int(a),
            rng.choice(["F", "M"]),
            f"{rng.normal(3.0, 0.9):.2f}",
            f"{rng.normal(1.3, 0.3):.2f}",
            int(rng.integers(105, 180)),
            rng.choice(["never", "former", "current"]),
            rng.choice(DIAGNOSES),
        ]
        for a in ages
    ]
    c.add(
        "tables/ldl_individual.csv",
        csv_bytes(["age", "sex", "ldl_mmol_l", "hdl_mmol_l", "sbp_mmhg", "smoking", "diagnosis"], individual),
        "block",
        cat,
        "individual-level records: one row per patient (400 rows), no identifiers but person-level values",
    )
    admit = [date(2015, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 2200, 300)]
    c.add(
        "tables/admissions_individual.parquet",
        parquet_bytes(
            {
                "age": [int(x) for x in rng.integers(35, 90, 300)],
                "sex": [str(x) for x in rng.choice(["F", "M"], 300)],
                "admission_date": admit,
                "troponin_ng_l": [int(x) for x in rng.integers(3, 20000, 300)],
                "ldl_mmol_l": [round(float(x), 2) for x in rng.normal(3.0, 0.9, 300)],
            }
        ),
        "block",
        cat,
        "individual-level parquet: 300 patients with exact admission dates",
    )
    nhs_rows = [[nhs_number(rng), rng.choice(["MACE", "none"]), int(rng.integers(30, 2500))] for _ in range(150)]
    c.add(
        "tables/outcomes_by_nhs_number.csv",
        csv_bytes(["nhs_number", "outcome", "follow_up_days"], nhs_rows),
        "block",
        cat,
        "a column of NHS numbers",
        planted=[f for r in nhs_rows for f in nhs_forms(r[0])],
    )
    dobs = [date(1935, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 365 * 45, 200)]
    c.add(
        "tables/dates_of_birth.csv",
        csv_bytes(
            ["study_id", "date_of_birth", "sex", "ldl_mmol_l"],
            [
                [f"S{i:04d}", d.isoformat(), rng.choice(["F", "M"]), f"{rng.normal(3, 0.9):.2f}"]
                for i, d in enumerate(dobs)
            ],
        ),
        "block",
        cat,
        "exact dates of birth per row",
        planted=[d.isoformat() for d in dobs],
    )
    notes_pool = ["", "", "", "", "replicated (UKB)", "novel locus", "in LD with lead SNP", "low imputation INFO"]
    bad_row = 1377
    leak = random_person(rng)
    variant_rows = []
    for i in range(2000):
        note = notes_pool[int(rng.integers(len(notes_pool)))]
        if i == bad_row:
            note = f"proband {leak.name} NHS {spaced(leak.nhs)} confirmed carrier - recall for cascade testing"
        variant_rows.append(
            [
                GENES[int(rng.integers(len(GENES)))],
                f"rs{int(rng.integers(1_000, 900_000_000))}",
                int(rng.integers(1, 23)),
                int(rng.integers(10_000, 240_000_000)),
                f"{rng.normal(0, 0.05):.4f}",
                f"{rng.uniform(0.005, 0.03):.4f}",
                f"{rng.uniform(1e-10, 1):.3g}",
                note,
            ]
        )
    c.add(
        "tables/variant_results_with_notes.csv",
        csv_bytes(["gene", "rsid", "chr", "pos", "beta", "se", "p", "notes"], variant_rows),
        "block",
        cat,
        f"2,000 aggregate-like rows; row {bad_row + 1} of the notes column names a patient with an NHS number",
        planted=leak.planted(),
    )
    pseudos = [pseudonym(rng) for _ in range(250)]
    c.add(
        "tables/pseudonymised_rows.csv",
        csv_bytes(
            ["patient", "age", "ldl_mmol_l", "lpa_nmol_l"],
            [[p, int(rng.integers(35, 90)), f"{rng.normal(3, 0.9):.2f}", int(rng.integers(5, 400))] for p in pseudos],
        ),
        "block",
        cat,
        "one row per project pseudonym ('P-' + 16 base32): individual-level",
        planted=pseudos,
    )
    hidden_people = [random_person(rng) for _ in range(20)]
    hidden_rows = [["name", "nhs_number", "date_of_birth"]] + [[p.name, p.nhs, p.dob_uk] for p in hidden_people]
    visible = [header, *counts_crosstab(rng)]
    c.add(
        "tables/hidden_sheet.xlsx",
        xlsx_bytes([("Summary", visible, "visible"), ("lookup", hidden_rows, "hidden")]),
        "block",
        cat,
        "clean visible sheet; names, NHS numbers and dates of birth in a hidden sheet",
        planted=[x for p in hidden_people for x in p.planted()],
    )
    vh_people = [random_person(rng) for _ in range(10)]
    c.add(
        "tables/very_hidden_sheet.xlsx",
        xlsx_bytes(
            [
                ("Summary", [header, *counts_crosstab(rng)], "visible"),
                ("Sheet2", [["nhs"]] + [[spaced(p.nhs)] for p in vh_people], "veryHidden"),
            ]
        ),
        "block",
        cat,
        "NHS numbers in a 'veryHidden' sheet (not even listed by Excel's Unhide)",
        planted=[x for p in vh_people for x in nhs_forms(p.nhs)],
    )
    json_people = [random_person(rng, email=f"patient{i}@example.com") for i in range(12)]
    c.add(
        "tables/patients.json",
        (
            json.dumps(
                [
                    {"name": p.name, "dob": p.dob.isoformat(), "email": p.email, "ldl": 4.1 + i / 10}
                    for i, p in enumerate(json_people)
                ],
                indent=1,
            )
            + "\n"
        ).encode(),
        "block",
        cat,
        "JSON records of named patients with dates of birth and e-mail addresses",
        planted=[x for p in json_people for x in p.planted()],
    )
    es_people = [("José", "Martínez Pérez"), ("Begoña", "Ibáñez Muñoz"), ("Iñigo", "Etxeberria Goñi")]
    es_rows = [
        [
            f"{f} {s}",
            spanish_nif(int(rng.integers(10_000_000, 99_999_999))),
            f"{rng.normal(4, 1):.1f}".replace(".", ","),
        ]
        for f, s in es_people
    ]
    c.add(
        "tables/pacientes_latin1.csv",
        csv_bytes(["nombre", "dni", "ldl_mmol_l"], es_rows, delimiter=";", encoding="latin-1"),
        "block",
        cat,
        "latin-1, semicolon dialect: Spanish patients' names and NIFs",
        planted=[x for r in es_rows for x in r[:2]],
    )
    u16 = [random_person(rng) for _ in range(8)]
    c.add(
        "tables/nhs_utf16.tsv",
        csv_bytes(
            ["name", "nhs_number", "lpa"],
            [[p.name, spaced(p.nhs), 150 + i] for i, p in enumerate(u16)],
            delimiter="\t",
            encoding="utf-16",
        ),
        "block",
        cat,
        "UTF-16 TSV of names and NHS numbers",
        planted=[x for p in u16 for x in p.planted()],
    )


# ---------------------------------------------------------------------------------------------------- notebooks


def _notebooks(c: Corpus, rng: np.random.Generator) -> None:
    cat = "notebook"
    describe = text_table(
        ["count", "mean", "std", "min", "50%", "max"],
        [[4212, 1.91, 0.72, 0.41, 1.83, 6.2], [845, 1.62, 0.61, 0.38, 1.55, 5.1], [102, 1.08, 0.49, 0.22, 1.01, 3.4]],
    )
    c.add(
        "notebooks/ldl_analysis.ipynb",
        notebook_bytes(
            [
                md_cell(
                    "# LDL-C by lipid-lowering therapy\n"
                    "Aggregate analysis for project cvd-risk; every group has n >= 10."
                ),
                code_cell(
                    "import pandas as pd\nfrom fabric.readers import open_project\n"
                    "view = open_project('cvd-risk')\ndf = view.tables['clinical'].compute()\n"
                    "print(f'{len(df):,} participants, {df.site.nunique()} sites')",
                    1,
                    [out_stream("18,412 participants, 3 sites\n")],
                ),
                code_cell(
                    "df.groupby('therapy')['ldl_mmol_l'].describe().round(2)",
                    2,
                    [out_result(2, {"text/plain": describe})],
                ),
                md_cell("Cox model adjusted for age, sex, diabetes and smoking (see `tables/cox_model.csv`)."),
                code_cell(
                    "cph.summary[['exp(coef)', 'p']].round(3)",
                    3,
                    [out_result(3, {"text/plain": text_table(["exp(coef)", "p"], [[0.78, 0.003], [1.41, 0.001]])})],
                ),
            ],
            "ldl",
        ),
        "pass",
        cat,
        "aggregate analysis: markdown, code, a stream output and summary-statistics text/plain results",
    )
    c.add(
        "notebooks/gwas_qc.ipynb",
        notebook_bytes(
            [
                md_cell("## GWAS QC\nVariant-level QC before meta-analysis (GRCh38)."),
                code_cell(
                    "qc = sumstats.query('info > 0.8 and eaf.between(0.01, 0.99)')\nprint(len(sumstats), len(qc))",
                    1,
                    [out_stream("2500 2391\n")],
                ),
                code_cell(
                    "qc.sort_values('p').head(3)[['rsid', 'chr', 'pos', 'beta', 'p']]",
                    2,
                    [
                        out_result(
                            2,
                            {
                                "text/plain": text_table(
                                    ["rsid", "chr", "pos", "beta", "p"],
                                    [
                                        ["rs11591147", 1, 55039974, -0.431, "2.1e-12"],
                                        ["rs7412", 19, 44908822, -0.392, "8.4e-11"],
                                        ["rs12740374", 1, 109274968, -0.121, "3.3e-09"],
                                    ],
                                )
                            },
                        )
                    ],
                ),
            ],
            "gwas",
        ),
        "pass",
        cat,
        "variant-level results: rs ids, chromosomes, positions",
    )
    c.add(
        "notebooks/cleared_outputs.ipynb",
        notebook_bytes(
            [
                md_cell("# Incidence models\nOutputs cleared before export."),
                code_cell(
                    "import statsmodels.formula.api as smf\nfit = smf.poisson('events ~ year', data=agg).fit()", None
                ),
                code_cell("fit.summary()", None),
            ],
            "cleared",
        ),
        "pass",
        cat,
        "code and markdown with no outputs",
    )
    c.add(
        "notebooks/ldl_plot.ipynb",
        notebook_bytes(
            [
                md_cell("## LDL-C by site"),
                code_cell(
                    "ax = summary.plot.bar(x='site', y='mean_ldl', yerr='ci')",
                    1,
                    [
                        out_display(
                            {
                                "image/png": base64.b64encode(_bar_chart_png()).decode(),
                                "text/plain": "<Figure size 640x480 with 1 Axes>",
                            }
                        )
                    ],
                ),
            ],
            "plot",
        ),
        "review",
        cat,
        "an embedded PNG plot output, otherwise clean: images need a human",
    )
    people = [random_person(rng) for _ in range(5)]
    head_rows = [[p.name, spaced(p.nhs), p.dob.isoformat(), f"{rng.normal(3, 0.9):.2f}"] for p in people]
    cols = ["name", "nhs_number", "dob", "ldl_mmol_l"]
    c.add(
        "notebooks/patients_head.ipynb",
        notebook_bytes(
            [
                code_cell(
                    "raw = pd.read_csv('/projects/cvd-risk/scratch/linkage.csv')\nraw.head()",
                    1,
                    [
                        out_result(
                            1, {"text/html": html_table(cols, head_rows), "text/plain": text_table(cols, head_rows)}
                        )
                    ],
                ),
            ],
            "head",
        ),
        "block",
        cat,
        "DataFrame head() with patients' names, NHS numbers and dates of birth (text/html and text/plain)",
        planted=[x for p in people for x in p.planted()],
    )
    tb_nhs = nhs_number(rng)
    c.add(
        "notebooks/traceback_nhs.ipynb",
        notebook_bytes(
            [
                code_cell(
                    "lookup = dict(zip(links.nhs_number, links.pseudonym))\nlookup[row.nhs_number]",
                    4,
                    [
                        out_error(
                            "KeyError",
                            f"'{tb_nhs}'",
                            [
                                "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
                                "\x1b[0;31mKeyError\x1b[0m    Traceback (most recent call last)",
                                "Cell \x1b[0;32mIn[4], line 2\x1b[0m\n\x1b[1;32m      1\x1b[0m lookup = dict(...)",
                                f"\x1b[0;31mKeyError\x1b[0m: '{tb_nhs}'",
                            ],
                        )
                    ],
                ),
            ],
            "tb",
        ),
        "block",
        cat,
        "an error traceback whose message carries an NHS number",
        planted=nhs_forms(tb_nhs),
    )
    named = random_person(rng)
    c.add(
        "notebooks/markdown_patient.ipynb",
        notebook_bytes(
            [
                md_cell(
                    "### Outlier check\n"
                    f"The LDL-C of 14.2 mmol/L is {named.title} {named.name} (DOB {named.dob_uk}); ask the lab."
                ),
                code_cell("df.ldl_mmol_l.max()", 1, [out_result(1, {"text/plain": "14.2"})]),
            ],
            "md",
        ),
        "block",
        cat,
        "a markdown cell naming a patient with date of birth",
        planted=named.planted(),
    )
    ps = [pseudonym(rng) for _ in range(10)]
    prow = [[p, int(rng.integers(35, 90)), f"{rng.normal(3, 0.9):.2f}"] for p in ps]
    c.add(
        "notebooks/sampled_rows.ipynb",
        notebook_bytes(
            [
                code_cell(
                    "df.sample(10, random_state=1)",
                    1,
                    [out_result(1, {"text/plain": text_table(["patient", "age", "ldl_mmol_l"], prow)})],
                )
            ],
            "sample",
        ),
        "block",
        cat,
        "printed individual-level rows keyed by project pseudonyms",
        planted=ps,
    )


# ---------------------------------------------------------------------------------------------------- raw data


def dicom_bytes(rng: np.random.Generator, *, name: str, patient_id: str, dob: str, preamble: bool = True) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filewriter import dcmwrite
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    uid = generate_uid(entropy_srcs=["enclave-airlock-corpus", name, patient_id])
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["study", patient_id])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series", patient_id])
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.PatientBirthDate = dob
    ds.PatientSex = "F"
    ds.StudyDate = "20190603"
    ds.Modality = "MR"
    ds.StudyDescription = "CMR cine SSFP"
    ds.InstitutionName = "Leeds General Infirmary"
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = rng.integers(0, 4096, (64, 64), dtype=np.uint16).tobytes()
    buf = io.BytesIO()
    if preamble:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        dcmwrite(buf, ds, enforce_file_format=True)
    else:
        dcmwrite(buf, ds, implicit_vr=True, little_endian=True)
    return buf.getvalue()


def _raw(c: Corpus, rng: np.random.Generator) -> None:
    import pysam

    cat = "raw"
    ps = [pseudonym(rng) for _ in range(3)]
    dcm = dicom_bytes(rng, name=ps[0], patient_id=ps[0], dob="")
    c.add(
        "raw/scan.dcm", dcm, "block", cat, "a DICOM image (pseudonymised): imaging data never leaves", planted=[ps[0]]
    )
    c.add(
        "raw/figure.png",
        dcm,
        "block",
        cat,
        "a DICOM file renamed .png: judged by content, not extension",
        planted=[ps[0]],
    )
    named = Person("Mrs", "Eleanor", "Whitfield", date(1952, 11, 9), nhs_number(rng))
    named_dcm = dicom_bytes(rng, name="WHITFIELD^ELEANOR", patient_id=named.nhs, dob="19521109")
    c.add(
        "raw/data.bin",
        named_dcm,
        "block",
        cat,
        "a DICOM file renamed .bin, with the patient's name, NHS number and birth date in its header",
        planted=(*named.planted(), "19521109"),
    )
    c.add(
        "raw/DICOM/IM000001",
        dicom_bytes(rng, name=ps[1], patient_id=ps[1], dob=""),
        "block",
        cat,
        "a DICOM file with no extension, as scanners export them",
        planted=[ps[1]],
    )
    c.add(
        "raw/legacy_slice.ima",
        dicom_bytes(rng, name=ps[2], patient_id=ps[2], dob="", preamble=False),
        "block",
        cat,
        "a DICOM dataset without preamble or file meta (implicit VR): hard to sniff, review is the tolerable minimum",
        acceptable={"block", "review"},
        planted=[ps[2]],
    )

    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": "chr19", "LN": 58617616}],
        "RG": [{"ID": "rg1", "SM": ps[0], "PL": "ILLUMINA", "LB": "lib1"}],
    }
    start = 11_100_000

    def write_reads(path: Path, mode: str) -> None:
        with pysam.AlignmentFile(str(path), mode, header=header) as f:
            for i, pos in enumerate(np.sort(rng.integers(start, start + 5000, 60))):
                seg = pysam.AlignedSegment(f.header)
                seg.query_name = f"A00123:8:H7KJ2DSXY:1:1101:{1000 + i}:{2000 + 3 * i}"
                seg.flag = 0
                seg.reference_id = 0
                seg.reference_start = int(pos)
                seg.mapping_quality = 60
                seg.cigartuples = [(0, 100)]
                seg.query_sequence = "".join(rng.choice(list("ACGT"), 100))
                seg.query_qualities = pysam.qualitystring_to_array("F" * 100)
                seg.set_tag("RG", "rg1")
                f.write(seg)

    c.add("raw/reads.sam", lambda p: write_reads(p, "w"), "block", cat, "aligned reads (SAM text)", planted=[ps[0]])
    c.add("raw/reads.bam", lambda p: write_reads(p, "wb"), "block", cat, "aligned reads (BAM)", planted=[ps[0]])
    fastq = "".join(
        f"@A00123:8:H7KJ2DSXY:1:1101:{1000 + i}:{1000 + 7 * i} 1:N:0:ATCACG\n{seq}\n+\n{'F' * len(seq)}\n"
        for i, seq in enumerate("".join(rng.choice(list("ACGT"), 150)) for _ in range(200))
    ).encode()
    c.add("raw/reads_R1.fastq", fastq, "block", cat, "raw sequencing reads (FASTQ)")
    c.add(
        "raw/reads_R1.fastq.gz",
        gzip_bytes(fastq, "reads_R1.fastq"),
        "block",
        cat,
        "gzipped FASTQ: raw reads inside a compressed file",
    )
    vcf = vcf_with_samples(rng, ps)
    c.add("raw/calls.vcf", vcf, "block", cat, "a VCF with per-sample genotype columns", planted=ps)
    c.add(
        "raw/calls.vcf.gz",
        lambda p: pysam.tabix_compress(str(c.root / "raw/calls.vcf"), str(p), force=True),
        "block",
        cat,
        "a bgzipped VCF with sample columns",
        planted=ps,
    )

    def write_bcf(path: Path) -> None:
        with (
            pysam.VariantFile(str(c.root / "raw/calls.vcf")) as inp,
            pysam.VariantFile(str(path), "wb", header=inp.header) as out,
        ):
            for rec in inp:
                out.write(rec)

    c.add("raw/calls.bcf", write_bcf, "block", cat, "a BCF (binary VCF) with sample columns", planted=ps)
    c.add("raw/genotypes.txt", vcf, "block", cat, "a VCF with samples renamed .txt", planted=ps)
    c.add(
        "raw/cohort_allele_frequencies.vcf",
        sites_only_vcf(rng),
        "pass",
        cat,
        "a sites-only VCF (no FORMAT or sample columns) of allele frequencies; VCF is outside the default type "
        "allow-list, so review is tolerable",
        acceptable={"pass", "review"},
    )


# ---------------------------------------------------------------------------------------------------- archives


def _archives(c: Corpus, rng: np.random.Generator) -> None:
    cat = "archive"
    header = ["site", *DIAGNOSES]
    clean_a = csv_bytes(header, counts_crosstab(rng))
    clean_b = csv_bytes(["year", "events"], [[y, int(rng.integers(100, 300))] for y in range(2015, 2022)])
    readme = b"# Tables\n\nCounts per site and diagnosis; every cell >= 10.\n"
    c.add(
        "archives/clean_tables.zip",
        zip_bytes([("tables/counts.csv", clean_a), ("tables/events_by_year.csv", clean_b), ("README.md", readme)]),
        "review",
        cat,
        "a zip whose members all pass: archives are reviewed",
    )
    c.add(
        "archives/clean_outputs.tar.gz",
        tar_gz_bytes([("outputs/counts.csv", clean_a), ("outputs/README.md", readme)]),
        "review",
        cat,
        "a tar.gz whose members all pass",
    )
    c.add(
        "archives/counts.csv.gz",
        gzip_bytes(clean_a, "counts.csv"),
        "review",
        cat,
        "a gzipped clean CSV",
    )
    c.add(
        "archives/traversal.zip",
        zip_bytes([("../../../home/researcher/counts.csv", clean_a)]),
        "review",
        cat,
        "a clean member whose name climbs out of the extraction folder ('../'): never extract; block is fine",
        acceptable={"review", "block"},
    )
    ps = [pseudonym(rng) for _ in range(4)]
    c.add(
        "archives/with_vcf.zip",
        zip_bytes([("results/counts.csv", clean_a), ("results/calls.vcf", vcf_with_samples(rng, ps, 40))]),
        "block",
        cat,
        "a zip holding a VCF with sample columns beside a clean table",
        planted=ps,
    )
    people = [random_person(rng) for _ in range(6)]
    names_csv = csv_bytes(
        ["name", "nhs_number", "ldl"], [[p.name, spaced(p.nhs), 5.1 + i] for i, p in enumerate(people)]
    )
    planted = [x for p in people for x in p.planted()]
    c.add(
        "archives/with_names.zip",
        zip_bytes([("README.md", readme), ("lookup.csv", names_csv)]),
        "block",
        cat,
        "a zip holding a CSV of names and NHS numbers",
        planted=planted,
    )
    c.add(
        "archives/with_names.tar.gz",
        tar_gz_bytes([("export/README.md", readme), ("export/lookup.csv", names_csv)]),
        "block",
        cat,
        "a tar.gz holding a CSV of names and NHS numbers",
        planted=planted,
    )
    inner = zip_bytes([("patients.csv", names_csv)])
    c.add(
        "archives/nested.zip",
        zip_bytes([("README.md", readme), ("appendix/inner.zip", inner)]),
        "block",
        cat,
        "a zip inside a zip; the inner one holds names and NHS numbers",
        planted=planted,
    )

    def write_bomb(path: Path) -> None:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            info = zipfile.ZipInfo("counts.csv", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            chunk = bytes(1024 * 1024)
            with zf.open(info, "w") as member:
                for _ in range(BOMB_BYTES // len(chunk)):
                    member.write(chunk)

    c.add(
        "archives/bomb.zip",
        write_bomb,
        "review",
        cat,
        f"a zip bomb: one member of {BOMB_BYTES // 2**20} MiB of zeros in a ~200 KB zip; must not pass; block is fine",
        acceptable={"review", "block"},
    )


# ---------------------------------------------------------------------------------------------------- figures


def _mpl_figure(title: str = "Mean LDL-C by site"):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.subplots()
    means = [2.41, 2.63, 2.38, 2.71, 2.52]
    ax.bar(range(len(SITES)), means, yerr=[0.08, 0.07, 0.09, 0.06, 0.08], color="#4477aa")
    ax.set_xticks(range(len(SITES)), ["RBH", "BHC", "LGI", "FRH", "QEHB"])
    ax.set_xlabel("Site")
    ax.set_ylabel("LDL-C (mmol/L)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _bar_chart_png() -> bytes:
    buf = io.BytesIO()
    _mpl_figure().savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _figures(c: Corpus, rng: np.random.Generator) -> None:
    import matplotlib
    from matplotlib import rc_context
    from PIL import Image, ImageDraw, ImageFont

    cat = "figure"
    png = _bar_chart_png()
    c.add("figures/ldl_by_site.png", png, "review", cat, "a matplotlib bar chart of aggregates: figures need a human")
    jpg = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(jpg, format="JPEG", quality=90)
    c.add(
        "figures/ldl_by_site.jpg", jpg.getvalue(), "review", cat, "the same chart as JPEG (outside the type allow-list)"
    )

    person = random_person(rng)
    img = Image.new("RGB", (1300, 330), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), 44)
    for i, line in enumerate((f"Patient: {person.name}", f"NHS No: {spaced(person.nhs)}", f"DOB: {person.dob_uk}")):
        draw.text((40, 30 + 95 * i), line, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    c.add(
        "figures/annotated_echo.png",
        buf.getvalue(),
        "block",
        cat,
        "a PNG with a patient's name, NHS number and date of birth as large clear text (OCR reads it)",
        planted=person.planted(),
    )

    # matplotlib's default PDF fonts (Type 3) keep a text layer that extractors read.
    buf = io.BytesIO()
    _mpl_figure("Kaplan-Meier: MACE-free survival").savefig(buf, format="pdf", metadata={"CreationDate": None})
    c.add("figures/km_curve.pdf", buf.getvalue(), "review", cat, "a matplotlib PDF figure of aggregates")
    pdf_person = random_person(rng)
    fig = _mpl_figure("LDL-C trajectory")
    fig.text(0.01, 0.01, f"Patient {pdf_person.name}, NHS {spaced(pdf_person.nhs)}", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="pdf", metadata={"CreationDate": None})
    c.add(
        "figures/ldl_trajectory.pdf",
        buf.getvalue(),
        "block",
        cat,
        "a PDF figure whose text layer has a patient's name and NHS number",
        planted=pdf_person.planted(),
    )
    letter = random_person(rng, postcode="LS7 4SA")
    c.add(
        "figures/discharge_letter.pdf",
        minimal_pdf(
            [
                "Leeds Teaching Hospitals NHS Trust - Cardiology",
                f"Re: {letter.title} {letter.name}, DOB {letter.dob_uk}, NHS number {spaced(letter.nhs)}",
                f"Address: 4 {STREETS[int(rng.integers(len(STREETS)))]}, Leeds {letter.postcode}",
                "Diagnosis: NSTEMI (I21.4). Discharged on atorvastatin 80 mg and ezetimibe 10 mg.",
            ]
        ),
        "block",
        cat,
        "a hand-written PDF (Helvetica text stream) of a discharge letter",
        planted=letter.planted(),
    )
    svg_person = random_person(rng)
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "enclave-airlock-corpus"}):
        buf = io.BytesIO()
        _mpl_figure(f"{svg_person.name} - NHS {spaced(svg_person.nhs)}").savefig(
            buf, format="svg", metadata={"Date": None}
        )
        c.add(
            "figures/patient_ldl.svg",
            buf.getvalue(),
            "block",
            cat,
            "an SVG whose title (a <text> element) is a patient's name and NHS number",
            planted=svg_person.planted(),
        )
        buf = io.BytesIO()
        _mpl_figure("Forest plot: LDL-C per 1 mmol/L").savefig(buf, format="svg", metadata={"Date": None})
        c.add("figures/forest_plot.svg", buf.getvalue(), "review", cat, "a clean SVG chart: figures need a human")


# ---------------------------------------------------------------------------------------------------- other


class _PrintsWhenUnpickled:
    def __reduce__(self):
        return (print, (UNPICKLE_SENTINEL,))


def _other(c: Corpus, rng: np.random.Generator) -> None:
    cat = "other"
    coefs = {"intercept": 1.92, "ldl_c": -0.25, "age": 0.031, "n": 18412}
    c.add("other/model.pkl", pickle.dumps(coefs, protocol=4), "review", cat, "a pickle: opaque, never unpickled")
    c.add(
        "other/model_with_reduce.pkl",
        pickle.dumps(_PrintsWhenUnpickled(), protocol=4),
        "review",
        cat,
        f"a pickle whose REDUCE calls print({UNPICKLE_SENTINEL!r}) if unpickled: the checker must not unpickle",
    )
    arr = io.BytesIO()
    np.save(arr, rng.normal(0, 1, (20, 8)))
    c.add("other/coefficients.npy", arr.getvalue(), "review", cat, "a NumPy array: a binary format")
    c.add("other/empty.csv", b"", "review", cat, "an empty file: nothing to judge")
    png = _bar_chart_png()
    c.add("other/truncated.png", png[: len(png) // 3], "review", cat, "a PNG cut short: malformed")
    z = zip_bytes([("counts.csv", csv_bytes(["site", "n"], [[s, 100 + i] for i, s in enumerate(SITES)]))])
    c.add("other/truncated.zip", z[: len(z) // 2], "review", cat, "a zip cut short (no central directory)")
    pq = parquet_bytes({"site": list(SITES), "n": [120, 340, 210, 180, 95]})
    c.add("other/truncated.parquet", pq[: len(pq) // 2], "review", cat, "a parquet file cut short (no footer)")
    c.add(
        "other/broken.ipynb",
        b'{"cells": [{"cell_type": "markdown", "source": "# LDL',
        "review",
        cat,
        "invalid notebook JSON",
    )
    c.add("other/random.bin", rng.bytes(4096), "review", cat, "random bytes")
    c.add("other/not_a_workbook.xlsx", rng.bytes(2048), "review", cat, "random bytes named .xlsx")
    c.add(
        "other/binary.csv", bytes(rng.integers(0, 256, 1024, dtype=np.uint8)), "review", cat, "random bytes named .csv"
    )
    ps = pseudonym(rng)
    c.add(
        "other/table.csv",
        dicom_bytes(rng, name=ps, patient_id=ps, dob=""),
        "block",
        cat,
        "a DICOM file named .csv",
        planted=[ps],
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m tests.airlock_corpus OUT  (writes OUT/corpus and OUT/labels.json)", file=sys.stderr)
        return 2
    out = Path(args[0])
    files = build_corpus(out / "corpus", labels=out / "labels.json")
    print(corpus_table(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
