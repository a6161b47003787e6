"""Which kind of text a decoded head is: genomic text (VCF, SAM, FASTQ, PLINK...), clinical interchange (FHIR,
HL7 v2, CDA), JSON, JSON Lines and notebooks, SVG, HTML and XML, Markdown, delimited and space-separated tables, or
plain text. A table is told from prose by its dialect and the width of its fields, never by the file's name."""

from __future__ import annotations

import contextlib
import csv
import json
import re

from output_checks.sniff.encoding import HEAD, decode_text
from output_checks.sniff.genomic_text import REAL, genotype_kind

FASTQ_RECORD = re.compile(r"^@[^\n]*\n[A-Za-z.*\-]+\n\+[^\n]*\n[^\n]+", re.MULTILINE)
SAM_LINE = re.compile(r"^[^\t\n]+\t\d+\t[^\t\n]+\t\d+\t\d+\t(\*|[0-9MIDNSHP=X]+)\t", re.MULTILINE)
HTML = re.compile(r"<(!doctype html|html|head|body|table|div|p|h[1-6])[\s>]", re.IGNORECASE)
MARKDOWN_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*\|", re.MULTILINE)
MARKDOWN = re.compile(r"^(#{1,6} |\* |- |\d+\. |\|.*\||```)", re.MULTILINE)
HL7_START = re.compile(r"^\x0b?(MSH|FHS|BHS)\|[\^~\\&#]{3,5}\|")  # MSH|^~\&| : separators, then encodings
FHIR_RESOURCE = re.compile(r'"resourceType"\s*:\s*"[A-Z][A-Za-z]+"')
VCF_FIXED = ["POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
CDA = re.compile(r"<ClinicalDocument\s[^>]*xmlns=[\"']urn:hl7-org:v3[\"']")
FHIR_XML = re.compile(r"<[A-Z][A-Za-z]+\s[^>]*xmlns=[\"']http://hl7\.org/fhir[\"']")


def _majority_delimiter(lines: list[str]) -> str | None:
    """The delimiter that splits most lines into the same number of fields (the Sniffer gives up on ragged rows)."""
    best: tuple[float, str] | None = None
    for delimiter in ",;\t|":
        counts = [line.count(delimiter) for line in lines]
        mode = max(set(counts), key=counts.count)
        share = counts.count(mode) / len(counts)
        if mode > 0 and share >= 0.6 and (best is None or share > best[0]):
            best = (share, delimiter)
    return best[1] if best else None


def _delimited(text: str) -> str | None:
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if len(text) >= HEAD or not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # a cut or unterminated last line says nothing about the dialect
    if len(lines) < 2:
        return None
    try:
        delimiter = csv.Sniffer().sniff("\n".join(lines[:20]), delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = _majority_delimiter(lines)
        if delimiter is None:
            return None
    rows = list(csv.reader(lines, delimiter=delimiter))
    widths = [len(r) for r in rows]
    mode = max(set(widths), key=widths.count)
    if mode < 2 or widths.count(mode) < len(widths) * 0.6:
        return None  # ragged beyond a few bad rows: the table reader will say what is wrong
    words = sorted(len(field.split()) for row in rows for field in row)
    if words[len(words) // 2] > 3:
        return None  # prose with commas in it, not a table: most fields would be sentences
    return "tsv" if delimiter == "\t" else "csv"


def _space_separated(text: str, complete: bool) -> bool:
    """A table written with single spaces between fields (R's write.table default, many tools' exports): every
    line splits into the same number of fields, strings may be quoted, and some column is numeric on every row.
    Text aligned by runs of spaces (printed output) is not this."""
    lines = [line.strip("\r") for line in text.splitlines()[:200] if line.strip()]
    if not complete or not text.endswith(("\n", "\r")):
        lines = lines[:-1]
    if len(lines) < 3 or any("  " in line.strip() or "\t" in line for line in lines):
        return False
    rows = list(csv.reader((line.strip() for line in lines), delimiter=" ", quotechar='"'))
    width = len(rows[1])
    if width < 2 or any(len(r) != width for r in rows[1:]) or len(rows[0]) not in (width, width - 1):
        return False
    return any(all(REAL.match(r[c]) or r[c] == "NA" for r in rows[1:]) for c in range(width))


def _json_lines(text: str, complete: bool) -> str | None:
    """NDJSON / JSON Lines: two or more lines, nearly every one a JSON object or array of its own."""
    lines = [line for line in text.splitlines()[:200] if line.strip()]
    if not complete:
        lines = lines[:-1]
    if len(lines) < 2:
        return None
    parsed = []
    for line in lines:
        with contextlib.suppress(ValueError, RecursionError):
            parsed.append(isinstance(json.loads(line), dict | list))
            continue
        parsed.append(False)
    if not parsed[0] or sum(parsed) < 2 or sum(parsed) < len(lines) * 0.6:
        return (
            None  # a damaged line or two is still JSON Lines (their text is screened), a pretty-printed document is not
        )
    return "fhir" if FHIR_RESOURCE.search(lines[0]) else "ndjson"


def _json(text: str, complete: bool) -> str:
    if complete:
        try:
            data = json.loads(text)
        except ValueError:
            if lines := _json_lines(text, complete):
                return lines
            if FHIR_RESOURCE.search(text[:4096]):
                return "fhir"  # a FHIR resource cut short: still judged as FHIR
            # Malformed JSON is still JSON (reviewed as unreadable), and a notebook by its keys.
            return "ipynb" if '"nbformat"' in text or '"cell_type"' in text else "json"
        if isinstance(data, dict) and "nbformat" in data:
            return "ipynb"
        first = data[0] if isinstance(data, list) and data else data
        if isinstance(first, dict) and isinstance(first.get("resourceType"), str):
            return "fhir"  # a resource, a Bundle, or a bare array of resources
        return "json"
    start = text[:4096]
    if '"nbformat"' in text or ('"cells"' in start and '"cell_type"' in text):
        return "ipynb"
    if lines := _json_lines(text, complete):
        return lines
    if re.match(r'\{\s*"resourceType"\s*:', start) or FHIR_RESOURCE.search(start[:512]):
        return "fhir"
    return "json"


def text_kind(text: str, complete: bool) -> str:
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("##fileformat=VCF"):
        return "vcf"
    if stripped.startswith(("@HD\t", "@SQ\t", "@RG\t", "@PG\t", "@CO\t")) or (
        len(SAM_LINE.findall(stripped[:8192])) >= 2
    ):
        return "sam"
    if stripped.startswith("@") and FASTQ_RECORD.match(stripped):
        return "fastq"
    if HL7_START.match(stripped):
        return "hl7v2"
    if stripped.startswith(("{", "[")):
        return _json(stripped, complete)
    if stripped.startswith("<"):
        low = stripped[:4096].lower()
        if "<svg" in low:
            return "svg"
        if FHIR_XML.search(stripped[:4096]):
            return "fhir"
        if CDA.search(stripped[:4096]):
            return "cda"
        if HTML.search(stripped[:4096]):
            return "html"
        if low.startswith("<?xml"):
            return "xml"
    if stripped.startswith("#CHROM\t") and stripped.split("\n", 1)[0].rstrip("\r").split("\t")[1:8] == VCF_FIXED:
        return "vcf"  # a VCF without its meta lines; PLINK 2's .pvar and --glm results also start #CHROM: tables
    if MARKDOWN_TABLE_RULE.search(stripped[:HEAD]) or re.match(r"#{1,6} \S", stripped):
        return "markdown"  # a heading first, or a pipe table's rule line: a document, even if pipes abound
    if genotype := genotype_kind(stripped, complete):
        return genotype
    kind = _delimited(stripped)
    if kind:
        return kind
    if _space_separated(stripped, complete):
        return "ssv"
    if HTML.search(stripped[:4096]) and "</" in stripped[:8192]:
        return "html"
    return "markdown" if MARKDOWN.search(stripped[:8192]) else "text"


def textual(head: bytes, complete: bool) -> str:
    text = decode_text(head)
    if text is None:
        return "binary"
    return text_kind(text, complete)
