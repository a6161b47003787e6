"""NHS numbers (England, Wales, Isle of Man): ten digits, the last a modulus 11 check digit."""

from __future__ import annotations

import re

from fabric.identifiers.formatting import compact


def check_digit(body: str) -> int | None:
    """The check digit for nine digits, or None when the body has no valid number (remainder gives 10)."""
    check = 11 - sum(int(d) * w for d, w in zip(body, range(10, 1, -1), strict=True)) % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def is_valid(number: str) -> bool:
    """Modulus 11 check of an already compact 10-digit NHS number."""
    return bool(re.fullmatch(r"\d{10}", number)) and check_digit(number[:9]) == int(number[9])


def normalise(raw: str) -> str | None:
    """`943 476 5919` -> `9434765919`; None unless ten digits with a right check digit."""
    number = compact(raw)
    return number if is_valid(number) else None
