"""Cardiac MRI studies as real DICOM: one short-axis cine series per study, rendered from the patient's truth.

Owns the LV model that keeps images and clinical results consistent. The LV is a stack of discs (base → apex)
whose blood-pool volume by Simpson's method over the slices is the patient's end-diastolic volume at the first
phase and end-systolic volume (EDV × (1 − LVEF)) at the third; the myocardial ring keeps a constant area per
slice through the cycle (incompressible muscle), sized so its volume × 1.05 g/mL is the patient's LV mass. Edges
are partial-volume blended, so summed pixel fractions give the areas back; contrast is monotonic
(background tissue < myocardium < blood) so an analyst can threshold or unmix it. Gaussian noise is added.

Headers carry what a scanner export would (patient name, MRN as PatientID, birth date, sex, institution,
referring physician, accession number, dates) so de-identification has something real to remove. UIDs are
derived deterministically under the 2.25 (UUID-derived) root.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

SLICES = 6
PHASES = 5
ROWS = COLS = 96
PIXEL_MM = 2.0
SLICE_SPACING_MM = 10.0
SLICE_THICKNESS_MM = 8.0
MYOCARDIAL_DENSITY = 1.05  # g/mL

# Relative LV radius from base to apex: the ventricle narrows towards the apex.
SLICE_PROFILE = np.array([1.0, 0.97, 0.9, 0.8, 0.65, 0.45])
# Fraction of the stroke volume ejected at each phase: phase 0 is end-diastole, phase 2 end-systole.
EJECTION_CURVE = np.array([0.0, 0.6, 1.0, 0.7, 0.2])
ED_PHASE, ES_PHASE = 0, 2

# Signal levels of a balanced-SSFP-like cine: bright blood, mid-grey myocardium, darker surroundings.
BLOOD, MYOCARDIUM, TISSUE, AIR = 1600.0, 500.0, 220.0, 15.0
NOISE_SD = 20.0

# Oblique short-axis orientation (orthonormal row and column direction cosines) and its slice normal.
_ROW_DIR = np.array([0.70710678, 0.70710678, 0.0])
_COL_DIR = np.array([-0.35355339, 0.35355339, -0.8660254])
_NORMAL = np.cross(_ROW_DIR, _COL_DIR)

IMPLEMENTATION_CLASS_UID = "2.25.300171623049837745718722373478861416901"
IMPLEMENTATION_VERSION = "ENCLAVE_SYN_1"


def derived_uid(*parts: object) -> str:
    """A UID under 2.25 from a hash of `parts` (the same parts always give the same UID)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).digest()
    return f"2.25.{int.from_bytes(digest, 'big')}"


@dataclass(frozen=True)
class LvGeometry:
    """Endocardial and epicardial radii in mm, shape (SLICES, PHASES)."""

    endo: np.ndarray
    epi: np.ndarray


def lv_geometry(edv_ml: float, lvef_pct: float, lv_mass_g: float) -> LvGeometry:
    """Radii whose disc-summation volumes reproduce EDV, ESV = EDV·(1 − LVEF) and myocardial mass."""
    sv = edv_ml * lvef_pct / 100.0
    volume_mm3 = (edv_ml - sv * EJECTION_CURVE) * 1000.0  # per phase
    profile_sq = float(np.sum(SLICE_PROFILE**2))
    base_radius = np.sqrt(volume_mm3 / (np.pi * SLICE_SPACING_MM * profile_sq))
    endo = SLICE_PROFILE[:, None] * base_radius[None, :]
    # Uniform end-diastolic wall thickness w: π·h·(n·w² + 2·w·Σr) = myocardial volume.
    myo_mm3 = lv_mass_g / MYOCARDIAL_DENSITY * 1000.0
    r_ed = endo[:, ED_PHASE]
    a, b, c = SLICES, 2 * r_ed.sum(), -myo_mm3 / (np.pi * SLICE_SPACING_MM)
    w = (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)
    ring_area = np.pi * ((r_ed + w) ** 2 - r_ed**2)
    epi = np.sqrt(endo**2 + ring_area[:, None] / np.pi)
    return LvGeometry(endo=endo, epi=epi)


def render_cine(rng: np.random.Generator, geometry: LvGeometry) -> np.ndarray:
    """uint16 images, shape (SLICES, PHASES, ROWS, COLS), of the LV over the cardiac cycle."""
    cy = ROWS / 2 + rng.uniform(-3, 3)
    cx = COLS / 2 + rng.uniform(-3, 3)
    y, x = np.mgrid[0:ROWS, 0:COLS].astype(np.float64)
    d = np.hypot(y + 0.5 - cy, x + 0.5 - cx)  # distance from the LV centre, pixels
    # Body outline: a soft-edged ellipse of chest around the heart.
    body = np.clip(44.0 - np.hypot(y + 0.5 - ROWS / 2, (x + 0.5 - COLS / 2) / 1.1) + 0.5, 0, 1)
    surroundings = body * TISSUE + (1 - body) * AIR
    # Slow spatial shading, as from a receive coil.
    shading = 1.0 + 0.05 * np.sin(x / COLS * np.pi + rng.uniform(0, np.pi))
    endo = geometry.endo / PIXEL_MM
    epi = geometry.epi / PIXEL_MM
    blood = np.clip(endo[:, :, None, None] - d + 0.5, 0, 1)
    inside = np.clip(epi[:, :, None, None] - d + 0.5, 0, 1)
    image = blood * BLOOD + (inside - blood) * MYOCARDIUM + (1 - inside) * surroundings
    image = image * shading + rng.normal(0, NOISE_SD, image.shape)
    return np.clip(np.rint(image), 0, 4095).astype(np.uint16)


@dataclass(frozen=True)
class CmrStudy:
    """What the scanner knows about one patient's study."""

    mrn: str
    patient_name: str  # DICOM PN, FAMILY^Given
    birth_date: str  # YYYYMMDD
    sex: str  # M / F
    institution: str
    referring_physician: str
    accession_number: str
    study_date: str  # YYYYMMDD
    study_time: str  # HHMMSS
    heart_rate: int
    edv_ml: float
    lvef_pct: float
    lv_mass_g: float


def _ds(value: float) -> str:
    return f"{value:.6g}"


def write_cine_study(imaging_dir: Path, study: CmrStudy, uid_key: str, rng: np.random.Generator) -> tuple[int, int]:
    """Write the study under `imaging/<MRN>/<StudyUID>/<SeriesUID>/`; returns (files, bytes)."""
    study_uid = derived_uid(uid_key, "study")
    series_uid = derived_uid(uid_key, "series", 1)
    frame_uid = derived_uid(uid_key, "frame-of-reference")
    series_dir = imaging_dir / study.mrn / study_uid / series_uid
    series_dir.mkdir(parents=True, exist_ok=True)
    pixels = render_cine(rng, lv_geometry(study.edv_ml, study.lvef_pct, study.lv_mass_g))
    rr_ms = 60000.0 / study.heart_rate
    # Put the base slice's first pixel about 10 cm up and left of the scanner origin, like a real SAX stack.
    origin = np.array([-60.0, -110.0, 90.0]) + rng.uniform(-10, 10, 3)

    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.SOPClassUID = MRImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study.study_date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = study.study_time
    ds.AccessionNumber = study.accession_number
    ds.Modality = "MR"
    ds.Manufacturer = "Enclave Synthetic"
    ds.InstitutionName = study.institution
    ds.ReferringPhysicianName = study.referring_physician
    ds.StudyDescription = "MRI Heart function"
    ds.SeriesDescription = "SAX cine bSSFP"
    ds.ManufacturerModelName = "SynthMR 1.5T"
    ds.PatientName = study.patient_name
    ds.PatientID = study.mrn
    ds.PatientBirthDate = study.birth_date
    ds.PatientSex = study.sex
    ds.BodyPartExamined = "HEART"
    ds.ScanningSequence = "GR"
    ds.SequenceVariant = "SS"
    ds.ScanOptions = "CG"
    ds.MRAcquisitionType = "2D"
    ds.SliceThickness = _ds(SLICE_THICKNESS_MM)
    ds.RepetitionTime = "3.2"
    ds.EchoTime = "1.4"
    ds.MagneticFieldStrength = "1.5"
    ds.SpacingBetweenSlices = _ds(SLICE_SPACING_MM)
    ds.FlipAngle = "60"
    ds.NominalInterval = _ds(round(rr_ms))
    ds.CardiacNumberOfImages = PHASES
    ds.HeartRate = study.heart_rate
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.ImageOrientationPatient = [_ds(round(v, 6)) for v in (*_ROW_DIR, *_COL_DIR)]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ROWS
    ds.Columns = COLS
    ds.PixelSpacing = [_ds(PIXEL_MM), _ds(PIXEL_MM)]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = "800"
    ds.WindowWidth = "1800"

    files = size = 0
    for k in range(SLICES):
        position = origin + k * SLICE_SPACING_MM * _NORMAL
        for p in range(PHASES):
            number = k * PHASES + p + 1
            sop_uid = derived_uid(uid_key, "sop", number)
            ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
            ds.SOPInstanceUID = sop_uid
            ds.InstanceNumber = number
            ds.ImagePositionPatient = [_ds(round(v, 3)) for v in position]
            ds.SliceLocation = _ds(round(float(position @ _NORMAL), 3))
            ds.TriggerTime = _ds(round(p * rr_ms / PHASES, 1))
            ds.PixelData = pixels[k, p].tobytes()
            path = series_dir / f"{number:04d}.dcm"
            pydicom.dcmwrite(path, ds, enforce_file_format=True)
            files += 1
            size += path.stat().st_size
    return files, size
