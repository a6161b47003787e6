"""Known-identifier screening: the actual identifiers of a project's source patients (NHS numbers, hospital
numbers, national identifiers of other schemes, sample ids, names, dates of birth, postcodes) and the project's own
pseudonyms, held only as keyed hashes.

The index is built from the registry and the sites' clinical exports when a check starts, under a random key that
never leaves the process, so no plaintext list exists and a hash cannot be tested offline. Text is cut into
candidate tokens of each kind, normalised, hashed and looked up: an exact match of a real identifier, hence almost
no false positives. A pseudonym, a name, an NHS or other national number, a hospital number or a postcode blocks;
a date of birth on its own goes to review (many people share one), and blocks beside any other match.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import TYPE_CHECKING

from fabric.identifiers.formatting import compact
from fabric.identifiers.schemes import SCHEMES
from output_checks.masking import mask
from output_checks.screening.dates import dates_in
from output_checks.screening.national import NationalShapes, digit_forms
from output_checks.screening.tokens import BASE32, DIGIT_CHAIN, pseudonym_tokens, strip_invisible, windows
from output_checks.verdicts import Finding, Verdict
from workbench import view_contract

if TYPE_CHECKING:
    from kernel.config import Paths
    from kernel.db import Registry
    from output_checks.screening.text import Segment

PSEUDONYM = re.compile(rf"\b{view_contract.PSEUDONYM.pattern}\b")
PSEUDONYM_BODY = re.compile(rf"^P?({view_contract.PSEUDONYM_BODY})$")
DIGIT_LENGTHS = frozenset(range(6, 13))
ALNUM_ID = re.compile(r"\b(?=[A-Za-z]*\d)[A-Za-z0-9]{5,}\b")  # a token with a digit: ids reversed
CODE = re.compile(r"\b[A-Za-z]{1,5}[ -]?\d{4,10}\b")
WORD = re.compile(r"[A-Za-z\u00C0-\u024F][A-Za-z\u00C0-\u024F'\-]*")
JOINED_WORD = re.compile(r"\b[A-Za-z]{6,}\b")  # "MargaretThompson", "nospmohtteragram"
NAME_GAP = re.compile(r"^[ ,._]{1,3}$")
POSTCODE = re.compile(r"\b([A-Za-z]{1,2}\d[A-Za-z\d]?)\s*(\d[A-Za-z]{2})\b")
REVERSIBLE = frozenset(("nhs", "id", "pseudonym", "name"))
JOINED_NAME_MIN = 6
FORMAT_VERSION = 2  # of `export`: 2 hashes pseudonym bodies (no "P-"), joined names and birth years

WHAT = {
    "pseudonym": ("a pseudonym of this project: individual-level data", Verdict.BLOCK),
    "nhs": ("an NHS number of a source patient", Verdict.BLOCK),
    "national": ("a national identifier of a source patient", Verdict.BLOCK),
    "id": ("a hospital or sample number of a source patient", Verdict.BLOCK),
    "name": ("the name of a source patient", Verdict.BLOCK),
    "postcode": ("the postcode of a source patient", Verdict.BLOCK),
    "dob": ("a source patient's date of birth", Verdict.REVIEW),
}
NORMALISERS = {code: s.normalise for code, s in SCHEMES.items()}
DISGUISED = "written disguised (reversed, split or re-cased)"


def _normal_form(scheme: str, value: str) -> str:
    # Registry values are stored normalised already; one that no longer passes its check is kept compact, so it is
    # still found where written as stored.
    normalise = NORMALISERS.get(scheme)
    normal = normalise(value) if normalise is not None else None
    return normal if normal is not None else compact(value)


def _norm_name(*parts: str) -> str:
    return " ".join(p.strip().lower() for p in parts)


def _joined_name(*parts: str) -> str:
    return "".join(ch for p in parts for ch in p.lower() if ch.isalpha())


def pseudonym_body(value: str) -> str | None:
    """The 16 base32 characters of a pseudonym however it is written ("P-ABCD...", "abcd-efgh-...", "P ABCD...")."""
    alnum = "".join(ch for ch in strip_invisible(value).text.upper() if ch.isalnum())
    m = PSEUDONYM_BODY.match(alnum)
    return m[1] if m else None


@dataclass(frozen=True)
class Match:
    kind: str
    text: str
    start: int = -1  # span in the screened text, when known
    end: int = -1
    disguised: bool = False
    scheme: str = ""  # of a national identifier


class KnownIdentifiers:
    """A keyed-hash set of identifiers; `findings(segment)` reports each one that occurs in a piece of text.

    Values are hashed in a normal form (pseudonym bodies upper-case without "P-", NHS numbers as digits, other
    national identifiers as their scheme normalises them, names lower-case in both orders and joined), and text is
    read the same way, forwards and reversed, after invisible characters and separators are removed: the disguises
    seen in release requests all fold onto the normal form.
    `cohort_size` is the number of distinct patients in the project's view (None when unknown).
    """

    def __init__(self, project: str, cohort_size: int | None = None) -> None:
        self.project = project
        self.cohort_size = cohort_size
        self._key = secrets.token_bytes(32)
        self._hashes: set[bytes] = set()
        self._kinds: set[str] = set()
        self._version = FORMAT_VERSION
        self._birth_years: dict[bytes, int] = {}  # while building: keyed hash of a year -> patients born in it
        self._national = NationalShapes((), NORMALISERS)  # the schemes of the national identifiers held

    def __len__(self) -> int:
        return len(self._hashes)

    def _h(self, kind: str, value: str) -> bytes:
        return hashlib.blake2b(f"{kind}\x00{value}".encode(), key=self._key, digest_size=16).digest()

    def _put(self, kind: str, value: str) -> None:
        self._kinds.add(kind)
        self._hashes.add(self._h(kind, value))

    def add(self, kind: str, value: str | None) -> None:
        """Hash `value` in its normal form; ids, NHS numbers, pseudonyms and names also reversed, so that a lookup
        of what the text holds is one hash whichever way round it was written."""
        if value is None or not str(value).strip():
            return
        value = strip_invisible(str(value)).text.strip()
        if kind == "nhs":
            value = re.sub(r"\D", "", value)
        elif kind == "id":
            value = re.sub(r"[\W_]", "", value).upper()
        elif kind == "pseudonym":
            body = pseudonym_body(value)
            if body is None:  # not the project's shape: hashed as written, upper-case
                self._put("pseudonym", value.upper())
                return
            value = body
        elif kind == "postcode":
            value = re.sub(r"\s", "", value).upper()
        elif kind == "name":
            value = value.lower()
        elif kind == "dob":
            self._count_birth_year(value)
        self._put(kind, value)
        if kind in REVERSIBLE:
            self._put(kind, value[::-1])

    def add_national(self, scheme: str, value: str | None) -> None:
        """A national identifier of `scheme` (a registry `patient_identifiers` row), hashed with its scheme in the
        scheme's normal form: text is read into that form by the scheme's own normaliser, reversal included."""
        if value is None or not str(value).strip():
            return
        if scheme not in self._national.schemes:
            self._national = NationalShapes(self._national.schemes | {scheme}, NORMALISERS)
        normal = _normal_form(scheme, strip_invisible(str(value)).text)
        self._put("national", f"{scheme}\x00{normal}")
        for form in digit_forms(scheme, normal):  # any scheme's, both ways round: a first, cheap lookup
            self._put("nationaldigits", form)
            self._put("nationaldigits", form[::-1])

    def add_name(self, forename: str | None, surname: str | None) -> None:
        if forename and surname:
            self.add("name", _norm_name(forename, surname))
            self.add("name", _norm_name(surname, forename))
            for joined in (_joined_name(forename, surname), _joined_name(surname, forename)):
                if len(joined) >= JOINED_NAME_MIN:
                    self._put("namejoined", joined)
                    self._put("namejoined", joined[::-1])

    def _count_birth_year(self, iso: str) -> None:
        # The cohort's birth-year histogram, as keyed hashes of (year, k) for k up to the year's count: enough to
        # test whether a column of years could be the cohort's birth years, never a plaintext histogram.
        if re.match(r"^\d{4}", iso):
            year = iso[:4]
            slot = self._h("byear", year)
            count = self._birth_years.get(slot, 0) + 1
            self._birth_years[slot] = count
            self._put("byear", f"{int(year)}#{count}")

    def birth_year_share(self, years: Iterable[int]) -> float:
        """The share of `years` that the cohort's birth years explain, counting repeats (a column of one year per
        patient scores near 1; a column of years from another cohort, or of one row per year, scores lower
        wherever its repeats exceed the cohort's)."""
        counts = Counter(int(y) for y in years)
        total = sum(counts.values())
        if not total or "byear" not in self._kinds:
            return 0.0
        explained = 0
        for year, count in counts.items():
            low, high = 0, count  # the largest k <= count with (year, k) present: present for every k below it
            while low < high:
                mid = (low + high + 1) // 2
                if self._h("byear", f"{year}#{mid}") in self._hashes:
                    low = mid
                else:
                    high = mid - 1
            explained += low
        return explained / total

    def export(self) -> dict[str, object]:
        """The index as JSON-safe data, for a checker sandbox: the key and the hashes, never a plaintext value."""
        return {
            "version": self._version,
            "project": self.project,
            "cohort_size": self.cohort_size,
            "key": self._key.hex(),
            "kinds": sorted(self._kinds),
            "schemes": sorted(self._national.schemes),
            "hashes": base64.b64encode(b"".join(sorted(self._hashes))).decode(),
        }

    @classmethod
    def restore(cls, data: dict) -> KnownIdentifiers:
        """The index `export` wrote (in the sandbox, from the parent's JSON: nothing is unpickled). An export
        without a version is format 1, whose pseudonyms were hashed with their "P-"."""
        size = data.get("cohort_size")
        index = cls(str(data["project"]), int(size) if size is not None else None)
        index._version = int(data.get("version", 1))
        index._key = bytes.fromhex(data["key"])
        index._kinds = set(data["kinds"])
        index._national = NationalShapes(data.get("schemes", ()), NORMALISERS)
        blob = base64.b64decode(data["hashes"])
        index._hashes = {blob[i : i + 16] for i in range(0, len(blob), 16)}
        return index

    def _has(self, kind: str, value: str) -> bool:
        return kind in self._kinds and self._h(kind, value) in self._hashes

    def _has_pseudonym(self, body: str) -> bool:
        return self._has("pseudonym", body if self._version >= 2 else f"P-{body}")

    # ---------------------------------------------------------------------------------------------- matching

    def matches(self, text: str) -> Iterator[Match]:
        if text.isascii() and text.isdigit():  # most table cells: one number, no disguise possible but reversal
            yield from self._number(text)
            return
        clean = strip_invisible(text)
        hidden = clean.text != text
        t = clean.text

        def match(kind: str, start: int, end: int, disguised: bool = False) -> Match:
            a, b = clean.span(start, end)
            return Match(kind, text[a:b], a, b, disguised or hidden)

        if "pseudonym" in self._kinds and len(t) >= 16:
            yield from self._pseudonyms(t, match)
        national = self._national if "national" in self._kinds else None
        if "nhs" in self._kinds or "id" in self._kinds or national:
            lengths = DIGIT_LENGTHS | national.lengths if national else DIGIT_LENGTHS
            for w in windows(t, lengths, chain=DIGIT_CHAIN):
                if len(w.joined) == 10 and self._has("nhs", w.joined):
                    yield match("nhs", w.start, w.end, len(w.groups) > 3)
                elif self._has("id", w.joined):
                    yield match("id", w.start, w.end)
                if national and len(w.joined) in national.lengths:
                    for code, backwards in self._national_digits(w.joined):
                        yield replace(match("national", w.start, w.end, backwards), scheme=code)
        if national:
            for c in national.tokens(t):
                if self._has_national(c.scheme, c.value):
                    yield replace(match("national", c.start, c.end, c.reversed), scheme=c.scheme)
        if "id" in self._kinds:
            for m in CODE.finditer(t):
                if self._has("id", re.sub(r"[\s-]", "", m[0]).upper()):
                    yield match("id", m.start(), m.end())
            for m in ALNUM_ID.finditer(t):
                if not m[0].isdigit() and self._has("id", m[0].upper()):
                    yield match("id", m.start(), m.end())
        if "name" in self._kinds:
            yield from self._names(t, match)
        if "postcode" in self._kinds:
            for m in POSTCODE.finditer(t):
                if self._has("postcode", (m[1] + m[2]).upper()):
                    yield match("postcode", m.start(), m.end())
        if "dob" in self._kinds and any(ch.isdigit() for ch in t):
            for raw, iso in dates_in(t):
                if self._has("dob", iso):
                    at = t.find(raw)
                    yield match("dob", at, at + len(raw))

    def _has_national(self, scheme: str, value: str) -> bool:
        return self._has("national", f"{scheme}\x00{value}")

    def _national_digits(self, joined: str) -> Iterator[tuple[str, bool]]:
        """(scheme, reversed) of each patient's number a run of digits is, read both ways round."""
        if not self._has("nationaldigits", joined):
            return
        for token, backwards in ((joined, False), (joined[::-1], True)):
            for code, value in self._national.digits(token):
                if self._has_national(code, value):
                    yield code, backwards

    def _number(self, t: str) -> Iterator[Match]:
        if "national" in self._kinds and len(t) in self._national.lengths:
            for code, backwards in self._national_digits(t):
                yield Match("national", t, 0, len(t), backwards, code)
        if len(t) == 10 and self._has("nhs", t):
            yield Match("nhs", t, 0, 10)
        elif 6 <= len(t) <= 12 and self._has("id", t):
            yield Match("id", t, 0, len(t))
        elif len(t) == 8 and "dob" in self._kinds:
            for raw, iso in dates_in(t):
                if self._has("dob", iso):
                    yield Match("dob", raw, 0, 8)

    def _pseudonyms(self, t: str, match: Callable[..., Match]) -> Iterator[Match]:
        hits = list(self._pseudonym_hits(t, match))
        for hit in hits:  # "P-" + body is one match, not two ("P-..." and the body in it)
            if not any(o is not hit and o.start <= hit.start and hit.end <= o.end for o in hits):
                yield hit

    def _pseudonym_hits(self, t: str, match: Callable[..., Match]) -> Iterator[Match]:
        for w in pseudonym_tokens(t):
            token = w.joined.upper()
            if not set(token) <= BASE32:
                continue
            plain = w.groups == (1, 16) and token == w.joined  # "P-" + body as issued: no disguise
            bodies = [token] if len(token) == 16 else []  # prefix dropped
            if len(token) == 17:  # "P" before, or after ("P-..." reversed as a whole)
                bodies += [b for b, p in ((token[1:], token[0]), (token[:-1], token[-1])) if p == "P"]
            if len(token) == 18 and token[0] == token[-1] == "P":
                bodies.append(token[1:-1])
            if any(self._has_pseudonym(body) for body in bodies):
                yield match("pseudonym", w.start, w.end, not plain)

    def _names(self, t: str, match: Callable[..., Match]) -> Iterator[Match]:
        words = list(WORD.finditer(t))
        for a, b in pairwise(words):
            gap = t[a.end() : b.start()]
            if NAME_GAP.match(gap) and self._has("name", _norm_name(a[0], b[0])):
                yield match("name", a.start(), b.end(), gap.strip() != "" and gap.strip() != ",")
        if "namejoined" in self._kinds:
            for m in JOINED_WORD.finditer(t):
                if self._has("namejoined", m[0].lower()):
                    yield match("name", m.start(), m.end(), True)

    def findings(self, segment: Segment, check: str = "known_identifiers") -> Iterator[Finding]:
        found = list(self.matches(segment.text))
        others = any(m.kind != "dob" for m in found)
        seen: set[tuple[str, str]] = set()
        for m in found:
            if (m.kind, m.text) in seen:
                continue
            seen.add((m.kind, m.text))
            what, verdict = WHAT[m.kind]
            if m.scheme:
                what = f"{what} ({SCHEMES[m.scheme].name})"
            if m.kind == "dob" and others:
                verdict = Verdict.BLOCK
            how = f", {DISGUISED}" if m.disguised else ""
            yield Finding(check, verdict, f"{what}{how} ({mask(m.text)}; project {self.project})", segment.location)


def build_known_identifiers(registry: Registry, paths: Paths, project: str) -> KnownIdentifiers:
    """The index for `project`: every patient of the project's source datasets, consented or not, and the
    pseudonyms the project's key gives them."""
    from sqlalchemy import select

    from fabric.clinical.formats import open_site_clinical
    from fabric.models import Dataset, Patient, PatientIdentifier, PatientRecord
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
        national = session.execute(
            select(PatientIdentifier.scheme, PatientIdentifier.value)
            .join(PatientRecord, PatientRecord.patient_id == PatientIdentifier.patient_id)
            .where(PatientRecord.dataset_id.in_(dataset_ids))
            .distinct()
        ).all()
        datasets = session.scalars(select(Dataset).where(Dataset.id.in_(dataset_ids))).all()
        clinical = [
            (d.id, d.site_id, d.format, d.location, d.site.clinical_dialect)
            for d in datasets
            if d.modality == "clinical"
        ]
    index.cohort_size = len({patient_id for _, _, patient_id, _ in rows})
    for scheme, value in national:
        index.add_national(scheme, value)
    mrns_by_dataset: dict[str, set[str]] = {}
    for local_id, dataset_id, patient_id, nhs in rows:
        index.add("nhs", nhs)
        index.add("id", local_id)
        mrns_by_dataset.setdefault(dataset_id, set()).add(local_id)
        if key is not None:
            index.add("pseudonym", pseudonym(key, patient_id))
    from pathlib import Path

    for dataset_id, site_id, fmt, location, dialect in clinical:
        wanted = mrns_by_dataset.get(dataset_id, set())
        for frame in open_site_clinical(Path(location), fmt, site_id, dialect).iter_table("patients"):
            frame = frame[frame["mrn"].isin(wanted)]
            for forename, surname, born, postcode in zip(
                frame["forename"], frame["surname"], frame["birth_date"], frame["postcode"], strict=True
            ):
                index.add_name(forename, surname)
                if born is not None and str(born) not in ("NaT", "nan", "None"):
                    index.add("dob", str(born)[:10])
                index.add("postcode", postcode)
    return index
