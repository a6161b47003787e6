"""French NIR (numéro d'inscription au répertoire, the INSEE or sécurité sociale number): 13 characters and a key
equal to 97 − (number mod 97); Corsican departments 2A and 2B count as 19 and 18 in the key."""

from __future__ import annotations

import re

from fabric.identifiers.formatting import compact

_SHAPE = re.compile(r"[1-8]\d{4}(?:\d{2}|2A|2B)\d{6}\d{2}")
_CORSICA = {"2A": "19", "2B": "18"}


def key(body: str) -> int:
    """The two-digit key of a 13-character NIR body."""
    department = body[5:7]
    digits = body[:5] + _CORSICA.get(department, department) + body[7:]
    return 97 - int(digits) % 97


def normalise(raw: str) -> str | None:
    """`1 84 12 2A 123 456 78` -> `18412 2A12345678` without spaces; None unless the key matches."""
    number = compact(raw)
    if not _SHAPE.fullmatch(number):
        return None
    month = int(number[3:5])
    # 1-12, or 20-42 and 50-99 for people whose birth month is unknown; 00 and 13-19 are never issued.
    if month == 0 or 13 <= month <= 19:
        return None
    return number if key(number[:13]) == int(number[13:]) else None
