"""DICOM de-identification for project views: one site file in, one pseudonymised file out.

What is removed comes from the `deid` package's default DICOM recipe (deid/data/deid.dicom, maintained upstream
and modelled on the DICOM PS3.15 basic profile), read once through `deid.config.DeidRecipe` and compiled into
per-tag decisions that are memoised across files. deid's own `replace_identifiers` costs ~7 ms a file (it rebuilds
lookup tables of every element for every rule); the compiled plan applies the same rules in well under 1 ms a
file, and leaves untouched elements (pixel data above all) as the raw bytes pydicom read, so nothing is decoded
or re-encoded.

On top of the recipe this module owns the enclave's policy, each item for a stated reason:
- UIDs are re-keyed with the project key instead of removed, so series structure survives; well-known UIDs
  (SOP classes, transfer syntaxes, anything under the DICOM root 1.2.840.10008) are kept.
- Acquisition parameters the recipe's blanket `endswith:Time` rule would take (TriggerTime, EchoTime, ...) and the
  patient characteristics analysis needs (sex, age, size, weight) are kept.
- The recipe does not cover institution, station and device identity, free text, person names outside its list,
  or AE titles: those are removed here (PS3.15 Table E.1-1 lists them), as are private tags, unknown public tags
  and group lengths.
- PatientID = PatientName = the pseudonym; PatientIdentityRemoved, DeidentificationMethod and its code sequence
  record what was done; the file meta is rebuilt so nothing from the site's (AE titles, implementation) leaks.

Explicit VR little endian files (the common case) take a byte-level fast path that writes exactly the bytes the
pydicom path would (see "The byte-level fast path" below, and fabric/materialise/dicom_bytes.py); every other
file, and any file the fast path cannot vouch for, goes through pydicom.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR, get_entry
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID
from pydicom.valuerep import IS
from pydicom.values import convert_UI

from fabric.errors import InvalidInputError
from fabric.materialise import dicom_bytes
from fabric.materialise.dicom_bytes import META_GROUP_LENGTH, PIXEL_DATA, Declined
from fabric.materialise.files import sha256_file
from fabric.pseudonyms import rekey_uid

# LO: at most 64 characters.
DEIDENTIFICATION_METHOD = "deid default recipe (PS3.15 basic); UIDs re-keyed per project"

# deid's own config never touches these (deid/dicom/config.json "skip", plus its "put" KEEP PixelData).
_DEID_SKIP = frozenset(
    {
        "PixelData",
        "RedPaletteColorLookupTableData",
        "GreenPaletteColorLookupTableData",
        "BluePaletteColorLookupTableData",
        "VOILUTSequence",
    }
)
# Kept although the recipe matches them: the recipe's `endswith:Time` rule is aimed at study/series times but also
# takes MR acquisition parameters, which identify nobody and which cine and mapping analysis needs. The rest are
# listed so the analysis contract is written down in one place even where the recipe leaves them alone.
_ANALYSIS_KEEP = frozenset(
    {
        "TriggerTime",
        "EchoTime",
        "EffectiveEchoTime",
        "RepetitionTime",
        "InversionTime",
        "FrameTime",
        "NominalInterval",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "PixelSpacing",
        "SliceThickness",
        "SliceLocation",
        "SpacingBetweenSlices",
        "InstanceNumber",
        "SeriesNumber",
        "Modality",
        "SeriesDescription",
        "Rows",
        "Columns",
        "PatientSex",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "SpecificCharacterSet",
    }
)
# Identifying attributes from PS3.15 Table E.1-1 that deid's default recipe does not list.
_SUPPLEMENT_REMOVE = frozenset(
    {
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "InstitutionalDepartmentTypeCodeSequence",
        "InstitutionCodeSequence",
        "StationName",
        "DeviceSerialNumber",
        "DeviceUID",
        "StudyDescription",
        "RequestedProcedureDescription",
        "PerformedProcedureStepDescription",
        "AdmittingDiagnosesDescription",
        "AdmittingDiagnosesCodeSequence",
        "MedicalAlerts",
        "Allergies",
        "Occupation",
        "EthnicGroup",
        "PatientReligiousPreference",
        "MilitaryRank",
        "BranchOfService",
        "CountryOfResidence",
        "PatientState",
        "ResponsibleOrganization",
        "DataSetTrailingPadding",
        "OriginalAttributesSequence",
        "ModifiedAttributesSequence",
        "RequestAttributesSequence",
        "DigitalSignaturesSequence",
    }
)
# Value representations that only ever carry names, free text, station titles or links.
_SUPPLEMENT_REMOVE_VRS = frozenset({"PN", "LT", "ST", "UT", "UC", "UR", "AE"})
# UI attributes whose values name a class or encoding, not an instance: re-keying them would break the file.
_CLASS_UIDS = frozenset(
    {
        "SOPClassUID",
        "ReferencedSOPClassUID",
        "MediaStorageSOPClassUID",
        "ReferencedSOPClassUIDInFile",
        "RelatedGeneralSOPClassUID",
        "OriginalSpecializedSOPClassUID",
        "SOPClassesInStudy",
        "TransferSyntaxUID",
        "ReferencedTransferSyntaxUIDInFile",
        "CodingSchemeUID",
        "ContextGroupExtensionCreatorUID",
    }
)
_DICOM_ROOT = "1.2.840.10008."
# Set by this module after the recipe has run, so the recipe's ADD of the same attribute is not applied.
_OWN_FIELDS = frozenset({"PatientID", "PatientName", "PatientIdentityRemoved", "IssuerOfPatientID"})

KEEP, REMOVE, BLANK, REKEY = "keep", "remove", "blank", "rekey"

_quiet_state = threading.local()


class _DropWhileQuiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet_state, "on", False)


# pydicom's warnings quote element values (patient names, UIDs) into the log: dropped while this module works.
logging.getLogger("pydicom").addFilter(_DropWhileQuiet())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    _quiet_state.on = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        _quiet_state.on = False


@dataclass(frozen=True)
class _Rule:
    action: str
    matches: Callable[[tuple[str, ...]], bool]


@dataclass(frozen=True)
class _Recipe:
    rules: tuple[_Rule, ...]
    additions: tuple[tuple[str, str], ...]


def _compile_field(field: str) -> Callable[[tuple[str, ...]], bool]:
    """A predicate over an element's names, with deid's semantics (see deid.dicom.fields.expand_field_expression).

    deid compares a rule, case-insensitively, against the keyword, the dictionary name, "(gggg,eeee)" and
    "ggggeeee"; expanders search those with a regular expression built from the rule's lower-cased text.
    """
    expander, sep, expression = field.partition(":")
    if not sep:
        wanted = field.lower()
        return lambda names: wanted in names
    expander = expander.lower()
    expression = expression.lower()
    if expander == "endswith":
        pattern = re.compile(f"({expression})$", re.IGNORECASE)
    elif expander == "startswith":
        pattern = re.compile(f"^({expression})", re.IGNORECASE)
    elif expander == "contains":
        pattern = re.compile(expression, re.IGNORECASE)
    else:
        # A new expander in an upgraded recipe must fail loudly, not silently stop removing something.
        raise RuntimeError(f"deid recipe rule {field!r} uses an expander this module does not implement")
    return lambda names: any(pattern.search(name) for name in names)


@functools.cache
def _recipe() -> _Recipe:
    """deid's default DICOM recipe, parsed once per process."""
    from deid.config import DeidRecipe
    from deid.logger import bot

    # deid's logger prints every recipe line at DEBUG unless MESSAGELEVEL is set; the enclave's logs stay clean.
    level, bot.level = bot.level, 0
    try:
        actions = DeidRecipe().get_actions()
    finally:
        bot.level = level
    rules: list[_Rule] = []
    additions: list[tuple[str, str]] = []
    for action in actions:
        kind = action["action"].upper()
        field = action["field"]
        value = action.get("value")
        if kind == "ADD":
            # var:/func: values name per-file lookups deid's caller would supply (dates, accession numbers);
            # the enclave supplies none, so those additions are skipped, as deid itself skips them.
            if field not in _OWN_FIELDS and value is not None and ":" not in value:
                additions.append((field, value))
            continue
        if kind in ("REPLACE", "JITTER"):
            # Replacement values come from per-file lookups the enclave does not supply: remove instead.
            kind = "REMOVE"
        if kind not in ("REMOVE", "BLANK", "KEEP"):
            raise RuntimeError(f"deid recipe action {kind!r} is not implemented")
        rules.append(_Rule(kind.lower(), _compile_field(field)))
    return _Recipe(tuple(rules), tuple(additions))


@functools.cache
def _plan(tag: int) -> str:
    """What happens to one public element; memoised because a cohort has few distinct tags and many files."""
    try:
        vr, _vm, description, _retired, keyword = get_entry(tag)
    except KeyError:
        # Unknown public tags cannot be judged safe.
        return REMOVE
    if (tag & 0xFFFF) == 0:
        # Group lengths go stale once elements are removed.
        return REMOVE
    if keyword in _DEID_SKIP or keyword in _ANALYSIS_KEEP:
        return KEEP
    if vr == "UI":
        return REKEY
    group, element = tag >> 16, tag & 0xFFFF
    names = (
        keyword.lower(),
        description.lower(),
        f"({group:04x},{element:04x})",
        f"{group:04x}{element:04x}",
    )
    matched = {rule.action for rule in _recipe().rules if rule.matches(names)}
    if "keep" in matched:
        return KEEP
    if "remove" in matched:
        return REMOVE
    if "blank" in matched:
        return BLANK
    if keyword in _SUPPLEMENT_REMOVE or vr in _SUPPLEMENT_REMOVE_VRS:
        return REMOVE
    return KEEP


def _rekey_value(key: bytes, keyword: str, value: object) -> object:
    if keyword in _CLASS_UIDS:
        return value
    if isinstance(value, list | pydicom.multival.MultiValue):
        return [_rekey_one(key, str(v)) for v in value]
    return _rekey_one(key, str(value)) if value else value


def _rekey_one(key: bytes, uid: str) -> str:
    return uid if uid.startswith(_DICOM_ROOT) or not uid else rekey_uid(key, uid)


def _scrub(ds: Dataset, key: bytes) -> None:
    """Apply the plan to every element of `ds`, recursing into the sequences that are kept."""
    for tag in list(ds.keys()):
        if BaseTag(tag).is_private:
            del ds[tag]
            continue
        action = _plan(tag)
        if action == REMOVE:
            del ds[tag]
        elif action == BLANK:
            elem = ds[tag]
            elem.value = Sequence() if elem.VR == "SQ" else None
        elif action == REKEY:
            elem = ds[tag]
            elem.value = _rekey_value(key, elem.keyword, elem.value)
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


def _finish(ds: Dataset, pseudonym: str) -> None:
    for field, value in _recipe().additions:
        setattr(ds, field, value)
    ds.PatientID = pseudonym
    ds.PatientName = pseudonym
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    codes = Sequence()
    for value, meaning in (
        ("113100", "Basic Application Confidentiality Profile"),
        ("113108", "Retain Patient Characteristics Option"),
    ):
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes


def _new_meta(ds: Dataset, syntax: UID) -> FileMetaDataset:
    """File meta from scratch: the site's carries AE titles and implementation names that identify it."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


class _HashingWriter:
    """A file wrapper that hashes what passes through, so the manifest needs no second read of the file. A writer
    that seeks makes the running hash meaningless: the file is then hashed after it is written."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.sequential = True

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self._fh.write(data)

    def seek(self, *args: int) -> int:
        self.sequential = False
        return self._fh.seek(*args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._fh, name)


def _write(dst: Path, write: Callable[[BinaryIO], None], *, atomic: bool) -> tuple[str, int]:
    """Write `dst` and return the SHA-256 and size of what was written. Atomic: through a temporary file in the same
    folder, renamed into place. Not atomic (a build's private staging folder, published as a whole or removed):
    straight to `dst`, created exclusively, removed again on failure, saving two metadata operations per file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if atomic:
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".dcm", dir=dst.parent)
    else:
        fd, tmp_name = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), str(dst)
    done = False
    try:
        with os.fdopen(fd, "wb") as fh:
            out = _HashingWriter(fh)
            write(out)  # type: ignore[arg-type]
        if out.sequential:
            digest, size = out.sha256.hexdigest(), out.size
        else:
            digest, size = sha256_file(Path(tmp_name)), os.path.getsize(tmp_name)
        if atomic:
            os.replace(tmp_name, dst)
        done = True
        return digest, size
    finally:
        if atomic or not done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)


def _deidentify_pydicom(src: Path, dst: Path, pseudonym: str, key: bytes, *, atomic: bool = True) -> tuple[str, int]:
    """The reference path: any DICOM pydicom reads, through a decoded Dataset."""
    ds = _read(src)
    try:
        _check_complete(src, ds)
        syntax = ds.file_meta.TransferSyntaxUID
        _scrub(ds, key)
        if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
            raise InvalidInputError(src, "no SOP Class UID or SOP Instance UID")
        _finish(ds, pseudonym)
        ds.file_meta = _new_meta(ds, syntax)
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

    return _write(dst, write, atomic=atomic)


# The byte-level fast path. For explicit VR little endian files it produces the bytes pydicom would write, without
# decoding the dataset: elements pydicom leaves raw are copied as they are (runs of them in one slice, pixel data
# included), and only the elements pydicom decodes are decoded here, through pydicom's own conversion and writer,
# memoised on their bytes (a cohort repeats them from file to file). tests/unit/test_deid_fast_path.py holds it to
# the pydicom path byte for byte. Anything else is declined, having written nothing, and goes to the pydicom path.

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
    _finish(ds, "X")
    return frozenset(ds.keys())


@functools.cache
def _fast_action(tag: int, vr: bytes) -> int:
    """What the fast path does with one top-level element, given its tag and the VR written in the file."""
    group = tag >> 16
    if group & 1:
        return _DROP  # private
    if group < 0x0008 or group == 0xFFFE:
        return _DECLINE  # command, meta or directory groups, or stray item tags: not an image dataset's business
    action = _plan(tag)
    if action == REMOVE:
        return _DROP
    if vr == b"SQ" or dictionary_VR(tag) == "SQ":
        return _DECLINE  # kept or blanked sequences are decoded, scrubbed and re-encoded item by item
    if tag in _finish_tags():
        # _finish overwrites the value; pydicom keeps the element's VR, which must then be the one written fresh.
        return _OWN if vr.decode() == dictionary_VR(tag) else _DECLINE
    if vr == b"UN" and action != KEEP:
        return _DECLINE  # decoding looks the VR up, so the element would be written under another VR
    if action == BLANK:
        return _BLANK
    if action == REKEY:
        return _REKEY if vr == b"UI" else _DECLINE
    if tag == _CHARSET_TAG:
        return _DECODE  # decoded by dcmread
    if tag in _IMAGE_DESCRIPTION:
        return _IMAGE  # decoded by _check_complete when the pixel data is native
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
    """A UI element as _scrub leaves it: the bytes pydicom writes, and the value (for the file meta)."""
    elem = _convert(tag, b"UI", value, default_encoding)
    elem.value = _rekey_value(key, elem.keyword, elem.value)
    return _encode(elem, default_encoding), elem.value


@functools.lru_cache(maxsize=64)
def _finish_elements(pseudonym: str) -> tuple[tuple[int, bytes], ...]:
    """The elements _finish sets, as pydicom writes them into an explicit VR little endian dataset."""
    ds = Dataset()
    _finish(ds, pseudonym)
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    data = fp.getvalue()
    return tuple((e.tag, data[e.start : e.after]) for e in dicom_bytes.scan(data, 0, len(data), meta=False))


@functools.cache
def _meta_template() -> dict[int, bytes]:
    """The file meta elements pydicom writes around the three this module sets (version, implementation)."""
    sample = Dataset()
    sample.SOPClassUID = sample.SOPInstanceUID = "1.2"
    meta = _new_meta(sample, pydicom.uid.ExplicitVRLittleEndian)
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
            # Decoded (and so possibly rejected) by _scrub before it is blanked.
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


def _deidentify_fast(
    src: Path, dst: Path, pseudonym: str, key: bytes, *, atomic: bool = True
) -> tuple[str, int] | None:
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
    return _write(dst, lambda fh: fh.write(output), atomic=atomic)


def _deidentify(src: Path, dst: Path, pseudonym: str, key: bytes, atomic: bool) -> tuple[str, int]:
    fast = _deidentify_fast(src, dst, pseudonym, key, atomic=atomic)
    return fast or _deidentify_pydicom(src, dst, pseudonym, key, atomic=atomic)


def deidentify_dicom(src: Path, dst: Path, *, pseudonym: str, key: bytes, atomic: bool = True) -> tuple[str, int]:
    """Write a de-identified copy of DICOM file `src` to `dst` (see the module docstring for what changes) and
    return the SHA-256 and size of what was written.

    Raises InvalidInputError for a file that is not complete, readable DICOM; `dst` is then left untouched (with
    `atomic=False`, for a fresh staging folder: `dst` must not exist, and is removed again on failure).
    """
    with _quiet():
        return _deidentify(Path(src), Path(dst), pseudonym, key, atomic)


def deidentify_dicom_many(
    pairs: list[tuple[Path, Path]], *, pseudonym: str, key: bytes, atomic: bool = True
) -> list[tuple[str, int]]:
    """`deidentify_dicom` over one study's files; the recipe and per-tag plan are shared (memoised) across calls."""
    return [deidentify_dicom(src, dst, pseudonym=pseudonym, key=key, atomic=atomic) for src, dst in pairs]
