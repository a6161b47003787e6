"""The consent registry: GA4GH Data Use Ontology purposes as data, consent history per patient, and the one
rule deciding whether a patient's consent in force covers a project's purpose."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fabric.identifiers.schemes import DEFAULT_SCHEME, LOCAL_MRN, scheme
from fabric.models import ConsentEvent, Patient, PatientIdentifier, Site, SiteMrn
from kernel import audit
from kernel.clock import utcnow
from kernel.documents import iter_ndjson
from kernel.errors import EnclaveError

# DUO primary categories, each with the broader purpose that contains it (None: the root). A consent for a purpose
# covers projects whose purpose is that purpose or any narrower one. Add a disease-specific code here to enable it.
PURPOSE_PARENT: dict[str, str | None] = {
    "GRU": None,  # DUO:0000042 general research use
    "HMB": "GRU",  # DUO:0000006 health or medical or biomedical research
    "DS-CVD": "HMB",  # DUO:0000007 disease specific: cardiovascular disease
    "POA": "GRU",  # DUO:0000011 population origins or ancestry research only
}

# DUO modifiers Enclave can enforce, and what each requires of a project. A consent carrying a modifier not listed
# here covers nothing: deny unless the rule is known.
MODIFIER_RULES: dict[str, str] = {
    "NPU": "non-commercial",  # DUO:0000045 not-for-profit use only
    "NCU": "non-commercial",  # DUO:0000046 non-commercial use only
    "PUB": "publication",  # DUO:0000019 publication required (an obligation, not a gate)
}


class ConsentAction(StrEnum):
    GRANT = "grant"
    NARROW = "narrow"
    WITHDRAW = "withdraw"


def purpose_chain(purpose: str) -> list[str]:
    """`purpose` and every broader purpose containing it, narrowest first."""
    if purpose not in PURPOSE_PARENT:
        raise EnclaveError(f"unknown purpose code {purpose!r}; known: {', '.join(PURPOSE_PARENT)}")
    chain = [purpose]
    while (parent := PURPOSE_PARENT[chain[-1]]) is not None:
        chain.append(parent)
    return chain


@dataclass(frozen=True)
class ConsentState:
    action: ConsentAction
    purposes: tuple[str, ...]
    modifiers: tuple[str, ...]
    since: date

    def covers(self, purpose: str, *, commercial: bool) -> bool:
        """Deny unless allowed: withdrawn covers nothing; an unknown modifier covers nothing."""
        if self.action is ConsentAction.WITHDRAW:
            return False
        for modifier in self.modifiers:
            rule = MODIFIER_RULES.get(modifier)
            if rule is None or (rule == "non-commercial" and commercial):
                return False
        return bool(set(purpose_chain(purpose)) & set(self.purposes))


def state_in_force(events: Iterable[ConsentEvent], on: date | None = None) -> ConsentState | None:
    """The latest event on or before `on` (default today); None when the patient never consented."""
    on = on or date.today()
    current = None
    for event in sorted(events, key=lambda e: (e.date, e.id or 0)):
        if event.date <= on:
            current = event
    if current is None:
        return None
    return ConsentState(ConsentAction(current.action), tuple(current.purposes), tuple(current.modifiers), current.date)


@dataclass(frozen=True)
class ConsentRecord:
    """One consent event as a site exports it (docs/reference/data-layout.md): the patient by NHS number, by
    `identifier` in the scheme the site declares, or by `mrn` at a local-mrn site."""

    identifier: str
    date: date
    action: ConsentAction
    purposes: tuple[str, ...]
    modifiers: tuple[str, ...]

    @property
    def nhs_number(self) -> str:
        """The identifier of an NHS site's event (its name before sites declared schemes)."""
        return self.identifier

    @classmethod
    def parse(cls, raw: dict, where: str, scheme_code: str = DEFAULT_SCHEME) -> ConsentRecord:
        if scheme_code == LOCAL_MRN:
            key = "mrn"
        else:
            key = "identifier" if "identifier" in raw or scheme_code != DEFAULT_SCHEME else "nhs_number"
        try:
            action = ConsentAction(raw["action"])
            when = date.fromisoformat(raw["date"])
            purposes = tuple(raw.get("purposes") or ())
            modifiers = tuple(raw.get("modifiers") or ())
            nhs = str(raw[key]).replace(" ", "")
        except KeyError as exc:
            raise EnclaveError(f"{where}: missing field {exc.args[0]!r}") from None
        except (ValueError, TypeError) as exc:
            raise EnclaveError(f"{where}: {exc}") from None
        for code in purposes:
            if code not in PURPOSE_PARENT:
                raise EnclaveError(f"{where}: unknown purpose code {code!r}; known: {', '.join(PURPOSE_PARENT)}")
        if action is not ConsentAction.WITHDRAW and not purposes:
            raise EnclaveError(f"{where}: a {action} event must name at least one purpose")
        if scheme_code == LOCAL_MRN:
            mrn = str(raw[key]).strip()
            if not mrn:
                raise EnclaveError(f"{where}: mrn is empty")
            return cls(mrn, when, action, purposes, modifiers)
        if scheme_code == DEFAULT_SCHEME:
            if not (nhs.isdigit() and len(nhs) == 10):
                raise EnclaveError(f"{where}: NHS number is not 10 digits")
            return cls(nhs, when, action, purposes, modifiers)
        declared = scheme(scheme_code)
        number = declared.normalise(str(raw[key]))
        if number is None:  # the message never repeats the number
            raise EnclaveError(f"{where}: identifier is not a valid {declared.name}")
        return cls(number, when, action, purposes, modifiers)


def read_consent_file(path: Path, scheme_code: str = DEFAULT_SCHEME) -> Iterator[ConsentRecord]:
    """Parse a consent.ndjson export of a site of `scheme_code`, naming the line of any problem."""
    for number, raw in iter_ndjson(path):
        yield ConsentRecord.parse(raw, f"{path.name} line {number}", scheme_code)


@dataclass
class ImportSummary:
    recorded: int = 0
    already_present: int = 0
    unknown_patients: int = 0


def import_consent(session: Session, path: Path, *, source: str, actor: str) -> ImportSummary:
    """Record a site's consent events; re-importing the same file is a no-op. Events for patients the index does
    not know are counted, not stored (they have no data to govern). Patients are found by the identifier scheme of
    the site named by `source` (NHS numbers for a source that is not a registered site), a local-mrn site's by its
    MRNs."""
    site = session.get(Site, source)
    scheme_code = site.identifier_scheme if site is not None else DEFAULT_SCHEME
    if scheme_code == LOCAL_MRN:
        query = select(SiteMrn.mrn, SiteMrn.patient_id).where(SiteMrn.site_id == source)
        by_identifier = dict(session.execute(query).all())
    elif scheme_code == DEFAULT_SCHEME:
        by_identifier = dict(session.execute(select(Patient.nhs_number, Patient.id)).all())
    else:
        query = select(PatientIdentifier.value, PatientIdentifier.patient_id)
        by_identifier = dict(session.execute(query.where(PatientIdentifier.scheme == scheme_code)).all())
    existing = {
        (pid, d, a)
        for pid, d, a in session.execute(
            select(ConsentEvent.patient_id, ConsentEvent.date, ConsentEvent.action).where(ConsentEvent.source == source)
        ).all()
    }
    summary = ImportSummary()
    now = utcnow()
    for rec in read_consent_file(path, scheme_code):
        patient_id = by_identifier.get(rec.identifier)
        if patient_id is None:
            summary.unknown_patients += 1
            continue
        if (patient_id, rec.date, rec.action.value) in existing:
            summary.already_present += 1
            continue
        existing.add((patient_id, rec.date, rec.action.value))
        session.add(
            ConsentEvent(
                patient_id=patient_id,
                date=rec.date,
                action=rec.action.value,
                purposes=list(rec.purposes),
                modifiers=list(rec.modifiers),
                source=source,
                recorded_at=now,
            )
        )
        summary.recorded += 1
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="consent.import",
        target=source,
        recorded=summary.recorded,
        already_present=summary.already_present,
        unknown_patients=summary.unknown_patients,
    )
    return summary


def withdraw(session: Session, patient: Patient, *, on: date | None, actor: str, source: str = "enclave") -> None:
    """Record a withdrawal (effective `on`, default today) for every purpose."""
    when = on or date.today()
    session.add(
        ConsentEvent(
            patient_id=patient.id,
            date=when,
            action=ConsentAction.WITHDRAW.value,
            purposes=[],
            modifiers=[],
            source=source,
            recorded_at=utcnow(),
        )
    )
    try:
        session.flush()
    except IntegrityError:
        raise EnclaveError("a withdrawal on that date is already recorded for this patient") from None
    audit.record(session, actor=actor, action="consent.withdraw", target=patient.id, effective=when.isoformat())
