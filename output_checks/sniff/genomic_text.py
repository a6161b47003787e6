"""Raw genomic data written as text: the kinds that are raw data however they are named (`RAW_TEXT_KINDS`), and
PLINK, Oxford and Eigenstrat genotype and pedigree files, recognised by the shape of every line."""

from __future__ import annotations

import re

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


def genotype_kind(text: str, complete: bool) -> str | None:
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
