"""A file's real type, from its content: the extension is a claim the checker does not trust.

The package splits by concept: `encoding` (how much is read, and its text encoding), `signatures` (binary formats
by their bytes), `text_kinds` (which kind of text), `genomic_text` (genotype and pedigree text); this module
decides one file's type from them. Types are short names used by the policy (`allowed_types`, `blocked_types`) and
reported in the JSON `type` field.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from output_checks.sniff.encoding import HEAD, decode_text, open_text, text_encoding
from output_checks.sniff.genomic_text import CHROM, INTEGER, RAW_TEXT_KINDS, REAL, VARIANT_ID
from output_checks.sniff.signatures import (
    MAGIC,
    PICKLE,
    dataset_kind,
    decompress_head,
    dicom_by_parse,
    gunzip_head,
    is_dicom,
    is_old_pickle,
    r_serialised,
    zip_kind,
)
from output_checks.sniff.text_kinds import text_kind, textual

__all__ = [
    "CHROM", "HEAD", "INTEGER", "KINDS", "MAGIC", "REAL", "TEXT_KINDS", "VARIANT_ID", "decode_text", "open_text",
    "refine", "sniff", "sniff_bytes", "text_encoding", "vcf_samples",
]  # fmt: skip


def sniff_bytes(head: bytes, complete: bool) -> str:
    """The type of content whose first bytes are `head` (`complete` when `head` is the whole file)."""
    if not head:
        return "empty"
    if is_dicom(head):
        return "dicom"
    if head.startswith(b"\x1f\x8b"):
        inner = gunzip_head(head)
        if inner.startswith(b"BAM\x01"):
            return "bam"
        if inner.startswith(b"BCF\x02"):
            return "bcf"
        if r_kind := r_serialised(inner):
            return r_kind
        if inner:
            text = decode_text(inner[:HEAD])
            if text is not None:
                kind = text_kind(text, False)
                if kind in RAW_TEXT_KINDS:
                    return kind
        return "gzip"
    if head.startswith((b"BZh", b"\xfd7zXZ\x00")) and (r_kind := r_serialised(decompress_head(head))):
        return r_kind
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    for magic, kind in MAGIC:
        if head.startswith(magic):
            if kind == "bmp-maybe":
                return "bmp" if len(head) > 14 and head[6:10] == b"\x00\x00\x00\x00" else textual(head, complete)
            if kind == "executable-maybe":
                return "executable" if b"PE\x00\x00" in head[:1024] else textual(head, complete)
            if kind == "riff":
                return "webp" if head[8:12] == b"WEBP" else "riff"
            return kind
    if PICKLE.match(head) or is_old_pickle(head):
        return "pickle"
    if kind := dataset_kind(head):
        return kind
    return textual(head, complete)


def sniff(path: Path) -> str:
    """The real type of the file at `path`."""
    with path.open("rb") as fh:
        head = fh.read(HEAD + 1)
    complete = len(head) <= HEAD
    kind = sniff_bytes(head[:HEAD], complete)
    if kind == "zip":
        return zip_kind(path)
    if kind == "ipynb" and not complete:
        return "ipynb"
    if kind == "json" and not complete:
        return _json_whole(path)
    if kind == "binary" and dicom_by_parse(path):
        return "dicom"
    return kind


def _json_whole(path: Path) -> str:
    """A large JSON document: decide notebook or not from its top-level keys without loading it twice."""
    with path.open("rb") as fh:
        start = fh.read(HEAD).decode("utf-8", errors="ignore")
    return "ipynb" if '"nbformat"' in start or '"cell_type"' in start else "json"


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
