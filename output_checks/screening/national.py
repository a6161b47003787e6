"""The token shapes national identifiers are written in (digit groups, and the letter forms of the codice fiscale,
DNI/NIE, Corsican NIR and the personnummer of someone over 100), for the schemes a known-identifier index holds:
each candidate is read through its scheme's own normaliser (fabric/identifiers/, passed in by the index), so any
formatting folds onto the form patients link on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

# Joined lengths of each scheme's numbers as digit windows find them ("1112.22.333", "811218-9876",
# "1 84 12 75 123 456 40"): a BSN whose leading zero a spreadsheet dropped has eight digits, a personnummer ten or
# twelve. Only windows of these lengths are normalised, and only for the schemes present.
DIGIT_LENGTHS: dict[str, tuple[int, ...]] = {
    "nhs": (10,),
    "nl-bsn": (8, 9),
    "fr-nir": (15,),
    "pl-pesel": (11,),
    "se-personnummer": (10, 12),
    "be-national-number": (11,),
}

_SEP = r"[ .\-/]?"  # what the normalisers forgive between characters, at most one at a time


def _spaced(*classes: str) -> str:
    """One character of each class in turn, each followed by an optional separator but the last."""
    return _SEP.join(classes)


_D = "[0-9]"
_L = "[A-Za-z]"
_CF_D = "[0-9LMNPQRSTUVlmnpqrstuv]"  # a digit, or the letter omocodia puts in its place
_CF_MONTH = "[ABCDEHLMPRSTabcdehlmprst]"
_EDGE_BEFORE, _EDGE_AFTER = "(?<![A-Za-z0-9])", "(?![A-Za-z0-9])"

# Shapes with letters in them, which digit windows cannot find. Each is exact in length and character classes, so
# prose seldom offers a candidate at all.
LETTER_SHAPES: dict[str, re.Pattern[str]] = {
    "it-codice-fiscale": re.compile(
        _EDGE_BEFORE
        + _spaced(*[_L] * 6, _CF_D, _CF_D, _CF_MONTH, _CF_D, _CF_D, _L, _CF_D, _CF_D, _CF_D, _L)
        + _EDGE_AFTER
    ),
    "es-dni-nie": re.compile(
        _EDGE_BEFORE + f"(?:{_spaced('[XYZxyz]', *[_D] * 7)}|{_spaced(*[_D] * 8)}){_SEP}{_L}" + _EDGE_AFTER
    ),
    "fr-nir": re.compile(_EDGE_BEFORE + _spaced("[1-8]", *[_D] * 4, "2", "[ABab]", *[_D] * 8) + _EDGE_AFTER),
    "se-personnummer": re.compile(r"(?<![\d+])\d{6}\+\d{4}(?![\d+])"),  # "+": the century before the last
}
# A character a shape cannot do without: text without it is not scanned for that shape (a cheap test, most text).
# A "+" personnummer reversed is no shape at all, so it is read forwards only.
NEEDS = {"se-personnummer": "+"}
FORWARDS_ONLY = frozenset({"se-personnummer"})


@dataclass(frozen=True)
class Candidate:
    """A token that is a valid number of `scheme` once normalised (`value`), at [start, end) of the text."""

    scheme: str
    value: str
    start: int
    end: int
    reversed: bool = False


class NationalShapes:
    """What to look for in text, given the schemes an index holds and each scheme's normaliser."""

    def __init__(self, schemes: Iterable[str], normalisers: Mapping[str, Callable[[str], str | None]]) -> None:
        self.normalisers = normalisers
        self.schemes = frozenset(schemes) & set(normalisers)  # a scheme this checkout does not know: no shape
        self.by_length: dict[int, tuple[str, ...]] = {}
        for code in sorted(self.schemes):
            for length in DIGIT_LENGTHS.get(code, ()):
                self.by_length[length] = (*self.by_length.get(length, ()), code)
        self.lengths = frozenset(self.by_length)
        self.letters = [(code, LETTER_SHAPES[code]) for code in sorted(self.schemes) if code in LETTER_SHAPES]

    def __bool__(self) -> bool:
        return bool(self.schemes)

    def digits(self, token: str) -> Iterator[tuple[str, str]]:
        """(scheme, normal form) for a run of digits a window joined, in each scheme whose numbers are that long."""
        for code in self.by_length.get(len(token), ()):
            value = self.normalisers[code](token)
            if value is not None:
                yield code, value

    def tokens(self, text: str) -> Iterator[Candidate]:
        """Candidates of the letter shapes in `text`, forwards and reversed (a reversed code is the same person)."""
        if not self.letters or not re.search(r"\d", text):  # every shape has digits
            return
        backwards = text[::-1]  # one copy for every shape
        size = len(text)
        for code, shape in self.letters:
            if code in NEEDS and NEEDS[code] not in text:
                continue
            normalise = self.normalisers[code]
            for m in shape.finditer(text):
                value = normalise(m[0])
                if value is not None:
                    yield Candidate(code, value, m.start(), m.end())
            if code in FORWARDS_ONLY:
                continue
            for m in shape.finditer(backwards):
                value = normalise(m[0])
                if value is not None:
                    yield Candidate(code, value, size - m.end(), size - m.start(), True)


def digit_forms(scheme: str, normal: str) -> tuple[str, ...]:
    """Every run of digits the scheme's normaliser reads as `normal`: the normal form itself, a BSN without the
    leading zero a spreadsheet drops, a personnummer without its century. Hashed beside the identifier, they let a
    digit window be looked up before any normaliser runs (most windows are no one's number)."""
    if not normal.isdigit():
        return ()
    if scheme == "nl-bsn" and normal.startswith("0"):
        return normal, normal[1:]
    if scheme == "se-personnummer" and len(normal) == 12:
        return normal, normal[2:]
    return (normal,)
