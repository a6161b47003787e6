"""Who a group of synthetic sites' patients are: the national identifier they carry and how it is drawn and written,
their names and postcodes, how consent files name them, and the CSV dialect of their sites' csv-local exports.
The UK population is the generator's original one; other countries' sites (synthetic_sites/dutch.py) bring
their own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from synthetic_sites import identifiers
from synthetic_sites.identifiers import Site


class IdentifierAllocator(Protocol):
    """Draws unique valid national identifiers (digits only) from a caller's generator."""

    def draw(self, rng: np.random.Generator, n: int) -> list[str]: ...


@dataclass(frozen=True)
class Population:
    """A country's patients as its sites' exports show them."""

    scheme: str  # site.yaml identifier_scheme (fabric/identifiers/schemes.py)
    new_allocator: Callable[[], IdentifierAllocator]
    written: Callable[[str], str]  # how the clinical export writes an identifier, e.g. `943 476 5919`
    forenames: Callable[[np.random.Generator, np.ndarray], np.ndarray]
    surnames: Callable[[np.random.Generator, int], np.ndarray]
    postcodes: Callable[[np.random.Generator, Site, int], np.ndarray]
    consent_key: str = "nhs_number"  # consent.ndjson's field naming the patient
    dialect: dict[str, Any] | None = None  # site.yaml clinical_dialect of its csv-local sites; None: the default
    records_ethnicity: bool = True  # False: its records leave ethnicity empty (Dutch hospitals rarely record it)

    @property
    def is_uk(self) -> bool:
        return self.scheme == "nhs"


UK = Population(
    scheme="nhs",
    new_allocator=identifiers.NhsNumberAllocator,
    written=identifiers.format_nhs_number,
    forenames=identifiers.forenames,
    surnames=identifiers.surnames,
    postcodes=identifiers.postcodes,
)
