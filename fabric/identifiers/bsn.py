"""Dutch burgerservicenummer (BSN): nine digits passing the 11-test (weights 9..2 and -1, sum divisible by 11)."""

from __future__ import annotations

import re

from fabric.identifiers.formatting import compact

WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


def normalise(raw: str) -> str | None:
    """`1234.56.782` -> `123456782`; an eight-digit BSN (a leading zero dropped by a spreadsheet) is padded."""
    number = compact(raw)
    if re.fullmatch(r"\d{8}", number):
        number = "0" + number
    if not re.fullmatch(r"\d{9}", number) or number == "000000000":
        return None
    total = sum(int(d) * w for d, w in zip(number, WEIGHTS, strict=True))
    return number if total % 11 == 0 else None
