"""Spanish DNI (eight digits and a letter) and NIE (X, Y or Z, seven digits and a letter): the letter is
TABLE[number mod 23], the NIE's prefix counting as 0, 1 or 2 in front of its digits."""

from __future__ import annotations

import re

from fabric.identifiers.formatting import compact

TABLE = "TRWAGMYFPDXBNJZSQVHLCKE"
NIE_PREFIX = {"X": "0", "Y": "1", "Z": "2"}


def check_letter(digits: str) -> str:
    """The control letter for a DNI's number (or an NIE's, its prefix replaced by its digit)."""
    return TABLE[int(digits) % 23]


def normalise(raw: str) -> str | None:
    """`12.345.678-z` -> `12345678Z`, `x-1234567-l` -> `X1234567L`; a DNI written with fewer than eight digits is
    padded with zeros. None unless the letter is right."""
    code = compact(raw)
    nie = re.fullmatch(r"([XYZ])(\d{7})([A-Z])", code)
    if nie:
        prefix, digits, letter = nie.groups()
        return code if check_letter(NIE_PREFIX[prefix] + digits) == letter else None
    dni = re.fullmatch(r"(\d{1,8})([A-Z])", code)
    if dni is None:
        return None
    digits, letter = dni.group(1).zfill(8), dni.group(2)
    return digits + letter if check_letter(digits) == letter else None
