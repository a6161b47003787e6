"""A site's side of counting a patient once (federation/linkage.py has the scheme and its privacy argument): the
linkage tokens of the patients in the site's view of a federated project, and which of its patients to leave out
once the coordinator has compared every site's tokens.

The site holds the consortium's linkage key (`federation/site/linkage.key`, root-only), its registry's national
identifiers and the project's pseudonym key. It sends only tokens; it keeps the token -> pseudonym map and turns the
coordinator's answer back into pseudonyms of its own view, which the run is given (`excluded`)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from fabric.models import Patient, PatientIdentifier
from fabric.pseudonyms import KEY_BYTES, pseudonym
from federation.linkage import LinkageError, LinkageKey, linkage_token
from kernel.config import Paths
from kernel.db import Registry
from kernel.errors import EnclaveError
from workbench import open_project

KEY_FILE = "linkage.key"


def key_file(paths: Paths) -> Path:
    return paths.federation / "site" / KEY_FILE


def install_key(paths: Paths, source: Path) -> LinkageKey:
    """Keep the consortium's linkage key at this site (root-only); refused unless `source` is a key file that only
    its owner can read. Its fingerprint is what the sites' admins compare."""
    try:
        key = LinkageKey.load(source)
    except LinkageError as exc:
        raise EnclaveError(f"{source}: {exc}") from None
    key.write(key_file(paths))
    return key


def load_key(paths: Paths) -> LinkageKey | None:
    """The site's linkage key, None when none was installed."""
    path = key_file(paths)
    if not path.exists():
        return None
    try:
        return LinkageKey.load(path)
    except LinkageError as exc:
        raise EnclaveError(f"the site's linkage key: {exc}") from None


def project_tokens(paths: Paths, registry: Registry, project: str, key: LinkageKey) -> dict[str, str]:
    """token -> pseudonym, for every patient in the project's published view who has a national identifier (a
    patient of a site that identifies by local MRN alone has none, and is not linked)."""
    included = set(open_project(path=paths.project_data(project)).pseudonyms)
    secret = paths.project_key(project).read_bytes()
    if len(secret) != KEY_BYTES:
        raise EnclaveError(f"project {project}'s pseudonym key is damaged")
    tokens: dict[str, str] = {}
    with registry.session() as session:
        others: dict[str, list[tuple[str, str]]] = {}
        for row in session.scalars(select(PatientIdentifier)):
            others.setdefault(row.patient_id, []).append((row.scheme, row.value))
        for patient in session.scalars(select(Patient)):
            name = pseudonym(secret, patient.id)
            if name not in included:
                continue
            identifiers = [("nhs", patient.nhs_number)] if patient.nhs_number else []
            for scheme, value in identifiers + others.get(patient.id, []):
                try:
                    tokens[linkage_token(scheme, value, key)] = name
                except LinkageError:
                    continue  # an identifier its scheme refuses links to no one (counted apart by the caller)
    return tokens
