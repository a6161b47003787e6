"""Swedish personnummer (and samordningsnummer, day + 60): YYMMDD-NNNC or YYYYMMDDNNNC, C a Luhn digit over the
ten digits. Linked in its twelve-digit form: a ten-digit one takes the century that makes the person under 100
on the reference date, or 100 and over when written with `+`."""

from __future__ import annotations

import re
from datetime import date

from fabric.identifiers.formatting import is_date

_SHAPE = re.compile(r"(\d{2})?(\d{6})([-+]?)(\d{4})")


def luhn_digit(body: str) -> int:
    """The Luhn check digit for nine digits (weights 2, 1, 2, … from the left, as Skatteverket specifies)."""
    total = 0
    for i, d in enumerate(body):
        product = int(d) * (2 if i % 2 == 0 else 1)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


def normalise(raw: str, *, today: date | None = None) -> str | None:
    """`811218-9876` or `19811218 9876` -> `198112189876`; None unless the Luhn digit and the date are right."""
    match = _SHAPE.fullmatch(re.sub(r"\s+", "", raw))
    if match is None:
        return None
    century, short, separator, tail = match.groups()
    ten = short + tail
    if luhn_digit(ten[:9]) != int(ten[9]):
        return None
    yy, mm, dd = int(short[:2]), int(short[2:4]), int(short[4:6])
    if century is not None:
        if separator == "+":
            return None  # `+` only makes sense without a century
        year = int(century) * 100 + yy
    else:
        reference = (today or date.today()).year
        year = reference - (reference - yy) % 100  # the latest year ending in yy, not after this one
        if separator == "+":
            year -= 100
    day = dd - 60 if dd > 60 else dd  # coordination numbers add 60 to the day
    if not is_date(year, mm, day):
        return None
    return f"{year:04d}{short[2:]}{tail}"
