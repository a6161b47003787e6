"""Italian codice fiscale: sixteen characters (surname, name, year, month letter, day + 40 for women, place) and a
check letter from the odd/even position tables. Omocodia (digits replaced by letters when two people would share
a code) is accepted."""

from __future__ import annotations

import re
import string

from fabric.identifiers.formatting import compact

_D = "[0-9LMNPQRSTUV]"  # a digit, or the letter omocodia puts in its place
_SHAPE = re.compile(rf"[A-Z]{{6}}{_D}{{2}}[ABCDEHLMPRST]{_D}{{2}}[A-Z]{_D}{{3}}[A-Z]")

# Values of a character in an odd position (1st, 3rd, … 15th), digits and letters alike, as the decree tabulates.
_ODD_DIGITS = (1, 0, 5, 7, 9, 13, 15, 17, 19, 21)
_ODD_LETTERS = (1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23)
ODD_VALUES = {
    **dict(zip(string.digits, _ODD_DIGITS, strict=True)),
    **dict(zip(string.ascii_uppercase, _ODD_LETTERS, strict=True)),
}
# In an even position a digit counts as itself and a letter as its place in the alphabet from A = 0.
EVEN_VALUES = {**{d: int(d) for d in string.digits}, **{c: i for i, c in enumerate(string.ascii_uppercase)}}


def check_letter(body: str) -> str:
    """The check letter for the first fifteen characters."""
    total = sum(ODD_VALUES[c] if i % 2 == 0 else EVEN_VALUES[c] for i, c in enumerate(body))
    return string.ascii_uppercase[total % 26]


def normalise(raw: str) -> str | None:
    """`rss mra 80a01 h501 u` -> `RSSMRA80A01H501U`; None unless the shape and the check letter are right."""
    code = compact(raw)
    if not _SHAPE.fullmatch(code):
        return None
    return code if check_letter(code[:15]) == code[15] else None
