"""Red-team checks on the modality copiers: no site identifier survives anywhere in the output bytes."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pydicom
import pysam
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from test_deid_dicom import make_dicom
from test_materialise_genomics import SAMPLES, make_bam, write_vcf

from fabric.materialise.genomics import materialise_bam, materialise_vcf
from fabric.materialise.imaging import deidentify_dicom

pytestmark = pytest.mark.security

KEY = b"\x01" * 32
OTHER_KEY = b"\x02" * 32
PSEUDONYM = "P-ABCDEFGHIJKLMNOP"


def dicom_identifiers(ds: pydicom.Dataset) -> list[bytes]:
    values = [
        "Smith",
        "Johnathan",
        str(ds.PatientID),
        str(ds.PatientBirthDate),
        "Royal Brompton",
        str(ds.AccessionNumber),
        "Jones",
        "Marcella",
        "NHS9434765919",
        "Acacia",
        "RBH_PACS",
        "RBHMR01",
        str(ds.StudyInstanceUID),
        str(ds.SeriesInstanceUID),
        str(ds.SOPInstanceUID),
        str(ds.FrameOfReferenceUID),
        "1.2.826.0.1.3680043.9.7777",
    ]
    return [v.encode() for v in values]


def test_dicom_output_bytes_carry_no_identifier(tmp_path: Path) -> None:
    src = tmp_path / "site.dcm"
    orig = make_dicom(src)
    dst = tmp_path / "out.dcm"
    deidentify_dicom(src, dst, pseudonym=PSEUDONYM, key=KEY)
    raw = dst.read_bytes()
    for needle in dicom_identifiers(orig):
        assert needle not in raw, needle
    # Sanity: the scan would have found them in the input.
    assert all(needle in src.read_bytes() for needle in dicom_identifiers(orig)[:4])


def test_dicom_uids_deterministic_per_key(tmp_path: Path) -> None:
    src = tmp_path / "site.dcm"
    make_dicom(src)
    outs = {}
    for label, key in (("a", KEY), ("b", KEY), ("c", OTHER_KEY)):
        deidentify_dicom(src, tmp_path / f"{label}.dcm", pseudonym=PSEUDONYM, key=key)
        ds = pydicom.dcmread(tmp_path / f"{label}.dcm")
        outs[label] = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID)
    assert outs["a"] == outs["b"]
    assert not set(outs["a"]) & set(outs["c"])
    assert (tmp_path / "a.dcm").read_bytes() == (tmp_path / "b.dcm").read_bytes()


def test_vcf_output_has_no_site_sample_ids_or_paths(tmp_path: Path) -> None:
    src = write_vcf(tmp_path / "site.vcf.gz")
    dst = tmp_path / "out.vcf.gz"
    materialise_vcf(src, dst, SAMPLES)
    with gzip.open(dst, "rb") as fh:
        text = fh.read()
    for needle in (b"LAB00", b"Smith", b"9434765919", b"/data/rbh", b"PEDIGREE"):
        assert needle not in text, needle
    index = gzip.decompress(Path(str(dst) + ".tbi").read_bytes())
    assert b"LAB00" not in index


def test_vcf_withdrawn_sample_leaves_no_private_site(tmp_path: Path) -> None:
    """rs2 is carried only by LAB003, who is not in the view: neither its line nor its ID may remain."""
    src = write_vcf(tmp_path / "site.vcf.gz")
    dst = tmp_path / "out.vcf.gz"
    materialise_vcf(src, dst, SAMPLES)
    with gzip.open(dst, "rb") as fh:
        assert b"rs2" not in fh.read()


def test_bam_header_and_reads_have_no_site_sample_id(tmp_path: Path) -> None:
    src = make_bam(tmp_path / "LAB001.bam")
    dst = tmp_path / "out.bam"
    materialise_bam(src, dst, PSEUDONYM)
    with pysam.AlignmentFile(str(dst)) as bam:
        header_text = str(bam.header)
        tags = {read.get_tag("RG") for read in bam}
    for needle in ("LAB001", "Smith", "9434765919", "/data/rbh", "Royal Brompton"):
        assert needle not in header_text, needle
    assert not any("LAB001" in tag for tag in tags)
    with gzip.open(dst, "rb") as fh:
        assert b"LAB001" not in fh.read()
