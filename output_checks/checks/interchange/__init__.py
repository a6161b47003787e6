"""Patient-level interchange formats and text that is almost a structured format: JSON Lines, FHIR (JSON, bulk
NDJSON, XML), HL7 v2 messages, PLINK variant lists, truncated or nested JSON, and statistical packages' dataset
files. Each is judged by its structure (a Patient resource, a PID segment, a dataset's row count), its records by
the table rules, and its text by identifier screening. Raw genotype files (PLINK .ped/.bed, BGEN, ...) are the
raw-data check's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import islice
from typing import Any, ClassVar

from output_checks.checks.base import Context, Subject, finding
from output_checks.checks.interchange import fhir, jsonish
from output_checks.checks.interchange.datasets import NAMES as DATASETS
from output_checks.checks.interchange.datasets import check_dataset
from output_checks.checks.interchange.hl7v2 import check_hl7
from output_checks.checks.tables.acro import is_acro_record
from output_checks.extract import json_strings
from output_checks.screening.text import Segment
from output_checks.sniff import CHROM, INTEGER, REAL, VARIANT_ID, open_text
from output_checks.verdicts import Finding, Verdict

CHECK = "interchange"
MAX_IN_MEMORY = 64 * 2**20
SCREEN_AFTER_BLOCK = 2 * 2**20  # text screened once the structure alone has blocked: enough to show the reviewer
STANDARD_VARIANT = re.compile(r"^(rs\d+|\.|(chr)?[\dXYMT]{1,2}[:_]\d+([:_][ACGTN]+){0,2})$", re.IGNORECASE)


class InterchangeCheck:
    name: ClassVar[str] = CHECK
    kinds: ClassVar[frozenset[str] | None] = frozenset(
        {"json", "ndjson", "fhir", "hl7v2", "cda", "ssv", "plink-map", "plink-bim", *DATASETS}
    )

    def run(self, subject: Subject, ctx: Context) -> Iterator[Finding]:
        kind = subject.kind
        if kind in DATASETS:
            yield from check_dataset(subject, ctx)
            return
        if kind in ("plink-map", "plink-bim"):
            yield from variant_list(subject, ctx)
            return
        if kind == "ssv":
            yield from space_separated(subject, ctx)
            return
        if subject.size > MAX_IN_MEMORY:
            if kind != "json":
                yield finding(CHECK, Verdict.REVIEW, f"{kind} file too large to judge its structure")
            return
        with open_text(subject.path) as fh:
            text = fh.read()
        if kind == "json":
            if subject.depth == 0 and is_acro_record(subject.path):
                return  # ACRO's record of a session: the acro check sends it to a reviewer
            yield from json_document(text, ctx)
        elif kind == "ndjson":
            yield from json_lines(text, ctx)
        elif kind == "fhir":
            yield from fhir_document(text, ctx)
        elif kind == "hl7v2":
            yield from check_hl7(text, ctx)
        elif kind == "cda":
            yield from check_cda(text, ctx)


def json_document(text: str, ctx: Context) -> Iterator[Finding]:
    """JSON the text check screens: here its records are judged as tables when they are nested or buried (a flat
    top-level table is the tables check's), and a damaged document's complete records are recovered."""
    from output_checks.checks.tables import json_records

    recovered = jsonish.repair(text)
    if recovered is None:
        return
    damaged = recovered.offset < len(text)
    if '"resourceType"' in text:  # FHIR resources wrapped in a JSON of the researcher's own
        blocked = yield from _judged(fhir.judge(fhir.resources(recovered.data), ctx))
        if blocked:
            return
    flat = json_records(recovered.data) if not damaged else None
    if flat is not None and not jsonish.is_nested(flat):
        return  # a flat table: the tables check owns it
    tables = 0
    for where, records in jsonish.record_lists(recovered.data):
        if len(records) < (1 if damaged else 3):
            continue
        tables += 1
        yield from _table(records, f"records at {where}", ctx)
        if tables >= 5:
            break
    if damaged:
        why = (f"truncated or malformed JSON: cannot be decoded from line {recovered.line} on; the complete "
               f"records before it were checked as tables and every line was screened as text")  # fmt: skip
        yield finding(CHECK, Verdict.REVIEW, why)


def _table(records: list[dict[str, Any]], location: str, ctx: Context) -> Iterator[Finding]:
    from output_checks.checks.tables import check_rows

    yield from check_rows(jsonish.as_rows(records), location, ctx)


def json_lines(text: str, ctx: Context) -> Iterator[Finding]:
    """JSON Lines: each object is a row of one table; lines that are not JSON are screened as text."""
    lines = jsonish.read_lines(iter(text.splitlines()))
    objects = [(n, v) for n, v in lines.values if isinstance(v, dict)]
    if any(isinstance(v.get("resourceType"), str) for _, v in objects[:1000]):
        yield from fhir_lines(lines, ctx)
        return
    if objects:
        yield from _table([v for _, v in objects], "JSON lines", ctx)
    arrays = [[jsonish.cell(c) for c in v] for _, v in lines.values if isinstance(v, list)]
    if len(arrays) >= 2:
        from output_checks.checks.tables import check_rows

        yield from check_rows(arrays, "JSON lines (arrays)", ctx)
    loose = [(n, v) for n, v in lines.values if not isinstance(v, dict | list)]
    yield from ctx.screen((Segment(f"line {n}", jsonish.cell(v)) for n, v in loose), "identifiers")
    yield from _bad_lines(lines, ctx)


def _bad_lines(lines: jsonish.Lines, ctx: Context) -> Iterator[Finding]:
    if lines.bad:
        where = ", ".join(str(n) for n, _ in lines.bad[:10])
        why = f"{len(lines.bad)} line(s) are not JSON (malformed or truncated): screened as text"
        yield finding(CHECK, Verdict.REVIEW, why, f"lines {where}")
        yield from ctx.screen((Segment(f"line {n}", line) for n, line in lines.bad), "identifiers")


def fhir_lines(lines: jsonish.Lines, ctx: Context) -> Iterator[Finding]:
    found = (r for n, v in lines.values for r in fhir.resources(v, f"line {n}"))
    blocked = yield from _judged(fhir.judge(found, ctx))
    strings = (Segment(w, t) for n, v in lines.values for w, t in json_strings(v, f"line {n}"))
    yield from ctx.screen(_capped(strings, blocked), "identifiers")
    yield from _bad_lines(lines, ctx)


def fhir_document(text: str, ctx: Context) -> Iterator[Finding]:
    if text.lstrip("\ufeff \t\r\n").startswith("<"):
        yield from fhir_xml(text, ctx)
        return
    lines = jsonish.read_lines(iter(text.splitlines()))
    if len(lines.values) >= 2 and len(lines.bad) <= len(lines.values) // 4:
        yield from fhir_lines(lines, ctx)
        return
    recovered = jsonish.repair(text)
    data = recovered.data if recovered else None
    blocked = yield from _judged(fhir.judge(fhir.resources(data), ctx))
    yield from ctx.screen(_capped((Segment(w, t) for w, t in json_strings(data)), blocked), "identifiers")
    if recovered is None or recovered.offset < len(text):
        start = recovered.offset if recovered else 0
        line = recovered.line if recovered else 1
        why = f"truncated or malformed FHIR JSON: cannot be decoded from line {line} on; the rest was screened as text"
        yield finding(CHECK, Verdict.REVIEW, why)
        rest = text[start:]
        if re.search(r'"resourceType"\s*:\s*"(Patient|Person|RelatedPerson)"', rest):
            why = "patient-level FHIR resource in the part that could not be decoded"
            yield finding(CHECK, Verdict.BLOCK, why, f"line {line} on")
        yield from ctx.screen(_capped(_text_segments(rest, line), blocked), "identifiers")


def fhir_xml(text: str, ctx: Context) -> Iterator[Finding]:
    items = list(fhir.xml_resources(text))
    blocked = yield from _judged(fhir.judge(iter(items), ctx))
    if any(r.type == "MeasureReport" and r.body.get("type") != "individual" for r in items):
        yield from fhir.count_findings(fhir.xml_counts(text), "MeasureReport", ctx)
    yield from ctx.screen(_capped(_xml_values(text), blocked), "identifiers")


def check_cda(text: str, ctx: Context) -> Iterator[Finding]:
    """An HL7 CDA document (v3 XML): its header's recordTarget names the patient it is about."""
    if re.search(r"<(recordTarget|patientRole|patient)[\s>]", text):
        yield finding(CHECK, Verdict.BLOCK, "patient-level HL7 CDA document (recordTarget/patientRole)")
    yield from ctx.screen(_capped(_xml_values(text), True), "identifiers")


def _xml_values(text: str) -> Iterator[Segment]:
    """Attribute values and text between tags, 40 to a segment (read by pattern: no entity is ever expanded)."""
    values = re.findall(r"(?:value|extension)=\"([^\"]*)\"", text) + re.findall(r">([^<>]*[A-Za-z0-9][^<>]*)<", text)
    for i in range(0, len(values), 40):
        yield Segment(f"values {i + 1}-{i + len(values[i : i + 40])}", "\n".join(values[i : i + 40]))


def _judged(findings: Iterator[Finding]) -> Iterator[Finding]:
    """Pass findings through; the generator's value says whether any blocked."""
    blocked = False
    for f in findings:
        blocked = blocked or f.verdict is Verdict.BLOCK
        yield f
    return blocked


def _capped(segments: Iterator[Segment], blocked: bool) -> Iterator[Segment]:
    """Everything when the file could still pass; once the structure has blocked, enough to show the reviewer."""
    size = 0
    for segment in segments:
        yield segment
        size += len(segment.text)
        if blocked and size > SCREEN_AFTER_BLOCK:
            return


def _text_segments(text: str, first_line: int) -> Iterator[Segment]:
    lines = text.splitlines(keepends=True)
    for start in range(0, len(lines), 40):
        block = lines[start : start + 40]
        if "".join(block).strip():
            yield Segment(f"lines {first_line + start}-{first_line + start + len(block) - 1}", "".join(block))


def space_separated(subject: Subject, ctx: Context) -> Iterator[Finding]:
    """A space-separated table (R's write.table): its rows go to the table rules like any CSV's. A header one
    field short names the columns after R's row names."""
    import csv

    from output_checks.checks.tables import check_rows

    limit = ctx.policy.max_table_rows * 4
    with open_text(subject.path) as fh:
        lines = (line.strip() for line in fh if line.strip())
        rows = list(islice(csv.reader(lines, delimiter=" ", quotechar='"'), limit + 1))
    if len(rows) > 1 and len(rows[0]) == len(rows[1]) - 1:
        rows[0] = ["", *rows[0]]
    yield from check_rows(rows, "", ctx)
    if len(rows) > limit:
        yield finding(CHECK, Verdict.REVIEW, f"more than {limit:,} rows: only the first were read as a table")


def _variant_row(fields: list[str], width: tuple[int, ...]) -> bool:
    """chr id [cm] pos (.map) or chr id cm pos a1 a2 (.bim)."""
    if len(fields) not in width or not CHROM.match(fields[0]) or not VARIANT_ID.match(fields[1]):
        return False
    if len(fields) == 3:
        return bool(INTEGER.match(fields[2]))
    return bool(REAL.match(fields[2]) and INTEGER.match(fields[3]))


def variant_list(subject: Subject, ctx: Context) -> Iterator[Finding]:
    """A PLINK .map/.bim lists variants, not people: every line must be a variant row; ids that are not rsIDs or
    chr:pos forms are screened (a variant id is free text a researcher could misuse)."""
    width = {"plink-map": (3, 4), "plink-bim": (6,)}[subject.kind]
    bad: list[int] = []
    odd: list[tuple[int, str]] = []
    with open_text(subject.path) as fh:
        for number, line in enumerate(islice(fh, 5_000_000), start=1):
            fields = line.split()
            if not fields:
                continue
            if not _variant_row(fields, width):
                bad.append(number)
            elif not STANDARD_VARIANT.match(fields[1]) and len(odd) < 100_000:
                odd.append((number, fields[1]))
    if bad:
        why = f"{len(bad)} line(s) are not variant rows of a PLINK {subject.kind[6:]} file"
        yield finding(CHECK, Verdict.REVIEW, why, "lines " + ", ".join(str(n) for n in bad[:10]))
    segments = (Segment(f"variant ids from line {odd[i][0]}", "\n".join(v for _, v in odd[i : i + 200]))
                for i in range(0, len(odd), 200))  # fmt: skip
    yield from ctx.screen(segments, "identifiers")


__all__ = ["InterchangeCheck"]
