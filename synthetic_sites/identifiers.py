"""Direct identifiers for synthetic patients: the site catalogue, NHS numbers, MRNs, names and postcodes.

Everything here is what a real export would carry and what de-identification must remove, so it looks real:
NHS numbers pass the modulus-11 check (but start with 9, a range the NHS never issues to patients), MRNs follow
one site-specific pattern, postcodes are well-formed for the site's area. All draws come from a caller's numpy
Generator so a cohort is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernel.errors import EnclaveError

# ---------------------------------------------------------------------------------------------------- sites


@dataclass(frozen=True)
class Site:
    """One synthetic hospital: its id (the custodian-zone folder), display name, MRN prefix and postcode area."""

    id: str
    name: str
    code: str  # upper-case prefix for MRNs, lab sample ids and accession numbers
    postcode_area: str
    max_district: int


_SITE_TABLE: tuple[tuple[str, str, str, int], ...] = (
    ("rbh", "Royal Brompton Hospital", "SW", 20),
    ("bhc", "Barts Heart Centre", "EC", 4),
    ("ouh", "Oxford University Hospitals", "OX", 18),
    ("mft", "Manchester University Hospitals", "M", 35),
    ("nuth", "Newcastle upon Tyne Hospitals", "NE", 30),
    ("lth", "Leeds Teaching Hospitals", "LS", 29),
    ("uhb", "University Hospitals Birmingham", "B", 45),
    ("gstt", "Guy's and St Thomas' Hospitals", "SE", 28),
    ("cuh", "Cambridge University Hospitals", "CB", 25),
    ("uhbw", "University Hospitals Bristol and Weston", "BS", 41),
    ("sth", "Sheffield Teaching Hospitals", "S", 36),
    ("lhch", "Liverpool Heart and Chest Hospital", "L", 40),
    ("nuh", "Nottingham University Hospitals", "NG", 25),
    ("uhl", "University Hospitals of Leicester", "LE", 19),
    ("uhs", "University Hospital Southampton", "SO", 53),
    ("kch", "King's College Hospital", "SE", 28),
    ("rfl", "Royal Free London", "NW", 11),
    ("ichc", "Imperial College Healthcare", "W", 14),
    ("uclh", "University College London Hospitals", "WC", 2),
    ("sgh", "St George's University Hospitals", "SW", 20),
    ("rph", "Royal Papworth Hospital", "PE", 38),
    ("nnuh", "Norfolk and Norwich University Hospitals", "NR", 35),
    ("uhcw", "University Hospitals Coventry and Warwickshire", "CV", 47),
    ("ruh", "Royal United Hospitals Bath", "BA", 16),
    ("uhp", "University Hospitals Plymouth", "PL", 35),
    ("ekh", "East Kent Hospitals", "CT", 21),
)

SITES: tuple[Site, ...] = tuple(
    Site(id=sid, name=f"{name} (synthetic)", code=sid.upper(), postcode_area=area, max_district=dist)
    for sid, name, area, dist in _SITE_TABLE
)
MAX_SITES = len(SITES)
CLINICAL_FORMATS = ("csv-local", "fhir-ndjson")


def site_format(index: int) -> str:
    """Sites alternate clinical formats: the first exports csv-local, the second fhir-ndjson, and so on."""
    return CLINICAL_FORMATS[index % len(CLINICAL_FORMATS)]


def choose_sites(n: int) -> tuple[Site, ...]:
    if not 1 <= n <= MAX_SITES:
        raise EnclaveError(f"sites must be between 1 and {MAX_SITES}, got {n}")
    return SITES[:n]


# ---------------------------------------------------------------------------------------------------- NHS numbers

_NHS_WEIGHTS = np.arange(10, 1, -1)  # weights 10..2 for the first nine digits


def nhs_check_digit(body: str) -> int | None:
    """The modulus-11 check digit for a 9-digit body, or None where the body can never be valid (remainder 10)."""
    if len(body) != 9 or not body.isdigit():
        raise ValueError("an NHS number body is nine digits")
    total = sum(int(d) * w for d, w in zip(body, _NHS_WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def is_valid_nhs_number(value: str) -> bool:
    digits = value.replace(" ", "")
    if len(digits) != 10 or not digits.isdigit():
        return False
    return nhs_check_digit(digits[:9]) == int(digits[9])


def format_nhs_number(digits: str) -> str:
    """`9434765919` → `943 476 5919`, the 3-3-4 grouping NHS systems print."""
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


class NhsNumberAllocator:
    """Draws unique valid NHS numbers; remembers what it issued (an int set: ~100 bytes a patient)."""

    def __init__(self) -> None:
        self._issued: set[int] = set()

    def draw(self, rng: np.random.Generator, n: int) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            # Vectorised modulus-11 over a batch of candidate bodies; about 1 in 11 bodies is unusable.
            bodies = 900_000_000 + rng.integers(0, 100_000_000, size=2 * (n - len(out)) + 8)
            digits = (bodies[:, None] // 10 ** np.arange(8, -1, -1)) % 10
            check = 11 - (digits @ _NHS_WEIGHTS) % 11
            check = np.where(check == 11, 0, check)
            for body, c in zip(bodies.tolist(), check.tolist(), strict=True):
                if c == 10 or body in self._issued:
                    continue
                self._issued.add(body)
                out.append(f"{body}{c}")
                if len(out) == n:
                    break
        return out


# ---------------------------------------------------------------------------------------------------- MRNs

# An affine map on 0..10^7-1 with a multiplier coprime to 10 is a bijection, so successive per-site counters give
# unique, non-sequential-looking MRNs without remembering which were issued.
_MRN_SPACE = 10**7
_MRN_MULT = 7_368_787


def mrn(site: Site, counter: int) -> str:
    """The site's `counter`-th MRN, e.g. `RBH0412345`: site prefix and seven digits, unique within the site."""
    if counter >= _MRN_SPACE:
        raise EnclaveError(f"site {site.id} has run out of MRNs")
    offset = sum(ord(c) for c in site.id) * 104_729
    return f"{site.code}{(counter * _MRN_MULT + offset) % _MRN_SPACE:07d}"


# ---------------------------------------------------------------------------------------------------- names


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


MALE_FORENAMES = _words(
    "Oliver George Harry Jack Jacob Noah Charlie Thomas Oscar William James Henry Leo Alfie Joshua Freddie "
    "Archie Ethan Isaac Alexander Joseph Edward Samuel Max Daniel Arthur Lucas Mohammed Logan Theo Harrison "
    "Benjamin Mason Sebastian Finley Adam Dylan Zachary Riley Teddy David Michael Peter Robert John Paul Mark "
    "Stephen Andrew Richard Christopher Anthony Kevin Brian Gary Ian Colin Graham Keith Raj Arjun Tariq Kwame"
)
FEMALE_FORENAMES = _words(
    "Olivia Amelia Isla Ava Emily Isabella Mia Poppy Ella Lily Sophia Grace Evie Sophie Charlotte Ruby Jessica "
    "Freya Daisy Alice Florence Matilda Chloe Phoebe Evelyn Scarlett Harper Sienna Layla Elsie Margaret Susan "
    "Patricia Linda Elizabeth Barbara Mary Jennifer Karen Helen Sarah Janet Christine Julie Anne Deborah Alison "
    "Gillian Pauline Priya Aisha Fatima Amara Mei Niamh Siobhan Joan Doreen Valerie Sandra Angela Carol Rachel"
)
SURNAMES = _words(
    "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson Thompson Wright Walker "
    "White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson Wood Turner Martin Cooper Hill Ward Morris "
    "Moore Clark Lee King Baker Harrison Morgan Allen James Scott Phillips Watson Davis Parker Price Bennett Young "
    "Griffiths Mitchell Kelly Cook Carter Richardson Bailey Collins Bell Shaw Murphy Miller Cox Richards Khan "
    "Marshall Anderson Simpson Ellis Adams Singh Begum Wilkinson Foster Chapman Powell Webb Rogers Gray Mason Ali "
    "Hussain Campbell Matthews Owen Palmer Holmes Mills Barnes Knight Lloyd Butler Russell Barker Fisher Stevens "
    "Jenkins Murray Dixon Harvey Graham Pearson Ahmed Fletcher Walsh Kaur Gibson Howard Andrews Stewart Elliott "
    "Reynolds Saunders Payne Fox Ford Pearce Day Brooks West Lawrence Cole Atkinson Bradley Spencer Gill Dawson "
    "Ball Burton O'Brien Watts Rose Booth Perry Ryan Grant Wells Armstrong Francis Rees Hayes Hart Hudson Newman "
    "Barrett Webster Hunter Gregory Carr Lowe Page Marsh Riley Dunn Woods Parsons Berry Stone Reid Holland Hawkins "
    "Harding Porter Robertson Newton Oliver Reed Kennedy Williamson Bird Gardner Shah Dean Lane Cooke Bates Henderson "
    "Parry Burgess Bishop Walton Burns Nicholson Shepherd Ross Cross Long Freeman Warren Nicholls Hamilton Byrne "
    "Sutton McDonald Yates Hodgson Robson Curtis Hopkins O'Connor Harper Coleman Watkins Moss McCarthy Chambers "
    "O'Neill Griffin Sharp Hardy Wheeler Potter Osborne Johnston Gordon Doyle Wallace George Jordan Hutchinson Rahman"
)


def forenames(
    rng: np.random.Generator,
    male: np.ndarray,
    male_names: tuple[str, ...] | list[str] = MALE_FORENAMES,
    female_names: tuple[str, ...] | list[str] = FEMALE_FORENAMES,
) -> np.ndarray:
    """A forename per person, from `male_names` or `female_names` as `male` says (a country's lists; the UK's by
    default)."""
    m = np.asarray(male_names)[rng.integers(0, len(male_names), male.size)]
    f = np.asarray(female_names)[rng.integers(0, len(female_names), male.size)]
    return np.where(male, m, f)


def surnames(rng: np.random.Generator, n: int, names: tuple[str, ...] | list[str] = SURNAMES) -> np.ndarray:
    return np.asarray(names)[rng.integers(0, len(names), n)]


# ---------------------------------------------------------------------------------------------------- postcodes

# The inward code's two letters never use C, I, K, M, O or V (Royal Mail rule).
_INWARD_LETTERS = np.asarray(list("ABDEFGHJLNPQRSTUWXYZ"))


def postcodes(rng: np.random.Generator, site: Site, n: int) -> np.ndarray:
    """Well-formed postcodes in the site's area, e.g. `SW3 6NP` (patients mostly live near their hospital)."""
    district = rng.integers(1, site.max_district + 1, n).astype(str)
    sector = rng.integers(0, 10, n).astype(str)
    unit = _INWARD_LETTERS[rng.integers(0, _INWARD_LETTERS.size, (n, 2))]
    inward = np.char.add(np.char.add(sector, unit[:, 0]), unit[:, 1])
    return np.char.add(np.char.add(np.char.add(site.postcode_area, district), " "), inward)
