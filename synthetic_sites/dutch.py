"""The synthetic cohort's Dutch site: a University Medical Centre whose patients carry a burgerservicenummer (BSN)
and whose csv-local export speaks Dutch (its own file and column names, dd-mm-yyyy dates, `;` between fields and a
decimal comma; fabric/clinical/dialect.py). Its patients are their own people, not the UK sites'; their BSNs pass
the 11-test (fabric/identifiers/bsn.py), their postcodes are Dutch (four digits, two letters)."""

from __future__ import annotations

import numpy as np

from synthetic_sites import identifiers
from synthetic_sites.identifiers import Site
from synthetic_sites.population import Population

UMCU = Site(
    id="umcu", name="Universitair Medisch Centrum Utrecht (synthetic)", code="UMCU", postcode_area="35", max_district=99
)

# site.yaml's clinical_dialect: the default layout's names -> the Dutch export's.
DIALECT: dict = {
    "files": {
        "patients": "patienten.csv",
        "diagnoses": "diagnoses.csv",
        "medications": "medicatie.csv",
        "measurements": "labuitslagen.csv",
        "outcomes": "gebeurtenissen.csv",
    },
    "columns": {
        "MRN": "patientnummer",
        "NHS_NO": "bsn",
        "SURNAME": "achternaam",
        "FORENAME": "voornaam",
        "DOB": "geboortedatum",
        "SEX": "geslacht",
        "POSTCODE": "postcode",
        "ETHNIC_GRP": "etniciteit",
        "SMOKER": "rookstatus",
        "ICD10": "icd10_code",
        "DIAG_DESC": "omschrijving",
        "DIAG_DATE": "diagnosedatum",
        "DRUG": "geneesmiddel",
        "DOSE": "dosering",
        "START_DATE": "startdatum",
        "TEST_CODE": "bepaling",
        "RESULT": "uitslag",
        "UNITS": "eenheid",
        "RESULT_DATE": "uitslagdatum",
        "EVENT": "gebeurtenis",
        "EVENT_DATE": "datum_gebeurtenis",
    },
    "date_format": "%d-%m-%Y",
    "delimiter": ";",
    "decimal": ",",
    "encoding": "cp1252",
}

# ---------------------------------------------------------------------------------------------------- BSNs

_BSN_WEIGHTS = np.arange(9, 1, -1)  # weights 9..2 of the first eight digits; the ninth counts -1


class BsnAllocator:
    """Draws unique BSNs passing the 11-test: eight random digits and the ninth that makes the weighted sum a
    multiple of 11 (about 1 in 11 bodies has none). Synthetic: drawn at random, no real person is meant."""

    def __init__(self) -> None:
        self._issued: set[int] = set()

    def draw(self, rng: np.random.Generator, n: int) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            bodies = rng.integers(10_000_000, 100_000_000, size=2 * (n - len(out)) + 8)
            digits = (bodies[:, None] // 10 ** np.arange(7, -1, -1)) % 10
            check = (digits @ _BSN_WEIGHTS) % 11
            for body, c in zip(bodies.tolist(), check.tolist(), strict=True):
                if c == 10 or body in self._issued:
                    continue
                self._issued.add(body)
                out.append(f"{body}{c}")
                if len(out) == n:
                    break
        return out


def format_bsn(digits: str) -> str:
    """`111222333` -> `1112.22.333`, as Dutch hospital systems often print it."""
    return f"{digits[:4]}.{digits[4:6]}.{digits[6:]}"


# ---------------------------------------------------------------------------------------------------- names

MALE_FORENAMES = (
    "Daan", "Sem", "Lucas", "Levi", "Finn", "Milan", "Jesse", "Bram", "Luuk", "Thijs", "Lars", "Ruben", "Tim",
    "Jeroen", "Pieter", "Jan", "Hendrik", "Willem", "Kees", "Johannes", "Cornelis", "Gerrit", "Maarten", "Sander",
    "Bas", "Wouter", "Joost", "Dirk", "Erik", "Henk", "Ad", "Mohamed", "Youssef", "Emre", "Mehmet", "Rajesh",
)  # fmt: skip
FEMALE_FORENAMES = (
    "Emma", "Julia", "Sophie", "Tess", "Anna", "Zoë", "Sara", "Eva", "Lotte", "Noor", "Fleur", "Lieke", "Femke",
    "Anouk", "Sanne", "Marieke", "Ingrid", "Johanna", "Maria", "Cornelia", "Wilhelmina", "Els", "Annemarie", "Petra",
    "Monique", "Daniëlle", "Esther", "Fatima", "Aylin", "Yasmina", "Gerda", "Truus",
)  # fmt: skip
SURNAMES = (
    "de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen", "Visser", "Smit", "Meijer",
    "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks", "van Leeuwen", "Dekker", "Brouwer", "de Wit",
    "Dijkstra", "Smits", "de Graaf", "van der Meer", "van der Linden", "Kok", "Jacobs", "de Haan", "Vermeulen",
    "van den Heuvel", "van der Veen", "van den Broek", "de Bruijn", "van der Heijden", "Schouten", "van Beek",
    "Willems", "van Vliet", "van de Ven", "Hoekstra", "Maas", "Verhoeven", "Koster", "van Dam", "van der Wal",
    "Prins", "Blom", "Huisman", "Yilmaz", "El Idrissi", "Kaya", "Bouzid", "Sahin", "Pinas", "Tjon",
)  # fmt: skip


def forenames(rng: np.random.Generator, male: np.ndarray) -> np.ndarray:
    return identifiers.forenames(rng, male, MALE_FORENAMES, FEMALE_FORENAMES)


def surnames(rng: np.random.Generator, n: int) -> np.ndarray:
    return identifiers.surnames(rng, n, SURNAMES)


# ---------------------------------------------------------------------------------------------------- postcodes

# Letter pairs never start with S here (SA, SD and SS are not issued); F, I, O, Q, U and Y are not used.
_FIRST_LETTERS = np.asarray(list("ABCDEGHJKLMNPRTVWXZ"))
_SECOND_LETTERS = np.asarray(list("ABCDEGHJKLMNPRSTVWXZ"))


def postcodes(rng: np.random.Generator, site: Site, n: int) -> np.ndarray:
    """Dutch postcodes near the site, e.g. `3584 CX`: the site's two-digit area, two more digits, two letters."""
    digits = np.char.zfill(rng.integers(0, site.max_district + 1, n).astype(str), 2)
    first = _FIRST_LETTERS[rng.integers(0, _FIRST_LETTERS.size, n)]
    second = _SECOND_LETTERS[rng.integers(0, _SECOND_LETTERS.size, n)]
    letters = np.char.add(first, second)
    return np.char.add(np.char.add(np.char.add(site.postcode_area, digits), " "), letters)


NL = Population(
    scheme="nl-bsn",
    new_allocator=BsnAllocator,
    written=format_bsn,
    forenames=forenames,
    surnames=surnames,
    postcodes=postcodes,
    consent_key="identifier",
    dialect=DIALECT,
    records_ethnicity=False,
)

# Sites outside the UK that generate_cohort(extra_sites=...) can add, each with its population.
EXTRA_SITES: dict[str, tuple[Site, Population]] = {UMCU.id: (UMCU, NL)}
