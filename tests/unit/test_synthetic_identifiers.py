"""Identifiers: NHS numbers, MRNs, postcodes and the site catalogue."""

from __future__ import annotations

import re

import numpy as np
import pytest

from kernel.errors import EnclaveError
from synthetic_sites import identifiers
from synthetic_sites.identifiers import (
    NhsNumberAllocator,
    format_nhs_number,
    is_valid_nhs_number,
    nhs_check_digit,
)

pytestmark = pytest.mark.unit


def test_known_nhs_number_check_digit() -> None:
    # 943 476 5919 is the NHS's published example number.
    assert nhs_check_digit("943476591") == 9
    assert is_valid_nhs_number("9434765919")
    assert is_valid_nhs_number("943 476 5919")
    assert not is_valid_nhs_number("9434765918")
    assert not is_valid_nhs_number("943476591")
    assert not is_valid_nhs_number("94347659x9")


def test_bodies_with_remainder_ten_have_no_check_digit() -> None:
    # 10*0 + 9*0 + ... + 2*1 = 2 → 11 - 2 = 9; find a body whose check would be 10 by brute force.
    body = next(
        f"{i:09d}"
        for i in range(10_000)
        if (11 - sum(int(d) * w for d, w in zip(f"{i:09d}", range(10, 1, -1), strict=True)) % 11) == 10
    )
    assert nhs_check_digit(body) is None


def test_allocator_draws_unique_valid_numbers() -> None:
    allocator = NhsNumberAllocator()
    rng = np.random.default_rng(3)
    numbers = allocator.draw(rng, 5000) + allocator.draw(rng, 5000)
    assert len(set(numbers)) == 10_000
    assert all(len(n) == 10 and n.startswith("9") and is_valid_nhs_number(n) for n in numbers)
    assert format_nhs_number("9434765919") == "943 476 5919"


def test_mrns_are_unique_per_site_and_prefixed() -> None:
    site = identifiers.SITES[0]
    mrns = [identifiers.mrn(site, i) for i in range(20_000)]
    assert len(set(mrns)) == len(mrns)
    assert all(re.fullmatch(r"RBH\d{7}", m) for m in mrns)


def test_postcodes_are_well_formed_and_local() -> None:
    for site in identifiers.SITES:
        codes = identifiers.postcodes(np.random.default_rng(1), site, 200)
        pattern = rf"{site.postcode_area}\d{{1,2}} \d[ABD-HJLNP-UW-Z]{{2}}"
        assert all(re.fullmatch(pattern, c) for c in codes), site.id


def test_site_catalogue() -> None:
    ids = [s.id for s in identifiers.SITES]
    assert len(ids) == len(set(ids)) == identifiers.MAX_SITES == 26
    assert all(re.fullmatch(r"[a-z0-9-]+", i) for i in ids)
    assert [identifiers.site_format(i) for i in range(4)] == ["csv-local", "fhir-ndjson"] * 2
    with pytest.raises(EnclaveError):
        identifiers.choose_sites(0)
    with pytest.raises(EnclaveError):
        identifiers.choose_sites(27)


def test_names_follow_sex() -> None:
    rng = np.random.default_rng(0)
    male = np.array([True] * 50 + [False] * 50)
    names = identifiers.forenames(rng, male)
    assert set(names[:50]) <= set(identifiers.MALE_FORENAMES)
    assert set(names[50:]) <= set(identifiers.FEMALE_FORENAMES)
