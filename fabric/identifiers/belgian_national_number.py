"""Belgian national register number (rijksregisternummer / numéro de registre national): YY.MM.DD-SSS.CC, the
check 97 − (first nine digits mod 97), or for people born from 2000 the same over the nine digits prefixed by 2."""

from __future__ import annotations

import re

from fabric.identifiers.formatting import compact


def check_number(body: str, *, born_2000_or_later: bool) -> int:
    """The two-digit check for the first nine digits."""
    return 97 - int(("2" if born_2000_or_later else "") + body) % 97


def normalise(raw: str) -> str | None:
    """`85.07.30-033.28` -> `85073003328`; None unless the check matches either century's rule. The birth date is
    not checked: numbers for people whose date is unknown, and bis numbers, shift the month."""
    number = compact(raw)
    if not re.fullmatch(r"\d{11}", number):
        return None
    body, check = number[:9], int(number[9:])
    if check in (check_number(body, born_2000_or_later=False), check_number(body, born_2000_or_later=True)):
        return number
    return None
