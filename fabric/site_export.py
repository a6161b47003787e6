"""A site's export checked whole before `enclave site add` records anything: every dataset site.yaml declares (its
file or folder there; clinical tables read through the site's reader, every table, as materialisation reads them;
DICOM headers and sizes, not pixels; VCF and BAM headers, samples and BGZF end markers; the lab sample manifest)
the consent file beside it, and a local-mrn site's linkage table (read, and resolved against the registry when a
session is given: fabric/linkage.py). Every problem is collected, so the custodian fixes the export once, and they come
back in one error that names each file and what is wrong, never a patient identifier: a path inside a patient's
imaging folder shows that folder's name masked, and BAM files (named by lab sample) likewise."""

from __future__ import annotations

import csv
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import pydicom
import pysam
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag
from sqlalchemy.orm import Session

from fabric.clinical import CsvDialect, open_site_clinical
from fabric.clinical.schema import TABLES
from fabric.consent import read_consent_file
from fabric.identifiers.schemes import DEFAULT_SCHEME, LOCAL_MRN
from fabric.linkage import load_linkage
from kernel.errors import EnclaveError, InvalidInputError

CONSENT_FILE = "consent.ndjson"  # beside site.yaml, imported by `enclave consent import`
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
GZIP_MAGIC = b"\x1f\x8b"
PIXEL_DATA = Tag(0x7FE0, 0x0010)
UNDEFINED_LENGTH = 0xFFFFFFFF
MAX_LISTED = 50  # problems listed in full; the rest are counted


class DatasetEntry(Protocol):
    """What the checks need of one dataset in site.yaml (fabric.catalogue.DatasetSpec)."""

    id: str
    modality: str
    format: str
    path: str
    samples: str


class IncompleteExportError(InvalidInputError):
    """A site export with problems; `problems` lists them, each 'file: what is wrong'."""

    def __init__(self, path: Path | str, problems: list[str] | str) -> None:
        self.problems = problems if isinstance(problems, list) else [problems]
        shown = self.problems[:MAX_LISTED]
        more = len(self.problems) - len(shown)
        summary = (
            f"the export is incomplete or damaged, so nothing was registered; {len(self.problems)} problem(s):\n"
            + "\n".join(f"  - {p}" for p in shown)
            + (f"\n  - ... and {more} more" if more else "")
        )
        super().__init__(path, summary)

    def __reduce__(self):
        return (type(self), (self.path, self.problems))


def masked(name: str) -> str:
    """A folder or file name that is a patient's MRN or a lab sample id, with all but a few characters hidden."""
    return name[:3] + "…" + name[-2:] if len(name) > 6 else "…"


# ------------------------------------------------------------------------------------------------ shared readers


def read_sample_manifest(path: Path, scheme_code: str = DEFAULT_SCHEME) -> dict[str, str]:
    """The lab's sample manifest: sample id -> national identifier (column nhs_number), or the MRN at a local-mrn
    site (column mrn)."""
    column = "mrn" if scheme_code == LOCAL_MRN else "nhs_number"
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"sample_id", column} <= set(reader.fieldnames):
                raise InvalidInputError(path, f"needs columns sample_id,{column}")
            return {row["sample_id"]: row[column].replace(" ", "") for row in reader}
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


# ------------------------------------------------------------------------------------------------ per modality


def _bgzf_complete(path: Path) -> bool:
    """False for a BGZF file (bgzipped VCF, BAM) cut short: htslib writes an empty block as its end marker."""
    with path.open("rb") as handle:
        if handle.read(2) != GZIP_MAGIC:
            return True  # plain text: nothing to check by size
        handle.seek(max(0, path.stat().st_size - len(BGZF_EOF)))
        return handle.read() == BGZF_EOF


def _clinical(location: Path, fmt: str, site_id: str, dialect: CsvDialect | None) -> Iterator[str]:
    if not location.is_dir():
        yield f"{location}: clinical export folder does not exist"
        return
    reader = open_site_clinical(location, fmt, site_id, dialect)
    for table in TABLES:
        rows = unnamed = 0
        try:
            for chunk in reader.iter_table(table):
                rows += len(chunk)
                if table == "patients":
                    unnamed += int((chunk["mrn"].fillna("").astype(str).str.strip() == "").sum())
        except InvalidInputError as exc:
            yield str(exc)
            continue
        if table == "patients" and rows == 0:
            yield f"{location}: no patients in the clinical export"
        if unnamed:
            yield f"{location}: {unnamed} patient record(s) without an MRN"


@contextmanager
def _pydicom_quiet() -> Iterator[None]:
    """pydicom's warnings quote element values (names, UIDs): silenced while headers are read."""
    log = logging.getLogger("pydicom")
    before = log.disabled
    log.disabled = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.disabled = before


def dicom_problem(path: Path) -> str | None:
    """What makes a DICOM file unusable, from its header and size (pixel data is skipped, not read), or None."""
    size = path.stat().st_size
    if size == 0:
        return "empty file"
    try:
        with _pydicom_quiet():
            ds = pydicom.dcmread(path, defer_size=256)
    except InvalidDicomError:
        return "not a DICOM file (no DICM prefix after the preamble)"
    except Exception as exc:  # pydicom raises many types on damaged input
        return f"unreadable DICOM header ({type(exc).__name__})"
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        return "DICOM file meta has no transfer syntax"
    if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
        return "no SOP Class UID or SOP Instance UID"
    pixels = ds._dict.get(PIXEL_DATA)
    if pixels is None:
        return "no pixel data (truncated, or not an image)"
    native = isinstance(pixels, RawDataElement) and pixels.length != UNDEFINED_LENGTH  # not encapsulated
    if native and pixels.value_tell + pixels.length > size:
        return f"truncated pixel data ({size - pixels.value_tell} of {pixels.length} bytes)"
    return None


def _imaging(location: Path) -> Iterator[str]:
    if not location.is_dir():
        yield f"{location}: imaging folder does not exist"
        return
    patients = sorted(p for p in location.iterdir() if p.is_dir())
    if not patients:
        yield f"{location}: no patient folders (an empty imaging export)"
    for patient in patients:
        shown = location / masked(patient.name)
        series = [s for study in patient.iterdir() if study.is_dir() for s in study.iterdir() if s.is_dir()]
        files = sorted(f for s in series for f in s.iterdir() if f.is_file())
        if not files:
            yield f"{shown}: no DICOM files (expected study/series/file folders)"
        for file in files:
            problem = dicom_problem(file)
            if problem:
                yield f"{shown}/…/{file.name}: {problem}"


def _vcf(location: Path) -> Iterator[str]:
    if not location.is_file():
        yield f"{location}: the variant file is not a file"
        return
    complete = _bgzf_complete(location)
    try:
        samples = vcf_samples(location)
    except InvalidInputError as exc:
        yield str(exc) if complete else f"{location}: not a readable VCF (truncated: no BGZF end-of-file block)"
        return
    if not complete:
        yield f"{location}: truncated (no BGZF end-of-file block)"
    if not samples:
        yield f"{location}: no samples in the VCF header"


def _bams(location: Path) -> Iterator[str]:
    if not location.is_dir():
        yield f"{location}: BAM folder does not exist"
        return
    bams = sorted(location.glob("*.bam"))
    if not bams:
        yield f"{location}: no BAM files"
    for bam in bams:
        shown = location / (masked(bam.stem) + ".bam")
        if bam.stat().st_size == 0:
            yield f"{shown}: empty file"
            continue
        if not _bgzf_complete(bam):
            yield f"{shown}: truncated (no BGZF end-of-file block)"
            continue
        try:
            with pysam.AlignmentFile(str(bam), "rb", check_sq=False) as handle:
                order = handle.header.to_dict().get("HD", {}).get("SO")
        except (OSError, ValueError) as exc:
            yield f"{shown}: not a readable BAM ({type(exc).__name__})"
            continue
        if order not in (None, "coordinate"):
            yield f"{shown}: not coordinate-sorted; a .bai index needs coordinate order"


def _samples(path: Path, scheme_code: str) -> Iterator[str]:
    try:
        if not read_sample_manifest(path, scheme_code):
            yield f"{path}: the lab sample manifest lists no samples"
    except InvalidInputError as exc:
        yield str(exc)


def _consent(path: Path, scheme_code: str) -> Iterator[str]:
    try:
        for _record in read_consent_file(path, scheme_code):
            pass
    except EnclaveError as exc:
        yield str(exc) if str(exc).startswith(str(path)) else f"{path.parent}/{exc}"


def _linkage(path: Path, site_id: str, session: Session | None) -> Iterator[str]:
    yield from load_linkage(session, site_id, path)[1]


# ------------------------------------------------------------------------------------------------ the whole export


def _dataset(root: Path, entry: DatasetEntry, site_id: str, dialect: CsvDialect | None = None) -> Iterable[str]:
    location = root / entry.path
    if not location.exists():
        return [f"{location}: dataset {entry.id} not found"]
    if entry.modality == "clinical":
        return _clinical(location, entry.format, site_id, dialect)
    if entry.modality == "imaging":
        return _imaging(location)
    return _vcf(location) if entry.format == "vcf" else _bams(location)


def export_problems(
    root: Path,
    site_id: str,
    scheme_code: str,
    datasets: Iterable[DatasetEntry],
    dialect: CsvDialect | None = None,
    *,
    linkage: str | None = None,
    session: Session | None = None,
) -> list[str]:
    """Every problem of the export in `root` that would stop registration or a later materialisation; a csv-local
    clinical export is read in `dialect` (site.yaml's clinical_dialect; None: the default layout)."""
    problems: dict[str, None] = {}  # ordered, each once (two genomics datasets share one sample manifest)
    checks: list[Callable[[], Iterable[str]]] = []
    for entry in datasets:
        checks.append(lambda e=entry: _dataset(root, e, site_id, dialect))
        if entry.modality == "genomics":
            checks.append(lambda e=entry: _samples(root / e.samples, scheme_code))
    if linkage is not None:  # a local-mrn site's linkage table (site.yaml's `linkage`)
        checks.append(lambda: _linkage(root / linkage, site_id, session))
    if (root / CONSENT_FILE).exists():
        checks.append(lambda: _consent(root / CONSENT_FILE, scheme_code))
    for check in checks:
        problems.update(dict.fromkeys(check()))
    return list(problems)


def check_export(
    root: Path,
    site_id: str,
    scheme_code: str,
    datasets: Iterable[DatasetEntry],
    dialect: CsvDialect | None = None,
    *,
    linkage: str | None = None,
    session: Session | None = None,
) -> None:
    """IncompleteExportError listing every problem of the export, or nothing."""
    problems = export_problems(root, site_id, scheme_code, datasets, dialect, linkage=linkage, session=session)
    if problems:
        raise IncompleteExportError(root / "site.yaml", problems)
