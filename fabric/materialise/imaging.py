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
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR, get_entry
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from fabric.errors import InvalidInputError
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
    if not syntax.is_transfer_syntax:
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


def _deidentify(src: Path, dst: Path, pseudonym: str, key: bytes) -> None:
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
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".dcm", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            try:
                pydicom.dcmwrite(fh, ds, enforce_file_format=True)
            except (ValueError, TypeError, OverflowError, KeyError) as exc:
                raise InvalidInputError(src, f"cannot be rewritten ({type(exc).__name__})") from None
        os.replace(tmp_name, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


def deidentify_dicom(src: Path, dst: Path, *, pseudonym: str, key: bytes) -> None:
    """Write a de-identified copy of DICOM file `src` to `dst` (see the module docstring for what changes).

    Raises InvalidInputError for a file that is not complete, readable DICOM; `dst` is then left untouched.
    """
    with _quiet():
        _deidentify(Path(src), Path(dst), pseudonym, key)


def deidentify_dicom_many(pairs: list[tuple[Path, Path]], *, pseudonym: str, key: bytes) -> None:
    """`deidentify_dicom` over one study's files; the recipe and per-tag plan are shared (memoised) across calls."""
    for src, dst in pairs:
        deidentify_dicom(src, dst, pseudonym=pseudonym, key=key)
