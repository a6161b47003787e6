"""DICOM de-identification: what is kept, what is re-keyed, and parity with deid's own recipe application."""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from fabric.materialise.imaging import deidentify_dicom, deidentify_dicom_many
from fabric.pseudonyms import rekey_uid

pytestmark = pytest.mark.unit

KEY = b"k" * 32
PSEUDONYM = "P-ABCDEFGHIJKLMNOP"


def make_dicom(path: Path, *, instance: int = 1, series_uid: str | None = None) -> Dataset:
    """A cardiac MR slice with the identifying header a site export carries."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = generate_uid(prefix="1.2.826.0.1.3680043.9.7777.")
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.9.7777.1"
    ds.SeriesInstanceUID = series_uid or "1.2.826.0.1.3680043.9.7777.2"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.9.7777.3"
    ds.PatientName = "Smith^Johnathan"
    ds.PatientID = "MRN0012345"
    ds.PatientBirthDate = "19580214"
    ds.PatientSex = "M"
    ds.PatientAge = "065Y"
    ds.PatientAddress = "12 Acacia Avenue, London"
    ds.OtherPatientIDs = "NHS9434765919"
    ds.InstitutionName = "Royal Brompton Hospital"
    ds.InstitutionAddress = "Sydney Street, London"
    ds.StationName = "RBHMR01"
    ds.AccessionNumber = "ACC99887766"
    ds.ReferringPhysicianName = "Jones^Marcella"
    ds.StudyDate = "20230704"
    ds.StudyTime = "101500"
    ds.StudyID = "STUDY42"
    ds.ImageComments = "patient anxious, see Dr Jones"
    ds.Modality = "MR"
    ds.SeriesDescription = "cine_sax"
    ds.StudyDescription = "Cardiac MRI for Mr Smith"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [-100.0, -120.5, 30.0 + instance]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1.5, 1.5]
    ds.SliceThickness = 8.0
    ds.SliceLocation = 30.0 + instance
    ds.TriggerTime = 33.3 * instance
    ds.EchoTime = 1.2
    ds.RepetitionTime = 2.8
    ds.Rows = 4
    ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(32))
    ref = Dataset()
    ref.ReferencedSOPClassUID = MRImageStorage
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.9.7777.99"
    ds.ReferencedImageSequence = Sequence([ref])
    block = ds.private_block(0x0029, "SITE PRIVATE", create=True)
    block.add_new(0x01, "LO", "MRN0012345 Smith")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "RBH_PACS"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return ds


@pytest.fixture
def site_file(tmp_path: Path) -> tuple[Path, Dataset]:
    path = tmp_path / "site" / "0001.dcm"
    return path, make_dicom(path)


def test_identity_replaced_and_analysis_fields_kept(site_file: tuple[Path, Dataset], tmp_path: Path) -> None:
    src, orig = site_file
    dst = tmp_path / "view" / "1.dcm"
    deidentify_dicom(src, dst, pseudonym=PSEUDONYM, key=KEY)
    out = pydicom.dcmread(dst)
    assert out.PatientID == PSEUDONYM
    assert str(out.PatientName) == PSEUDONYM
    assert out.PatientIdentityRemoved == "YES"
    assert out.DeidentificationMethod
    assert {item.CodeValue for item in out.DeidentificationMethodCodeSequence} >= {"113100"}
    for keyword in (
        "PatientBirthDate",
        "PatientAddress",
        "OtherPatientIDs",
        "InstitutionName",
        "InstitutionAddress",
        "StationName",
        "AccessionNumber",
        "ReferringPhysicianName",
        "StudyDate",
        "StudyTime",
        "StudyID",
        "ImageComments",
        "StudyDescription",
    ):
        assert keyword not in out, keyword
    assert not any(elem.tag.is_private for elem in out.iterall())
    assert "SourceApplicationEntityTitle" not in out.file_meta
    for keyword in (
        "Modality",
        "SeriesDescription",
        "InstanceNumber",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "PixelSpacing",
        "SliceThickness",
        "SliceLocation",
        "TriggerTime",
        "EchoTime",
        "RepetitionTime",
        "Rows",
        "Columns",
        "PatientSex",
        "PatientAge",
        "SOPClassUID",
    ):
        assert out[keyword].value == orig[keyword].value, keyword
    assert out.PixelData == orig.PixelData


def test_uids_rekeyed_with_project_key(site_file: tuple[Path, Dataset], tmp_path: Path) -> None:
    src, orig = site_file
    dst = tmp_path / "view" / "1.dcm"
    deidentify_dicom(src, dst, pseudonym=PSEUDONYM, key=KEY)
    out = pydicom.dcmread(dst)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        assert out[keyword].value == rekey_uid(KEY, orig[keyword].value), keyword
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.file_meta.MediaStorageSOPClassUID == MRImageStorage
    ref = out.ReferencedImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == rekey_uid(KEY, "1.2.826.0.1.3680043.9.7777.99")
    assert ref.ReferencedSOPClassUID == MRImageStorage


def test_series_structure_preserved_across_files(tmp_path: Path) -> None:
    pairs = []
    for n in (1, 2, 3):
        src = tmp_path / "site" / f"{n:04d}.dcm"
        make_dicom(src, instance=n)
        pairs.append((src, tmp_path / "view" / f"{n}.dcm"))
    deidentify_dicom_many(pairs, pseudonym=PSEUDONYM, key=KEY)
    outs = [pydicom.dcmread(dst) for _, dst in pairs]
    assert len({o.SeriesInstanceUID for o in outs}) == 1
    assert len({o.StudyInstanceUID for o in outs}) == 1
    assert len({o.SOPInstanceUID for o in outs}) == 3
    assert [o.InstanceNumber for o in outs] == [1, 2, 3]


def test_recipe_parity_with_deid(site_file: tuple[Path, Dataset], tmp_path: Path) -> None:
    """Every attribute deid's own application of its default recipe removes is gone from our output too,
    except the documented keeps (acquisition timing) and UIDs, which are re-keyed instead."""
    from deid.config import DeidRecipe
    from deid.dicom.parser import DicomParser
    from deid.logger import bot

    src, orig = site_file
    bot.level = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parser = DicomParser(str(src), recipe=DeidRecipe())
        parser.parse(remove_private=True)
    removed_by_deid = {e.keyword for e in orig if e.keyword} - {e.keyword for e in parser.dicom if e.keyword}
    dst = tmp_path / "view" / "1.dcm"
    deidentify_dicom(src, dst, pseudonym=PSEUDONYM, key=KEY)
    out = pydicom.dcmread(dst)
    documented = {"TriggerTime", "EchoTime", "RepetitionTime", "PatientID", "PatientName"}
    still_present = {k for k in removed_by_deid if k in out} - documented
    assert all(out[k].VR == "UI" for k in still_present), still_present
    for keyword in still_present - {"SOPClassUID"}:  # a class UID names no one and is kept
        assert out[keyword].value != orig[keyword].value


def test_pydicom_test_files_keep_pixel_bytes(tmp_path: Path) -> None:
    """Compressed, big-endian and multi-frame inputs: pixel data passes through byte for byte."""
    for name in (
        "MR_small_bigendian.dcm",
        "JPEG2000.dcm",
        "SC_rgb_rle.dcm",
        "image_dfl.dcm",
        "CT_small.dcm",
        "rtdose.dcm",
    ):
        src = Path(pydicom.data.get_testdata_file(name, download=False))
        dst = tmp_path / name
        deidentify_dicom(src, dst, pseudonym=PSEUDONYM, key=KEY)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            before, after = pydicom.dcmread(src), pydicom.dcmread(dst)
        assert after.PixelData == before.PixelData, name
        assert after.file_meta.TransferSyntaxUID == before.file_meta.TransferSyntaxUID
        assert after.PatientID == PSEUDONYM


def test_returned_digest_is_that_of_the_written_file(tmp_path: Path) -> None:
    import hashlib

    for name in ("MR_small.dcm", "CT_small.dcm"):
        src = Path(pydicom.data.get_testdata_file(name, download=False))
        dst = tmp_path / name
        digest, size = deidentify_dicom(src, dst, pseudonym="P-XXXXXXXXXXXXXXXX", key=b"k" * 32)
        assert (digest, size) == (hashlib.sha256(dst.read_bytes()).hexdigest(), dst.stat().st_size)


def test_direct_write_removes_its_partial_output_on_failure(tmp_path: Path) -> None:
    from fabric.materialise.files import write_hashed

    def fail_midway(fh) -> None:
        fh.write(b"DICM" * 100)
        raise OSError("disk full")

    dst = tmp_path / "staging" / "out.dcm"
    with pytest.raises(OSError, match="disk full"):
        write_hashed(dst, fail_midway, atomic=False)
    assert not dst.exists() and list(dst.parent.iterdir()) == []
    digest, size = write_hashed(dst, lambda fh: fh.write(b"ok"), atomic=False)
    assert dst.read_bytes() == b"ok" and size == 2
    assert digest == "2689367b205c16ce32ed4200942b8b8b1e262dfc70d9bc9fbc77c49699a4f1df"
