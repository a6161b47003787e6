"""The byte-level DICOM fast path against its oracle, the pydicom path: the same output bytes, or a decline.

For every input: if the fast path takes the file, its output is byte-identical to the pydicom path's; if the pydicom
path rejects the file, the fast path must have declined it and written nothing.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian
from test_deid_dicom import make_dicom

from fabric.materialise import deid_fast_path, deid_pydicom, deid_recipe, imaging
from kernel.errors import InvalidInputError

pytestmark = pytest.mark.unit

KEY = b"k" * 32
PSEUDONYM = "P-ABCDEFGHIJKLMNOP"
MR = b"1.2.840.10008.5.1.4.1.1.4\0"
JPEG_BASELINE = b"1.2.840.10008.1.2.4.50\0"
EXPLICIT_LE = b"1.2.840.10008.1.2.1\0"
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def oracle(src: Path, work: Path) -> bool:
    """Run both paths on `src`; assert they agree; return whether the fast path took the file."""
    fast, slow = work / "fast" / "out.dcm", work / "slow" / "out.dcm"
    for path in (fast, slow):
        path.unlink(missing_ok=True)
    with imaging._quiet():
        taken = deid_fast_path.deidentify_fast(src, fast, PSEUDONYM, KEY)
        try:
            deid_pydicom.deidentify(src, slow, PSEUDONYM, KEY)
        except InvalidInputError:
            assert not taken, f"{src.name}: the fast path accepted a file the pydicom path rejects"
            assert not fast.exists()
            return False
    if taken:
        assert fast.read_bytes() == slow.read_bytes(), f"{src.name}: fast path output differs"
        assert taken == (hashlib.sha256(fast.read_bytes()).hexdigest(), fast.stat().st_size)
    else:
        assert not fast.exists()
    return taken is not None


def element(tag: int, vr: bytes, value: bytes, *, length: int | None = None, reserved: int = 0) -> bytes:
    """One explicit VR little endian element, written exactly as given (no padding)."""
    n = len(value) if length is None else length
    if vr in LONG_VRS:
        return struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, vr, reserved, n) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, n) + value


def part10(elements: list[bytes], *, syntax: bytes = EXPLICIT_LE) -> bytes:
    meta = (
        element(0x00020001, b"OB", b"\0\1")
        + element(0x00020002, b"UI", MR)
        + element(0x00020003, b"UI", b"1.2.826.0.1.3680043.9.7777.5\0")
        + element(0x00020010, b"UI", syntax)
        + element(0x00020013, b"SH", b"SITE_PACS ")
    )
    group_length = element(0x00020000, b"UL", struct.pack("<L", len(meta)))
    return b"\x07" * 128 + b"DICM" + group_length + meta + b"".join(elements)


def image(extra: tuple[bytes, ...] = (), **overrides: bytes | tuple[bytes, bytes] | None) -> list[bytes]:
    """A small MR slice as raw elements in tag order; keyword=value replaces a value, keyword=(VR, value) also the
    VR, keyword=None drops the element; `extra` elements are merged in."""
    fields: dict[str, tuple[int, bytes, bytes]] = {
        "SpecificCharacterSet": (0x00080005, b"CS", b"ISO_IR 100"),
        "SOPClassUID": (0x00080016, b"UI", MR),
        "SOPInstanceUID": (0x00080018, b"UI", b"1.2.826.0.1.3680043.9.7777.5\0"),
        "StudyDate": (0x00080020, b"DA", b"20230704"),
        "Modality": (0x00080060, b"CS", b"MR"),
        "InstitutionName": (0x00080080, b"LO", b"Royal Brompton"),
        "PatientName": (0x00100010, b"PN", b"Smith^Johnathan "),
        "PatientID": (0x00100020, b"LO", b"MRN0012345"),
        "PatientBirthDate": (0x00100030, b"DA", b"19580214"),
        "BodyPartExamined": (0x00180015, b"CS", b"HEART "),
        "StudyInstanceUID": (0x0020000D, b"UI", b"1.2.826.0.1.3680043.9.7777.1\0"),
        "SeriesInstanceUID": (0x0020000E, b"UI", b"1.2.826.0.1.3680043.9.7777.2\0"),
        "SamplesPerPixel": (0x00280002, b"US", b"\1\0"),
        "PhotometricInterpretation": (0x00280004, b"CS", b"MONOCHROME2 "),
        "Rows": (0x00280010, b"US", b"\2\0"),
        "Columns": (0x00280011, b"US", b"\2\0"),
        "BitsAllocated": (0x00280100, b"US", b"\x10\0"),
        "BitsStored": (0x00280101, b"US", b"\x0c\0"),
        "HighBit": (0x00280102, b"US", b"\x0b\0"),
        "PixelRepresentation": (0x00280103, b"US", b"\0\0"),
        "PixelData": (0x7FE00010, b"OW", bytes(range(8))),
    }
    for keyword, change in overrides.items():
        tag, vr, _value = fields.get(keyword, (pydicom.datadict.tag_for_keyword(keyword), b"", b""))
        if change is None:
            fields.pop(keyword, None)
        elif isinstance(change, tuple):
            fields[keyword] = (tag, *change)
        else:
            fields[keyword] = (tag, vr, change)
    elements = [element(tag, vr, value) for tag, vr, value in fields.values()] + list(extra)
    return sorted(elements, key=lambda raw: struct.unpack("<HH", raw[:4]))


def fragments(*frames: bytes) -> bytes:
    items = element(0x7FE00010, b"OB", b"", length=0xFFFFFFFF) + struct.pack("<HHL", 0xFFFE, 0xE000, 0)
    for frame in frames:
        items += struct.pack("<HHL", 0xFFFE, 0xE000, len(frame)) + frame
    return items + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)


@pytest.fixture(scope="module")
def cohort_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from synthetic_sites import generate_cohort

    root = tmp_path_factory.mktemp("fastpath") / "sites"
    generate_cohort(root, patients=40, sites=2, seed=3, progress=False)
    files = sorted(root.rglob("*.dcm"))
    assert len(files) > 100
    return files


def test_cohort_files_take_the_fast_path_byte_identical(cohort_files: list[Path], tmp_path: Path) -> None:
    assert all(oracle(src, tmp_path) for src in cohort_files)


def test_public_api_uses_the_fast_path(cohort_files: list[Path], tmp_path: Path, monkeypatch) -> None:
    def refuse(*_args: object) -> None:
        raise AssertionError("fell back to pydicom")

    monkeypatch.setattr(deid_pydicom, "deidentify", refuse)
    pairs = [(src, tmp_path / "view" / f"{n}.dcm") for n, src in enumerate(cohort_files[:20])]
    imaging.deidentify_dicom_many(pairs, pseudonym=PSEUDONYM, key=KEY)
    out = pydicom.dcmread(pairs[0][1])
    assert out.PatientID == PSEUDONYM and "PatientBirthDate" not in out
    assert not list((tmp_path / "view").glob(".tmp-*"))


def test_pydicom_bundled_files(tmp_path: Path) -> None:
    taken = declined = 0
    for src in sorted((Path(pydicom.data.__file__).parent / "test_files").rglob("*")):
        if src.is_file():
            if oracle(src, tmp_path):
                taken += 1
            else:
                declined += 1
    # The explicit VR little endian images among them take the fast path; the rest are declined.
    assert taken >= 10, (taken, declined)
    assert declined > taken


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


TAKEN = {
    "plain": image(),
    "odd-length values": image(
        PatientName=b"Smith^J",
        BodyPartExamined=b"HEART",
        SeriesDescription=(b"LO", b"cine"),
        ImageComments=(b"LT", b"odd"),
        PhotometricInterpretation=b"MONOCHROME2",
    ),
    "uid padding and multiple values": image(
        SOPClassUID=MR[:-1],
        SOPInstanceUID=b" 1.2.826.0.1.3680043.9.7777.5 ",
        StudyInstanceUID=b"1.2.3\\4.5.6\\\\1.2.840.10008.1.2\0",
        ReferencedSOPInstanceUID=(b"UI", b"1.2.3.4"),
        SeriesInstanceUID=b"",
        FrameOfReferenceUID=(b"UI", b"1.2.840.10008.99 "),
        SOPClassesInStudy=(b"UI", b"1.2.3\\1.2.4\0"),
    ),
    "private tags and unknown public tags": image(
        (
            element(0x00090010, b"LO", b"SITE PRIVATE"),
            element(0x00091001, b"UN", b"MRN0012345 Smith"),
            element(0x00091002, b"SQ", b"", length=0),
            element(0x00290010, b"LO", b"X "),
            element(0x00291001, b"OB", b"\1\2\3"),
            element(0x00089990, b"LO", b"unknown"),
            element(0x00180000, b"UL", b"\0\0\0\0"),
        ),
        PatientAge=(b"AS", b"065Y"),
    ),
    "un vr kept raw": image(BodyPartExamined=(b"UN", b"HEART "), Manufacturer=(b"UN", b"Acme")),
    "own fields already present": image(
        PatientIdentityRemoved=(b"CS", b"NO"),
        DeidentificationMethod=(b"LO", b"site tool v1"),
        LongitudinalTemporalInformationModified=(b"CS", b"UNMODIFIED"),
    ),
    "utf-8": image(SpecificCharacterSet=b"ISO_IR 192", SeriesDescription=(b"LO", "Kurzachse ü".encode())),
    "no character set": image(SpecificCharacterSet=None),
    "frames and ybr": image(
        NumberOfFrames=(b"IS", b"2 "),
        PhotometricInterpretation=b"YBR_FULL_422",
        SamplesPerPixel=b"\3\0",
        PixelData=bytes(16),
        BitsAllocated=b"\x08\0",
    ),
    "one-bit pixels": image(BitsAllocated=b"\1\0", PixelData=b"\xff\0"),
    "more pixel data than needed": image(PixelData=bytes(12)),
    "trailing padding": image((element(0xFFFCFFFC, b"OB", bytes(6)),)),
    "removed sequence": image(OtherPatientIDsSequence=(b"SQ", struct.pack("<HHL", 0xFFFE, 0xE000, 0))),
}


@pytest.mark.parametrize("label", sorted(TAKEN))
def test_hand_built_files_taken(label: str, tmp_path: Path) -> None:
    assert oracle(write(tmp_path, "x.dcm", part10(TAKEN[label])), tmp_path)


def test_encapsulated_pixel_data_taken(tmp_path: Path) -> None:
    elements = [*image(PixelData=None), fragments(b"\xff\xd8\xff\xd9", b"\xff\xd8\x00\x01\xff\xd9")]
    assert oracle(write(tmp_path, "jpeg.dcm", part10(elements, syntax=JPEG_BASELINE)), tmp_path)
    out = pydicom.dcmread(tmp_path / "fast" / "out.dcm")
    assert out.file_meta.TransferSyntaxUID == JPEG_BASELINE.rstrip(b"\0").decode()


DECLINED = {
    "kept sequence": image(ReferencedImageSequence=(b"SQ", b"")),
    "gb18030": image(SpecificCharacterSet=b"GB18030 "),
    "iso 2022": image(SpecificCharacterSet=b"\\ISO 2022 IR 87"),
    "rekeyed uid as UN": image(StudyInstanceUID=(b"UN", b"1.2.3\0")),
    "no pixel data": image(PixelData=None),
    "short pixel data": image(PixelData=bytes(6)),
    "odd pixel data": image(PixelData=bytes(9)),
    "no rows": image(Rows=None),
    "no sop instance": image(SOPInstanceUID=None),
    "empty sop instance": image(SOPInstanceUID=b""),
    "multi-valued rows": image(Rows=b"\2\0\2\0"),
    "unknown vr": [*image()[:3], element(524320, b"XX", b"20230704"), *image()[4:]],
    "out of order": image()[:3] + image()[5:6] + image()[4:5] + image()[6:],
    "command group": image((element(0x00000902, b"LO", b"ok"),)),
    "non-zero reserved": [*image()[:-1], element(2145386512, b"OW", bytes(8), reserved=1)],
    "undefined length native pixel data": [*image(PixelData=None), fragments(b"\x00" * 8)],
}


@pytest.mark.parametrize("label", sorted(DECLINED))
def test_hand_built_files_declined(label: str, tmp_path: Path) -> None:
    assert not oracle(write(tmp_path, "x.dcm", part10(DECLINED[label])), tmp_path)


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
def test_other_transfer_syntaxes_declined(syntax: str, tmp_path: Path) -> None:
    src = tmp_path / "site.dcm"
    ds = make_dicom(src)
    del ds.ReferencedImageSequence
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(src, enforce_file_format=True)
    assert not oracle(src, tmp_path)


def test_make_dicom_taken_without_its_sequence(tmp_path: Path) -> None:
    src = tmp_path / "site.dcm"
    ds = make_dicom(src)
    assert not oracle(src, tmp_path)  # ReferencedImageSequence is kept and scrubbed item by item
    del ds.ReferencedImageSequence
    ds.save_as(src, enforce_file_format=True)
    assert oracle(src, tmp_path)


def test_encapsulated_damage_declined(tmp_path: Path) -> None:
    inside = b"\xff\xd8" + b"\xfe\xff\xdd\xe0" + b"\0\0\0\0\xff\xd9"  # delimiter bytes inside a fragment
    for label, pixels in (
        ("delimiter inside", fragments(inside)),
        ("no delimiter", fragments(b"\xff\xd8\xff\xd9")[:-8]),
        ("not last", fragments(b"\xff\xd8\xff\xd9") + element(0xFFFCFFFC, b"OB", b"\0\0")),
        ("no fragments", fragments()[:8]),
        ("odd fragment", fragments(b"\xff\xd8\x00\xff\xd9")),  # pydicom pads the value, not the fragment
    ):
        src = write(tmp_path, f"{label}.dcm", part10([*image(PixelData=None), pixels], syntax=JPEG_BASELINE))
        assert not oracle(src, tmp_path), label


def test_blank_rule_matches_pydicom(tmp_path: Path, monkeypatch) -> None:
    """The default recipe blanks only sequences (declined); a recipe that blanks a plain element is handled."""
    plan = deid_recipe.plan
    monkeypatch.setattr(deid_recipe, "plan", lambda tag: deid_recipe.BLANK if tag == 0x00080020 else plan(tag))
    deid_fast_path._fast_action.cache_clear()
    try:
        assert oracle(write(tmp_path, "x.dcm", part10(image(StudyDate=b"2023070"))), tmp_path)
        assert pydicom.dcmread(tmp_path / "fast" / "out.dcm").StudyDate == ""
    finally:
        deid_fast_path._fast_action.cache_clear()


def test_truncations_and_flips_agree(cohort_files: list[Path], tmp_path: Path) -> None:
    """Damaged copies of a good file: the fast path declines, or writes what the pydicom path writes."""
    for good in (cohort_files[0].read_bytes(), part10(image(NumberOfFrames=(b"IS", b"1 ")))):
        pixels = good.rfind(b"\xe0\x7f\x10\x00")
        cases = {f"cut-{n}": good[:n] for n in range(0, pixels + 12, 5)}
        cases["cut-pixels"] = good[:-3]
        for n in range(128, pixels + 12, 3):
            for bit in (0x01, 0x80):
                cases[f"flip-{n}-{bit}"] = good[:n] + bytes([good[n] ^ bit]) + good[n + 1 :]
        taken = 0
        for label, data in cases.items():
            taken += oracle(write(tmp_path, f"{label}.dcm", data), tmp_path)
        assert taken > len(cases) // 4
