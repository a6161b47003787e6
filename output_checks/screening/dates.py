"""Dates written in the common forms (14/03/1956, 1956-03-14, 19560314, 14MAR1956, 14th March 1956, March 14, 1956)
read as ISO dates: how known-identifier screening finds a source patient's date of birth however it is written."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}  # fmt: skip
DATE_DMY = re.compile(r"\b(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\b")
DATE_ISO = re.compile(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b")
DATE_COMPACT = re.compile(r"(?<![\d.])((?:19|20)\d{2})(\d{2})(\d{2})(?![\d.])")  # 19610303
DATE_SAS = re.compile(r"(?i)\b(\d{1,2})[-\s]?([a-z]{3})[-\s]?(\d{4})\b")  # SAS date9.: 03MAR1961
DATE_WORDS = re.compile(r"(?i)\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?([a-z]{3})[a-z]*\.?,?\s+(\d{4})\b")
DATE_US_WORDS = re.compile(r"(?i)\b([a-z]{3})[a-z]*\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b")


def _iso(y: int, m: int, d: int) -> str | None:
    if not 1850 <= y <= 2100:
        return None
    try:
        return date(y, m, d).isoformat()
    except ValueError:
        return None


def dates_in(text: str) -> Iterator[tuple[str, str]]:
    """(matched text, ISO date) for every full date written in a common form; a day/month order that cannot be
    told apart (03/04/1961) yields both readings."""
    for m in DATE_DMY.finditer(text):
        seen = set()
        for iso in (_iso(int(m[3]), int(m[2]), int(m[1])), _iso(int(m[3]), int(m[1]), int(m[2]))):
            if iso and iso not in seen:
                seen.add(iso)
                yield m[0], iso
    for m in DATE_ISO.finditer(text):
        iso = _iso(int(m[1]), int(m[2]), int(m[3]))
        if iso:
            yield m[0], iso
    for m in DATE_COMPACT.finditer(text):
        iso = _iso(int(m[1]), int(m[2]), int(m[3]))
        if iso:
            yield m[0], iso
    for pattern, order in ((DATE_WORDS, (1, 2, 3)), (DATE_SAS, (1, 2, 3)), (DATE_US_WORDS, (2, 1, 3))):
        for m in pattern.finditer(text):
            day, month, year = (m[i] for i in order)
            number = MONTHS.get(month.lower())
            if number and (iso := _iso(int(year), number, int(day))):
                yield m[0], iso
