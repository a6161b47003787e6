"""DICOM in a view: a header index (one row per file) read in batches, and lazy pixel stacks.

Headers are read by a small scanner for the common case, explicit VR little endian (which also covers every
encapsulated/compressed transfer syntax), that stops at the first element after group 0028 and reads no pixels;
anything it does not handle (implicit VR, big endian, deflate, undefined lengths before the tags it needs, odd
text encodings) goes to `pydicom.dcmread(stop_before_pixels=True)`. The scanner's output is checked against
pydicom in the tests. Both paths produce the same row.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pydicom
from pydicom.errors import InvalidDicomError

from workbench.errors import InvalidInputError

INDEX_COLUMNS = (
    "pseudonym",
    "study_uid",
    "series_uid",
    "sop_uid",
    "instance_number",
    "slice_location",
    "trigger_time",
    "rows",
    "columns",
    "pixel_spacing",
    "modality",
    "bits_allocated",
    "pixel_representation",
    "frames",
    "path",
)

# (group, element) -> index column; all lie in groups 0008..0028, which is where the scanner stops.
_TAGS = {
    (0x0008, 0x0018): "sop_uid",
    (0x0008, 0x0060): "modality",
    (0x0010, 0x0020): "pseudonym",
    (0x0018, 0x1060): "trigger_time",
    (0x0020, 0x000D): "study_uid",
    (0x0020, 0x000E): "series_uid",
    (0x0020, 0x0013): "instance_number",
    (0x0020, 0x1041): "slice_location",
    (0x0028, 0x0008): "frames",
    (0x0028, 0x0010): "rows",
    (0x0028, 0x0011): "columns",
    (0x0028, 0x0030): "pixel_spacing",
    (0x0028, 0x0100): "bits_allocated",
    (0x0028, 0x0103): "pixel_representation",
}
_KEYWORDS = {
    "sop_uid": "SOPInstanceUID",
    "modality": "Modality",
    "pseudonym": "PatientID",
    "trigger_time": "TriggerTime",
    "study_uid": "StudyInstanceUID",
    "series_uid": "SeriesInstanceUID",
    "instance_number": "InstanceNumber",
    "slice_location": "SliceLocation",
    "frames": "NumberOfFrames",
    "rows": "Rows",
    "columns": "Columns",
    "pixel_spacing": "PixelSpacing",
    "bits_allocated": "BitsAllocated",
    "pixel_representation": "PixelRepresentation",
}
_EXPECTED_VR = {
    "rows": b"US",
    "columns": b"US",
    "bits_allocated": b"US",
    "pixel_representation": b"US",
    "frames": b"IS",
    "instance_number": b"IS",
    "slice_location": b"DS",
    "trigger_time": b"DS",
    "pixel_spacing": b"DS",
}
_LAST_TAG = (0x0028, 0xFFFF)
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"})
_ASCII_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192"})
_SIMPLE_SYNTAXES_NOT = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"})
_READ_SIZE = 8192
_SPACING = pd.ArrowDtype(pa.list_(pa.float64()))


class _Unhandled(Exception):
    """The scanner does not handle this file; pydicom reads it instead."""


class _Truncated(Exception):
    """The file stops in the middle of an element: damaged, whatever pydicom would make of it."""


def _scan(path: str) -> dict[str, Any]:
    """Header fields of an explicit-VR-little-endian Part 10 file, without pydicom."""
    with open(path, "rb") as fh:
        data = fh.read(_READ_SIZE)
        if data[128:132] != b"DICM":
            raise _Unhandled
        pos, values, syntax, charset = 132, {}, None, ""
        while True:
            if pos + 8 > len(data):
                more = fh.read(max(_READ_SIZE, len(data)))
                if not more:
                    if pos != len(data):
                        raise _Truncated(f"ends inside an element header at byte {len(data)}")
                    break  # a dataset with no pixel data (and nothing after group 0028)
                data += more
                continue
            group, element = struct.unpack_from("<HH", data, pos)
            vr = data[pos + 4 : pos + 6]
            if vr in _LONG_VRS:
                if pos + 12 > len(data):
                    data += fh.read(_READ_SIZE)
                    if pos + 12 > len(data):
                        raise _Unhandled
                (length,) = struct.unpack_from("<I", data, pos + 8)
                head = 12
            elif vr.isalpha() and vr.isupper():
                (length,) = struct.unpack_from("<H", data, pos + 6)
                head = 8
            else:
                raise _Unhandled
            if group != 0x0002:
                if syntax is None or syntax in _SIMPLE_SYNTAXES_NOT:
                    raise _Unhandled
                if (group, element) > _LAST_TAG:
                    break
            if length == 0xFFFFFFFF:
                raise _Unhandled
            end = pos + head + length
            field = _TAGS.get((group, element))
            if field is not None or (group, element) in ((0x0002, 0x0010), (0x0008, 0x0005)):
                while end > len(data):
                    more = fh.read(max(_READ_SIZE, end - len(data)))
                    if not more:
                        raise _Truncated(f"ends inside element ({group:04X},{element:04X})")
                    data += more
                raw = data[pos + head : end]
                if (group, element) == (0x0002, 0x0010):
                    syntax = raw.rstrip(b"\0 ").decode("ascii")
                elif (group, element) == (0x0008, 0x0005):
                    charset = raw.decode("ascii").strip(" \0")
                    if charset not in _ASCII_CHARSETS:
                        raise _Unhandled
                elif _EXPECTED_VR.get(field, vr) != vr:
                    raise _Unhandled  # unusual encoding of a field: pydicom's conversion rules apply
                elif (value := _value(vr, raw)) is not None:
                    values[field] = value
            pos = end
    return values


def _value(vr: bytes, raw: bytes) -> Any:
    if vr == b"US":
        if len(raw) < 2:
            return None
        return struct.unpack_from("<H", raw)[0]
    text = raw.decode("ascii").strip(" \0")
    if vr == b"DS":
        parts = [float(p) for p in text.split("\\") if p.strip()]
        return parts if len(parts) != 1 else parts[0]
    if vr == b"IS":
        return int(float(text)) if text else None
    return text or None


def _pydicom_header(path: str) -> dict[str, Any]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    values: dict[str, Any] = {}
    for field, keyword in _KEYWORDS.items():
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        multi = isinstance(value, Sequence) and not isinstance(value, str)
        if field == "pixel_spacing":
            values[field] = [float(v) for v in value] if multi else [float(value)]
            continue
        if multi:
            value = value[0]  # a multi-valued scalar field: its first value
        if field in ("slice_location", "trigger_time"):
            values[field] = float(value)
        elif field in ("instance_number", "frames", "rows", "columns", "bits_allocated", "pixel_representation"):
            values[field] = int(value)
        else:
            values[field] = str(value)
    return values


def read_header(path: str) -> dict[str, Any]:
    """The index fields of one DICOM file (missing ones absent); InvalidInputError if it is not DICOM."""
    try:
        try:
            values = _scan(path)
        except (_Unhandled, UnicodeDecodeError, ValueError, struct.error):
            values = _pydicom_header(path)
    except FileNotFoundError as exc:
        raise InvalidInputError(path, "is missing") from exc
    except _Truncated as exc:
        raise InvalidInputError(path, f"DICOM file is truncated: it {exc}") from exc
    except InvalidDicomError as exc:
        raise InvalidInputError(path, f"is not a DICOM Part 10 file ({exc})") from exc
    except (
        OSError,
        EOFError,
        ValueError,
        TypeError,
        struct.error,
        UnicodeDecodeError,
        AttributeError,
    ) as exc:
        raise InvalidInputError(path, f"DICOM header cannot be read ({type(exc).__name__}: {exc})") from exc
    for field in ("slice_location", "trigger_time"):  # multi-valued DS: the first value
        if isinstance(values.get(field), list):
            values[field] = values[field][0]
    spacing = values.get("pixel_spacing")
    if spacing is not None and not isinstance(spacing, list):
        values["pixel_spacing"] = [float(spacing)]
    if "sop_uid" not in values:
        raise InvalidInputError(path, "has no SOPInstanceUID; not a complete DICOM instance (truncated?)")
    return values


def index_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The imaging index as a pandas frame with fixed dtypes (empty input gives the empty frame, Dask's meta)."""
    rows = list(rows)

    def col(name: str) -> list[Any]:
        return [r.get(name) for r in rows]

    def ints(name: str, default: int | None = None) -> pd.Series:
        return pd.Series([default if v is None else v for v in col(name)], dtype="Int64")

    return pd.DataFrame(
        {
            "pseudonym": pd.Series(col("pseudonym"), dtype="str"),
            "study_uid": pd.Series(col("study_uid"), dtype="str"),
            "series_uid": pd.Series(col("series_uid"), dtype="str"),
            "sop_uid": pd.Series(col("sop_uid"), dtype="str"),
            "instance_number": ints("instance_number"),
            "slice_location": pd.Series(col("slice_location"), dtype="float64"),
            "trigger_time": pd.Series(col("trigger_time"), dtype="float64"),
            "rows": ints("rows"),
            "columns": ints("columns"),
            "pixel_spacing": pd.Series(col("pixel_spacing"), dtype=_SPACING),
            "modality": pd.Series(col("modality"), dtype="str"),
            "bits_allocated": ints("bits_allocated"),
            "pixel_representation": ints("pixel_representation"),
            "frames": ints("frames", 1),
            "path": pd.Series(col("path"), dtype="str"),
        },
        columns=list(INDEX_COLUMNS),
    )


def index_task(paths: list[str]) -> pd.DataFrame:
    """Index rows for one batch of files (one Dask task per batch)."""
    return index_frame({**read_header(p), "path": p} for p in paths)


def pixel_dtype(bits_allocated: int, pixel_representation: int) -> np.dtype:
    if bits_allocated not in (8, 16, 32):
        raise ValueError(f"BitsAllocated {bits_allocated} is not 8, 16 or 32")
    return np.dtype(f"{'i' if pixel_representation else 'u'}{bits_allocated // 8}")


def pixels_task(paths: list[str], shape: tuple[int, int], dtype: str) -> np.ndarray:
    """Pixel arrays of single-frame images of one shape, stacked (len(paths), rows, columns)."""
    out = np.empty((len(paths), *shape), dtype=dtype)
    for i, path in enumerate(paths):
        try:
            array = pydicom.dcmread(path).pixel_array
        except (
            InvalidDicomError,
            OSError,
            EOFError,
            ValueError,
            TypeError,
            AttributeError,
            RuntimeError,
        ) as exc:
            raise InvalidInputError(path, f"pixel data cannot be decoded ({type(exc).__name__}: {exc})") from exc
        if array.shape != shape:
            raise InvalidInputError(path, f"pixel array has shape {array.shape}, its index row says {shape}")
        out[i] = array
    return out


def list_dicom_files(root: Path) -> list[str]:
    """Every `.dcm` under `imaging/`, sorted, as strings (the unit of work the index batches)."""
    if not root.is_dir():
        return []
    found = (os.path.join(d, n) for d, _, names in os.walk(root) for n in names if n.endswith(".dcm"))
    return sorted(found)
