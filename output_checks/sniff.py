"""A file's real type, from its content: the extension is a claim the checker does not trust.

Types are short names used by the policy (`allowed_types`, `blocked_types`) and reported in the JSON `type` field.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import json
import re
import zlib
from pathlib import Path

HEAD = 64 * 1024
SAS7BDAT = b"\x00" * 12 + bytes.fromhex("c2ea8160b31411cfbd92080009c7318c181f1011")

# Binary signatures at offset 0 (longest first where prefixes overlap).
MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp-maybe"),
    (b"%PDF-", "pdf"),
    (b"PAR1", "parquet"),
    (b"CRAM", "cram"),
    (b"BAM\x01", "bam"),
    (b"BCF\x02", "bcf"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x93NUMPY", "npy"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"SQLite format 3\x00", "sqlite"),
    (b"\x7fELF", "executable"),
    (b"MZ", "executable-maybe"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"),  # legacy Office (xls, doc)
    (b"ARROW1", "arrow"),
    (b"RIFF", "riff"),
    # Statistical packages' datasets and PLINK's binary genotypes (judged by the interchange and raw-data checks).
    (b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!", "sas-xpt"),
    (b"HEADER RECORD*******LIBV8   HEADER RECORD!!!!!!!", "sas-xpt"),
    (SAS7BDAT, "sas7bdat"),
    (b"<stata_dta>", "stata"),
    (b"$FL2", "spss-sav"),
    (b"$FL3", "spss-sav"),
    (b"RDX2\n", "rdata"),
    (b"RDX3\n", "rdata"),
    (b"RDA2\n", "rdata"),
    (b"RDA3\n", "rdata"),
    (b"RDB2\n", "rdata"),
    (b"RDB3\n", "rdata"),
    (b"X\n\x00\x00\x00\x02", "rds"),
    (b"X\n\x00\x00\x00\x03", "rds"),
    (b"l\x1b\x01", "plink-bed"),  # variant-major; ...
    (b"l\x1b\x00", "plink-bed"),  # ... and PLINK 0.99's individual-major layout
    (b"l\x1b\x02", "plink-bed"),  # PLINK 2 .pgen (its storage modes)
    (b"l\x1b\x03", "plink-bed"),
    (b"l\x1b\x10", "plink-bed"),
    (b"l\x1b\x11", "plink-bed"),
]
PICKLE = re.compile(rb"^\x80[\x02-\x05]")
FASTQ_RECORD = re.compile(r"^@[^\n]*\n[A-Za-z.*\-]+\n\+[^\n]*\n[^\n]+", re.MULTILINE)
SAM_LINE = re.compile(r"^[^\t\n]+\t\d+\t[^\t\n]+\t\d+\t\d+\t(\*|[0-9MIDNSHP=X]+)\t", re.MULTILINE)
HTML = re.compile(r"<(!doctype html|html|head|body|table|div|p|h[1-6])[\s>]", re.IGNORECASE)
MARKDOWN_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*\|", re.MULTILINE)
MARKDOWN = re.compile(r"^(#{1,6} |\* |- |\d+\. |\|.*\||```)", re.MULTILINE)


def _dicom(head: bytes) -> bool:
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    # A DICOM stream without its preamble starts with a group 0002 or 0008 element, explicit or implicit VR.
    if len(head) >= 8 and head[0:2] in (b"\x02\x00", b"\x08\x00") and head[3:4] == b"\x00":
        vr = head[4:6]
        if vr.isalpha() and vr.isupper():
            return True
        length = int.from_bytes(head[4:8], "little")
        return 0 < length < 1024 and head[2:4] in (b"\x00\x00", b"\x05\x00", b"\x08\x00", b"\x16\x00", b"\x18\x00")
    return False


STATA_RELEASES = frozenset({102, 103, 104, 105, 108, 110, 111, 113, 114, 115})
R_ASCII = re.compile(rb"^A\n[23]\n\d{5,7}\n\d{5,7}\n")
EIGENSTRAT_PACKED = re.compile(rb"^T?GENO\s+\d+\s+\d+\s")


def _dataset_kind(head: bytes) -> str | None:
    """Binary datasets whose signature is not a fixed prefix: old Stata (release, byte order, file type), BGEN
    (its magic after three length words), R's ASCII serialisation, Eigenstrat's packed genotypes."""
    if len(head) >= 4 and head[0] in STATA_RELEASES and head[1] in (1, 2) and head[2] == 1 and head[3] == 0:
        return "stata"
    if len(head) >= 20 and head[16:20] == b"bgen":
        return "bgen"
    if R_ASCII.match(head):
        return "rds"
    if EIGENSTRAT_PACKED.match(head):
        return "eigenstrat-geno"
    return None


def _r_serialised(inner: bytes) -> str | None:
    """R's save()/saveRDS() streams, seen inside their usual compression."""
    for magic, kind in MAGIC:
        if kind in ("rdata", "rds") and inner.startswith(magic):
            return kind
    return "rds" if R_ASCII.match(inner) else None


def decode_text(data: bytes) -> str | None:
    """Decode a text file's bytes (BOM-aware UTF-8/16/32, then Latin-1 for legacy exports); None if binary."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):  # fmt: skip
        if data.startswith(bom):
            try:
                return data.decode(codec, errors="strict" if len(data) < HEAD else "ignore")
            except UnicodeDecodeError:
                return None
    if b"\x00" in data[:4096]:
        # UTF-16 without a BOM: every other byte zero.
        even, odd = data[0:4096:2], data[1:4096:2]
        if odd.count(0) > len(odd) * 0.4 and even.count(0) < len(even) * 0.1:
            return data.decode("utf-16-le", errors="ignore")
        if even.count(0) > len(even) * 0.4 and odd.count(0) < len(odd) * 0.1:
            return data.decode("utf-16-be", errors="ignore")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 4:  # a multi-byte character cut by the head
            return data[: exc.start].decode("utf-8")
    text = data.decode("latin-1")
    controls = sum(1 for ch in text[:4096] if ord(ch) < 32 and ch not in "\t\n\r\f") + sum(
        1 for ch in text[:4096] if 0x7F <= ord(ch) < 0xA0
    )
    return None if controls > len(text[:4096]) * 0.05 else text


def text_encoding(data: bytes) -> str:
    """The codec that `decode_text` would use, for streaming a whole file."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):  # fmt: skip
        if data.startswith(bom):
            return codec
    if b"\x00" in data[:4096]:
        odd = data[1:4096:2]
        return "utf-16-le" if odd.count(0) > len(odd) * 0.4 else "utf-16-be"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        return "utf-8" if exc.start >= len(data) - 4 else "latin-1"


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


# Genotype and pedigree text (PLINK 1.9, Oxford, Eigenstrat), recognised by the shape of every line, not a name.
RAW_TEXT_KINDS = frozenset({"vcf", "fastq", "sam", "plink-ped", "plink-fam", "plink-tped", "plink-raw",
                            "plink-samples", "oxford-gen",
                            "oxford-sample", "eigenstrat-geno", "eigenstrat-ind"})  # fmt: skip
CHROM = re.compile(r"^(chr)?([0-9]|1[0-9]|2[0-6]|X|Y|XY|MT|M)$", re.IGNORECASE)
VARIANT_ID = re.compile(r"^(rs\d+|\.|[\w.-]*[A-Za-z:][\w.:;/<>*-]*)$")
ALLELE = re.compile(r"^([ACGTN]+|[0-4]|[-.*]|<[\w:]+>|[ID])$", re.IGNORECASE)
GENOTYPE_CALL = re.compile(r"^([ACGTNID0-4]|-|\.)$", re.IGNORECASE)
INTEGER = re.compile(r"^-?\d+$")
REAL = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
PHENOTYPE = re.compile(r"^(-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|NA|nan)$")
RAW_HEADER = ["FID", "IID", "PAT", "MAT", "SEX", "PHENOTYPE"]
HL7_START = re.compile(r"^\x0b?(MSH|FHS|BHS)\|[\^~\\&#]{3,5}\|")  # MSH|^~\&| : separators, then encodings
FHIR_RESOURCE = re.compile(r'"resourceType"\s*:\s*"[A-Z][A-Za-z]+"')
VCF_FIXED = ["POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
CDA = re.compile(r"<ClinicalDocument\s[^>]*xmlns=[\"']urn:hl7-org:v3[\"']")
FHIR_XML = re.compile(r"<[A-Z][A-Za-z]+\s[^>]*xmlns=[\"']http://hl7\.org/fhir[\"']")


def _fields(text: str, complete: bool, limit: int = 200) -> list[list[str]]:
    lines = text.splitlines()
    if not complete or not text.endswith(("\n", "\r")):
        lines = lines[:-1] if len(lines) > 1 else lines  # a cut last line says nothing
    return [line.split() for line in lines[:limit] if line.strip()]


def _is_pedigree(rows: list[list[str]], width: int) -> bool:
    """FID IID PAT MAT SEX PHENOTYPE: parents are 0 or individuals of the file, sex is 0/1/2."""
    ids = {r[1] for r in rows}
    return (
        all(
            r[4] in ("0", "1", "2") and PHENOTYPE.match(r[5]) and r[2] in ids | {"0"} and r[3] in ids | {"0"}
            for r in rows
        )
        and len({len(r) for r in rows}) == 1
        and len(rows[0]) == width
    )


def _genotype_kind(text: str, complete: bool) -> str | None:
    """A PLINK/Oxford/Eigenstrat text file, from every line's fields (None for anything else)."""
    rows = _fields(text, complete)
    if not rows:
        return None
    first = rows[0]
    if first[:6] == RAW_HEADER:
        return "plink-raw"
    if len(rows) >= 2 and (first[:2] in (["FID", "IID"], ["#FID", "IID"]) or first[0] == "#IID"):
        return "plink-samples"  # .psam, phenotype/covariate files, --pca .eigenvec, --missing .imiss: per sample
    if [f.lower() for f in first[:3]] == ["id_1", "id_2", "missing"]:
        return "oxford-sample"
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        return None
    width = widths.pop()
    if width == 1:
        values = [r[0] for r in rows]
        same = len({len(v) for v in values}) == 1
        if same and len(values) >= 3 and len(values[0]) >= 8 and all(set(v) <= set("0129") for v in values):
            return "eigenstrat-geno"
        return None
    if width == 3 and all(r[1] in ("M", "F", "U") for r in rows):
        return "eigenstrat-ind"
    if width == 6 and _is_pedigree(rows, 6):
        return "plink-fam"
    calls = width >= 8 and all(GENOTYPE_CALL.match(g) for r in rows[:50] for g in r[6:])
    if calls and (width - 6) % 2 == 0 and _is_pedigree([r[:6] for r in rows], 6):
        return "plink-ped"
    variants = all(CHROM.match(r[0]) and VARIANT_ID.match(r[1]) for r in rows)
    if variants and width in (3, 4) and all(INTEGER.match(r[-1]) and REAL.match(r[-2]) for r in rows):
        return "plink-map"
    placed = variants and width >= 6 and all(REAL.match(r[2]) and INTEGER.match(r[3]) for r in rows)
    if placed and width == 6 and all(ALLELE.match(r[4]) and ALLELE.match(r[5]) for r in rows):
        return "plink-bim"
    if placed and width % 2 == 0 and all(GENOTYPE_CALL.match(g) for r in rows[:50] for g in r[4:]):
        return "plink-tped"
    for lead in (5, 6):  # Oxford GEN: [chr] id rsid pos a1 a2, then three probabilities per sample
        shaped = width >= lead + 3 and (width - lead) % 3 == 0
        if (
            shaped
            and all(INTEGER.match(r[lead - 3]) and ALLELE.match(r[lead - 1]) for r in rows)
            and all(REAL.match(p) and 0 <= float(p) <= 1 for r in rows[:50] for p in r[lead:])
        ):
            return "oxford-gen"
    return None


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


def _text_kind(text: str, complete: bool) -> str:
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
    if genotype := _genotype_kind(stripped, complete):
        return genotype
    kind = _delimited(stripped)
    if kind:
        return kind
    if _space_separated(stripped, complete):
        return "ssv"
    if HTML.search(stripped[:4096]) and "</" in stripped[:8192]:
        return "html"
    return "markdown" if MARKDOWN.search(stripped[:8192]) else "text"


def _decompress_head(data: bytes) -> bytes:
    """The first bytes of a bzip2 or xz stream (R compresses saved objects with either)."""
    import bz2
    import lzma

    try:
        if data.startswith(b"BZh"):
            return bz2.BZ2Decompressor().decompress(data, 64)
        return lzma.LZMADecompressor().decompress(data, 64)
    except (OSError, ValueError, EOFError, lzma.LZMAError):
        return b""


def _gunzip_head(data: bytes) -> bytes:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, HEAD)
    except zlib.error:
        return b""


def _zip_kind(path: Path) -> str:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist()[:2000])
    except (zipfile.BadZipFile, OSError, ValueError):
        return "zip"
    if "[Content_Types].xml" in names:
        if any(n.startswith("xl/") for n in names):
            return "xlsx"
        if any(n.startswith("word/") for n in names):
            return "docx"
        if any(n.startswith("ppt/") for n in names):
            return "pptx"
    return "zip"


def sniff_bytes(head: bytes, complete: bool) -> str:
    """The type of content whose first bytes are `head` (`complete` when `head` is the whole file)."""
    if not head:
        return "empty"
    if _dicom(head):
        return "dicom"
    if head.startswith(b"\x1f\x8b"):
        inner = _gunzip_head(head)
        if inner.startswith(b"BAM\x01"):
            return "bam"
        if inner.startswith(b"BCF\x02"):
            return "bcf"
        if r_kind := _r_serialised(inner):
            return r_kind
        if inner:
            text = decode_text(inner[:HEAD])
            if text is not None:
                kind = _text_kind(text, False)
                if kind in RAW_TEXT_KINDS:
                    return kind
        return "gzip"
    if head.startswith((b"BZh", b"\xfd7zXZ\x00")) and (r_kind := _r_serialised(_decompress_head(head))):
        return r_kind
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    for magic, kind in MAGIC:
        if head.startswith(magic):
            if kind == "bmp-maybe":
                return "bmp" if len(head) > 14 and head[6:10] == b"\x00\x00\x00\x00" else _textual(head, complete)
            if kind == "executable-maybe":
                return "executable" if b"PE\x00\x00" in head[:1024] else _textual(head, complete)
            if kind == "riff":
                return "webp" if head[8:12] == b"WEBP" else "riff"
            return kind
    if PICKLE.match(head) or _old_pickle(head):
        return "pickle"
    if kind := _dataset_kind(head):
        return kind
    return _textual(head, complete)


def _old_pickle(head: bytes) -> bool:
    """Protocol 0/1 pickles look like text; pickletools parses the opcodes (never executes them) up to STOP."""
    if not head[:1] or head[:1] not in b"(cI]}lVSFNdpLKJGTU\x80" or b"." not in head[-4:]:
        return False
    import pickletools

    try:
        for opcode, _arg, _pos in pickletools.genops(head):
            if opcode.name == "STOP":
                return True
    except Exception:  # not a pickle stream
        return False
    return False


def _textual(head: bytes, complete: bool) -> str:
    text = decode_text(head)
    if text is None:
        return "binary"
    return _text_kind(text, complete)


def sniff(path: Path) -> str:
    """The real type of the file at `path`."""
    with path.open("rb") as fh:
        head = fh.read(HEAD + 1)
    complete = len(head) <= HEAD
    kind = sniff_bytes(head[:HEAD], complete)
    if kind == "zip":
        return _zip_kind(path)
    if kind == "ipynb" and not complete:
        return "ipynb"
    if kind == "json" and not complete:
        return _json_whole(path)
    if kind == "binary" and _dicom_by_parse(path):
        return "dicom"
    return kind


def _dicom_by_parse(path: Path) -> bool:
    """A DICOM data set without preamble or meta header (any transfer syntax): pydicom reads standard elements
    from it. Only element headers are parsed (pixel data and long values are skipped)."""
    import logging
    import warnings

    import pydicom
    from pydicom.errors import InvalidDicomError

    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(path, force=True, stop_before_pixels=True, defer_size=256)
            known = 0
            for element in dataset:
                known += bool(element.keyword) and element.tag.group in (0x0008, 0x0010, 0x0018, 0x0020, 0x0028)
                if known >= 3:
                    return True
    except (InvalidDicomError, ValueError, TypeError, KeyError, EOFError, OSError, OverflowError, NotImplementedError):
        return False
    except Exception:  # pydicom on arbitrary bytes can fail in many ways: then it is not DICOM
        return False
    return False


def _json_whole(path: Path) -> str:
    """A large JSON document: decide notebook or not from its top-level keys without loading it twice."""
    with path.open("rb") as fh:
        start = fh.read(HEAD).decode("utf-8", errors="ignore")
    return "ipynb" if '"nbformat"' in start or '"cell_type"' in start else "json"


def open_text(path: Path) -> io.TextIOBase:
    """A text stream over `path` in the encoding its head shows (gzip-transparent for the raw-data readers)."""
    with path.open("rb") as fh:
        head = fh.read(HEAD)
    if head.startswith(b"\x1f\x8b"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace", newline="")
    return path.open("r", encoding=text_encoding(head), errors="replace", newline="")


def vcf_samples(path: Path) -> int | None:
    """Sample columns in a VCF's #CHROM line (None if the header has none: malformed)."""
    with open_text(path) as fh:
        for number, line in enumerate(fh):
            if line.startswith("#CHROM"):
                return max(0, len(line.rstrip("\r\n").split("\t")) - 9)
            if not line.startswith("#") or number > 100_000:
                return None
    return None


# Every kind `sniff` and `refine` can name that no fixed signature in MAGIC names (the policy's vocabulary).
TEXT_KINDS = frozenset({
    "dicom", "pickle", "tar", "xlsx", "docx", "pptx", "zip", "csv", "tsv", "text", "markdown", "html", "xml", "json",
    "ipynb", "svg", "vcf", "vcf-sites", "bcf-sites", "sam", "fastq", "empty", "binary", "webp", "riff", "bmp",
    "ndjson", "fhir", "hl7v2", "cda", "ssv", "plink-map", "plink-bim", "bgen", "eigenstrat-geno", "rds", "stata",
    *RAW_TEXT_KINDS,
})  # fmt: skip
KINDS = frozenset({kind for _, kind in MAGIC} | TEXT_KINDS) - {"bmp-maybe", "executable-maybe"}


def refine(path: Path, kind: str) -> str:
    """Split types whose release depends on content: a VCF/BCF without samples is a sites table."""
    if kind == "vcf":
        try:
            return "vcf-sites" if vcf_samples(path) == 0 else "vcf"
        except (EOFError, OSError, zlib.error, UnicodeError):
            return "vcf"  # damaged: cannot show it has no samples, so it is treated as raw genomic data
    if kind == "bcf":
        try:
            import pysam

            pysam.set_verbosity(0)  # htslib's own warnings (missing index) are not findings
            with pysam.VariantFile(str(path)) as vf:
                return "bcf-sites" if len(vf.header.samples) == 0 else "bcf"
        except (OSError, ValueError):
            return "bcf"
    return kind
