"""Known-identifier screening: the actual identifiers of a project's source patients (NHS numbers, hospital
numbers, sample ids, names, dates of birth, postcodes) and the project's own pseudonyms, held only as keyed hashes.

The index is built from the registry and the sites' clinical exports when a check starts, under a random key that
never leaves the process, so no plaintext list exists and a hash cannot be tested offline. Text is cut into
candidate tokens of each kind, normalised, hashed and looked up: an exact match of a real identifier, hence almost
no false positives. A pseudonym, a name, an NHS number, a hospital number or a postcode blocks; a date of birth on
its own goes to review (many people share one), and blocks beside any other match.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from typing import TYPE_CHECKING

from output_checks.masking import mask
from output_checks.verdicts import Finding, Verdict

if TYPE_CHECKING:
    from fabric.config import Paths
    from fabric.db import Registry
    from output_checks.screening.text import Segment

PSEUDONYM = re.compile(r"\bP-[A-Z2-7]{16}\b")
DIGITS = re.compile(r"(?<![\d.])\d(?:[ -]?\d){5,11}(?![\d])")
CODE = re.compile(r"\b[A-Za-z]{1,5}[ -]?\d{4,10}\b")
WORD = re.compile(r"[A-Za-z\u00C0-\u024F][A-Za-z\u00C0-\u024F'\-]*")
POSTCODE = re.compile(r"\b([A-Za-z]{1,2}\d[A-Za-z\d]?)\s*(\d[A-Za-z]{2})\b")
MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}  # fmt: skip
DATE_DMY = re.compile(r"\b(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\b")
DATE_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
DATE_WORDS = re.compile(r"(?i)\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?([a-z]{3})[a-z]*\.?,?\s+(\d{4})\b")
DATE_US_WORDS = re.compile(r"(?i)\b([a-z]{3})[a-z]*\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b")

WHAT = {
    "pseudonym": ("a pseudonym of this project: individual-level data", Verdict.BLOCK),
    "nhs": ("an NHS number of a source patient", Verdict.BLOCK),
    "id": ("a hospital or sample number of a source patient", Verdict.BLOCK),
    "name": ("the name of a source patient", Verdict.BLOCK),
    "postcode": ("the postcode of a source patient", Verdict.BLOCK),
    "dob": ("a source patient's date of birth", Verdict.REVIEW),
}


def _iso(y: int, m: int, d: int) -> str | None:
    try:
        return date(y, m, d).isoformat()
    except ValueError:
        return None


def dates_in(text: str) -> Iterator[tuple[str, str]]:
    """(matched text, ISO date) for every full date written in a common form."""
    for m in DATE_DMY.finditer(text):
        iso = _iso(int(m[3]), int(m[2]), int(m[1]))
        if iso:
            yield m[0], iso
    for m in DATE_ISO.finditer(text):
        iso = _iso(int(m[1]), int(m[2]), int(m[3]))
        if iso:
            yield m[0], iso
    for m in DATE_WORDS.finditer(text):
        month = MONTHS.get(m[2].lower())
        if month and (iso := _iso(int(m[3]), month, int(m[1]))):
            yield m[0], iso
    for m in DATE_US_WORDS.finditer(text):
        month = MONTHS.get(m[1].lower())
        if month and (iso := _iso(int(m[3]), month, int(m[2]))):
            yield m[0], iso


def _norm_name(*parts: str) -> str:
    return " ".join(p.strip().lower() for p in parts)


@dataclass(frozen=True)
class Match:
    kind: str
    text: str


class KnownIdentifiers:
    """A keyed-hash set of identifiers; `findings(segment)` reports each one that occurs in a piece of text."""

    def __init__(self, project: str) -> None:
        self.project = project
        self._key = secrets.token_bytes(32)
        self._hashes: set[bytes] = set()
        self._kinds: set[str] = set()

    def __len__(self) -> int:
        return len(self._hashes)

    def _h(self, kind: str, value: str) -> bytes:
        return hashlib.blake2b(f"{kind}\x00{value}".encode(), key=self._key, digest_size=16).digest()

    def add(self, kind: str, value: str | None) -> None:
        if value is None or not str(value).strip():
            return
        value = str(value).strip()
        if kind in ("nhs",):
            value = re.sub(r"\D", "", value)
        elif kind == "id":
            value = re.sub(r"[\s-]", "", value).upper()
        elif kind == "pseudonym":
            value = value.upper()
        elif kind == "postcode":
            value = re.sub(r"\s", "", value).upper()
        elif kind == "name":
            value = value.lower()
        self._kinds.add(kind)
        self._hashes.add(self._h(kind, value))

    def add_name(self, forename: str | None, surname: str | None) -> None:
        if forename and surname:
            self.add("name", _norm_name(forename, surname))
            self.add("name", _norm_name(surname, forename))

    def export(self) -> dict[str, str | list[str]]:
        """The index as JSON-safe data, for a checker sandbox: the key and the hashes, never a plaintext value."""
        return {
            "project": self.project,
            "key": self._key.hex(),
            "kinds": sorted(self._kinds),
            "hashes": base64.b64encode(b"".join(sorted(self._hashes))).decode(),
        }

    @classmethod
    def restore(cls, data: dict) -> KnownIdentifiers:
        """The index `export` wrote (in the sandbox, from the parent's JSON: nothing is unpickled)."""
        index = cls(str(data["project"]))
        index._key = bytes.fromhex(data["key"])
        index._kinds = set(data["kinds"])
        blob = base64.b64decode(data["hashes"])
        index._hashes = {blob[i : i + 16] for i in range(0, len(blob), 16)}
        return index

    def _has(self, kind: str, value: str) -> bool:
        return kind in self._kinds and self._h(kind, value) in self._hashes

    def matches(self, text: str) -> Iterator[Match]:
        for m in PSEUDONYM.finditer(text):
            if self._has("pseudonym", m[0]):
                yield Match("pseudonym", m[0])
        for m in DIGITS.finditer(text):
            digits = re.sub(r"\D", "", m[0])
            if self._has("nhs", digits):
                yield Match("nhs", m[0])
            elif self._has("id", digits):
                yield Match("id", m[0])
        for m in CODE.finditer(text):
            if self._has("id", re.sub(r"[\s-]", "", m[0]).upper()):
                yield Match("id", m[0])
        if "name" in self._kinds:
            words = list(WORD.finditer(text))
            for a, b in pairwise(words):
                gap = text[a.end() : b.start()]
                if len(gap) <= 3 and gap.strip(" ,") == "" and self._has("name", _norm_name(a[0], b[0])):
                    yield Match("name", f"{a[0]} {b[0]}")
        if "postcode" in self._kinds:
            for m in POSTCODE.finditer(text):
                if self._has("postcode", (m[1] + m[2]).upper()):
                    yield Match("postcode", m[0])
        if "dob" in self._kinds and any(ch.isdigit() for ch in text):
            for raw, iso in dates_in(text):
                if self._has("dob", iso):
                    yield Match("dob", raw)

    def findings(self, segment: Segment, check: str = "known_identifiers") -> Iterator[Finding]:
        found = list(self.matches(segment.text))
        others = any(m.kind != "dob" for m in found)
        seen: set[tuple[str, str]] = set()
        for m in found:
            if (m.kind, m.text) in seen:
                continue
            seen.add((m.kind, m.text))
            what, verdict = WHAT[m.kind]
            if m.kind == "dob" and others:
                verdict = Verdict.BLOCK
            yield Finding(check, verdict, f"{what} ({mask(m.text)}; project {self.project})", segment.location)


def build_known_identifiers(registry: Registry, paths: Paths, project: str) -> KnownIdentifiers:
    """The index for `project`: every patient of the project's source datasets, consented or not, and the
    pseudonyms the project's key gives them."""
    from sqlalchemy import select

    from fabric.clinical.formats import open_site_clinical
    from fabric.models import Dataset, Patient, PatientRecord
    from fabric.projects import get_project, project_spec, resolve_datasets
    from fabric.pseudonyms import pseudonym

    index = KnownIdentifiers(project)
    key_path = paths.project_key(project)
    key = key_path.read_bytes() if key_path.exists() else None
    with registry.session() as session:
        spec = project_spec(get_project(session, project))
        dataset_ids = resolve_datasets(session, spec)
        rows = session.execute(
            select(PatientRecord.local_id, PatientRecord.dataset_id, Patient.id, Patient.nhs_number)
            .join(Patient, Patient.id == PatientRecord.patient_id)
            .where(PatientRecord.dataset_id.in_(dataset_ids))
        ).all()
        datasets = session.scalars(select(Dataset).where(Dataset.id.in_(dataset_ids))).all()
        clinical = [(d.id, d.site_id, d.format, d.location) for d in datasets if d.modality == "clinical"]
    mrns_by_dataset: dict[str, set[str]] = {}
    for local_id, dataset_id, patient_id, nhs in rows:
        index.add("nhs", nhs)
        index.add("id", local_id)
        mrns_by_dataset.setdefault(dataset_id, set()).add(local_id)
        if key is not None:
            index.add("pseudonym", pseudonym(key, patient_id))
    from pathlib import Path

    for dataset_id, site_id, fmt, location in clinical:
        wanted = mrns_by_dataset.get(dataset_id, set())
        for frame in open_site_clinical(Path(location), fmt, site_id).iter_table("patients"):
            frame = frame[frame["mrn"].isin(wanted)]
            for forename, surname, born, postcode in zip(
                frame["forename"], frame["surname"], frame["birth_date"], frame["postcode"], strict=True
            ):
                index.add_name(forename, surname)
                if born is not None and str(born) not in ("NaT", "nan", "None"):
                    index.add("dob", str(born)[:10])
                index.add("postcode", postcode)
    return index
