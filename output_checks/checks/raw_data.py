"""Raw genomic and imaging data never leaves, whatever the file is called: DICOM, BAM/CRAM/SAM, FASTQ, and VCF/BCF
with sample columns. A sites-only VCF is a table (type `vcf-sites`) and is checked like one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from output_checks.checks.base import Context, Subject, finding
from output_checks.verdicts import Finding, Verdict

WHAT = {
    "dicom": "a DICOM object: raw imaging data",
    "bam": "a BAM file: raw sequencing reads",
    "cram": "a CRAM file: raw sequencing reads",
    "sam": "a SAM file: raw sequencing reads",
    "fastq": "a FASTQ file: raw sequencing reads",
    "vcf": "a VCF with per-sample genotype columns: individual-level genomic data",
    "bcf": "a BCF with per-sample genotype columns: individual-level genomic data",
}


class RawDataCheck:
    name: ClassVar[str] = "raw_data"
    kinds: ClassVar[frozenset[str] | None] = frozenset(WHAT)

    def run(self, subject: Subject, ctx: Context) -> Iterator[Finding]:
        if subject.kind in ctx.policy.blocked_types:
            yield finding(self.name, Verdict.BLOCK, WHAT[subject.kind])
        else:
            yield finding(self.name, Verdict.REVIEW, f"{WHAT[subject.kind]} (allowed by this policy: check it)")
