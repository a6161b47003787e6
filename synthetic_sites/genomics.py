"""Synthetic sequencing-lab output: the variant panel, bgzipped + tabix-indexed VCFs and small indexed BAMs.

Owns the genomic "truth" shared with the phenotype model: the GRCh38 cardiac gene regions and the planted
variants whose carriers get the planted phenotypes (familial hypercholesterolaemia, LPA-driven MI risk,
hypertrophic and dilated cardiomyopathy). The VCF writer builds genotype text with numpy, not a per-genotype
loop, so large sample × variant matrices are written in seconds; it streams in variant blocks, so a lab with
many samples never needs the whole matrix in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import pandas as pd
import pysam

from kernel.errors import EnclaveError

# GRCh38 primary assembly lengths, in the order the VCF header and tabix index use.
CONTIG_LENGTHS: dict[str, int] = {
    "chr1": 248_956_422,
    "chr2": 242_193_529,
    "chr3": 198_295_559,
    "chr4": 190_214_555,
    "chr5": 181_538_259,
    "chr6": 170_805_979,
    "chr7": 159_345_973,
    "chr8": 145_138_636,
    "chr9": 138_394_717,
    "chr10": 133_797_422,
    "chr11": 135_086_622,
    "chr12": 133_275_309,
    "chr13": 114_364_328,
    "chr14": 107_043_718,
    "chr15": 101_991_189,
    "chr16": 90_338_345,
    "chr17": 83_257_441,
    "chr18": 80_373_285,
    "chr19": 58_617_616,
    "chr20": 64_444_167,
    "chr21": 46_709_983,
    "chr22": 50_818_468,
    "chrX": 156_040_895,
    "chrY": 57_227_415,
    "chrM": 16_569,
}
CONTIG_ORDER = {name: i for i, name in enumerate(CONTIG_LENGTHS)}

# GRCh38 gene spans (1-based, inclusive) of the cardiac genes the panel targets.
GENE_REGIONS: dict[str, tuple[str, int, int]] = {
    "PCSK9": ("chr1", 55_039_548, 55_064_852),
    "APOB": ("chr2", 21_001_429, 21_044_073),
    "TTN": ("chr2", 178_525_989, 178_830_802),
    "LPA": ("chr6", 160_531_483, 160_664_275),
    "MYBPC3": ("chr11", 47_331_406, 47_352_702),
    "MYH7": ("chr14", 23_412_740, 23_435_660),
    "LDLR": ("chr19", 11_089_462, 11_133_820),
}


@dataclass(frozen=True)
class PlantedVariant:
    """A variant whose carriers get a phenotype; `group` names the effect in the phenotype model."""

    group: str
    gene: str
    chrom: str
    pos: int
    id: str
    ref: str
    alt: str
    impact: str
    clnsig: str


# Carriers of any variant of a group share its effect. rs10455872 (LPA) and rs5742904 (APOB R3527Q) are the
# real GRCh38 positions; the others are plausible made-up pathogenic SNVs inside the real gene spans.
PLANTED: tuple[PlantedVariant, ...] = (
    PlantedVariant("PCSK9_GOF", "PCSK9", "chr1", 55_058_620, ".", "A", "T", "MODERATE", "Pathogenic"),
    PlantedVariant("APOB_FH", "APOB", "chr2", 21_006_288, "rs5742904", "C", "T", "MODERATE", "Pathogenic"),
    PlantedVariant("TTN_TV", "TTN", "chr2", 178_561_483, ".", "C", "T", "HIGH", "Pathogenic"),
    PlantedVariant("TTN_TV", "TTN", "chr2", 178_592_217, ".", "G", "A", "HIGH", "Pathogenic"),
    PlantedVariant("TTN_TV", "TTN", "chr2", 178_623_904, ".", "C", "A", "HIGH", "Pathogenic"),
    PlantedVariant("TTN_TV", "TTN", "chr2", 178_651_370, ".", "G", "T", "HIGH", "Pathogenic"),
    PlantedVariant("LPA_RISK", "LPA", "chr6", 160_589_086, "rs10455872", "A", "G", "MODIFIER", "risk_factor"),
    PlantedVariant("MYBPC3_HCM", "MYBPC3", "chr11", 47_332_811, ".", "G", "A", "HIGH", "Pathogenic"),
    PlantedVariant("MYBPC3_HCM", "MYBPC3", "chr11", 47_342_705, ".", "C", "T", "HIGH", "Pathogenic"),
    PlantedVariant("MYH7_HCM", "MYH7", "chr14", 23_425_972, ".", "G", "A", "MODERATE", "Pathogenic"),
    PlantedVariant("MYH7_HCM", "MYH7", "chr14", 23_429_005, ".", "C", "T", "MODERATE", "Pathogenic"),
    PlantedVariant("LDLR_FH", "LDLR", "chr19", 11_102_786, ".", "G", "A", "HIGH", "Pathogenic"),
    PlantedVariant("LDLR_FH", "LDLR", "chr19", 11_105_436, ".", "C", "T", "HIGH", "Pathogenic"),
    PlantedVariant("LDLR_FH", "LDLR", "chr19", 11_106_630, ".", "G", "T", "MODERATE", "Pathogenic"),
)
PLANTED_GROUPS: tuple[str, ...] = tuple(dict.fromkeys(v.group for v in PLANTED))

# The window the demo BAMs cover: the LDLR exons holding the planted FH variants, so carriers' reads show them.
BAM_REGION: tuple[str, int, int] = ("chr19", 11_101_001, 11_107_000)

_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


def _panel_rng(seed: int, tag: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0x6E0, tag])


def synthetic_panel(n_variants: int, seed: int) -> pd.DataFrame:
    """A sorted SNV panel of `n_variants` with unique positions: the planted variants, rarer benign/uncertain
    variants across the cardiac genes and common background SNPs across the autosomes.

    Columns: chrom, pos, id, ref, alt, gene ("" off-target), impact, clnsig, af (the population allele
    frequency genotypes are drawn from), planted (index into PLANTED, or -1).
    """
    if n_variants < len(PLANTED):
        raise EnclaveError(f"a panel needs at least {len(PLANTED)} variants (the planted ones), got {n_variants}")
    rng = _panel_rng(seed, 1)
    planted = pd.DataFrame(
        {
            "chrom": [v.chrom for v in PLANTED],
            "pos": [v.pos for v in PLANTED],
            "id": [v.id for v in PLANTED],
            "ref": [v.ref for v in PLANTED],
            "alt": [v.alt for v in PLANTED],
            "gene": [v.gene for v in PLANTED],
            "impact": [v.impact for v in PLANTED],
            "clnsig": [v.clnsig for v in PLANTED],
            "af": [0.08 if v.group == "LPA_RISK" else 0.005 for v in PLANTED],
            "planted": np.arange(len(PLANTED)),
        }
    )
    n_background = n_variants - len(PLANTED)
    n_gene = round(n_background * 0.4)
    n_wide = n_background - n_gene
    taken = {(v.chrom, v.pos) for v in PLANTED}

    # Gene variants: weighted towards the long genes (TTN) but every gene gets some.
    genes = list(GENE_REGIONS)
    spans = np.array([GENE_REGIONS[g][2] - GENE_REGIONS[g][1] for g in genes], dtype=float)
    weights = np.sqrt(spans) / np.sqrt(spans).sum()
    gene_idx = rng.choice(len(genes), size=n_gene, p=weights)
    gene_chrom = [GENE_REGIONS[genes[i]][0] for i in gene_idx]
    gene_pos = [int(rng.integers(GENE_REGIONS[genes[i]][1], GENE_REGIONS[genes[i]][2] + 1)) for i in gene_idx]
    # Off-target SNPs: autosomes in proportion to length.
    autosomes = [c for c in CONTIG_LENGTHS if c not in ("chrX", "chrY", "chrM")]
    lengths = np.array([CONTIG_LENGTHS[c] for c in autosomes], dtype=float)
    wide_idx = rng.choice(len(autosomes), size=n_wide, p=lengths / lengths.sum())
    wide_chrom = [autosomes[i] for i in wide_idx]
    wide_pos = [int(rng.integers(10_000, CONTIG_LENGTHS[autosomes[i]] - 10_000)) for i in wide_idx]

    chroms = gene_chrom + wide_chrom
    positions = gene_pos + wide_pos
    in_gene = np.array([True] * n_gene + [False] * n_wide)
    gene_names = [genes[i] for i in gene_idx] + [""] * n_wide
    # Unique positions: nudge collisions (rare) to the next free base.
    for i, (c, p) in enumerate(zip(chroms, positions, strict=True)):
        while (c, p) in taken:
            p += 1
        taken.add((c, p))
        positions[i] = p

    ref_idx = rng.integers(0, 4, n_background)
    alt_idx = (ref_idx + rng.integers(1, 4, n_background)) % 4
    rare = in_gene & (rng.random(n_background) < 0.7)
    af = np.where(rare, rng.uniform(0.0005, 0.01, n_background), rng.uniform(0.02, 0.5, n_background))
    impact = np.where(in_gene, rng.choice(["LOW", "MODERATE", "MODIFIER"], n_background, p=[0.3, 0.3, 0.4]), "")
    clnsig = np.where(in_gene, rng.choice(["Benign", "Likely_benign", "Uncertain_significance"], n_background), "")
    background = pd.DataFrame(
        {
            "chrom": chroms,
            "pos": positions,
            "id": ".",
            "ref": _BASES[ref_idx].view("S1").astype(str),
            "alt": _BASES[alt_idx].view("S1").astype(str),
            "gene": gene_names,
            "impact": impact,
            "clnsig": clnsig,
            "af": af.round(5),
            "planted": -1,
        }
    )
    panel = pd.concat([planted, background], ignore_index=True)
    order = np.lexsort((panel["pos"].to_numpy(), panel["chrom"].map(CONTIG_ORDER).to_numpy()))
    return panel.iloc[order].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------- VCF

# Genotype text for alt-allele counts 0, 1, 2 and missing (-1 & 3 == 3), each followed by its tab, as one uint32
# so a whole matrix converts with a single take.
_GT_TEXT = np.frombuffer(b"0/0\t0/1\t1/1\t./.\t", dtype=np.uint32)
# BGZF level 1: about six times faster than the default for ~1.5× the size; genotype text compresses well anyway.
_BGZF_MODE = "wb1"


def _vcf_header(samples: Sequence[str]) -> bytes:
    lines = [
        "##fileformat=VCFv4.2",
        "##source=enclave-synthetic",
        "##reference=GRCh38",
        *(f"##contig=<ID={c},length={n},assembly=GRCh38>" for c, n in CONTIG_LENGTHS.items()),
        '##INFO=<ID=GENE,Number=1,Type=String,Description="HGNC symbol of the gene the variant lies in">',
        '##INFO=<ID=IMPACT,Number=1,Type=String,Description="Predicted impact: HIGH, MODERATE, LOW, MODIFIER">',
        '##INFO=<ID=CLNSIG,Number=1,Type=String,Description="Clinical significance (ClinVar vocabulary)">',
        '##FILTER=<ID=PASS,Description="All filters passed">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    ]
    columns = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
    if samples:
        columns += ["FORMAT", *samples]
    return ("\n".join([*lines, "\t".join(columns)]) + "\n").encode()


def _info_column(variants: pd.DataFrame) -> pd.Series:
    parts: list[pd.Series] = []
    for column, key in (("gene", "GENE"), ("impact", "IMPACT"), ("clnsig", "CLNSIG")):
        if column in variants:
            values = variants[column].fillna("").astype(str)
            parts.append(values.where(values == "", key + "=" + values))
    if not parts:
        return pd.Series(".", index=variants.index)
    info = parts[0]
    for part in parts[1:]:
        info = (info + ";" + part).str.strip(";").str.replace(";;", ";", regex=False)
    return info.where(info != "", ".")


class VcfWriter:
    """Writes a bgzipped VCF 4.2 block by block, then tabix-indexes it on close."""

    def __init__(self, path: Path, samples: Sequence[str]) -> None:
        self.path = Path(path)
        self.samples = list(samples)
        self.records = 0
        self._last: tuple[int, int] = (-1, -1)
        self._out = pysam.BGZFile(str(self.path), _BGZF_MODE)
        self._out.write(_vcf_header(self.samples))

    def write(self, variants: pd.DataFrame, genotypes: np.ndarray) -> None:
        """Append rows; `variants` must continue the file's (contig, position) order."""
        n = len(variants)
        if n == 0:
            return
        genotypes = np.asarray(genotypes)
        if genotypes.shape != (n, len(self.samples)):
            raise EnclaveError(
                f"{self.path.name}: genotypes are {genotypes.shape}, expected ({n}, {len(self.samples)})"
            )
        chrom_idx = variants["chrom"].map(CONTIG_ORDER)
        if chrom_idx.isna().any():
            raise EnclaveError(f"{self.path.name}: contig not in GRCh38: {variants['chrom'][chrom_idx.isna()].iloc[0]}")
        key = chrom_idx.to_numpy(np.int64) * 1_000_000_000 + variants["pos"].to_numpy(np.int64)
        if np.any(np.diff(key) < 0) or key[0] < self._last[0] * 1_000_000_000 + self._last[1]:
            raise EnclaveError(f"{self.path.name}: variants are not sorted by contig and position")
        self._last = (int(chrom_idx.iloc[-1]), int(variants["pos"].iloc[-1]))

        fixed = (
            variants["chrom"].astype(str)
            + "\t"
            + variants["pos"].astype(str)
            + "\t"
            + variants["id"].fillna(".").astype(str)
            + "\t"
            + variants["ref"].astype(str)
            + "\t"
            + variants["alt"].astype(str)
            + "\t.\tPASS\t"
            + _info_column(variants)
        )
        if not self.samples:
            self._out.write(("\n".join(fixed) + "\n").encode())
            self.records += n
            return
        # Each genotype becomes 3 bytes of text plus a separator; the last separator of a row is the newline.
        text = _GT_TEXT[genotypes.astype(np.int8) & 3].view(np.uint8).reshape(n, -1)
        text[:, -1] = ord("\n")
        rows = text
        prefixes = (fixed + "\tGT\t").str.encode("ascii").tolist()
        self._out.write(b"".join(p + r.tobytes() for p, r in zip(prefixes, rows, strict=True)))
        self.records += n

    def close(self) -> None:
        if self._out.closed:
            return
        self._out.close()
        pysam.tabix_index(str(self.path), preset="vcf", force=True)

    def __enter__(self) -> VcfWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._out.close()


def write_vcf(path: Path, samples: list[str], variants: pd.DataFrame, genotypes: np.ndarray) -> None:
    """Write a bgzipped VCF 4.2 (GRCh38 contigs, INFO GENE, FORMAT GT) and its tabix index `<path>.tbi`.

    `genotypes` is an int8 (n_variants, n_samples) matrix of alt-allele counts, -1 for missing. Rows are sorted
    by contig and position first if they are not already.
    """
    genotypes = np.asarray(genotypes, dtype=np.int8)
    order = np.lexsort((variants["pos"].to_numpy(), variants["chrom"].map(CONTIG_ORDER).fillna(-1).to_numpy()))
    if np.any(order != np.arange(len(order))):
        variants = variants.iloc[order].reset_index(drop=True)
        genotypes = genotypes[order]
    block = 10_000
    with VcfWriter(path, samples) as writer:
        for start in range(0, len(variants), block):
            writer.write(variants.iloc[start : start + block], genotypes[start : start + block])


def background_genotypes(rng: np.random.Generator, af: np.ndarray, n_samples: int) -> np.ndarray:
    """Hardy-Weinberg genotypes for rows of allele frequencies, with 0.3% missing calls."""
    g = rng.binomial(2, af[:, None], size=(af.size, n_samples)).astype(np.int8)
    g[rng.random(g.shape) < 0.003] = -1
    return g


# ---------------------------------------------------------------------------------------------------- BAM


def region_reference(seed: int, panel: pd.DataFrame, region: tuple[str, int, int] = BAM_REGION) -> np.ndarray:
    """The synthetic reference bases (uint8 ASCII) of `region`, agreeing with the panel's REF alleles there."""
    chrom, start, end = region
    seq = _BASES[_panel_rng(seed, 2).integers(0, 4, end - start + 1)].copy()
    inside = panel[(panel["chrom"] == chrom) & (panel["pos"] >= start) & (panel["pos"] <= end)]
    for pos, ref in zip(inside["pos"], inside["ref"], strict=True):
        seq[pos - start] = ord(ref)
    return seq


def write_bam(
    path: Path,
    sample_id: str,
    rng: np.random.Generator,
    reference: np.ndarray,
    variants: pd.DataFrame,
    genotypes: np.ndarray,
    *,
    region: tuple[str, int, int] = BAM_REGION,
    coverage: float = 25.0,
    read_length: int = 100,
) -> int:
    """Write a coordinate-sorted, indexed paired-end BAM of reads over `region` for one sample.

    Reads come from the sample's two haplotypes (its genotypes at `variants` inside the region), with 0.2%
    sequencing errors. Returns the number of reads written.
    """
    chrom, start, end = region
    span = end - start + 1
    haps = np.stack([reference, reference.copy()])
    for pos, alt, g in zip(variants["pos"], variants["alt"], genotypes, strict=True):
        if start <= pos <= end and g > 0:
            haps[1, pos - start] = ord(alt)
            if g == 2:
                haps[0, pos - start] = ord(alt)

    n_pairs = int(coverage * span / (2 * read_length))
    frag = np.clip(rng.normal(320, 40, n_pairs), 2 * read_length, 500).astype(int)
    left = (rng.random(n_pairs) * (span - frag)).astype(int)
    hap = rng.integers(0, 2, n_pairs)
    first_forward = rng.random(n_pairs) < 0.5
    flowcell = "".join(rng.choice(list("ABCDEFGHJKLMNPRSTVWXY0123456789"), 9))
    rg_id = f"{flowcell}.1"
    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": c, "LN": n} for c, n in CONTIG_LENGTHS.items()],
        "RG": [
            {
                "ID": rg_id,
                "SM": sample_id,
                "LB": f"LIB-{rng.integers(0, 16**6):06X}",
                "PL": "ILLUMINA",
                "PU": f"{flowcell}.1",
            }
        ],
    }
    tid = list(CONTIG_LENGTHS).index(chrom)
    errors = rng.random((n_pairs, 2, read_length)) < 0.002
    error_bases = _BASES[rng.integers(0, 4, (n_pairs, 2, read_length))]
    quals = rng.integers(25, 41, (n_pairs, 2, read_length)).astype(np.uint8)
    xy = rng.integers(1000, 30000, (n_pairs, 2))

    records: list[tuple[int, int, pysam.AlignedSegment]] = []
    for i in range(n_pairs):
        name = f"{flowcell}:1:{1101 + i % 16}:{xy[i, 0]}:{xy[i, 1] + i}"
        starts = (left[i], left[i] + frag[i] - read_length)
        for mate in (0, 1):
            offset = starts[mate]
            seq = haps[hap[i], offset : offset + read_length].copy()
            seq[errors[i, mate]] = error_bases[i, mate][errors[i, mate]]
            forward = first_forward[i] if mate == 0 else not first_forward[i]
            # The leftmost mate of a proper pair reads forward; which of R1/R2 that is varies.
            is_left = (mate == 0) == bool(first_forward[i])
            flag = 0x1 | 0x2 | (0x40 if mate == 0 else 0x80) | (0x10 if not forward else 0x20)
            seg = pysam.AlignedSegment()
            seg.query_name = name
            seg.flag = flag
            seg.reference_id = tid
            seg.reference_start = start - 1 + offset
            seg.mapping_quality = 60
            seg.cigartuples = [(0, read_length)]
            seg.next_reference_id = tid
            seg.next_reference_start = start - 1 + starts[1 - mate]
            seg.template_length = int(frag[i]) if is_left else -int(frag[i])
            seg.query_sequence = seq.tobytes().decode("ascii")
            seg.query_qualities = quals[i, mate]
            seg.set_tag("RG", rg_id)
            records.append((seg.reference_start, 0 if is_left else 1, seg))
    records.sort(key=lambda r: (r[0], r[1], r[2].query_name))
    with pysam.AlignmentFile(str(path), "wb", header=header) as bam:
        for _, _, seg in records:
            bam.write(seg)
    pysam.index(str(path))
    return len(records)
