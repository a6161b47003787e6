"""Bad input to the modality copiers: third-party edge cases, truncated and corrupted files.

Each must either materialise or fail with InvalidInputError naming the file, leaving no output and no temp file.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pydicom
import pydicom.data
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from test_deid_dicom import make_dicom
from test_materialise_genomics import SAMPLES, make_bam, write_vcf

from fabric.materialise.genomics import materialise_bam, materialise_vcf
from fabric.materialise.imaging import deidentify_dicom
from kernel.errors import InvalidInputError
from tests.third_party import HTSLIB

pytestmark = pytest.mark.robustness


KEY = b"k" * 32


def assert_clean(out_dir: Path) -> None:
    leftovers = [p.name for p in out_dir.iterdir()] if out_dir.exists() else []
    assert not [n for n in leftovers if n.startswith(".tmp-")], leftovers


def first_sample(path: Path) -> dict[str, str]:
    import pysam

    try:
        with pysam.VariantFile(str(path)) as vf:
            names = list(vf.header.samples)
    except (OSError, ValueError):
        return {"X": "P-XXXXXXXXXXXXXXXX"}
    return {names[0]: "P-XXXXXXXXXXXXXXXX"} if names else {"X": "P-XXXXXXXXXXXXXXXX"}


@pytest.mark.parametrize("name", sorted(p.name for p in HTSLIB.glob("*") if "vcf" in p.name or p.suffix == ".bcf"))
def test_htslib_vcf_edge_cases(name: str, tmp_path: Path) -> None:
    src = HTSLIB / name
    out = tmp_path / "out"
    try:
        n = materialise_vcf(src, out / "x.vcf.gz", first_sample(src), keep_unobserved=True)
    except InvalidInputError as err:
        assert str(src) in str(err)
        assert not (out / "x.vcf.gz").exists()
    else:
        assert n >= 0
        assert (out / "x.vcf.gz.tbi").exists() or (out / "x.vcf.gz.csi").exists()
    assert_clean(out)


@pytest.mark.parametrize("name", sorted(p.name for p in HTSLIB.glob("*") if p.suffix in (".sam", ".bam")))
def test_htslib_alignment_edge_cases(name: str, tmp_path: Path) -> None:
    src = HTSLIB / name
    out = tmp_path / "out"
    try:
        materialise_bam(src, out / "P.bam", "P-XXXXXXXXXXXXXXXX")
    except InvalidInputError as err:
        assert str(src) in str(err)
        assert not (out / "P.bam").exists()
    else:
        assert (out / "P.bam.bai").exists()
    assert_clean(out)


def corruptions(good: bytes) -> dict[str, bytes]:
    return {
        "empty": b"",
        "random": bytes(os.urandom(4096)),
        "truncated-half": good[: len(good) // 2],
        "truncated-tail": good[:-40],
        "flipped": good[:200] + bytes(b ^ 0xFF for b in good[200:400]) + good[400:],
    }


def test_corrupt_vcf_inputs(tmp_path: Path) -> None:
    good = write_vcf(tmp_path / "good.vcf.gz").read_bytes()
    for label, data in corruptions(good).items():
        src = tmp_path / f"{label}.vcf.gz"
        src.write_bytes(data)
        out = tmp_path / "out" / label
        try:
            materialise_vcf(src, out / "x.vcf.gz", SAMPLES)
        except InvalidInputError as err:
            assert str(src) in str(err), label
            assert "LAB00" not in err.problem
        else:
            pytest.fail(f"{label}: damaged VCF accepted")
        assert_clean(out)


def test_vcf_ragged_and_unsorted(tmp_path: Path) -> None:
    from test_materialise_genomics import VCF_TEXT

    ragged = VCF_TEXT.replace("0/1:10\t1/1:10\t0/0:10", "0/1:10\t1/1:10")
    unsorted = VCF_TEXT.replace("1\t100\trs1", "1\t900\trs1")
    for label, text in (("ragged", ragged), ("unsorted", unsorted)):
        src = write_vcf(tmp_path / f"{label}.vcf.gz", text)
        with pytest.raises(InvalidInputError):
            materialise_vcf(src, tmp_path / "out" / "x.vcf.gz", SAMPLES)
        assert_clean(tmp_path / "out")


def test_corrupt_bam_inputs(tmp_path: Path) -> None:
    good = make_bam(tmp_path / "good.bam").read_bytes()
    for label, data in corruptions(good).items():
        src = tmp_path / f"{label}.bam"
        src.write_bytes(data)
        out = tmp_path / "out" / label
        try:
            materialise_bam(src, out / "P.bam", "P-XXXXXXXXXXXXXXXX")
        except InvalidInputError as err:
            assert str(src) in str(err), label
        else:
            pytest.fail(f"{label}: damaged BAM accepted")
        assert_clean(out)


def test_corrupt_dicom_inputs(tmp_path: Path) -> None:
    good_path = tmp_path / "good.dcm"
    make_dicom(good_path)
    good = good_path.read_bytes()
    cases = corruptions(good)
    cases["truncated-pixels"] = good[:-10]
    cases["no-preamble"] = good[132:]
    for label, data in cases.items():
        src = tmp_path / f"{label}.dcm"
        src.write_bytes(data)
        out = tmp_path / "out" / label
        try:
            deidentify_dicom(src, out / "1.dcm", pseudonym="P-XXXXXXXXXXXXXXXX", key=KEY)
        except InvalidInputError as err:
            assert str(src) in str(err), label
            assert "Smith" not in err.problem and "MRN" not in err.problem
        else:
            # A flip inside a value can leave a readable file; it must still come out de-identified.
            assert label == "flipped", label
            assert pydicom.dcmread(out / "1.dcm").PatientID == "P-XXXXXXXXXXXXXXXX"
        assert_clean(out)


def test_pydicom_bundled_files(tmp_path: Path) -> None:
    """Every local pydicom test file either de-identifies or is rejected as InvalidInputError."""
    out = tmp_path / "out"
    done = 0
    # the files shipped inside the wheel: get_testdata_files() would also try to download pydicom's extra data
    for name in sorted((Path(pydicom.data.__file__).parent / "test_files").rglob("*")):
        src = Path(name)
        if not src.is_file():
            continue
        try:
            deidentify_dicom(src, out / f"{done}.dcm", pseudonym="P-XXXXXXXXXXXXXXXX", key=KEY)
        except InvalidInputError as err:
            assert str(src) in str(err)
        done += 1
    assert done > 100
    assert_clean(out)


def test_missing_and_directory_inputs(tmp_path: Path) -> None:
    for fn, args in (
        (materialise_vcf, (tmp_path / "nope.vcf.gz", tmp_path / "o.vcf.gz", SAMPLES)),
        (materialise_bam, (tmp_path / "nope.bam", tmp_path / "o.bam", "P-X")),
    ):
        with pytest.raises(InvalidInputError, match="no such file"):
            fn(*args)
    with pytest.raises(InvalidInputError):
        deidentify_dicom(tmp_path / "nope.dcm", tmp_path / "o.dcm", pseudonym="P-X", key=KEY)
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
