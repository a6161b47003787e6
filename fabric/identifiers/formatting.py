"""What every scheme forgives before it checks: the spaces, dots, dashes and slashes that people and systems put
between an identifier's groups, and letter case."""

from __future__ import annotations

import re
from datetime import date

_SEPARATORS = re.compile(r"[\s.\-/]+")


def compact(raw: str) -> str:
    """`"123 456.78-9"` -> `"123456789"`: separators removed, letters upper-cased."""
    return _SEPARATORS.sub("", raw).upper()


def is_date(year: int, month: int, day: int) -> bool:
    """Whether (year, month, day) is a real calendar date."""
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True
