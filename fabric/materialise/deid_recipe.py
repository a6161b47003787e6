"""The DICOM de-identification recipe: what happens to each element of a site's file, and what every
de-identified file carries.

What is removed comes from the `deid` package's default DICOM recipe (deid/data/deid.dicom, maintained upstream
and modelled on the DICOM PS3.15 basic profile), read once through `deid.config.DeidRecipe` and compiled into
per-tag decisions (`plan`) that are memoised across files. deid's own `replace_identifiers` costs ~7 ms a file (it
rebuilds lookup tables of every element for every rule); the compiled plan applies the same rules in well under
1 ms a file.

On top of the recipe this module owns the enclave's policy, each item for a stated reason:
- UIDs are re-keyed with the project key instead of removed, so series structure survives; well-known UIDs
  (SOP classes, transfer syntaxes, anything under the DICOM root 1.2.840.10008) are kept.
- Acquisition parameters the recipe's blanket `endswith:Time` rule would take (TriggerTime, EchoTime, ...) and the
  patient characteristics analysis needs (sex, age, size, weight) are kept.
- The recipe does not cover institution, station and device identity, free text, person names outside its list,
  or AE titles: those are removed here (PS3.15 Table E.1-1 lists them), as are private tags, unknown public tags
  and group lengths.
- PatientID = PatientName = the pseudonym; PatientIdentityRemoved, DeidentificationMethod and its code sequence
  record what was done (`finish`); the file meta is rebuilt so nothing from the site's (AE titles,
  implementation) leaks (`new_meta`).

Both ways of applying it, the pydicom path (deid_pydicom.py) and the byte-level fast path (deid_fast_path.py),
read their decisions from here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import pydicom
from pydicom.datadict import get_entry
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

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
# Set by `finish` after the recipe has run, so the recipe's ADD of the same attribute is not applied.
_OWN_FIELDS = frozenset({"PatientID", "PatientName", "PatientIdentityRemoved", "IssuerOfPatientID"})

KEEP, REMOVE, BLANK, REKEY = "keep", "remove", "blank", "rekey"


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
def plan(tag: int) -> str:
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


def rekey_value(key: bytes, keyword: str, value: object) -> object:
    """A UI element's value re-keyed with the project key; class and encoding UIDs, and well-known ones, kept."""
    if keyword in _CLASS_UIDS:
        return value
    if isinstance(value, list | pydicom.multival.MultiValue):
        return [_rekey_one(key, str(v)) for v in value]
    return _rekey_one(key, str(value)) if value else value


def _rekey_one(key: bytes, uid: str) -> str:
    return uid if uid.startswith(_DICOM_ROOT) or not uid else rekey_uid(key, uid)


def finish(ds: Dataset, pseudonym: str) -> None:
    """Set what every de-identified file carries: the recipe's additions, the pseudonym as PatientID and
    PatientName, and the record of what was done (PatientIdentityRemoved, DeidentificationMethod and its codes)."""
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


def new_meta(ds: Dataset, syntax: UID) -> FileMetaDataset:
    """File meta from scratch: the site's carries AE titles and implementation names that identify it."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta
