"""Imaging: the LV model, the rendered cine and the DICOM files it is written as."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from synthetic_sites import imaging
from synthetic_sites.imaging import CmrStudy, lv_geometry, render_cine, write_cine_study

pytestmark = pytest.mark.unit

VOXEL_ML = imaging.PIXEL_MM**2 * imaging.SLICE_SPACING_MM / 1000


@pytest.mark.parametrize(
    ("edv", "lvef", "mass"), [(150, 60, 140), (300, 28, 190), (110, 66, 270), (380, 15, 400), (70, 78, 55)]
)
def test_pixels_reproduce_volumes_ejection_fraction_and_mass(edv: float, lvef: float, mass: float) -> None:
    geometry = lv_geometry(edv, lvef, mass)
    assert geometry.epi.max() / imaging.PIXEL_MM < imaging.ROWS / 2 - 5  # the heart fits in the field of view
    pixels = render_cine(np.random.default_rng(0), geometry)
    assert pixels.shape == (imaging.SLICES, imaging.PHASES, imaging.ROWS, imaging.COLS) and pixels.dtype == np.uint16

    threshold = (imaging.BLOOD + imaging.MYOCARDIUM) / 2
    volumes = (pixels > threshold).sum(axis=(0, 2, 3)) * VOXEL_ML
    assert volumes.argmax() == imaging.ED_PHASE and volumes.argmin() == imaging.ES_PHASE
    assert volumes[imaging.ED_PHASE] == pytest.approx(edv, rel=0.03)
    assert 100 * (1 - volumes.min() / volumes.max()) == pytest.approx(lvef, abs=1.5)

    # Myocardium: contrast is monotonic (tissue < myocardium < blood), so the epicardial disc is everything above
    # the tissue/myocardium midpoint near the heart (the chest outline is far away); subtract the blood pool.
    y, x = np.mgrid[0 : imaging.ROWS, 0 : imaging.COLS]
    near = np.hypot(y - imaging.ROWS / 2, x - imaging.COLS / 2) < geometry.epi.max() / imaging.PIXEL_MM + 6
    for phase in range(imaging.PHASES):
        frames = pixels[:, phase]
        epi_disc = ((frames > (imaging.TISSUE + imaging.MYOCARDIUM) / 2) & near).sum()
        myo_ml = (epi_disc - (frames > threshold).sum()) * VOXEL_ML
        assert myo_ml * imaging.MYOCARDIAL_DENSITY == pytest.approx(mass, rel=0.05)


def _study(**overrides: object) -> CmrStudy:
    values = dict(
        mrn="RBH0000001",
        patient_name="SMITH^Jane",
        birth_date="19600102",
        sex="F",
        institution="Royal Brompton Hospital",
        referring_physician="Jones^Peter^^Dr",
        accession_number="RBHA0000001",
        study_date="20170304",
        study_time="101500",
        heart_rate=64,
        edv_ml=130.0,
        lvef_pct=58.0,
        lv_mass_g=110.0,
    )
    values.update(overrides)
    return CmrStudy(**values)  # type: ignore[arg-type]


def test_dicom_files_are_valid_and_coherent(tmp_path: Path) -> None:
    files, size = write_cine_study(tmp_path, _study(), "k", np.random.default_rng(1))
    paths = sorted(tmp_path.rglob("*.dcm"))
    assert files == len(paths) == imaging.SLICES * imaging.PHASES
    assert size == sum(p.stat().st_size for p in paths)
    datasets = [pydicom.dcmread(p) for p in paths]
    first = datasets[0]
    assert first.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert first.file_meta.MediaStorageSOPClassUID == MRImageStorage == first.SOPClassUID
    assert first.PatientID == "RBH0000001" and str(first.PatientName) == "SMITH^Jane"
    assert first.PatientBirthDate == "19600102" and first.PatientSex == "F"
    assert first.InstitutionName and first.ReferringPhysicianName and first.AccessionNumber and first.StudyDate

    # Folder layout: imaging/<MRN>/<StudyInstanceUID>/<SeriesInstanceUID>/<InstanceNumber:04d>.dcm
    for path, ds in zip(paths, datasets, strict=True):
        assert path.relative_to(tmp_path).parts == (
            ds.PatientID,
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            f"{ds.InstanceNumber:04d}.dcm",
        )
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.pixel_array.shape == (imaging.ROWS, imaging.COLS)
        for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID):
            assert uid.startswith("2.25.") and len(uid) <= 64 and uid.is_valid
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets)
    assert len({(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID) for ds in datasets}) == 1

    # Slices: one position and location per slice, spaced by SpacingBetweenSlices along the slice normal.
    by_location: dict[float, set[float]] = {}
    for ds in datasets:
        by_location.setdefault(float(ds.SliceLocation), set()).add(float(ds.TriggerTime))
    assert len(by_location) == imaging.SLICES and all(len(t) == imaging.PHASES for t in by_location.values())
    locations = sorted(by_location)
    assert np.allclose(np.diff(locations), imaging.SLICE_SPACING_MM, atol=0.01)
    orientation = np.array(first.ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    for ds in datasets:
        assert float(np.array(ds.ImagePositionPatient, dtype=float) @ normal) == pytest.approx(
            float(ds.SliceLocation), abs=0.01
        )


def test_study_is_deterministic(tmp_path: Path) -> None:
    write_cine_study(tmp_path / "a", _study(), "k", np.random.default_rng(1))
    write_cine_study(tmp_path / "b", _study(), "k", np.random.default_rng(1))
    a = sorted((tmp_path / "a").rglob("*.dcm"))
    b = sorted((tmp_path / "b").rglob("*.dcm"))
    assert [p.relative_to(tmp_path / "a") for p in a] == [p.relative_to(tmp_path / "b") for p in b]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))
