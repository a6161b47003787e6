"""Pseudonym-shaped tokens that are not the project's own (another project's, or the checker has no index): found
by shape in the forms a release request disguises them (prefix dropped, reversed, re-cased, split by invisible
characters or separators). With its "P" the shape is unambiguous and blocks; without it, 16 base32 characters could
be something else, so it goes to review. The plain "P-" form is Presidio's recogniser's, not repeated here."""

from __future__ import annotations

import re
from collections.abc import Iterator

from output_checks.masking import mask
from output_checks.screening.tokens import BASE32, pseudonym_tokens, strip_invisible
from output_checks.verdicts import Finding, Verdict
from workbench.view_contract import PSEUDONYM

MIXED = re.compile(r"[A-Za-z][2-7]|[2-7][A-Za-z]")
PLAIN = re.compile(rf"(?i)^{PSEUDONYM.pattern}$")  # what the EnclavePseudonymRecognizer already reports
HEX = frozenset("ABCDEF0123456789")
DIGITS = frozenset("234567")
JOINERS = "-._/:|"  # a window must not be cut out of a longer token joined by these
LABEL = "a pseudonym-shaped patient id written disguised (prefix dropped, reversed, re-cased or split)"


def _equal_groups(groups: tuple[int, ...]) -> bool:
    """One run, or runs of one length (4-4-4-4, 8-8), a one-letter "P" run before or after aside: how codes are
    grouped, unlike words of prose joined across spaces."""
    if len(groups) > 1 and groups[0] == 1:
        groups = groups[1:]
    if len(groups) > 1 and groups[-1] == 1:
        groups = groups[:-1]
    return len(set(groups)) == 1


def _mixed_groups(groups: tuple[int, ...], token: str) -> bool:
    """Grouped, at least two groups mix letters and digits (random base32 does; words and numbers of prose
    don't)."""
    if len(groups) == 1 or groups in ((1, 16), (16, 1)):
        return True
    mixed, at = 0, 0
    for size in groups:
        part = token[at : at + size]
        at += size
        mixed += any(c.isdigit() for c in part) and any(c.isalpha() for c in part)
    return mixed >= 2


def _bounded(text: str, start: int, end: int) -> bool:
    before = text[start - 2 : start] if start >= 2 else " " + text[:start]
    after = text[end : end + 2]
    cut_before = len(before) == 2 and before[1] in JOINERS and before[0].isalnum()
    cut_after = len(after) == 2 and after[0] in JOINERS and after[1].isalnum()
    return not cut_before and not cut_after


def _body_shaped(body: str) -> bool:
    """16 base32 characters that look random: some digits and letters, not a hex digest's alphabet."""
    digits = sum(ch in DIGITS for ch in body)
    return digits >= 2 and len(body) - digits >= 4 and not set(body) <= HEX


def shaped_pseudonyms(segment: object, check: str) -> Iterator[Finding]:
    """Findings for pseudonym-shaped tokens in `segment` (a `Segment`) written in a disguised form."""
    text: str = segment.text  # type: ignore[attr-defined]
    if len(text) < 16:
        return
    clean = strip_invisible(text)
    if MIXED.search(clean.text) is None:  # random base32 with two digits has a letter beside a digit; prose hasn't
        return
    hidden = clean.text != text
    seen: set[str] = set()
    for w in pseudonym_tokens(clean.text):
        token = w.joined
        if not (token == token.upper() or token == token.lower()):
            continue  # mixed case: base64 and the like, not a re-cased pseudonym
        upper = token.upper()
        if not set(upper) <= BASE32 or not _equal_groups(w.groups) or not _bounded(clean.text, w.start, w.end):
            continue
        a, b = clean.span(w.start, w.end)
        written = text[a:b]
        if len(upper) == 18:
            continue
        if len(upper) == 17:
            if upper[0] != "P" and upper[-1] != "P":
                continue
            if not hidden and PLAIN.match(written):
                continue
            body, verdict = (upper[1:] if upper[0] == "P" else upper[:-1]), Verdict.BLOCK
        else:
            body, verdict = upper, Verdict.REVIEW
        if not _body_shaped(body) or written in seen or not _mixed_groups(w.groups, token):
            continue
        seen.add(written)
        yield Finding(check, verdict, f"{LABEL} ({mask(written)}; ENCLAVE_PSEUDONYM)", segment.location)  # type: ignore[attr-defined]
