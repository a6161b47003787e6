"""The national identifier schemes a site may declare (its `identifier_scheme` in site.yaml), as data: each with
its normaliser (compact form, or None when the check digits are wrong) and synthetic valid examples written the
way people write them. Patients of sites that declare the same scheme link when their normalised numbers match. A site
with no national identifier declares `local-mrn` instead (LOCAL_MRN): its MRNs, scoped to the site, and its linkage
table (fabric/linkage.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fabric.identifiers import (
    belgian_national_number,
    bsn,
    codice_fiscale,
    dni,
    nhs,
    nir,
    personnummer,
    pesel,
)


@dataclass(frozen=True)
class Scheme:
    code: str
    name: str
    plural: str  # as `enclave site add` counts invalid ones
    country: str
    normalise: Callable[[str], str | None]
    examples: tuple[str, ...]  # synthetic numbers made by the algorithm, never a real person's
    fhir_system: str  # Patient.identifier.system in a FHIR export (the country's naming system where it has one)

    @property
    def fhir_systems(self) -> tuple[str, ...]:
        """The systems a FHIR export may carry this identifier under: the official one and Enclave's own."""
        return tuple(dict.fromkeys((self.fhir_system, f"urn:enclave:identifier:{self.code}")))


DEFAULT_SCHEME = "nhs"
LOCAL_MRN = "local-mrn"  # a site's own MRNs alone, no national identifier (fabric/linkage.py); not a national scheme

SCHEMES: dict[str, Scheme] = {
    s.code: s
    for s in (
        Scheme(
            "nhs",
            "NHS number",
            "NHS numbers",
            "GB",
            nhs.normalise,
            ("943 476 5919", "9434765919"),
            "https://fhir.nhs.uk/Id/nhs-number",
        ),
        Scheme(
            "nl-bsn",
            "Burgerservicenummer (BSN)",
            "BSNs",
            "NL",
            bsn.normalise,
            ("1112.22.333", "111222333"),
            "http://fhir.nl/fhir/NamingSystem/bsn",
        ),
        Scheme(
            "fr-nir",
            "NIR (numéro de sécurité sociale, INSEE)",
            "NIRs",
            "FR",
            nir.normalise,
            ("1 84 12 75 123 456 40", "2 90 05 2A 004 012 66"),
            "urn:oid:1.2.250.1.213.1.4.8",
        ),
        Scheme(
            "pl-pesel",
            "PESEL",
            "PESEL numbers",
            "PL",
            pesel.normalise,
            ("85031412347", "03310256785"),
            "urn:oid:2.16.840.1.113883.3.4424.1.1.616",
        ),
        Scheme(
            "se-personnummer",
            "Personnummer",
            "personnummer",
            "SE",
            personnummer.normalise,
            ("811218-9876", "19811218-9876", "20120304-1239"),
            "urn:oid:1.2.752.129.2.1.3.1",
        ),
        Scheme(
            "it-codice-fiscale",
            "Codice fiscale",
            "codici fiscali",
            "IT",
            codice_fiscale.normalise,
            ("TSTNMO85M50L219V", "prv cgn 71t22 f839 r"),
            "http://hl7.it/sid/codiceFiscale",
        ),
        Scheme(
            "es-dni-nie",
            "DNI or NIE",
            "DNIs or NIEs",
            "ES",
            dni.normalise,
            ("40506070-B", "X-1234567-L", "Z0918273A"),
            "urn:enclave:identifier:es-dni-nie",
        ),
        Scheme(
            "be-national-number",
            "National register number (rijksregisternummer)",
            "national register numbers",
            "BE",
            belgian_national_number.normalise,
            ("85.07.30-033.28", "05.01.10-123.09"),
            "https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/ssin",
        ),
    )
}


# Every system a FHIR export may carry a national identifier under, and its scheme: the FHIR reader takes the first
# a Patient has, and the catalogue checks it against the scheme its site declares.
FHIR_SYSTEMS: dict[str, str] = {system: s.code for s in SCHEMES.values() for system in s.fhir_systems}


def scheme(code: str) -> Scheme:
    """The scheme a site declares; ValueError naming the known ones for anything else."""
    try:
        return SCHEMES[code]
    except KeyError:
        raise ValueError(f"unknown identifier scheme {code!r}; known: {', '.join(SCHEMES)}") from None


def check_site_scheme(code: str) -> str:
    """`code` when a site may declare it (a national scheme or LOCAL_MRN); ValueError naming them all otherwise."""
    if code != LOCAL_MRN and code not in SCHEMES:
        raise ValueError(f"unknown identifier scheme {code!r}; known: {', '.join(SCHEMES)}, {LOCAL_MRN}")
    return code


def normalise(code: str, raw: str) -> str | None:
    """A raw identifier in the compact form patients link on, or None when it is not a valid number of the scheme."""
    return scheme(code).normalise(raw)
