"""Orchestration: stream a synthetic multimodal cohort into per-site custodian-zone folders.

Patients are simulated in fixed-size chunks (each with its own seeded generator, so output is a pure function of
the arguments) and appended to every site's open clinical files, consent file and sample manifest as they go;
DICOM studies are written per patient. Only what the variant files need is kept across chunks: each sequenced
sample's id and its genotypes at the planted variants (~15 bytes a sample). Once all patients are out, each
site's VCF is written in variant blocks (background genotypes drawn per block), then a few BAMs and site.yaml.
Memory is therefore bounded by the chunk size, not the cohort size.

Sites outside the UK (`extra_sites`, synthetic_sites/dutch.py) are simulated after the UK ones from random streams
of their own, with their own people, so adding one never changes a byte of the UK sites' exports.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pysam
import yaml
from tqdm import tqdm

from fabric.clinical.dialect import as_dialect
from kernel.errors import EnclaveError
from synthetic_sites import consent, identifiers, phenotypes
from synthetic_sites.clinical import CsvLocalWriter, FhirNdjsonWriter, SiteRecords, fhir_patient_id
from synthetic_sites.dutch import EXTRA_SITES
from synthetic_sites.genomics import (
    BAM_REGION,
    PLANTED,
    VcfWriter,
    background_genotypes,
    region_reference,
    synthetic_panel,
    write_bam,
)
from synthetic_sites.identifiers import Site
from synthetic_sites.imaging import CmrStudy, write_cine_study
from synthetic_sites.population import UK, IdentifierAllocator, Population

CHUNK_PATIENTS = 500
VARIANT_BLOCK = 1000
BAMS_PER_SITE = 5
MAX_PATIENTS = 5_000_000
MAX_VARIANTS = 1_000_000
DEFAULT_VARIANTS = 3000


@dataclass
class CohortSummary:
    """What a run wrote; the CLI prints it."""

    patients: int
    sites: int
    files: int
    bytes: int
    site_records: int = 0  # patient records across sites (a patient seen at two sites counts twice)
    multi_site_patients: int = 0
    imaging_studies: int = 0
    dicom_files: int = 0
    sequenced_samples: int = 0
    variants_per_site: int = 0
    bam_files: int = 0
    consent_events: int = 0
    per_site: dict[str, dict[str, int]] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [
            f"{self.patients} patients across {self.sites} sites: {self.files} files, {self.bytes / 1e6:.1f} MB",
            f"  clinical: {self.site_records} site records ({self.multi_site_patients} patients at two sites)",
            f"  imaging:  {self.imaging_studies} cardiac MRI studies, {self.dicom_files} DICOM files",
            f"  genomics: {self.sequenced_samples} sequenced samples x {self.variants_per_site} variants, "
            f"{self.bam_files} BAMs",
            f"  consent:  {self.consent_events} events",
        ]
        return "\n".join(lines)


class _SiteOutput:
    """One site's open files and counters while the cohort streams."""

    def __init__(self, root: Path, site: Site, index: int, seed: int, population: Population = UK) -> None:
        self.site = site
        self.index = index
        self.population = population
        # UK sites alternate formats; another country's site exports csv-local in its own dialect
        self.format = identifiers.site_format(index) if population.is_uk else "csv-local"
        self.dir = root / site.id
        self.seed = seed
        for sub in ("clinical", "imaging", "genomics/bam"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        clinical = self.dir / "clinical"
        self.clinical: CsvLocalWriter | FhirNdjsonWriter = (
            CsvLocalWriter(clinical, as_dialect(population.dialect), population.written)
            if self.format == "csv-local"
            else FhirNdjsonWriter(clinical, site.id)
        )
        self.consent: IO[str] = open(self.dir / "consent.ndjson", "w", encoding="utf-8")  # noqa: SIM115
        self.samples_csv: IO[str] = open(self.dir / "genomics" / "samples.csv", "w", encoding="utf-8")  # noqa: SIM115
        self.samples_csv.write("sample_id,nhs_number\n")
        self.mrns = 0
        self.mrn_of: dict[int, str] = {}  # pid → MRN for the chunk being written
        self.studies = 0
        self.records = 0
        self.dicom_files = 0
        self.consent_events = 0
        self.sample_ids: list[str] = []
        self.planted: list[np.ndarray] = []
        # BAM candidates: LDLR carriers first (their reads show the planted variant), then anyone sequenced.
        self.bam_carriers: list[str] = []
        self.bam_others: list[str] = []

    def next_mrns(self, n: int) -> list[str]:
        out = [identifiers.mrn(self.site, self.mrns + i) for i in range(n)]
        self.mrns += n
        return out

    def close_streams(self) -> None:
        self.clinical.close()
        self.consent.close()
        self.samples_csv.close()


def _validate(out: Path, patients: int, sites: int, seed: int, variants: int, extra_sites: tuple[str, ...]) -> None:
    def is_int(v: object) -> bool:
        return isinstance(v, int | np.integer) and not isinstance(v, bool)

    if not is_int(patients) or not 1 <= patients <= MAX_PATIENTS:
        raise EnclaveError(f"patients must be a whole number from 1 to {MAX_PATIENTS}, got {patients!r}")
    if not is_int(sites) or not 1 <= sites <= identifiers.MAX_SITES:
        raise EnclaveError(f"sites must be a whole number from 1 to {identifiers.MAX_SITES}, got {sites!r}")
    if not is_int(seed) or seed < 0:
        raise EnclaveError(f"seed must be a non-negative whole number, got {seed!r}")
    if not is_int(variants) or not len(PLANTED) <= variants <= MAX_VARIANTS:
        raise EnclaveError(f"variants must be a whole number from {len(PLANTED)} to {MAX_VARIANTS}, got {variants!r}")
    if not isinstance(extra_sites, tuple | list) or not all(s in EXTRA_SITES for s in extra_sites):
        raise EnclaveError(f"extra_sites must name sites among {', '.join(EXTRA_SITES)}, got {extra_sites!r}")
    if len(set(extra_sites)) != len(extra_sites):
        raise EnclaveError(f"extra_sites names a site twice: {extra_sites!r}")
    if out.exists() and not out.is_dir():
        raise EnclaveError(f"{out}: exists and is not a directory")
    for site in [*identifiers.choose_sites(sites), *(EXTRA_SITES[s][0] for s in extra_sites)]:
        target = out / site.id
        if target.exists() and any(target.iterdir()):
            # Never overwrite or mix into an existing export: it may be real custodian data.
            raise EnclaveError(f"{target}: already exists and is not empty; remove it or choose another folder")


def generate_cohort(
    out: Path,
    *,
    patients: int = 2000,
    sites: int = 5,
    seed: int = 42,
    progress: bool = True,
    variants: int = DEFAULT_VARIANTS,
    extra_sites: tuple[str, ...] = (),
) -> CohortSummary:
    """Write a synthetic multimodal cardiac cohort as per-site exports under `out/<site_id>/`: `patients` across
    `sites` UK sites, and for each site of `extra_sites` (e.g. `("umcu",)`, the Dutch site) as many patients again
    as an average UK site holds (patients // sites), its own people.

    Output is byte-identical for the same arguments, and the UK sites' for the same patients, sites and seed
    whatever `extra_sites` says. Raises EnclaveError for invalid arguments or when a target site folder already
    holds files.
    """
    out = Path(out)
    extra_sites = tuple(extra_sites) if isinstance(extra_sites, list) else extra_sites
    _validate(out, patients, sites, seed, variants, extra_sites)
    chosen = identifiers.choose_sites(sites)
    out.mkdir(parents=True, exist_ok=True)
    uk = [_SiteOutput(out, site, i, seed) for i, site in enumerate(chosen)]
    weights = 1.0 / (1.0 + 0.25 * np.arange(sites))
    weights /= weights.sum()
    nhs_allocator = identifiers.NhsNumberAllocator()
    extra = [
        _SiteOutput(out, EXTRA_SITES[sid][0], sites + j, seed, EXTRA_SITES[sid][1]) for j, sid in enumerate(extra_sites)
    ]
    outputs = uk + extra
    per_extra = max(1, patients // sites)
    total = patients + per_extra * len(extra)
    summary = CohortSummary(patients=total, sites=sites + len(extra), files=0, bytes=0, variants_per_site=variants)

    bar = tqdm(total=total, disable=not progress, file=sys.stderr, unit="patient", desc="synthetic cohort")
    try:
        for chunk_index, first in enumerate(range(0, patients, CHUNK_PATIENTS)):
            n = min(CHUNK_PATIENTS, patients - first)
            rng = np.random.default_rng([seed, 1, chunk_index])
            _write_chunk(rng, first, n, uk, weights, nhs_allocator, UK, summary)
            bar.update(n)
        for j, output in enumerate(extra):
            # its own streams ([seed, 5, j, chunk]) and patient numbers after everyone before it
            allocator = output.population.new_allocator()
            start = patients + j * per_extra
            for chunk_index, first in enumerate(range(0, per_extra, CHUNK_PATIENTS)):
                n = min(CHUNK_PATIENTS, per_extra - first)
                rng = np.random.default_rng([seed, 5, j, chunk_index])
                _write_chunk(rng, start + first, n, [output], np.ones(1), allocator, output.population, summary)
                bar.update(n)
        for output in outputs:
            output.close_streams()
        bar.set_description("genomics")
        panel = synthetic_panel(variants, seed)
        for output in outputs:
            _write_genomics(output, panel, summary)
            _write_site_yaml(output)
    finally:
        bar.close()
        for output in outputs:
            output.close_streams()

    for output in outputs:
        summary.imaging_studies += output.studies
        summary.dicom_files += output.dicom_files
        summary.site_records += output.records
        summary.consent_events += output.consent_events
        files = size = 0
        for dirpath, _, filenames in os.walk(output.dir):
            for name in filenames:
                files += 1
                size += os.path.getsize(os.path.join(dirpath, name))
        summary.files += files
        summary.bytes += size
        summary.per_site[output.site.id] = {
            "records": output.records,
            "imaging_studies": output.studies,
            "samples": len(output.sample_ids),
            "files": files,
            "bytes": size,
        }
    return summary


def _write_chunk(
    rng: np.random.Generator,
    first: int,
    n: int,
    outputs: list[_SiteOutput],
    weights: np.ndarray,
    allocator: IdentifierAllocator,
    population: Population,
    summary: CohortSummary,
) -> None:
    truth = phenotypes.simulate(rng, first, n)
    p = truth.patients
    n_sites = len(outputs)
    male = p["male"].to_numpy()
    p["nhs"] = allocator.draw(rng, n)  # the national identifier: NHS number, or the population's scheme's
    p["forename"] = population.forenames(rng, male)
    p["surname"] = population.surnames(rng, n)
    if not population.records_ethnicity:
        p["ethnicity"] = ""
    home = rng.choice(n_sites, n, p=weights)
    other = (home + 1 + rng.integers(0, max(n_sites - 1, 1), n)) % n_sites
    second = np.where(p["multi_site"].to_numpy() & (n_sites > 1), other, -1)
    p["home"] = home
    p["second_site"] = second
    postcode = np.empty(n, dtype=object)
    for s, output in enumerate(outputs):
        mask = home == s
        postcode[mask] = population.postcodes(rng, output.site, int(mask.sum()))
    p["postcode"] = postcode
    summary.multi_site_patients += int((second >= 0).sum())
    baseline = p["baseline"].to_numpy("datetime64[D]")
    consent_trails = consent.consent_lines(rng, p["nhs"].tolist(), baseline, population.consent_key)

    for s, output in enumerate(outputs):
        home_idx = np.flatnonzero(home == s)
        second_idx = np.flatnonzero(second == s)
        if not home_idx.size and not second_idx.size:
            continue
        _write_clinical(output, truth, home_idx, second_idx)
        for i in np.concatenate([home_idx, second_idx]):
            output.consent.write("\n".join(consent_trails[i]) + "\n")
            output.consent_events += len(consent_trails[i])
        wanted = home_idx[(p["imaged"].to_numpy() | p["sequenced"].to_numpy())[home_idx]]
        for i, row in zip(wanted, p.iloc[wanted].to_dict("records"), strict=True):
            if row["imaged"]:
                _write_study(output, row)
            if row["sequenced"]:
                _register_sample(output, row, truth.planted_genotypes[i])


def _write_clinical(output: _SiteOutput, truth: phenotypes.Chunk, home_idx: np.ndarray, second_idx: np.ndarray) -> None:
    p = truth.patients
    site_patients = pd.concat([p.iloc[home_idx], p.iloc[second_idx]])
    home_pids = p["pid"].to_numpy()[home_idx]
    second_pids = p["pid"].to_numpy()[second_idx]
    site_patients = site_patients.assign(mrn=output.next_mrns(len(site_patients)))
    site_patients["patient_id"] = [fhir_patient_id(output.seed, output.site.id, m) for m in site_patients["mrn"]]
    # Only the site that recorded the death knows of it.
    site_patients.loc[site_patients["pid"].isin(second_pids), "death_date"] = pd.NaT
    output.records += len(site_patients)
    ids = site_patients.set_index("pid")[["mrn", "patient_id"]]

    def attach(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.join(ids, on="pid", how="inner")

    d = truth.diagnoses
    diagnoses = d[d["pid"].isin(home_pids) | (d["pid"].isin(second_pids) & (d["category"] == "problem-list-item"))]
    m = truth.medications
    r = truth.results
    results = r[(r["pid"].isin(home_pids) & ~r["second"]) | (r["pid"].isin(second_pids) & r["second"])]
    e = truth.events
    records = SiteRecords(
        patients=site_patients,
        diagnoses=attach(diagnoses),
        medications=attach(m[m["pid"].isin(home_pids)]),
        results=attach(results),
        events=attach(e[e["pid"].isin(home_pids)]),
    )
    output.clinical.write(records, phenotypes.RESULT_UNITS)
    output.mrn_of = dict(zip(site_patients["pid"].tolist(), site_patients["mrn"], strict=True))


def _write_study(output: _SiteOutput, row: dict) -> None:
    pid = int(row["pid"])
    mrn = output.mrn_of[pid]
    rng = np.random.default_rng([output.seed, 2, pid])
    people = output.population
    referrer = f"{people.surnames(rng, 1)[0]}^{people.forenames(rng, np.array([rng.random() < 0.5]))[0]}^^Dr"
    output.studies += 1
    heart_rate = int(np.clip(rng.normal(80 if row["dcm"] else 66, 9), 45, 115))
    study_date = np.datetime64(row["study_date"], "D")
    study = CmrStudy(
        mrn=mrn,
        patient_name=f"{row['surname'].upper()}^{row['forename']}",
        birth_date=str(np.datetime64(row["dob"], "D")).replace("-", ""),
        sex="M" if row["male"] else "F",
        institution=output.site.name.removesuffix(" (synthetic)"),
        referring_physician=referrer,
        accession_number=f"{output.site.code}A{output.studies:07d}",
        study_date=str(study_date).replace("-", ""),
        study_time=f"{rng.integers(8, 18):02d}{rng.integers(0, 60):02d}{rng.integers(0, 60):02d}",
        heart_rate=heart_rate,
        edv_ml=float(row["edv"]),
        lvef_pct=float(row["lvef"]),
        lv_mass_g=float(row["lvmass"]),
    )
    files, _ = write_cine_study(output.dir / "imaging", study, f"{output.seed}:{output.site.id}:{mrn}", rng)
    output.dicom_files += files


def _register_sample(output: _SiteOutput, row: dict, planted: np.ndarray) -> None:
    sample_id = f"{output.site.code}-S{len(output.sample_ids) + 1:06d}"
    output.sample_ids.append(sample_id)
    output.planted.append(planted)
    output.samples_csv.write(f"{sample_id},{row['nhs']}\n")
    if row["carrier_LDLR_FH"]:
        if len(output.bam_carriers) < BAMS_PER_SITE:
            output.bam_carriers.append(sample_id)
    elif len(output.bam_others) < BAMS_PER_SITE:
        output.bam_others.append(sample_id)


def _write_genomics(output: _SiteOutput, panel: pd.DataFrame, summary: CohortSummary) -> None:
    vcf_path = output.dir / "genomics" / f"{output.site.id}.vcf.gz"
    samples = output.sample_ids
    planted = np.vstack(output.planted) if output.planted else np.zeros((0, len(PLANTED)), np.int8)
    planted_col = panel["planted"].to_numpy()
    af = panel["af"].to_numpy()
    columns = ["chrom", "pos", "id", "ref", "alt", "gene", "impact", "clnsig"]
    with VcfWriter(vcf_path, samples) as writer:
        for block, start in enumerate(range(0, len(panel), VARIANT_BLOCK)):
            stop = min(start + VARIANT_BLOCK, len(panel))
            rng = np.random.default_rng([output.seed, 3, output.index, block])
            genotypes = background_genotypes(rng, af[start:stop], len(samples))
            for row in np.flatnonzero(planted_col[start:stop] >= 0):
                genotypes[row] = planted[:, planted_col[start + row]]
            writer.write(panel.iloc[start:stop][columns], genotypes)
    summary.sequenced_samples += len(samples)

    chosen = (output.bam_carriers + output.bam_others)[:BAMS_PER_SITE]
    if not chosen:
        return
    chrom, start, end = BAM_REGION
    in_region = panel[(panel["chrom"] == chrom) & (panel["pos"] >= start) & (panel["pos"] <= end)]
    reference = region_reference(output.seed, panel)
    with pysam.VariantFile(str(vcf_path)) as vcf:
        records = list(vcf.fetch(chrom, start - 1, end))
        for sample_id in sorted(chosen):
            # Read the sample's calls back from the VCF so reads and calls agree exactly.
            counts = {rec.pos: sum(a or 0 for a in rec.samples[sample_id]["GT"]) for rec in records}
            genotypes = np.array([counts.get(pos, 0) for pos in in_region["pos"]], dtype=np.int8)
            rng = np.random.default_rng([output.seed, 4, output.index, int(sample_id[-6:])])
            write_bam(
                output.dir / "genomics" / "bam" / f"{sample_id}.bam", sample_id, rng, reference, in_region, genotypes
            )
            summary.bam_files += 1


def _write_site_yaml(output: _SiteOutput) -> None:
    sid = output.site.id
    manifest: dict = {"id": sid, "name": output.site.name, "clinical_format": output.format}
    if not output.population.is_uk:  # UK sites' manifests stay as they were: NHS numbers, the default layout
        manifest["identifier_scheme"] = output.population.scheme
        manifest["clinical_dialect"] = output.population.dialect
    manifest |= {
        "datasets": [
            {"id": f"{sid}-clinical", "modality": "clinical", "format": output.format, "path": "clinical"},
            {"id": f"{sid}-imaging", "modality": "imaging", "format": "dicom", "path": "imaging"},
            {"id": f"{sid}-variants", "modality": "genomics", "format": "vcf", "path": f"genomics/{sid}.vcf.gz"},
            {"id": f"{sid}-reads", "modality": "genomics", "format": "bam", "path": "genomics/bam"},
        ],
    }
    text = yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None, width=200)
    (output.dir / "site.yaml").write_text(text, encoding="utf-8")
