"""A strict scanner for explicit VR little endian DICOM Part 10 bytes, for the de-identification fast path.

It splits a file into its elements without decoding any value: 128-byte preamble, "DICM", the file meta group
(0002) bounded by its group length, then the dataset's top-level elements (tag, VR, 2- or 4-byte length, value).
It is deliberately narrow. Whatever it cannot vouch for, it refuses with `Declined` instead of guessing, and the
caller falls back to pydicom: an unknown VR, a non-zero reserved field, a cut inside a header or a value, tags out
of order or repeated, a meta group whose length disagrees with its elements, and undefined lengths anywhere but on
encapsulated pixel data that ends the file. Sequences are returned as one opaque element.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

PREAMBLE = 128
UNDEFINED = 0xFFFFFFFF
PIXEL_DATA = 0x7FE00010
META_GROUP_LENGTH = 0x00020000

# pydicom.valuerep.EXPLICIT_VR_LENGTH_16 and _32 (PS3.5 Table 7.1-1 and 7.1-2).
VR_LENGTH_16 = frozenset(
    b"AE AS AT CS DA DS DT FL FD IS LO LT PN SH SL SS ST TM UI UL US".split(),
)
VR_LENGTH_32 = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())

_SHORT = struct.Struct("<HH2sH")  # group, element, VR, 16-bit length (or reserved)
_LONG = struct.Struct("<L")
_ITEM = struct.Struct("<HHL")
_ITEM_TAG = (0xFFFE, 0xE000)
_SEQUENCE_DELIMITER = (0xFFFE, 0xE0DD)
SEQUENCE_DELIMITER_BYTES = b"\xfe\xff\xdd\xe0"


class Declined(Exception):
    """The bytes are not in the narrow form the fast path handles with certainty (the reason is for logs)."""


class Element(NamedTuple):
    tag: int
    vr: bytes
    start: int  # where the element's header starts
    value: int  # where its value starts
    end: int  # where its value ends (for undefined-length pixel data: the sequence delimiter's start)
    after: int  # where the next element starts


def scan(data: bytes, pos: int, end: int, *, meta: bool) -> list[Element]:
    """The elements from `pos` to `end`, in file order; `meta` restricts them to group 0002."""
    elements: list[Element] = []
    last = -1
    unpack_short = _SHORT.unpack_from
    while pos < end:
        if pos + 8 > end:
            raise Declined("cut inside an element header")
        group, number, vr, length = unpack_short(data, pos)
        tag = group << 16 | number
        if tag <= last:
            raise Declined("elements out of order or repeated")
        if (group == 2) != meta:
            raise Declined("file meta element outside the meta group, or the reverse")
        last = tag
        if vr in VR_LENGTH_16:
            value = pos + 8
        elif vr in VR_LENGTH_32:
            if length != 0:
                raise Declined("non-zero reserved bytes")
            if pos + 12 > end:
                raise Declined("cut inside an element header")
            (length,) = _LONG.unpack_from(data, pos + 8)
            value = pos + 12
        else:
            raise Declined("unknown VR")
        if length == UNDEFINED:
            value_end, after = _encapsulated_end(data, tag, vr, value, end)
        else:
            value_end = after = value + length
            if value_end > end:
                raise Declined("value cut short")
        elements.append(Element(tag, vr, pos, value, value_end, after))
        pos = after
    return elements


def _encapsulated_end(data: bytes, tag: int, vr: bytes, value: int, end: int) -> tuple[int, int]:
    """Where undefined-length pixel data ends: items (fragments) then a sequence delimiter, at the end of the file.

    pydicom finds the end by searching for the delimiter's bytes, so the first occurrence must be the real one.
    """
    if tag != PIXEL_DATA or vr not in (b"OB", b"OW"):
        raise Declined("undefined length other than on pixel data")
    pos = value
    unpack_item = _ITEM.unpack_from
    while True:
        if pos + 8 > end:
            raise Declined("encapsulated pixel data cut short")
        group, number, length = unpack_item(data, pos)
        if (group, number) == _SEQUENCE_DELIMITER:
            break
        if (group, number) != _ITEM_TAG or length == UNDEFINED or pos + 8 + length > end:
            raise Declined("damaged encapsulated pixel data")
        pos += 8 + length
    if length != 0 or pos + 8 != end:
        raise Declined("encapsulated pixel data is not the last element")
    if data.find(SEQUENCE_DELIMITER_BYTES, value, pos + 4) != pos:
        raise Declined("sequence delimiter bytes inside a fragment")
    return pos, end


def split_part10(data: bytes) -> tuple[list[Element], list[Element]]:
    """The file meta elements and the dataset's top-level elements of a Part 10 file."""
    if len(data) < PREAMBLE + 4 + 12 or data[PREAMBLE : PREAMBLE + 4] != b"DICM":
        raise Declined("no DICM prefix")
    pos = PREAMBLE + 4
    group, number, vr, length = _SHORT.unpack_from(data, pos)
    if (group, number, vr, length) != (2, 0, b"UL", 4):
        raise Declined("file meta does not start with its group length")
    (group_length,) = _LONG.unpack_from(data, pos + 8)
    meta_end = pos + 12 + group_length
    if meta_end > len(data):
        raise Declined("file meta group length past the end of the file")
    meta = scan(data, pos, meta_end, meta=True)
    if data[meta_end : meta_end + 2] == b"\x02\x00":
        raise Declined("file meta continues past its group length")
    return meta, scan(data, meta_end, len(data), meta=False)


def header(tag: int, vr: bytes, length: int) -> bytes:
    """An explicit VR little endian element header; the caller keeps 16-bit lengths in range."""
    if vr in VR_LENGTH_32:
        return struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, vr, 0, length)
    return _SHORT.pack(tag >> 16, tag & 0xFFFF, vr, length)
