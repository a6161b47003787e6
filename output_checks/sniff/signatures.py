"""Binary formats known by their bytes: fixed signatures at offset 0 (`MAGIC`), datasets whose signature is not a
prefix (old Stata, BGEN, R, Eigenstrat), pickles (parsed, never run), R's objects inside their compression, DICOM
with or without its preamble, and the Office documents inside a zip."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

from output_checks.sniff.encoding import HEAD

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


def is_dicom(head: bytes) -> bool:
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


def dataset_kind(head: bytes) -> str | None:
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


def r_serialised(inner: bytes) -> str | None:
    """R's save()/saveRDS() streams, seen inside their usual compression."""
    for magic, kind in MAGIC:
        if kind in ("rdata", "rds") and inner.startswith(magic):
            return kind
    return "rds" if R_ASCII.match(inner) else None


def decompress_head(data: bytes) -> bytes:
    """The first bytes of a bzip2 or xz stream (R compresses saved objects with either)."""
    import bz2
    import lzma

    try:
        if data.startswith(b"BZh"):
            return bz2.BZ2Decompressor().decompress(data, 64)
        return lzma.LZMADecompressor().decompress(data, 64)
    except (OSError, ValueError, EOFError, lzma.LZMAError):
        return b""


def gunzip_head(data: bytes) -> bytes:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, HEAD)
    except zlib.error:
        return b""


def zip_kind(path: Path) -> str:
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


def is_old_pickle(head: bytes) -> bool:
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


def dicom_by_parse(path: Path) -> bool:
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
