"""Raw genomic and imaging data never leaves, whatever the file is called: DICOM, BAM/CRAM/SAM, FASTQ, VCF/BCF
with sample columns, and per-individual genotype or pedigree files (PLINK, BGEN, Oxford, Eigenstrat). A sites-only
VCF is a table (type `vcf-sites`) and is checked like one."""

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
    "plink-ped": "a PLINK .ped file: one row of genotypes per individual",
    "plink-fam": "a PLINK .fam/.tfam file: one row per individual (family, parents, sex, phenotype)",
    "plink-tped": "a PLINK .tped file: every individual's genotypes per variant",
    "plink-raw": "a PLINK --recode A file: one row of allele dosages per individual",
    "plink-bed": "a PLINK .bed/.pgen file: binary genotypes of every individual",
    "plink-samples": "a PLINK per-sample file (FID/IID rows: .psam, phenotypes, covariates, PCs, QC): one row per "
    "individual",
    "bgen": "a BGEN file: genotype probabilities of every sample",
    "oxford-gen": "an Oxford .gen file: genotype probabilities of every sample",
    "oxford-sample": "an Oxford .sample file: one row per sample with its covariates",
    "eigenstrat-geno": "an Eigenstrat .geno file: every individual's genotypes",
    "eigenstrat-ind": "an Eigenstrat .ind file: one row per individual (sex, population or status)",
}


class RawDataCheck:
    name: ClassVar[str] = "raw_data"
    kinds: ClassVar[frozenset[str] | None] = frozenset(WHAT)

    def run(self, subject: Subject, ctx: Context) -> Iterator[Finding]:
        if subject.kind in ctx.policy.blocked_types:
            yield finding(self.name, Verdict.BLOCK, WHAT[subject.kind])
        else:
            yield finding(self.name, Verdict.REVIEW, f"{WHAT[subject.kind]} (allowed by this policy: check it)")
