"""The catalogue: sites, their datasets (modality, format, location, checksum) and the patient index that links
each patient's records across sites and modalities by NHS number, or by the national identifier scheme a site
declares (fabric/identifiers/schemes.py), or, at a site of local MRNs alone, by its MRN and linkage table
(fabric/linkage.py). A site's export is checked whole (fabric/site_export.py) before anything of it is recorded."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from fabric.clinical import FORMATS, CsvDialect, open_site_clinical
from fabric.identifiers import nhs
from fabric.identifiers.formatting import compact
from fabric.identifiers.schemes import DEFAULT_SCHEME, LOCAL_MRN, SCHEMES, check_site_scheme, scheme
from fabric.linkage import Link, SiteMrnIndex, load_linkage, patient_at
from fabric.models import Dataset, Patient, PatientIdentifier, PatientRecord, Site
from fabric.site_export import IncompleteExportError, check_export, read_sample_manifest, vcf_samples
from kernel import audit
from kernel.clock import utcnow
from kernel.digests import sha256_file
from kernel.documents import load_yaml_model
from kernel.errors import EnclaveError, InvalidInputError, NotFoundError

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
    identifier_scheme: str = Field(
        default=DEFAULT_SCHEME, description="the national identifier its patients carry (fabric/identifiers/schemes.py)"
    )
    clinical_dialect: CsvDialect | None = Field(
        default=None, description="a csv-local export's names, dates and separators (fabric/clinical/dialect.py)"
    )
    linkage: str | None = Field(
        default=None, description="a local-mrn site's linkage table beside site.yaml (fabric/linkage.py)"
    )
    datasets: list[DatasetSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> SiteManifest:
        if self.clinical_format not in FORMATS:
            raise ValueError(f"clinical_format {self.clinical_format!r} is not one of {', '.join(FORMATS)}")
        if self.clinical_dialect is not None and self.clinical_format != "csv-local":
            raise ValueError(f"clinical_dialect describes a csv-local export, not {self.clinical_format}")
        check_site_scheme(self.identifier_scheme)  # a ValueError naming the known schemes
        if self.linkage is not None:
            if self.identifier_scheme != LOCAL_MRN:
                raise ValueError(f"linkage is for a site of identifier_scheme {LOCAL_MRN} (patients with MRNs only)")
            if Path(self.linkage).is_absolute() or ".." in Path(self.linkage).parts:
                raise ValueError("linkage must be relative to the site folder and stay inside it")
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


nhs_number_valid = nhs.is_valid  # kept importable here, where callers found it before identifier schemes


# ------------------------------------------------------------------------------------------------ registration


@dataclass
class IndexSummary:
    dataset: str
    linked: int = 0
    new_patients: int = 0
    unlinked: int = 0
    invalid_identifiers: int = 0
    scheme: str = DEFAULT_SCHEME
    through_linkage: int = 0  # a local-mrn site's MRNs that its linkage table linked to a patient (first seen now)
    notes: list[str] = field(default_factory=list)

    @property
    def invalid_nhs_numbers(self) -> int:
        """Invalid identifiers of an NHS site (the count's name before sites declared schemes)."""
        return self.invalid_identifiers if self.scheme == "nhs" else 0


class PatientIndex:
    """The identifier -> patient map of one scheme for one registration, creating patients as new (valid,
    normalised) identifiers appear. NHS numbers live on the patient; other schemes' in patient_identifiers."""

    def __init__(self, session: Session, scheme_code: str = DEFAULT_SCHEME) -> None:
        self.session = session
        self.scheme = scheme(scheme_code)
        if self.scheme.code == "nhs":
            query = select(Patient.nhs_number, Patient.id).where(Patient.nhs_number.is_not(None))
        else:
            query = select(PatientIdentifier.value, PatientIdentifier.patient_id).where(
                PatientIdentifier.scheme == self.scheme.code
            )
        self.by_identifier: dict[str, str] = dict(session.execute(query).all())
        self.now = utcnow()

    def identifier_of(self) -> dict[str, str]:
        """patient id -> normalised identifier in this scheme."""
        return {patient_id: value for value, patient_id in self.by_identifier.items()}

    def patient_for(self, raw: str, summary: IndexSummary) -> str | None:
        number = self.scheme.normalise(raw)
        if number is None:
            summary.invalid_identifiers += 1
            return None
        patient_id = self.by_identifier.get(number)
        if patient_id is None:
            patient_id = f"EP-{secrets.token_hex(6)}"
            if self.scheme.code == "nhs":
                self.session.add(Patient(id=patient_id, nhs_number=number, created_at=self.now))
            else:
                self.session.add(Patient(id=patient_id, nhs_number=None, created_at=self.now))
                self.session.add(PatientIdentifier(patient_id=patient_id, scheme=self.scheme.code, value=number))
            self.by_identifier[number] = patient_id
            summary.new_patients += 1
        return patient_id


def _local_ids(site: Site, spec: DatasetSpec, root: Path, clinical_mrns: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(local id, identifier) for every patient a dataset holds; identifiers resolved per modality (an imaging
    folder's MRN through `clinical_mrns`, the site's clinical records). A local-mrn site's identifier is the MRN."""
    location = root / spec.path
    local_mrn = site.identifier_scheme == LOCAL_MRN
    if spec.modality == "clinical":
        reader = open_site_clinical(location, spec.format, site.id, site.clinical_dialect)
        for chunk in reader.iter_table("patients"):
            yield from zip(chunk["mrn"], chunk["mrn" if local_mrn else "nhs_number"], strict=True)
    elif spec.modality == "imaging":
        if not location.is_dir():
            raise InvalidInputError(location, "imaging folder does not exist")
        for folder in sorted(p for p in location.iterdir() if p.is_dir()):
            yield folder.name, folder.name if local_mrn else clinical_mrns.get(folder.name, "")
    elif spec.format == "vcf":
        manifest = read_sample_manifest(root / spec.samples, site.identifier_scheme)
        for sample in vcf_samples(location):
            yield sample, manifest.get(sample, "")
    else:
        manifest = read_sample_manifest(root / spec.samples, site.identifier_scheme)
        if not location.is_dir():
            raise InvalidInputError(location, "BAM folder does not exist")
        for bam in sorted(location.glob("*.bam")):
            yield bam.stem, manifest.get(bam.stem, "")


def site_links(session: Session, root: Path, site_id: str, linkage: str | None) -> dict[str, Link]:
    """A local-mrn site's linkage table resolved (none: no links); IncompleteExportError listing its problems."""
    if linkage is None:
        return {}
    links, problems = load_linkage(session, site_id, root / linkage)
    if problems:
        raise IncompleteExportError(root / linkage, problems)
    return links


def _mrn_index(session: Session, site: Site, links: dict[str, Link] | None) -> SiteMrnIndex:
    if links is None:  # a dataset registered on its own: the linkage table site.yaml names now
        root = Path(site.root)
        links = site_links(session, root, site.id, SiteManifest.load(root / "site.yaml").linkage)
    return SiteMrnIndex(session, site.id, links)


def register_dataset(
    session: Session,
    site: Site,
    spec: DatasetSpec,
    *,
    actor: str,
    progress: bool = False,
    links: dict[str, Link] | None = None,
) -> IndexSummary:
    """Record (or refresh) one dataset and index its patients; idempotent for unchanged data. A local-mrn site's
    MRNs link by `links` (default: its linkage table, read again)."""
    root = Path(site.root)
    location = root / spec.path
    if not location.exists():
        raise InvalidInputError(location, f"dataset {spec.id} not found")
    checksum, files, size = dataset_checksum(location, progress=progress)
    now = utcnow()
    dataset = session.get(Dataset, spec.id)
    if dataset is not None and dataset.site_id != site.id:
        raise EnclaveError(f"dataset id {spec.id} already belongs to site {dataset.site_id}")
    changed = dataset is None or dataset.checksum != checksum
    if dataset is None:
        dataset = Dataset(id=spec.id, site_id=site.id, registered_at=now)
        session.add(dataset)
    dataset.modality, dataset.format, dataset.location = spec.modality, spec.format, str(location)
    dataset.checksum, dataset.files, dataset.bytes = checksum, files, size
    session.flush()

    summary = IndexSummary(spec.id, scheme=site.identifier_scheme)
    local_mrn = site.identifier_scheme == LOCAL_MRN
    index = _mrn_index(session, site, links) if local_mrn else PatientIndex(session, site.identifier_scheme)
    # MRNs in imaging folders resolve through the same site's clinical records (a local-mrn site's are its MRNs).
    clinical_mrns: dict[str, str] = {}
    identifier_of = {} if isinstance(index, SiteMrnIndex) else index.identifier_of()
    for other in site.datasets:
        if other.modality == "clinical" and other.id != spec.id and not local_mrn:
            rows = session.execute(
                select(PatientRecord.local_id, PatientRecord.patient_id).where(PatientRecord.dataset_id == other.id)
            ).all()
            clinical_mrns.update((mrn, identifier_of[pid]) for mrn, pid in rows if pid in identifier_of)
    known = set(session.scalars(select(PatientRecord.local_id).where(PatientRecord.dataset_id == spec.id)))
    for local_id, identifier in _local_ids(site, spec, root, clinical_mrns):
        if not identifier:
            summary.unlinked += 1
            continue
        if isinstance(index, SiteMrnIndex):
            patient_id, created, linked = index.patient_for(identifier)
            summary.new_patients += created
            summary.through_linkage += linked
        else:
            patient_id = index.patient_for(identifier, summary)
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
        identifier_scheme=summary.scheme,
        invalid_identifiers=summary.invalid_identifiers,
        **({"through_linkage": summary.through_linkage} if local_mrn else {}),
    )
    return summary


def add_site(
    session: Session, site_dir: Path, *, actor: str, progress: bool = False
) -> tuple[Site, list[IndexSummary]]:
    """Register a site from its folder's site.yaml, with every dataset it lists (clinical first, so imaging MRNs
    resolve). The whole export is checked first: any problem refuses it with every problem listed
    (IncompleteExportError), before anything is recorded. Re-adding an unchanged site changes nothing."""
    site_dir = site_dir.resolve()
    manifest = SiteManifest.load(site_dir / "site.yaml")
    check_export(
        site_dir,
        manifest.id,
        manifest.identifier_scheme,
        manifest.datasets,
        manifest.clinical_dialect,
        linkage=manifest.linkage,
        session=session,
    )
    links = site_links(session, site_dir, manifest.id, manifest.linkage)
    now = utcnow()
    site = session.get(Site, manifest.id)
    if site is None:
        site = Site(id=manifest.id, registered_at=now)
        session.add(site)
    if site.identifier_scheme not in (None, manifest.identifier_scheme) and site.datasets:
        # its patients are already linked by the old scheme's numbers; relinking them is not a re-add
        raise EnclaveError(
            f"site {site.id} was registered with identifier scheme {site.identifier_scheme!r}, "
            f"its site.yaml now says {manifest.identifier_scheme!r}"
        )
    site.name, site.clinical_format, site.root = manifest.name, manifest.clinical_format, str(site_dir)
    site.identifier_scheme = manifest.identifier_scheme
    declared = manifest.clinical_dialect
    dialect = (declared.model_dump(exclude_defaults=True) or None) if declared is not None else None
    dialect_changed = site.clinical_dialect != dialect
    site.clinical_dialect = dialect
    session.flush()
    linkage = {"linkage_mrns": len(links)} if manifest.linkage else {}
    audit.record(
        session,
        actor=actor,
        action="site.add",
        target=site.id,
        datasets=len(manifest.datasets),
        **linkage,
        clinical_dialect=dialect,
        clinical_dialect_changed=dialect_changed,
    )
    order = {"clinical": 0, "genomics": 1, "imaging": 2}
    summaries = []
    for spec in sorted(manifest.datasets, key=lambda d: order[d.modality]):
        summaries.append(register_dataset(session, site, spec, actor=actor, progress=progress, links=links))
        session.refresh(site)
    return site, summaries


def get_site(session: Session, site_id: str) -> Site:
    site = session.get(Site, site_id)
    if site is None:
        raise NotFoundError(f"no site {site_id!r} is registered (see 'enclave site list')")
    return site


def find_patient(session: Session, identifier: str, site: str | None = None) -> Patient:
    """A patient by enclave id (EP-…), NHS number or another scheme's identifier, or by its MRN at `site`; the error
    never repeats what was asked for."""
    if site is not None:
        patient_id = patient_at(session, get_site(session, site).id, identifier)
        if patient_id is None:
            raise NotFoundError(f"no patient of site {site} has that MRN")
        return session.get(Patient, patient_id)
    identifier = identifier.strip().replace(" ", "")
    patient = session.get(Patient, identifier)
    if patient is None and identifier.isdigit():
        patient = session.scalars(select(Patient).where(Patient.nhs_number == identifier)).first()
    if patient is None:
        candidates = {n for s in SCHEMES.values() if s.code != "nhs" and (n := s.normalise(identifier))}
        candidates.add(compact(identifier))
        patient = session.scalars(
            select(Patient).join(PatientIdentifier).where(PatientIdentifier.value.in_(candidates))
        ).first()
    if patient is None:
        raise NotFoundError("no patient in the index matches that identifier")
    return patient
