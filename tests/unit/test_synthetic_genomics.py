"""Genomics: the variant panel, the vectorised VCF writer and the demo BAMs."""

from __future__ import annotations

import time
from pathlib import Path

import cyvcf2
import numpy as np
import pandas as pd
import pysam
import pytest

from kernel.errors import EnclaveError
from synthetic_sites.genomics import (
    BAM_REGION,
    CONTIG_LENGTHS,
    CONTIG_ORDER,
    GENE_REGIONS,
    PLANTED,
    region_reference,
    synthetic_panel,
    write_bam,
    write_vcf,
)

pytestmark = pytest.mark.unit


def test_panel_is_sorted_unique_and_holds_the_planted_variants() -> None:
    panel = synthetic_panel(3000, seed=7)
    assert len(panel) == 3000
    key = panel["chrom"].map(CONTIG_ORDER) * 10**9 + panel["pos"]
    assert key.is_monotonic_increasing and key.is_unique
    planted = panel[panel["planted"] >= 0]
    assert sorted(planted["planted"]) == list(range(len(PLANTED)))
    for gene, (chrom, start, end) in GENE_REGIONS.items():
        inside = panel[panel["gene"] == gene]
        assert len(inside) > 10, gene
        assert (inside["chrom"] == chrom).all() and inside["pos"].between(start, end).all(), gene
    assert (panel["ref"] != panel["alt"]).all()
    assert synthetic_panel(3000, seed=7).equals(panel)
    with pytest.raises(EnclaveError):
        synthetic_panel(5, seed=1)


def test_write_vcf_round_trips_with_index(tmp_path: Path) -> None:
    panel = synthetic_panel(500, seed=1)
    samples = [f"RBH-S{i:06d}" for i in range(1, 31)]
    rng = np.random.default_rng(0)
    genotypes = rng.integers(-1, 3, (len(panel), len(samples))).astype(np.int8)
    path = tmp_path / "x.vcf.gz"
    write_vcf(path, samples, panel, genotypes)
    assert (tmp_path / "x.vcf.gz.tbi").exists()

    vcf = cyvcf2.VCF(str(path))
    assert vcf.samples == samples
    header = vcf.raw_header
    assert "##fileformat=VCFv4.2" in header
    assert f"##contig=<ID=chr1,length={CONTIG_LENGTHS['chr1']}" in header
    for i, record in enumerate(vcf):
        where = (record.CHROM, record.POS)
        assert where == (panel["chrom"][i], panel["pos"][i])
        expected = genotypes[i]
        calls = np.array(record.genotypes)[:, :2]
        got = np.where(calls[:, 0] < 0, -1, calls.sum(axis=1))
        np.testing.assert_array_equal(got, expected)
        if panel["gene"][i]:
            assert record.INFO["GENE"] == panel["gene"][i]
    # Region query through the tabix index.
    chrom, start, end = GENE_REGIONS["LDLR"]
    hits = list(cyvcf2.VCF(str(path))(f"{chrom}:{start}-{end}"))
    assert len(hits) == int((panel["gene"] == "LDLR").sum())
    with pysam.VariantFile(str(path)) as f:
        assert len(list(f.fetch(chrom, start - 1, end))) == len(hits)


def test_write_vcf_sorts_unsorted_input_and_handles_no_samples(tmp_path: Path) -> None:
    variants = pd.DataFrame(
        {
            "chrom": ["chr2", "chr1", "chr10"],
            "pos": [5, 9, 1],
            "id": [".", "rs1", "."],
            "ref": list("ACG"),
            "alt": list("TGA"),
            "gene": ["", "PCSK9", ""],
        }
    )
    genotypes = np.array([[0, 1], [2, -1], [1, 1]], dtype=np.int8)
    write_vcf(tmp_path / "a.vcf.gz", ["s1", "s2"], variants, genotypes)
    records = list(cyvcf2.VCF(str(tmp_path / "a.vcf.gz")))
    assert [(r.CHROM, r.POS) for r in records] == [("chr1", 9), ("chr2", 5), ("chr10", 1)]
    assert records[0].ID == "rs1" and records[0].genotypes[0][:2] == [1, 1]
    write_vcf(tmp_path / "b.vcf.gz", [], variants, np.zeros((3, 0), np.int8))
    assert len(list(pysam.VariantFile(str(tmp_path / "b.vcf.gz")))) == 3


def test_write_vcf_rejects_bad_shapes_and_contigs(tmp_path: Path) -> None:
    variants = pd.DataFrame({"chrom": ["chr1"], "pos": [5], "id": ["."], "ref": ["A"], "alt": ["T"], "gene": [""]})
    with pytest.raises(EnclaveError):
        write_vcf(tmp_path / "c.vcf.gz", ["s1"], variants, np.zeros((1, 2), np.int8))
    with pytest.raises(EnclaveError):
        write_vcf(tmp_path / "d.vcf.gz", ["s1"], variants.assign(chrom="chrQ"), np.zeros((1, 1), np.int8))


def test_write_vcf_is_fast(tmp_path: Path) -> None:
    panel = synthetic_panel(50_000, seed=3)
    genotypes = np.random.default_rng(1).binomial(2, 0.2, (50_000, 500)).astype(np.int8)
    started = time.perf_counter()
    write_vcf(tmp_path / "big.vcf.gz", [f"S{i}" for i in range(500)], panel, genotypes)
    assert time.perf_counter() - started < 20
    assert (tmp_path / "big.vcf.gz.tbi").stat().st_size > 0


def test_bam_is_sorted_indexed_and_shows_the_sample_alleles(tmp_path: Path) -> None:
    panel = synthetic_panel(300, seed=2)
    chrom, start, end = BAM_REGION
    region = panel[(panel["chrom"] == chrom) & panel["pos"].between(start, end)]
    assert len(region) >= 3  # the planted LDLR variants
    genotypes = np.where(region["planted"] >= 0, 1, 0).astype(np.int8)
    path = tmp_path / "RBH-S000001.bam"
    n = write_bam(path, "RBH-S000001", np.random.default_rng(5), region_reference(2, panel), region, genotypes)
    assert n > 1000 and Path(f"{path}.bai").exists()
    with pysam.AlignmentFile(str(path)) as bam:
        header = bam.header.to_dict()
        assert header["HD"]["SO"] == "coordinate"
        (rg,) = header["RG"]
        assert rg["SM"] == "RBH-S000001" and rg["LB"] and rg["PL"] == "ILLUMINA" and rg["ID"]
        reads = list(bam.fetch(chrom, start - 1, end))
        assert len(reads) == n
        starts = [r.reference_start for r in reads]
        assert starts == sorted(starts)
        assert all(r.get_tag("RG") == rg["ID"] and r.is_proper_pair for r in reads)
        for pos, alt in zip(region["pos"][genotypes == 1], region["alt"][genotypes == 1], strict=True):
            bases = [
                col.alignment.query_sequence[col.query_position]
                for column in bam.pileup(chrom, pos - 1, pos, truncate=True)
                for col in column.pileups
                if col.query_position is not None
            ]
            share = bases.count(alt) / len(bases)
            assert 0.2 < share < 0.8, (pos, share)
