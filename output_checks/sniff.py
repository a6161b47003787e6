"""A file's real type, from its content: the extension is a claim the checker does not trust.

Types are short names used by the policy (`allowed_types`, `blocked_types`) and reported in the JSON `type` field.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import zlib
from pathlib import Path

HEAD = 64 * 1024

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


def _json(text: str, complete: bool) -> str:
    if complete:
        try:
            data = json.loads(text)
        except ValueError:
            # Malformed JSON is still JSON (reviewed as unreadable), and a notebook by its keys.
            return "ipynb" if '"nbformat"' in text or '"cell_type"' in text else "json"
        if isinstance(data, dict) and "nbformat" in data:
            return "ipynb"
        return "json"
    start = text[:4096]
    if '"nbformat"' in text or ('"cells"' in start and '"cell_type"' in text):
        return "ipynb"
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
    if stripped.startswith(("{", "[")):
        return _json(stripped, complete)
    if stripped.startswith("<"):
        low = stripped[:4096].lower()
        if "<svg" in low:
            return "svg"
        if HTML.search(stripped[:4096]):
            return "html"
        if low.startswith("<?xml"):
            return "xml"
    if stripped.startswith("#CHROM\t"):
        return "vcf"
    if MARKDOWN_TABLE_RULE.search(stripped[:HEAD]) or re.match(r"#{1,6} \S", stripped):
        return "markdown"  # a heading first, or a pipe table's rule line: a document, even if pipes abound
    kind = _delimited(stripped)
    if kind:
        return kind
    if HTML.search(stripped[:4096]) and "</" in stripped[:8192]:
        return "html"
    return "markdown" if MARKDOWN.search(stripped[:8192]) else "text"


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
        if inner:
            text = decode_text(inner[:HEAD])
            if text is not None:
                kind = _text_kind(text, False)
                if kind in ("vcf", "fastq", "sam"):
                    return kind
        return "gzip"
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
