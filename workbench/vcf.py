"""One site's bgzipped, tabix-indexed VCF: its header, and the per-chunk tasks that read its records.

Task functions here take only a file path and a region (plain, picklable values) and open the file themselves,
so they run unchanged on any Dask worker. Multi-allelic records are split into one row per alternate allele
(the allele's own AC/AF and dosage), the convention of `bcftools norm -m-`; records whose ALT is `.` carry no
alternate allele and are not listed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pysam

from workbench.errors import InvalidInputError, WorkbenchError
from workbench.genotypes import (
    GenotypeParseError,
    allele_counts,
    allele_numbers,
    dosages,
    parse_alleles,
)
from workbench.regions import ContigIndex, Region, read_tabix_index

_BGZF_MAGIC = b"\x1f\x8b\x08\x04"
_GENE = re.compile(r"(?:^|;)GENE=([^;]*)")
VARIANT_COLUMNS = ("chrom", "pos", "id", "ref", "alt", "gene", "site")
COUNT_COLUMNS = ("chrom", "pos", "ref", "alt", "an", "ac")


@dataclass(frozen=True)
class SiteVcf:
    """A site's VCF in a view: where it is, its samples, and the contigs its header or index name."""

    site: str
    path: Path
    samples: tuple[str, ...]
    declared_contigs: tuple[str, ...]
    index: dict[str, ContigIndex]

    @property
    def contigs(self) -> tuple[str, ...]:
        """Contigs that hold records (from the index), in index order."""
        return tuple(self.index)


def site_name(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".vcf")


def open_site_vcf(path: Path) -> SiteVcf:
    """Check that `path` is a BGZF VCF with a tabix index and read its header; InvalidInputError if not."""
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise InvalidInputError(path, f"cannot be opened ({exc.strerror or exc})") from exc
    if magic != _BGZF_MAGIC:
        kind = "plain text" if magic[:2] == b"##" else "gzip but not BGZF" if magic[:2] == b"\x1f\x8b" else "not VCF"
        raise InvalidInputError(path, f"is {kind}; a view's VCF must be bgzip-compressed with a tabix index")
    tbi = path.with_name(path.name + ".tbi")
    if not tbi.exists():
        raise InvalidInputError(path, f"has no tabix index ({tbi.name} is missing)")
    index = read_tabix_index(tbi)
    try:
        with pysam.TabixFile(str(path), index=str(tbi), encoding="utf-8") as tbx:
            header = list(tbx.header)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(path, f"VCF header cannot be read ({exc})") from exc
    if not header or not header[-1].startswith("#CHROM"):
        raise InvalidInputError(path, "has no #CHROM header line; not a VCF")
    columns = header[-1].split("\t")
    if columns[:8] != ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]:
        raise InvalidInputError(path, "#CHROM header line does not name the eight fixed VCF columns")
    samples = tuple(columns[9:])
    declared = tuple(m.group(1) for h in header if (m := re.match(r"##contig=<ID=([^,>]+)", h)))
    return SiteVcf(site_name(path), path, samples, declared, index)


@dataclass
class _Records:
    chrom: list[str]
    pos: np.ndarray
    ids: list[str]
    ref: list[str]
    alts: list[list[str]]
    info: list[str]
    first: np.ndarray
    second: np.ndarray

    def split_alleles(self) -> tuple[np.ndarray, np.ndarray]:
        """(record index, alt allele index) of every row once multi-allelic records are split."""
        n_alt = np.array([0 if a == ["."] else len(a) for a in self.alts], dtype=np.int64)
        records = np.repeat(np.arange(len(n_alt)), n_alt)
        starts = np.repeat(np.cumsum(n_alt) - n_alt, n_alt)
        alleles = np.arange(len(records)) - starts + 1
        return records, alleles

    def alt_column(self, records: np.ndarray, alleles: np.ndarray) -> list[str]:
        return [self.alts[r][a - 1] for r, a in zip(records.tolist(), alleles.tolist(), strict=True)]


@contextmanager
def _reading(path: str, region: Region) -> Iterator[None]:
    try:
        yield
    except InvalidInputError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, IndexError) as exc:
        raise InvalidInputError(path, f"records in {region} cannot be read: {exc}") from exc


def _fetch(tbx: pysam.TabixFile, region: Region) -> Iterator[str]:
    # Braces keep a contig name whole: without them htslib reads `1:1` (a real contig name) as a range.
    end = "" if region.end is None else str(region.end)
    return tbx.fetch(region=f"{{{region.contig}}}:{region.start}-{end}")


def _read_records(path: str, region: Region, n_samples: int, genotypes: bool = True) -> _Records:
    with _reading(path, region), pysam.TabixFile(path, encoding="utf-8") as tbx:
        lines = list(_fetch(tbx, region))
        chrom, pos, ids, ref, alts, info, formats, samples = [], [], [], [], [], [], [], []
        for line in lines:
            fields = line.split("\t", 9)
            if len(fields) < 8:
                raise InvalidInputError(path, f"record {fields[0]}:{fields[1:2]} has {len(fields)} columns, not 8+")
            p = int(fields[1])
            if p < region.start or (region.end is not None and p > region.end):
                continue  # overlaps the chunk but starts in a neighbour, which owns it
            chrom.append(fields[0])
            pos.append(p)
            ids.append(fields[2])
            ref.append(fields[3])
            alts.append(fields[4].split(","))
            info.append(fields[7])
            if genotypes and n_samples and len(fields) < 10:
                raise InvalidInputError(path, f"record {fields[0]}:{p} has no sample columns")
            formats.append(fields[8] if len(fields) > 9 else "")
            samples.append(fields[9] if len(fields) > 9 else "")
        try:
            first, second = parse_alleles(formats, samples, n_samples if genotypes else 0)
        except GenotypeParseError as exc:
            raise InvalidInputError(path, f"record {chrom[exc.record]}:{pos[exc.record]} {exc.problem}") from exc
    return _Records(chrom, np.asarray(pos, dtype=np.int64), ids, ref, alts, info, first, second)


def _text(values: list[str]) -> pd.Series:
    return pd.Series([None if v == "." else v for v in values], dtype="str")


def variant_frame(records: _Records | None, site: str) -> pd.DataFrame:
    """One row per alternate allele: chrom, pos, id, ref, alt, gene, site (empty with the same dtypes if None)."""
    if records is None:
        rows, alleles = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        records = _Records([], np.zeros(0, np.int64), [], [], [], [], np.zeros((0, 0)), np.zeros((0, 0)))
    else:
        rows, alleles = records.split_alleles()
    picked = rows.tolist()
    genes = [m.group(1) if (m := _GENE.search(records.info[r])) else "." for r in picked]
    return pd.DataFrame(
        {
            "chrom": pd.Series([records.chrom[r] for r in picked], dtype="str"),
            "pos": pd.Series(records.pos[rows], dtype="int64"),
            "id": _text([records.ids[r] for r in picked]),
            "ref": pd.Series([records.ref[r] for r in picked], dtype="str"),
            "alt": pd.Series(records.alt_column(rows, alleles), dtype="str"),
            "gene": _text(genes),
            "site": pd.Series([site] * len(picked), dtype="str"),
        }
    )


def count_frame(
    chrom: list[str], pos: np.ndarray, ref: list[str], alt: list[str], an: np.ndarray, ac: np.ndarray
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chrom": pd.Series(chrom, dtype="str"),
            "pos": pd.Series(pos, dtype="int64"),
            "ref": pd.Series(ref, dtype="str"),
            "alt": pd.Series(alt, dtype="str"),
            "an": pd.Series(an, dtype="int64"),
            "ac": pd.Series(ac, dtype="int64"),
        }
    )


def frequency_frame(counts: pd.DataFrame) -> pd.DataFrame:
    """Add `af` = ac / an (NaN where no sample was called)."""
    af = counts["ac"].to_numpy(dtype=np.float64) / np.where(counts["an"] > 0, counts["an"], np.nan)
    return counts.assign(af=pd.Series(af, index=counts.index, dtype="float64"))


# ---- tasks: module-level functions of (path, region, ...), run on workers --------------------------------------


def variants_task(path: str, site: str, region: Region) -> pd.DataFrame:
    return variant_frame(_read_records(path, region, 0, genotypes=False), site)


def _kept(rec: _Records, keep: np.ndarray | None, n_samples: int) -> _Records:
    """The records with only the samples (columns) `keep`, when given: the others are left out of every count."""
    if keep is not None:
        rec.first = rec.first.reshape(len(rec.pos), n_samples)[:, keep]
        rec.second = rec.second.reshape(len(rec.pos), n_samples)[:, keep]
    return rec


def counts_task(path: str, region: Region, n_samples: int, keep: np.ndarray | None = None) -> pd.DataFrame:
    """AN and AC per alternate allele over every sample in the file (or the samples `keep`), for records starting
    in `region`."""
    rec = _kept(_read_records(path, region, n_samples), keep, n_samples)
    rows, alleles = rec.split_alleles()
    an = allele_numbers(rec.first, rec.second)[rows]
    ac = allele_counts(rec.first, rec.second, rows, alleles)
    picked = rows.tolist()
    chrom, ref = [rec.chrom[r] for r in picked], [rec.ref[r] for r in picked]
    return count_frame(chrom, rec.pos[rows], ref, rec.alt_column(rows, alleles), an, ac)


def merge_counts_task(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Sum AN and AC of the same allele across site files (same region chunk), sorted by position."""
    merged = pd.concat(parts, ignore_index=True)
    if len(parts) > 1:
        merged = merged.groupby(["chrom", "pos", "ref", "alt"], sort=False, as_index=False)[["an", "ac"]].sum()
        merged = merged.sort_values(["pos", "ref", "alt"], kind="stable", ignore_index=True)
    return frequency_frame(merged)


def frequencies_task(path: str, region: Region, n_samples: int, keep: np.ndarray | None = None) -> pd.DataFrame:
    return frequency_frame(counts_task(path, region, n_samples, keep))


def genotypes_task(
    path: str, site: str, region: Region, n_samples: int, column: int, width: int, keep: np.ndarray | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Variant rows and their int8 dosage matrix (rows x `width`), this file's samples (or the samples `keep`) at
    columns column.. ."""
    rec = _kept(_read_records(path, region, n_samples), keep, n_samples)
    rows, alleles = rec.split_alleles()
    matrix = np.full((len(rows), width), -1, dtype=np.int8)
    matrix[:, column : column + rec.first.shape[1]] = dosages(rec.first, rec.second, rows, alleles)
    return variant_frame(rec, site), matrix


def check_contig(files: list[SiteVcf], contig: str) -> None:
    if not any(contig in f.index or contig in f.declared_contigs for f in files):
        known = sorted({c for f in files for c in (*f.contigs, *f.declared_contigs)})
        names = ", ".join(f.path.name for f in files)
        raise WorkbenchError(f"contig {contig!r} is not in {names}; contigs there: {', '.join(known[:30]) or 'none'}")
