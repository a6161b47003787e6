"""File type and size against the policy: what may be released at all, and how large."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from output_checks.checks.base import Context, Subject, finding
from output_checks.verdicts import Finding, Verdict

# What a name claims; when the content is plain text or bytes instead, the file cannot pass unread.
CLAIMS = {
    ".csv": {"csv", "tsv"},
    ".tsv": {"tsv", "csv"},
    ".parquet": {"parquet"},
    ".xlsx": {"xlsx"},
    ".ipynb": {"ipynb"},
    ".pdf": {"pdf"},
    ".png": {"png"},
    ".zip": {"zip"},
}
ARCHIVES = frozenset({"zip", "tar", "gzip", "bzip2", "xz"})
WHY = {
    "empty": "the file is empty: nothing to release, or a failed export",
    "pickle": "a Python pickle: it is never unpickled to inspect it (unpickling runs code)",
    "npy": "a NumPy array: opaque numbers that cannot be judged automatically",
    "hdf5": "an HDF5 container: opaque to the checks",
    "sqlite": "a database file: it can hold whole tables of records",
    "executable": "an executable program",
    "binary": "an unrecognised binary file",
    "ole": "a legacy Office file (xls/doc): save it as xlsx, csv or pdf",
    "docx": "a Word document: export it as PDF or markdown",
    "pptx": "a PowerPoint file: export it as PDF",
    "arrow": "an Arrow IPC file: export it as Parquet or CSV",
    "hl7v2": "HL7 v2 messages: a health-record interchange format, not a research output",
    "cda": "an HL7 CDA document: a clinical document format, not a research output",
    "stata": "a Stata dataset: export aggregate tables as CSV",
    "spss-sav": "an SPSS dataset: export aggregate tables as CSV",
    "sas-xpt": "a SAS transport file: export aggregate tables as CSV",
    "sas7bdat": "a SAS dataset: export aggregate tables as CSV",
    "rds": "an R serialised object: export tables as CSV, figures as PNG or PDF",
    "rdata": "an R workspace: export tables as CSV, figures as PNG or PDF",
}


class FileTypeCheck:
    name: ClassVar[str] = "file_type"
    kinds: ClassVar[frozenset[str] | None] = None

    def run(self, subject: Subject, ctx: Context) -> Iterator[Finding]:
        policy = ctx.policy
        if subject.size > policy.max_file_bytes:
            yield finding(
                self.name,
                Verdict.REVIEW,
                f"{subject.size / 2**20:.1f} MB: larger than the policy's {policy.max_file_mb:g} MB per file",
            )
        kind = subject.kind
        claimed = CLAIMS.get(subject.path.suffix.lower())  # archive members keep their suffix when unpacked
        if claimed and kind not in claimed and kind in ("text", "markdown", "binary", "json"):
            named = "/".join(sorted(claimed))
            why = f"named as {named} but its content could not be read as one: a reviewer must open it"
            yield finding(self.name, Verdict.REVIEW, why)
        if kind in policy.allowed_types or kind in policy.blocked_types or kind in ARCHIVES:
            return
        why = WHY.get(kind, f"{kind} files are not on the policy's list of releasable types")
        yield finding(self.name, Verdict.REVIEW, why)
