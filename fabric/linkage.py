"""Sites that identify their patients by their own MRNs alone (site.yaml `identifier_scheme: local-mrn`) and the
linkage table such a site, or a trusted third party, provides beside its site.yaml (`linkage: linkage.csv`). Each row
maps one of the site's MRNs to the same person elsewhere: another registered site's MRN (`mrn,site,site_mrn`) or a
national identifier (`mrn,scheme,identifier`, checked by its scheme). This module owns reading the table, resolving
it against the registry (every problem listed as file, line and what is wrong, never an MRN or identifier), a site's
MRN -> patient index, and finding a patient by a site's MRN. A site's MRNs are scoped to it: equal MRNs at two sites
are two people unless a row says otherwise, and an MRN with no row is a patient of its own."""

from __future__ import annotations

import csv
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from fabric.identifiers.schemes import DEFAULT_SCHEME, LOCAL_MRN, SCHEMES
from fabric.models import Dataset, Patient, PatientIdentifier, PatientRecord, Site, SiteMrn
from kernel.clock import utcnow

BY_SITE = ("site", "site_mrn")
BY_NATIONAL = ("scheme", "identifier")
HEADER_HELP = "a linkage table's header is mrn,site,site_mrn or mrn,scheme,identifier (or all five)"
MRN_MODALITIES = ("clinical", "imaging")  # datasets whose local ids are the site's MRNs (genomics: lab sample ids)


@dataclass(frozen=True)
class LinkRow:
    """One row of a linkage table: `mrn` at this site is `site_mrn` at `site`, or carries `identifier` (normalised)
    in national `scheme`."""

    line: int
    mrn: str
    site: str = ""
    site_mrn: str = ""
    scheme: str = ""
    identifier: str = ""


@dataclass(frozen=True)
class Link:
    """Whom an MRN links to: an indexed patient, or a national identifier no patient carries yet (a new patient
    carrying it, so that later sites of that scheme link to it)."""

    patient_id: str | None
    scheme: str = ""
    identifier: str = ""


def _row_problem(row: dict[str | None, str | None]) -> tuple[LinkRow | None, str | None]:
    """The row read (line filled in by the caller), or what is wrong with it; never repeats a value of the row."""
    if None in row:
        return None, "more values than the header has columns"
    value = {k: (v or "").strip() for k, v in row.items() if k is not None}
    mrn = value.get("mrn", "")
    if not mrn:
        return None, "no MRN"
    by_site = any(value.get(c) for c in BY_SITE)
    by_national = any(value.get(c) for c in BY_NATIONAL)
    if by_site and by_national:
        return None, "fill either site,site_mrn or scheme,identifier, not both"
    if by_site:
        if not all(value.get(c) for c in BY_SITE):
            return None, "needs both site and site_mrn"
        return LinkRow(0, mrn, site=value["site"], site_mrn=value["site_mrn"]), None
    if not by_national:
        return None, "links the MRN to nothing: fill site,site_mrn or scheme,identifier"
    if not all(value.get(c) for c in BY_NATIONAL):
        return None, "needs both scheme and identifier"
    code = value["scheme"]
    if code == LOCAL_MRN:
        return None, f"scheme {LOCAL_MRN} names no national identifier: link to another site's MRN (site,site_mrn)"
    declared = SCHEMES.get(code)
    if declared is None:  # the code is not repeated: a shifted column would put an identifier there
        return None, f"unknown identifier scheme (known: {', '.join(SCHEMES)})"
    number = declared.normalise(value["identifier"])
    if number is None:
        return None, f"identifier is not a valid {declared.name}"
    return LinkRow(0, mrn, scheme=code, identifier=number), None


def _header_ok(columns: list[str]) -> bool:
    """`mrn` and at least one whole pair, each column once, no other."""
    known, named = {"mrn", *BY_SITE, *BY_NATIONAL}, set(columns)
    pair = set(BY_SITE) <= named or set(BY_NATIONAL) <= named
    return "mrn" in named and pair and named <= known and len(named) == len(columns)


def read_linkage(path: Path) -> tuple[list[LinkRow], list[str]]:
    """The rows of a linkage table, and every problem of it as 'file line N: what is wrong'."""
    rows: list[LinkRow] = []
    problems: list[str] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or ()]
            if not _header_ok(columns):  # not repeated: in a table without a header, it is the first row
                return [], [f"{path}: {HEADER_HELP}"]
            reader.fieldnames = columns
            for row in reader:
                line = reader.line_num
                read, problem = _row_problem(row)
                if read is None:
                    problems.append(f"{path} line {line}: {problem}")
                else:
                    rows.append(LinkRow(line, read.mrn, read.site, read.site_mrn, read.scheme, read.identifier))
    except FileNotFoundError:
        return [], [f"{path}: linkage table not found (site.yaml names it)"]
    except (UnicodeDecodeError, csv.Error) as exc:
        return [], [f"{path}: not a readable CSV ({type(exc).__name__})"]
    except OSError as exc:
        return [], [f"{path}: cannot be read ({exc.strerror or type(exc).__name__})"]
    return rows, problems


# ------------------------------------------------------------------------------------------------ the registry


def _mrn_queries(site_id: str) -> tuple[Select, Select]:
    """(MRN, patient id) at a site: its local-mrn index, and the MRNs its clinical records and imaging folders are
    kept under (any site's)."""
    own = select(SiteMrn.mrn, SiteMrn.patient_id).where(SiteMrn.site_id == site_id)
    records = (
        select(PatientRecord.local_id, PatientRecord.patient_id)
        .join(Dataset, Dataset.id == PatientRecord.dataset_id)
        .where(Dataset.site_id == site_id, Dataset.modality.in_(MRN_MODALITIES))
    )
    return own, records


def mrns_at(session: Session, site_id: str) -> dict[str, str]:
    """MRN -> patient id for every MRN a registered site's patients are indexed by."""
    own, records = _mrn_queries(site_id)
    found = dict(session.execute(records).all())
    found.update(session.execute(own).all())
    return found


def patient_at(session: Session, site_id: str, mrn: str) -> str | None:
    """The patient a site's MRN belongs to, or None."""
    own, records = _mrn_queries(site_id)
    mrn = mrn.strip()
    for query in (own.where(SiteMrn.mrn == mrn), records.where(PatientRecord.local_id == mrn)):
        found = session.execute(query).first()
        if found is not None:
            return found[1]
    return None


def patient_with(session: Session, scheme_code: str, number: str) -> str | None:
    """The patient carrying a normalised national identifier, or None."""
    if scheme_code == DEFAULT_SCHEME:
        return session.scalars(select(Patient.id).where(Patient.nhs_number == number)).first()
    query = select(PatientIdentifier.patient_id).where(
        PatientIdentifier.scheme == scheme_code, PatientIdentifier.value == number
    )
    return session.scalars(query).first()


def new_patient(session: Session, scheme_code: str | None = None, number: str | None = None) -> str:
    """A new enclave patient, carrying a national identifier when given one."""
    patient_id = f"EP-{secrets.token_hex(6)}"
    now = utcnow()
    nhs_number = number if scheme_code == DEFAULT_SCHEME else None
    session.add(Patient(id=patient_id, nhs_number=nhs_number, created_at=now))
    if scheme_code not in (None, DEFAULT_SCHEME) and number:
        session.add(PatientIdentifier(patient_id=patient_id, scheme=scheme_code, value=number))
    return patient_id


def resolve_linkage(
    session: Session, site_id: str, path: Path, rows: list[LinkRow]
) -> tuple[dict[str, Link], list[str]]:
    """MRN -> Link for a table's rows, and every row that names an unregistered site, an MRN no patient of the named
    site has, or maps an MRN to a second patient (within the table, or against the MRN's registered patient)."""
    sites = set(session.scalars(select(Site.id)))
    registered = dict(session.execute(select(SiteMrn.mrn, SiteMrn.patient_id).where(SiteMrn.site_id == site_id)).all())
    at_site: dict[str, dict[str, str]] = {}
    links: dict[str, Link] = {}
    first_line: dict[str, int] = {}
    problems: list[str] = []
    for row in rows:
        where = f"{path} line {row.line}"
        if row.site:
            if row.site == site_id:
                problems.append(f"{where}: names this site itself; an MRN of its own needs no row")
                continue
            if row.site not in sites:  # the value is not repeated: a shifted column would put an MRN there
                problems.append(
                    f"{where}: names a site that is not registered (registered: {', '.join(sorted(sites))})"
                )
                continue
            if row.site not in at_site:
                at_site[row.site] = mrns_at(session, row.site)
            patient_id = at_site[row.site].get(row.site_mrn)
            if patient_id is None:
                problems.append(f"{where}: no patient of site {row.site} has that MRN")
                continue
            link = Link(patient_id)
        else:
            link = Link(patient_with(session, row.scheme, row.identifier), row.scheme, row.identifier)
            if link.patient_id is not None:
                link = Link(link.patient_id)
        before = links.get(row.mrn)
        if before is not None and before != link:
            problems.append(f"{where}: maps the MRN of line {first_line[row.mrn]} to another patient")
            continue
        if row.mrn in registered and link.patient_id != registered[row.mrn]:
            problems.append(
                f"{where}: the MRN is registered to another patient already; a registered MRN is not relinked"
            )
            continue
        links[row.mrn] = link
        first_line.setdefault(row.mrn, row.line)
    return links, problems


def load_linkage(session: Session | None, site_id: str, path: Path) -> tuple[dict[str, Link], list[str]]:
    """A site's linkage table read and (with a session) resolved: MRN -> Link, and every problem."""
    rows, problems = read_linkage(path)
    if session is None:
        return {}, problems
    links, unresolved = resolve_linkage(session, site_id, path, rows)
    return links, problems + unresolved


class SiteMrnIndex:
    """The MRN -> patient map of one local-mrn site for one registration: an MRN seen before keeps its patient, a
    new one takes the patient its linkage row names (a new patient carrying the row's national identifier when no
    one does yet) or becomes a patient of its own."""

    def __init__(self, session: Session, site_id: str, links: dict[str, Link]) -> None:
        self.session = session
        self.site_id = site_id
        self.links = links
        self.by_mrn: dict[str, str] = dict(
            session.execute(select(SiteMrn.mrn, SiteMrn.patient_id).where(SiteMrn.site_id == site_id)).all()
        )
        self.carrying: dict[tuple[str, str], str] = {}  # patients made here for a national identifier

    def patient_for(self, raw: str) -> tuple[str, bool, bool]:
        """(patient id, whether the patient was created now, whether a linkage row named it)."""
        mrn = raw.strip()
        if mrn in self.by_mrn:
            return self.by_mrn[mrn], False, False
        link = self.links.get(mrn)
        created = link is None or (link.patient_id is None and (link.scheme, link.identifier) not in self.carrying)
        if link is None:
            patient_id = new_patient(self.session)
        elif link.patient_id is not None:
            patient_id = link.patient_id
        else:
            key = (link.scheme, link.identifier)
            if key not in self.carrying:
                self.carrying[key] = new_patient(self.session, *key)
            patient_id = self.carrying[key]
        self.session.add(SiteMrn(site_id=self.site_id, mrn=mrn, patient_id=patient_id))
        self.by_mrn[mrn] = patient_id
        return patient_id, created, link is not None
