"""Builders for small, real project views used by the reader tests: VCFs via pysam, DICOM via pydicom, parquet.

Everything is written with the same libraries a real materialisation uses, so the readers are exercised against
genuine bgzip/tabix and DICOM Part 10 files, never stand-ins.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

CONTIG_LENGTHS = {"chr1": 248_956_422, "chr2": 242_193_529, "chrX": 156_040_895}


def pseudonym(i: int, salt: str = "") -> str:
    digest = hashlib.sha256(f"{salt}{i}".encode()).hexdigest().upper()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return "P-" + "".join(alphabet[int(c, 16) * 2] for c in digest[:16])


def write_vcf(
    path: Path,
    samples: list[str],
    n_variants: int,
    *,
    seed: int = 0,
    genotype_seed: int | None = None,
    contigs: tuple[str, ...] = ("chr1", "chr2"),
    missing_rate: float = 0.02,
    multiallelic_rate: float = 0.05,
    extra_format: bool = False,
    genes: bool = True,
    index: bool = True,
) -> Path:
    """A sorted, bgzipped, tabix-indexed VCF of random diploid genotypes; returns the .vcf.gz path.

    `seed` fixes the sites (positions, alleles), `genotype_seed` the calls, so two files can share variants.
    """
    rng = np.random.default_rng(seed)
    grng = np.random.default_rng(seed + 7919 if genotype_seed is None else genotype_seed)
    per_contig = np.array_split(np.arange(n_variants), len(contigs))
    n = len(samples)
    lines = [
        "##fileformat=VCFv4.2",
        *(f"##contig=<ID={c},length={CONTIG_LENGTHS.get(c, 100_000_000)}>" for c in contigs),
        '##INFO=<ID=GENE,Number=1,Type=String,Description="Gene symbol">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples),
    ]
    bases = np.array(list("ACGT"))
    for contig, idx in zip(contigs, per_contig, strict=True):
        span = min(CONTIG_LENGTHS.get(contig, 100_000_000), 50_000_000)
        positions = np.sort(rng.choice(np.arange(1, span), size=len(idx), replace=False))
        for k, pos in zip(idx, positions, strict=True):
            ref = bases[rng.integers(4)]
            n_alt = 2 if rng.random() < multiallelic_rate else 1
            alts = [b for b in "ACGT" if b != ref][:n_alt]
            freq = grng.uniform(0.01, 0.5)
            a = (grng.random((n, 2)) < freq).astype(int)
            if n_alt == 2:
                a = np.where(grng.random((n, 2)) < 0.3, a * 2, a)
            gts = np.char.add(np.char.add(a[:, 0].astype(str), "/"), a[:, 1].astype(str))
            gts[grng.random(n) < missing_rate] = "./."
            if extra_format:
                dps = grng.integers(5, 60, n).astype(str)
                fields, fmt = np.char.add(np.char.add(gts, ":"), dps), "GT:DP"
            else:
                fields, fmt = gts, "GT"
            info = f"GENE=G{k % 97}" if genes else "."
            fixed = f"{contig}\t{pos}\trs{k}\t{ref}\t{','.join(alts)}\t50\tPASS\t{info}\t{fmt}\t"
            lines.append(fixed + "\t".join(fields))
    plain = path.with_suffix("")  # x.vcf.gz -> x.vcf
    plain.write_text("\n".join(lines) + "\n")
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    if index:
        pysam.tabix_index(str(path), preset="vcf", force=True)
    return path


def write_dicom(
    path: Path,
    pseudonym: str,
    *,
    study_uid: str,
    series_uid: str,
    instance: int,
    rows: int = 16,
    columns: int = 12,
    seed: int = 0,
) -> Path:
    """A de-identified cine MR slice as the view layout has it (PatientID = PatientName = pseudonym)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientID = pseudonym
    ds.PatientName = pseudonym
    ds.Modality = "MR"
    ds.InstanceNumber = instance
    ds.SliceLocation = float(instance % 10) * 8.0
    ds.TriggerTime = float(instance) * 33.3
    ds.PixelSpacing = [1.25, 1.5]
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    pixels = np.random.default_rng(seed).integers(0, 4096, size=(rows, columns), dtype=np.uint16)
    ds.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


PATIENT_COLUMNS = [
    "pseudonym",
    "site",
    "sex",
    "year_of_birth",
    "age_at_baseline",
    "ethnicity",
    "smoking",
    "baseline_date",
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_view(root: Path, *, n_variants: tuple[int, int] = (240, 160), with_imaging: bool = True) -> Path:
    """A complete small project view: two site VCFs sharing some variants, clinical tables, DICOM, manifest."""
    root.mkdir(parents=True, exist_ok=True)
    site_samples = {
        "rbh": [pseudonym(i, "rbh") for i in range(7)],
        "uclh": [pseudonym(i, "uclh") for i in range(5)],
    }
    genomics = root / "genomics"
    genomics.mkdir()
    # Same `seed` and 80 variants per contig: both sites hold the same chr1/chr2 variants (different calls),
    # and only rbh has chrX, so merging across sites is exercised both ways.
    write_vcf(
        genomics / "rbh.vcf.gz",
        site_samples["rbh"],
        n_variants[0],
        seed=11,
        genotype_seed=1,
        extra_format=True,
        contigs=("chr1", "chr2", "chrX"),
    )
    write_vcf(
        genomics / "uclh.vcf.gz",
        site_samples["uclh"],
        n_variants[1],
        seed=11,
        genotype_seed=2,
        contigs=("chr1", "chr2"),
    )
    everyone = [(p, site) for site, ps in site_samples.items() for p in ps]
    clinical = root / "clinical"
    clinical.mkdir()
    pd.DataFrame(
        {
            "pseudonym": [p for p, _ in everyone],
            "site": [s for _, s in everyone],
            "sex": ["F", "M"] * (len(everyone) // 2),
            "year_of_birth": [1950 + i for i in range(len(everyone))],
            "age_at_baseline": [60 - i for i in range(len(everyone))],
            "ethnicity": ["A"] * len(everyone),
            "smoking": ["never", "ex", "current"] * (len(everyone) // 3),
            "baseline_date": pd.to_datetime(["2020-01-01"] * len(everyone)),
        }
    ).to_parquet(clinical / "patients.parquet")
    pd.DataFrame(
        {
            "pseudonym": [p for p, _ in everyone for _ in range(3)],
            "measure": ["ldl", "sbp", "lvef"] * len(everyone),
            "value": np.arange(3 * len(everyone), dtype=float),
            "unit": ["mmol/L", "mmHg", "%"] * len(everyone),
            "measured_on": pd.to_datetime(["2021-06-01"] * 3 * len(everyone)),
        }
    ).to_parquet(clinical / "measurements.parquet")
    pd.DataFrame(
        {"pseudonym": [everyone[0][0]], "event": ["MI"], "event_date": pd.to_datetime(["2022-02-02"])}
    ).to_parquet(clinical / "outcomes.parquet")
    if with_imaging:
        for k, (p, _) in enumerate(everyone[:3]):
            study = f"1.2.826.0.1.3680043.8.498.{k + 1}"
            for s in range(2):
                series = f"{study}.{s + 1}"
                for i in range(3):
                    write_dicom(
                        root / "imaging" / p / study / series / f"{i + 1}.dcm",
                        p,
                        study_uid=study,
                        series_uid=series,
                        instance=i + 1,
                        seed=k * 100 + s * 10 + i,
                    )
    files = sorted(f for f in root.rglob("*") if f.is_file())
    manifest = {
        "project": "cardio-risk",
        "build_id": "b-test",
        "built_at": "2025-01-01T00:00:00Z",
        "purpose": "DS-CVD",
        "counts": {"patients": len(everyone)},
        "compute": {"dask_workers": 2, "threads_per_worker": 1, "memory_limit": "2GiB"},
        "files": [{"path": str(f.relative_to(root)), "sha256": _sha256(f), "bytes": f.stat().st_size} for f in files],
    }
    (root / "MANIFEST.json").write_text(json.dumps(manifest, indent=2))
    return root


def pysam_frequencies(path: Path, excluded: frozenset[str] = frozenset()) -> pd.DataFrame:
    """AN/AC per alt allele by a plain pysam loop: the independent reference the readers are checked against;
    `excluded` samples are left out."""
    rows = []
    with pysam.VariantFile(str(path)) as vf:
        for rec in vf:
            kept = [v for name, v in rec.samples.items() if name not in excluded]
            called = [a for s in kept for a in (s.get("GT") or ()) if a is not None]
            for k, alt in enumerate(rec.alts or (), start=1):
                rows.append((rec.chrom, rec.pos, rec.ref, alt, len(called), sum(a == k for a in called)))
    return pd.DataFrame(rows, columns=["chrom", "pos", "ref", "alt", "an", "ac"])


def pysam_dosages(path: Path) -> tuple[list[str], np.ndarray]:
    """(samples, dosage matrix) by a pysam loop; -1 where any allele of the call is missing."""
    out = []
    with pysam.VariantFile(str(path)) as vf:
        samples = list(vf.header.samples)
        for rec in vf:
            for k in range(1, len(rec.alts or ()) + 1):
                row = []
                for s in samples:
                    gt = rec.samples[s].get("GT") or (None,)
                    row.append(-1 if any(a is None for a in gt) else sum(a == k for a in gt))
                out.append(row)
    return samples, np.array(out, dtype=np.int8).reshape(len(out), len(samples))
