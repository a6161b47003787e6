"""The byte-level fast path of DICOM de-identification. For explicit VR little endian files it produces the bytes
the pydicom path (deid_pydicom.py) would write, without decoding the dataset: elements pydicom leaves raw are copied
as they are (runs of them in one slice, pixel data included), and only the elements pydicom decodes are decoded
here, through pydicom's own conversion and writer, memoised on their bytes (a cohort repeats them from file to
file). tests/unit/test_deid_fast_path.py holds it to the pydicom path byte for byte. Anything else is declined,
having written nothing, and goes to the pydicom path. The file's elements come from the strict scanner in
dicom_bytes.py; what happens to each comes from the recipe (deid_recipe.py).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pydicom
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset, write_file_meta_info
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pydicom.valuerep import IS
from pydicom.values import convert_UI

from fabric.materialise import deid_recipe as recipe
from fabric.materialise import dicom_bytes
from fabric.materialise.dicom_bytes import META_GROUP_LENGTH, PIXEL_DATA, Declined
from fabric.materialise.files import write_hashed

_COPY, _DROP, _DECLINE, _BLANK, _REKEY, _DECODE, _IMAGE, _OWN = range(8)
_CHARSET_TAG = 0x00080005
_TRANSFER_SYNTAX_TAG = 0x00020010
_SOP_CLASS_TAG = 0x00080016
_SOP_INSTANCE_TAG = 0x00080018
# The image description pydicom decodes to check that native pixel data is complete (get_expected_length).
_IMAGE_DESCRIPTION = {
    0x00280002: "SamplesPerPixel",
    0x00280004: "PhotometricInterpretation",
    0x00280008: "NumberOfFrames",
    0x00280010: "Rows",
    0x00280011: "Columns",
    0x00280100: "BitsAllocated",
}
# Character sets in which the ASCII values this module writes encode as ASCII, checked rather than assumed.
_PLAIN_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192"})
_MAX_MEMO_VALUE = 256


@functools.cache
def _finish_tags() -> frozenset[int]:
    ds = Dataset()
    recipe.finish(ds, "X")
    return frozenset(ds.keys())


@functools.cache
def _fast_action(tag: int, vr: bytes) -> int:
    """What the fast path does with one top-level element, given its tag and the VR written in the file."""
    group = tag >> 16
    if group & 1:
        return _DROP  # private
    if group < 0x0008 or group == 0xFFFE:
        return _DECLINE  # command, meta or directory groups, or stray item tags: not an image dataset's business
    action = recipe.plan(tag)
    if action == recipe.REMOVE:
        return _DROP
    if vr == b"SQ" or dictionary_VR(tag) == "SQ":
        return _DECLINE  # kept or blanked sequences are decoded, scrubbed and re-encoded item by item
    if tag in _finish_tags():
        # `finish` overwrites the value; pydicom keeps the element's VR, which must then be the one written fresh.
        return _OWN if vr.decode() == dictionary_VR(tag) else _DECLINE
    if vr == b"UN" and action != recipe.KEEP:
        return _DECLINE  # decoding looks the VR up, so the element would be written under another VR
    if action == recipe.BLANK:
        return _BLANK
    if action == recipe.REKEY:
        return _REKEY if vr == b"UI" else _DECLINE
    if tag == _CHARSET_TAG:
        return _DECODE  # decoded by dcmread
    if tag in _IMAGE_DESCRIPTION:
        return _IMAGE  # decoded by the pydicom path's completeness check when the pixel data is native
    if tag == PIXEL_DATA:
        return _COPY if vr in (b"OB", b"OW") else _DECLINE
    return _COPY


def _convert(tag: int, vr: bytes, value: bytes, encoding: object) -> DataElement:
    """The element as Dataset.__getitem__ would decode it."""
    raw = RawDataElement(BaseTag(tag), vr.decode(), len(value), value, 0, False, True)
    try:
        return convert_raw_data_element(raw, encoding=encoding, ds=None)
    except Exception as exc:
        raise Declined(f"pydicom cannot decode {BaseTag(tag)} ({type(exc).__name__})") from None


def _encode(elem: DataElement, encoding: object) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    try:
        write_data_element(fp, elem, encoding)
    except Exception as exc:
        raise Declined(f"pydicom cannot encode {elem.tag} ({type(exc).__name__})") from None
    data = fp.getvalue()
    if data[4:6] != elem.VR.encode():
        raise Declined(f"pydicom would write {elem.tag} under another VR")
    return data


@functools.lru_cache(maxsize=4096)
def _decoded(tag: int, vr: bytes, value: bytes) -> tuple[bytes, object]:
    """An element pydicom decodes and writes back unchanged: the bytes it writes, and the value it decoded."""
    elem = _convert(tag, vr, value, default_encoding)
    return _encode(elem, default_encoding), elem.value


@functools.lru_cache(maxsize=4096)
def _rekeyed(tag: int, value: bytes, key: bytes) -> tuple[bytes, object]:
    """A UI element as the pydicom path leaves it: the bytes pydicom writes, and the value (for the file meta)."""
    elem = _convert(tag, b"UI", value, default_encoding)
    elem.value = recipe.rekey_value(key, elem.keyword, elem.value)
    return _encode(elem, default_encoding), elem.value


@functools.lru_cache(maxsize=64)
def _finish_elements(pseudonym: str) -> tuple[tuple[int, bytes], ...]:
    """The elements `finish` sets, as pydicom writes them into an explicit VR little endian dataset."""
    ds = Dataset()
    recipe.finish(ds, pseudonym)
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    data = fp.getvalue()
    return tuple((e.tag, data[e.start : e.after]) for e in dicom_bytes.scan(data, 0, len(data), meta=False))


@functools.cache
def _meta_template() -> dict[int, bytes]:
    """The file meta elements pydicom writes around the three set here (version, implementation)."""
    sample = Dataset()
    sample.SOPClassUID = sample.SOPInstanceUID = "1.2"
    meta = recipe.new_meta(sample, pydicom.uid.ExplicitVRLittleEndian)
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_file_meta_info(fp, meta, enforce_standard=True)
    data = fp.getvalue()
    elements = dicom_bytes.scan(data, 0, len(data), meta=True)
    skip = {META_GROUP_LENGTH, 0x00020002, 0x00020003, _TRANSFER_SYNTAX_TAG}
    return {e.tag: data[e.start : e.after] for e in elements if e.tag not in skip}


def _ui(tag: int, uid: object) -> bytes:
    """A file meta UI element as pydicom writes one (one value, NUL-padded to even length)."""
    if not isinstance(uid, str) or not uid or "\\" in uid:
        raise Declined("SOP class, SOP instance or transfer syntax UID is empty or multi-valued")
    value = uid.encode(default_encoding)
    if len(value) % 2:
        value += b"\0"
    return dicom_bytes.header(tag, b"UI", len(value)) + value


def _file_meta(sop_class: object, sop_instance: object, syntax: UID) -> bytes:
    elements = dict(_meta_template())
    elements[0x00020002] = _ui(0x00020002, sop_class)
    elements[0x00020003] = _ui(0x00020003, sop_instance)
    elements[_TRANSFER_SYNTAX_TAG] = _ui(_TRANSFER_SYNTAX_TAG, syntax)
    body = b"".join(elements[tag] for tag in sorted(elements))
    return dicom_bytes.header(META_GROUP_LENGTH, b"UL", 4) + len(body).to_bytes(4, "little") + body


@functools.lru_cache(maxsize=64)
def _fast_syntax(value: bytes) -> UID:
    syntax = convert_UI(value, True)
    if not isinstance(syntax, UID) or not syntax.is_transfer_syntax:
        raise Declined("unknown or multi-valued transfer syntax")
    if syntax.is_implicit_VR or not syntax.is_little_endian or syntax.is_deflated:
        raise Declined("not explicit VR little endian")
    return syntax


def _expected_pixel_bytes(image: dict[int, object]) -> int:
    """pydicom.pixels.utils.get_expected_length(ds, "bytes") over the decoded image description."""
    rows, columns, samples, bits = (image.get(tag) for tag in (0x00280010, 0x00280011, 0x00280002, 0x00280100))
    frames = image.get(0x00280008, 1)
    frames = frames or 1
    if not all(type(v) in (int, IS) for v in (rows, columns, samples, bits, frames)):
        raise Declined("image description missing or not single integers")
    if 0x00280004 not in image:
        raise Declined("no photometric interpretation")
    length = rows * columns * samples * frames  # type: ignore[operator]
    length = length // 8 + (length % 8 > 0) if bits == 1 else length * (bits // 8)  # type: ignore[operator]
    if image[0x00280004] == "YBR_FULL_422":
        length = length // 3 * 2
    return length


def _fast_bytes(data: bytes, pseudonym: str, key: bytes) -> list[bytes | memoryview]:
    """The de-identified file as pieces to join, or Declined."""
    meta, body = dicom_bytes.split_part10(data)
    syntaxes = [e for e in meta if e.tag == _TRANSFER_SYNTAX_TAG]
    if not syntaxes:
        raise Declined("no transfer syntax")
    syntax = _fast_syntax(data[syntaxes[0].value : syntaxes[0].end])
    encapsulated = syntax.is_encapsulated
    view = memoryview(data)
    pieces: list[bytes | memoryview] = []
    finish = _finish_elements(pseudonym)
    pending = 0  # next of `finish` to place, in tag order among the file's elements
    run_start = run_end = 0  # elements copied as they are, in one slice
    charset: object = None
    image: dict[int, object] = {}
    uids: dict[int, object] = {}
    pixels = None
    for el in body:
        tag = el.tag
        while pending < len(finish) and finish[pending][0] < tag:
            if run_end > run_start:
                pieces.append(view[run_start:run_end])
                run_start = run_end
            pieces.append(finish[pending][1])
            pending += 1
        action = _fast_action(tag, el.vr)
        if action == _IMAGE and encapsulated:
            action = _COPY
        if tag == PIXEL_DATA:
            pixels = el
        if action == _COPY:
            if el.start != run_end:
                if run_end > run_start:
                    pieces.append(view[run_start:run_end])
                run_start = el.start
            run_end = el.after
            continue
        if action in (_DROP, _OWN):
            continue
        if action == _DECLINE:
            raise Declined(f"element {BaseTag(tag)} is not one the fast path handles")
        if el.end - el.value > _MAX_MEMO_VALUE:
            raise Declined(f"element {BaseTag(tag)} is too long to decode here")
        if run_end > run_start:
            pieces.append(view[run_start:run_end])
            run_start = run_end
        value = data[el.value : el.end]
        if action == _BLANK:
            # Decoded (and so possibly rejected) by the pydicom path before it is blanked.
            _convert(tag, el.vr, value, charset or default_encoding)
            pieces.append(dicom_bytes.header(tag, el.vr, 0))
        elif action == _REKEY:
            encoded, uids[tag] = _rekeyed(tag, value, key)
            pieces.append(encoded)
        else:  # _DECODE or _IMAGE
            encoded, decoded = _decoded(tag, el.vr, value)
            if action == _DECODE:
                charset = decoded
            else:
                image[tag] = decoded
            pieces.append(encoded)
    if run_end > run_start:
        pieces.append(view[run_start:run_end])
    pieces.extend(chunk for _tag, chunk in finish[pending:])

    if charset is not None and (not isinstance(charset, str) or charset not in _PLAIN_CHARSETS):
        raise Declined("character set other than ASCII, Latin-1 or UTF-8")
    if pixels is None or pixels.end == pixels.value:
        raise Declined("no pixel data")
    pixel_bytes = view[pixels.value : pixels.end]
    if len(pixel_bytes) % 2:
        raise Declined("odd-length pixel data (pydicom pads it)")
    if encapsulated:
        try:
            if not any(True for _ in pydicom.encaps.generate_fragments(bytes(pixel_bytes))):
                raise Declined("compressed pixel data has no fragments")
        except (ValueError, EOFError):
            raise Declined("damaged compressed pixel data") from None
    else:
        if pixels.after != pixels.end:
            raise Declined("native pixel data of undefined length")
        if len(pixel_bytes) < _expected_pixel_bytes(image):
            raise Declined("truncated pixel data")
    if _SOP_CLASS_TAG not in uids or _SOP_INSTANCE_TAG not in uids:
        raise Declined("no SOP Class UID or SOP Instance UID")
    head = b"\0" * dicom_bytes.PREAMBLE + b"DICM" + _file_meta(uids[_SOP_CLASS_TAG], uids[_SOP_INSTANCE_TAG], syntax)
    return [head, *pieces]


def deidentify_fast(src: Path, dst: Path, pseudonym: str, key: bytes, *, atomic: bool = True) -> tuple[str, int] | None:
    """The byte-level path: the pydicom path's output (its SHA-256 and size returned) for the files it can vouch
    for; None (with nothing written) for any other, which then goes to the pydicom path."""
    settings = pydicom.config.settings
    if (
        not pseudonym.isascii()
        or settings.reading_validation_mode == pydicom.config.RAISE
        or settings.writing_validation_mode == pydicom.config.RAISE
    ):
        return None
    try:
        with open(src, "rb") as fh:
            data = fh.read()
        pieces = _fast_bytes(data, pseudonym, key)
    except (OSError, Declined):
        return None
    output = b"".join(pieces)
    return write_hashed(dst, lambda fh: fh.write(output), atomic=atomic, suffix=".dcm")
