"""Clinical and genetic codes (SNOMED CT and dm+d ids, ICD-10, OPCS-4, LOINC, Read v2, CTV3, ATC, HGNC symbols,
rs ids) told apart from personal identifiers. A SNOMED CT id can be Luhn-valid (a "card number") or mod-11-valid
(an "NHS number") by chance; what decides is the context (a code column, a term beside it, an identifier word)
and, without context, which checksums the digits pass. The lists are data (`codes.yaml`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import cache, lru_cache
from pathlib import Path

import yaml

HERE = Path(__file__).parent

_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)  # the dihedral group D5's multiplication table
_P1 = (1, 5, 7, 6, 2, 8, 3, 0, 9, 4)


def _permutations() -> tuple[tuple[int, ...], ...]:
    table = [tuple(range(10))]
    for _ in range(7):
        table.append(tuple(_P1[x] for x in table[-1]))
    return tuple(table)


_P = _permutations()
SNOMED_PARTITIONS = {"00", "01", "02", "10", "11", "12"}  # concept, description, relationship; core or extension
WORD = re.compile(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])|[a-z]+|\d+")


def verhoeff(digits: str) -> bool:
    check = 0
    for i, ch in enumerate(reversed(digits)):
        check = _D[check][_P[i % 8][ord(ch) - 48]]
    return check == 0


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def snomed_id(value: str) -> bool:
    """A SNOMED CT (or dm+d) id: 6-18 digits, no leading zero, a partition id in the 2nd and 3rd last digits
    (an extension's, 1x, only after a 7-digit namespace) and a Verhoeff check digit."""
    if not (6 <= len(value) <= 18 and value.isascii() and value.isdigit()) or value[0] == "0":
        return False
    partition = value[-3:-1]
    if partition not in SNOMED_PARTITIONS or (partition[0] == "1" and len(value) < 11):
        return False
    return verhoeff(value)


class Reading(Enum):
    """What an identifier-shaped value is, once codes are considered."""

    IDENTIFIER = "identifier"  # not a code, or an identifier by context: the finding stands
    CODE = "code"  # a code by context, or valid as a code and not as the identifier
    BOTH = "both"  # valid as both and no context says which: a reviewer decides


@dataclass(frozen=True)
class System:
    name: str
    label: str
    shape: re.Pattern[str] | None
    checksum: str | None
    needs_context: bool


class Codes:
    """The coding systems of `codes.yaml`, and the context words that tell a code from an identifier."""

    def __init__(self, data: dict) -> None:
        self.systems = [
            System(
                name,
                spec["label"],
                re.compile(spec["shape"]) if spec.get("shape") else None,
                spec.get("checksum"),
                bool(spec.get("needs_context")),
            )
            for name, spec in data["systems"].items()
        ]
        self.code_words = frozenset(w.lower() for w in data["code_words"])
        self.identifier_words = frozenset(w.lower() for w in data["identifier_words"])
        self.term_words = frozenset(w.lower() for w in data["term_words"])
        self.term_endings = tuple(data["term_endings"])

    # ---------------------------------------------------------------------------------------------- values

    def fits(self, value: str, *, context: bool = False) -> list[str]:
        """The systems `value` is a valid code of (systems that need context only when `context`)."""
        v = value.strip()
        out = []
        for system in self.systems:
            if system.needs_context and not context:
                continue
            if system.checksum == "verhoeff":
                if snomed_id(v):
                    out.append(system.name)
                continue
            if system.shape is None or not system.shape.match(v):
                continue
            if system.checksum == "mod10" and not luhn(v.replace("-", "")):
                continue
            out.append(system.name)
        return out

    def label(self, name: str) -> str:
        return next(s.label for s in self.systems if s.name == name)

    # ---------------------------------------------------------------------------------------------- context

    @staticmethod
    def words(text: str) -> set[str]:
        """Lower-case words of a header or line, split at separators and camelCase, plus the header joined."""
        found = {w.lower() for w in WORD.findall(text)}
        joined = re.sub(r"[^a-z0-9]", "", text.lower())
        if 0 < len(joined) <= 24:
            found.add(joined)
        return found

    def identifier_context(self, text: str) -> bool:
        return bool(self.words(text) & self.identifier_words)

    def code_context(self, text: str) -> bool:
        return bool(self.words(text) & self.code_words)

    def term_beside(self, line: str) -> bool:
        """A clinical term on the line: a term word, or a word with a clinical ending ("cardiomyopathy")."""
        for w in re.findall(r"[A-Za-z]{4,}", line):
            low = w.lower()
            if low in self.term_words or low.endswith(self.term_endings):
                return True
        return False

    def read(
        self,
        value: str,
        *,
        column: str | None,
        line: str,
        at: int,
        column_of_codes: bool = False,
        validated: bool = True,
    ) -> Reading:
        """How to read `value`, an identifier candidate at offset `at` of `line`, under `column` (if a table
        cell). `validated`: the identifier's own checksum already passed (NHS mod 11, Luhn)."""
        if column is not None and self.identifier_context(column):
            return Reading.IDENTIFIER
        near = line[max(0, at - 40) : at + len(value) + 20]
        if self.identifier_context(near):
            return Reading.IDENTIFIER
        coded = column_of_codes or (column is not None and self.code_context(column))
        coded = coded or self.code_context(line) or self.term_beside(line)
        if not self.fits(value, context=coded):
            return Reading.IDENTIFIER
        if coded:
            return Reading.CODE
        return Reading.BOTH if validated else Reading.CODE


@cache
def codes() -> Codes:
    return Codes(yaml.safe_load((HERE / "codes.yaml").read_text()))


def column_of_codes(values: list[str]) -> bool:
    """Most of a column's digit values are SNOMED CT ids: by chance, under one in a hundred numbers is."""
    digits = [v.strip() for v in values if v.strip().isdigit()]
    return len(digits) >= 3 and sum(snomed_id(v) for v in digits) >= 0.8 * len(digits)


LONG_NUMBER = re.compile(r"(?<![\d.])[1-9]\d{5,17}(?![\d.])")


@lru_cache(maxsize=32)  # asked once per finding of a segment
def text_of_codes(text: str) -> bool:
    """A text whose long numbers are mostly SNOMED CT ids (a codelist or prevalence report printed as text)."""
    if len(text) < 20:
        return False
    return column_of_codes(LONG_NUMBER.findall(text[:200_000]))


def printed_column(text: str, line_start: int, at: int) -> str | None:
    """The header of the column holding offset `at` in a printed table: Markdown pipes or tabs, the header being
    the first line of the block of such lines above."""
    line_end = text.find("\n", at)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    sep = "|" if line.count("|") >= 2 else "\t" if "\t" in line else None
    if sep is None:
        return None
    index = line[: at - line_start].count(sep)
    start = line_start
    while start > 0:
        previous = text.rfind("\n", 0, start - 1) + 1
        if text[previous : start - 1].count(sep) < (2 if sep == "|" else 1):
            break
        start = previous
    header_end = text.find("\n", start)
    header = text[start : header_end if header_end >= 0 else len(text)].split(sep)
    return header[index].strip() if index < len(header) and start != line_start else None
