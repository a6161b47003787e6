"""The catalogue: sites, their datasets (modality, format, location, checksum) and the patient index that links
each patient's records across sites and modalities by NHS number."""

from __future__ import annotations

import csv
import hashlib
import re
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pysam
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from fabric import audit
from fabric.clinical import FORMATS, open_site_clinical
from fabric.documents import load_yaml_model
from fabric.errors import FabricError, InvalidInputError, NotFoundError
from fabric.materialise.files import sha256_file
from fabric.models import Dataset, Patient, PatientRecord, Site

SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"
Modality = Literal["clinical", "imaging", "genomics"]
DATASET_FORMATS: dict[str, tuple[str, ...]] = {
    "clinical": FORMATS,
    "imaging": ("dicom",),
    "genomics": ("vcf", "bam"),
}


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=SLUG)
    modality: Modality
    format: str
    path: str
    samples: str = Field(default="genomics/samples.csv", description="lab sample manifest (genomics only)")

    @model_validator(mode="after")
    def _format_fits_modality(self) -> DatasetSpec:
        if self.format not in DATASET_FORMATS[self.modality]:
            allowed = ", ".join(DATASET_FORMATS[self.modality])
            raise ValueError(f"format {self.format!r} is not a {self.modality} format (one of {allowed})")
        if Path(self.path).is_absolute() or ".." in Path(self.path).parts:
            raise ValueError("path must be relative to the site folder and stay inside it")
        return self


class SiteManifest(BaseModel):
    """`site.yaml`, as docs/reference/data-layout.md describes it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=SLUG)
    name: str = Field(min_length=1, max_length=200)
    clinical_format: str
    datasets: list[DatasetSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> SiteManifest:
        if self.clinical_format not in FORMATS:
            raise ValueError(f"clinical_format {self.clinical_format!r} is not one of {', '.join(FORMATS)}")
        ids = [d.id for d in self.datasets]
        if len(ids) != len(set(ids)):
            raise ValueError("dataset ids must be unique")
        return self

    @classmethod
    def load(cls, path: Path) -> SiteManifest:
        return load_yaml_model(cls, path, "site manifest")


# ------------------------------------------------------------------------------------------------ checksums


def _files_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def dataset_checksum(path: Path, *, progress: bool = False) -> tuple[str, int, int]:
    """(sha256, files, bytes) of a file, or of a folder as the hash of its sorted (relative path, sha256) list."""
    if path.is_file():
        return sha256_file(path), 1, path.stat().st_size
    files = _files_under(path)
    with ThreadPoolExecutor(max_workers=4) as pool:  # hashlib releases the GIL; I/O overlaps too
        hashing = pool.map(sha256_file, files)
        bar = tqdm(hashing, total=len(files), desc=f"checksum {path.name}", unit="file", disable=not progress)
        digests = list(bar)
    tree = hashlib.sha256()
    for file, digest in zip(files, digests, strict=True):
        tree.update(f"{file.relative_to(path).as_posix()}\0{digest}\n".encode())
    return tree.hexdigest(), len(files), sum(f.stat().st_size for f in files)


# ------------------------------------------------------------------------------------------------ NHS numbers


def nhs_number_valid(number: str) -> bool:
    """Modulus 11 check of a 10-digit NHS number."""
    if not re.fullmatch(r"\d{10}", number):
        return False
    total = sum(int(d) * w for d, w in zip(number[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(number[9])


# ------------------------------------------------------------------------------------------------ registration


@dataclass
class IndexSummary:
    dataset: str
    linked: int = 0
    new_patients: int = 0
    unlinked: int = 0
    invalid_nhs_numbers: int = 0
    notes: list[str] = field(default_factory=list)


class PatientIndex:
    """The NHS number -> patient map for one registration, creating patients as new numbers appear."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.by_nhs: dict[str, str] = dict(session.execute(select(Patient.nhs_number, Patient.id)).all())
        self.now = datetime.now(UTC).replace(tzinfo=None)

    def patient_for(self, nhs_number: str, summary: IndexSummary) -> str | None:
        if not nhs_number_valid(nhs_number):
            summary.invalid_nhs_numbers += 1
            return None
        patient_id = self.by_nhs.get(nhs_number)
        if patient_id is None:
            patient_id = f"EP-{secrets.token_hex(6)}"
            self.session.add(Patient(id=patient_id, nhs_number=nhs_number, created_at=self.now))
            self.by_nhs[nhs_number] = patient_id
            summary.new_patients += 1
        return patient_id


def _read_sample_manifest(path: Path) -> dict[str, str]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"sample_id", "nhs_number"} <= set(reader.fieldnames):
                raise InvalidInputError(path, "needs columns sample_id,nhs_number")
            return {row["sample_id"]: row["nhs_number"].replace(" ", "") for row in reader}
    except FileNotFoundError:
        raise InvalidInputError(path, "lab sample manifest not found") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInputError(path, f"not a readable CSV ({type(exc).__name__})") from None


def vcf_samples(path: Path) -> list[str]:
    """The sample names in a VCF/BCF header."""
    try:
        with pysam.VariantFile(str(path)) as vcf:
            return list(vcf.header.samples)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(path, f"not a readable VCF ({exc.__class__.__name__})") from None


def _local_ids(site: Site, spec: DatasetSpec, root: Path, clinical_mrns: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(local id, NHS number) for every patient a dataset holds; NHS numbers resolved per modality."""
    location = root / spec.path
    if spec.modality == "clinical":
        reader = open_site_clinical(location, spec.format, site.id)
        for chunk in reader.iter_table("patients"):
            yield from zip(chunk["mrn"], chunk["nhs_number"], strict=True)
    elif spec.modality == "imaging":
        if not location.is_dir():
            raise InvalidInputError(location, "imaging folder does not exist")
        for folder in sorted(p for p in location.iterdir() if p.is_dir()):
            yield folder.name, clinical_mrns.get(folder.name, "")
    elif spec.format == "vcf":
        manifest = _read_sample_manifest(root / spec.samples)
        for sample in vcf_samples(location):
            yield sample, manifest.get(sample, "")
    else:
        manifest = _read_sample_manifest(root / spec.samples)
        if not location.is_dir():
            raise InvalidInputError(location, "BAM folder does not exist")
        for bam in sorted(location.glob("*.bam")):
            yield bam.stem, manifest.get(bam.stem, "")


def register_dataset(
    session: Session, site: Site, spec: DatasetSpec, *, actor: str, progress: bool = False
) -> IndexSummary:
    """Record (or refresh) one dataset and index its patients; idempotent for unchanged data."""
    root = Path(site.root)
    location = root / spec.path
    if not location.exists():
        raise InvalidInputError(location, f"dataset {spec.id} not found")
    checksum, files, size = dataset_checksum(location, progress=progress)
    now = datetime.now(UTC).replace(tzinfo=None)
    dataset = session.get(Dataset, spec.id)
    if dataset is not None and dataset.site_id != site.id:
        raise FabricError(f"dataset id {spec.id} already belongs to site {dataset.site_id}")
    changed = dataset is None or dataset.checksum != checksum
    if dataset is None:
        dataset = Dataset(id=spec.id, site_id=site.id, registered_at=now)
        session.add(dataset)
    dataset.modality, dataset.format, dataset.location = spec.modality, spec.format, str(location)
    dataset.checksum, dataset.files, dataset.bytes = checksum, files, size
    session.flush()

    summary = IndexSummary(spec.id)
    # MRNs in imaging folders resolve through the same site's clinical records.
    clinical_mrns: dict[str, str] = {}
    for other in site.datasets:
        if other.modality == "clinical" and other.id != spec.id:
            rows = session.execute(
                select(PatientRecord.local_id, Patient.nhs_number)
                .join(Patient)
                .where(PatientRecord.dataset_id == other.id)
            ).all()
            clinical_mrns.update(rows)
    index = PatientIndex(session)
    known = set(session.scalars(select(PatientRecord.local_id).where(PatientRecord.dataset_id == spec.id)))
    for local_id, nhs in _local_ids(site, spec, root, clinical_mrns):
        if not nhs:
            summary.unlinked += 1
            continue
        patient_id = index.patient_for(nhs, summary)
        if patient_id is None:
            continue
        summary.linked += 1
        if local_id not in known:
            known.add(local_id)
            session.add(PatientRecord(patient_id=patient_id, dataset_id=spec.id, local_id=local_id))
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="dataset.register" if changed else "dataset.verify",
        target=spec.id,
        site=site.id,
        checksum=checksum,
        files=files,
        bytes=size,
        linked=summary.linked,
        unlinked=summary.unlinked,
        invalid_nhs_numbers=summary.invalid_nhs_numbers,
    )
    return summary


def add_site(
    session: Session, site_dir: Path, *, actor: str, progress: bool = False
) -> tuple[Site, list[IndexSummary]]:
    """Register a site from its folder's site.yaml, with every dataset it lists (clinical first, so imaging MRNs
    resolve). Re-adding an unchanged site changes nothing."""
    site_dir = site_dir.resolve()
    manifest = SiteManifest.load(site_dir / "site.yaml")
    now = datetime.now(UTC).replace(tzinfo=None)
    site = session.get(Site, manifest.id)
    if site is None:
        site = Site(id=manifest.id, registered_at=now)
        session.add(site)
    site.name, site.clinical_format, site.root = manifest.name, manifest.clinical_format, str(site_dir)
    session.flush()
    audit.record(session, actor=actor, action="site.add", target=site.id, datasets=len(manifest.datasets))
    order = {"clinical": 0, "genomics": 1, "imaging": 2}
    summaries = []
    for spec in sorted(manifest.datasets, key=lambda d: order[d.modality]):
        summaries.append(register_dataset(session, site, spec, actor=actor, progress=progress))
        session.refresh(site)
    return site, summaries


def get_site(session: Session, site_id: str) -> Site:
    site = session.get(Site, site_id)
    if site is None:
        raise NotFoundError(f"no site {site_id!r} is registered (see 'enclave site list')")
    return site


def find_patient(session: Session, identifier: str) -> Patient:
    """A patient by enclave id (EP-…) or NHS number; the error never repeats what was asked for."""
    identifier = identifier.strip().replace(" ", "")
    patient = session.get(Patient, identifier)
    if patient is None and identifier.isdigit():
        patient = session.scalars(select(Patient).where(Patient.nhs_number == identifier)).first()
    if patient is None:
        raise NotFoundError("no patient in the index matches that identifier")
    return patient
