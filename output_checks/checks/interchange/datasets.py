"""Statistical packages' dataset files (Stata .dta, SPSS .sav, SAS transport and SAS7BDAT, R .rds/.RData): a dataset
is rows of records almost by definition. Only the header's observation count is read (never the values, and R's
serialisation is never deserialised); a dataset of at least the policy's minimum cell count of rows blocks."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path

from output_checks.checks.base import Context, Subject, finding
from output_checks.verdicts import Finding, Verdict

CHECK = "interchange"
NAMES = {
    "stata": "a Stata dataset (.dta)",
    "spss-sav": "an SPSS dataset (.sav)",
    "sas-xpt": "a SAS transport file (.xpt)",
    "sas7bdat": "a SAS dataset (.sas7bdat)",
    "rds": "an R serialised object (.rds)",
    "rdata": "an R workspace (.RData/.rda)",
}


def stata_rows(head: bytes) -> int | None:
    if head.startswith(b"<stata_dta>"):
        release = re.search(rb"<release>(\d+)</release>", head[:200])
        order = b"<byteorder>MSF" in head[:300]
        tag = head.find(b"<N>")
        if not release or tag < 0:
            return None
        width = 4 if int(release.group(1)) == 117 else 8
        raw = head[tag + 3 : tag + 3 + width]
        return int.from_bytes(raw, "big" if order else "little") if len(raw) == width else None
    if len(head) >= 10:
        return int.from_bytes(head[6:10], "big" if head[1] == 1 else "little")
    return None


def spss_rows(head: bytes) -> int | None:
    if len(head) < 84:
        return None
    little = struct.unpack("<i", head[64:68])[0] in (2, 3)
    rows = struct.unpack("<i" if little else ">i", head[80:84])[0]
    return rows if rows >= 0 else None  # -1: the writer did not say


def sas_rows(path: Path, kind: str) -> int | None:
    """pandas' SAS readers parse the header only when asked for an iterator (no values are decoded here)."""
    import pandas as pd

    reader = pd.read_sas(path, format="xport" if kind == "sas-xpt" else "sas7bdat", iterator=True)
    try:
        rows = getattr(reader, "nobs", None) if kind == "sas-xpt" else getattr(reader, "row_count", None)
    finally:
        reader.close()
    return int(rows) if rows is not None else None


def dataset_rows(subject: Subject) -> int | None:
    with subject.path.open("rb") as fh:
        head = fh.read(4096)
    if subject.kind == "stata":
        return stata_rows(head)
    if subject.kind == "spss-sav":
        return spss_rows(head)
    if subject.kind in ("sas-xpt", "sas7bdat"):
        return sas_rows(subject.path, subject.kind)
    return None


def check_dataset(subject: Subject, ctx: Context) -> Iterator[Finding]:
    what = NAMES[subject.kind]
    if subject.kind in ("rds", "rdata"):
        why = f"{what}: never deserialised, so its content cannot be checked; export tables as CSV"
        yield finding(CHECK, Verdict.REVIEW, why)
        return
    try:
        rows = dataset_rows(subject)
    except Exception as exc:  # a damaged header: the file is still a dataset nobody could read
        rows = None
        yield finding(CHECK, Verdict.REVIEW, f"{what} whose header could not be read ({type(exc).__name__})")
    if rows is not None and rows >= ctx.policy.min_cell_count:
        why = f"{what} of {rows:,} observations: record-level data in a statistical package's format"
        yield finding(CHECK, Verdict.BLOCK, why)
    else:
        count = "an unknown number of" if rows is None else f"{rows}"
        yield finding(CHECK, Verdict.REVIEW, f"{what} with {count} observations: export aggregate tables as CSV")
