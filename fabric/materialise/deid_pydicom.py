"""The pydicom path of DICOM de-identification, the reference for every file: read and decode the dataset, check
that it is complete, apply the recipe's plan (deid_recipe.py) element by element, and write it back with a new file
meta. It handles any DICOM pydicom reads; the byte-level fast path (deid_fast_path.py) is held to its output.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID

from fabric.materialise import deid_recipe as recipe
from fabric.materialise.files import write_hashed
from kernel.errors import InvalidInputError


def _scrub(ds: Dataset, key: bytes) -> None:
    """Apply the plan to every element of `ds`, recursing into the sequences that are kept."""
    for tag in list(ds.keys()):
        if BaseTag(tag).is_private:
            del ds[tag]
            continue
        action = recipe.plan(tag)
        if action == recipe.REMOVE:
            del ds[tag]
        elif action == recipe.BLANK:
            elem = ds[tag]
            elem.value = Sequence() if elem.VR == "SQ" else None
        elif action == recipe.REKEY:
            elem = ds[tag]
            elem.value = recipe.rekey_value(key, elem.keyword, elem.value)
        elif dictionary_VR(tag) == "SQ":
            for item in ds[tag].value:
                _scrub(item, key)


def _check_complete(src: Path, ds: Dataset) -> None:
    """pydicom reads a truncated file without complaint; find where the file ended inside an element."""
    for raw in list(ds._dict.values()):
        if (
            isinstance(raw, RawDataElement)
            and raw.length != 0xFFFFFFFF
            and raw.value is not None
            and len(raw.value) < raw.length
        ):
            raise InvalidInputError(src, f"truncated: element {BaseTag(raw.tag)} is cut short")
    if "PixelData" not in ds:
        # pydicom stops quietly at a cut inside a tag header, so an image whose pixels never arrived is the one
        # sign of truncation before the pixel data; the imaging datasets hold images only.
        raise InvalidInputError(src, "no pixel data (truncated, or not an image)")
    syntax = ds.file_meta.TransferSyntaxUID
    pixels = ds.PixelData
    if syntax.is_encapsulated:
        try:
            fragments = list(pydicom.encaps.generate_fragments(pixels))
        except (ValueError, EOFError) as exc:
            raise InvalidInputError(src, f"damaged compressed pixel data ({exc})") from None
        if not fragments:
            raise InvalidInputError(src, "compressed pixel data has no fragments")
        return
    try:
        expected = pydicom.pixels.utils.get_expected_length(ds, "bytes")
    except (AttributeError, TypeError, ValueError, KeyError):
        raise InvalidInputError(src, "pixel data without a usable image description (rows, columns, bits)") from None
    if len(pixels) < expected:
        raise InvalidInputError(src, f"truncated pixel data ({len(pixels)} of {expected} bytes)")


def _read(src: Path) -> Dataset:
    try:
        if src.stat().st_size == 0:
            raise InvalidInputError(src, "empty file")
        ds = pydicom.dcmread(src)
    except FileNotFoundError:
        raise InvalidInputError(src, "no such file") from None
    except InvalidDicomError:
        raise InvalidInputError(src, "not a DICOM file (no DICM prefix after the preamble)") from None
    except InvalidInputError:
        raise
    except Exception as exc:  # pydicom raises many types (struct.error, EOFError, ...) on damaged input
        raise InvalidInputError(src, f"unreadable DICOM ({type(exc).__name__})") from None
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        raise InvalidInputError(src, "DICOM file meta has no transfer syntax")
    syntax = meta.TransferSyntaxUID
    if not isinstance(syntax, UID) or not syntax.is_transfer_syntax:  # a damaged value can be multi-valued
        raise InvalidInputError(src, "unknown transfer syntax")
    if ds.original_encoding[0] is not None and ds.original_encoding[0] != syntax.is_implicit_VR:
        # pydicom guessed the real encoding; writing it under the declared syntax would corrupt the copy.
        raise InvalidInputError(src, "dataset encoding contradicts its declared transfer syntax")
    return ds


def deidentify(src: Path, dst: Path, pseudonym: str, key: bytes, *, atomic: bool = True) -> tuple[str, int]:
    """The reference path: any DICOM pydicom reads, through a decoded Dataset."""
    ds = _read(src)
    try:
        _check_complete(src, ds)
        syntax = ds.file_meta.TransferSyntaxUID
        _scrub(ds, key)
        if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
            raise InvalidInputError(src, "no SOP Class UID or SOP Instance UID")
        recipe.finish(ds, pseudonym)
        ds.file_meta = recipe.new_meta(ds, syntax)
        # The preamble is free for application use (TIFF headers, vendor data): zeroed.
        ds.preamble = b"\0" * 128
    except InvalidInputError:
        raise
    except Exception as exc:  # damaged values surface lazily, when an element is first decoded
        raise InvalidInputError(src, f"unreadable DICOM element ({type(exc).__name__})") from None

    def write(fh: BinaryIO) -> None:
        try:
            pydicom.dcmwrite(fh, ds, enforce_file_format=True)
        except (ValueError, TypeError, OverflowError, KeyError, AttributeError, NotImplementedError) as exc:
            raise InvalidInputError(src, f"cannot be rewritten ({type(exc).__name__})") from None

    return write_hashed(dst, write, atomic=atomic, suffix=".dcm")
