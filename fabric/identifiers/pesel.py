"""Polish PESEL: eleven digits, the birth date encoded in the first six (the century in the month: +80 for the
1800s, +20 for the 2000s, +40, +60), then a serial and a check digit with weights 1-3-7-9."""

from __future__ import annotations

import re

from fabric.identifiers.formatting import compact, is_date

WEIGHTS = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)
CENTURY_BY_MONTH_OFFSET = {80: 1800, 0: 1900, 20: 2000, 40: 2100, 60: 2200}


def check_digit(body: str) -> int:
    """The check digit for the first ten digits."""
    return (10 - sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 10) % 10


def birth_date(number: str) -> tuple[int, int, int] | None:
    """(year, month, day) encoded in a PESEL, or None when it encodes no real date."""
    yy, mm, dd = int(number[0:2]), int(number[2:4]), int(number[4:6])
    offset = (mm - 1) // 20 * 20 if mm else -1
    century = CENTURY_BY_MONTH_OFFSET.get(offset)
    if century is None:
        return None
    year, month = century + yy, mm - offset
    return (year, month, dd) if is_date(year, month, dd) else None


def normalise(raw: str) -> str | None:
    """Eleven digits with a right check digit and a real birth date; None otherwise."""
    number = compact(raw)
    if not re.fullmatch(r"\d{11}", number) or birth_date(number) is None:
        return None
    return number if check_digit(number[:10]) == int(number[10]) else None
