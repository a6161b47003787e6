"""Candidate tokens that survive simple disguises: invisible characters removed, separators dropped, case folded,
order reversed. Known-identifier matching and the pseudonym-shape rule read text through these, so that a
pseudonym split by a zero-width space or written in groups of four is the same token as the plain one."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Format characters a reader never sees: zero-width space/joiners, word joiner, BOM, soft hyphen, and the rest of
# Unicode's "Cf" class below U+FFFF that text editors hide.
INVISIBLE = frozenset(ch for ch in map(chr, range(0x80, 0x10000)) if unicodedata.category(ch) == "Cf") | {
    "\u00ad",
    "\u034f",
    "\u180e",
    "\u3164",
    "\uffa0",
}
_DELETE = {ord(ch): None for ch in INVISIBLE}

# A chain: runs of letters and digits joined by at most one separator character each ("ABCD-EFGH", "943 476 5919").
CHAIN = re.compile(r"[A-Za-z0-9]+(?:[ \-._/:|,][A-Za-z0-9]+)*")
DIGIT_CHAIN = re.compile(r"(?<![\d.])\d+(?:[ \-./]\d+)*")
RUN = re.compile(r"[A-Za-z0-9]+")
BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


@dataclass(frozen=True)
class Clean:
    """Text with invisible characters removed, and how to find an offset of it in the original text."""

    text: str
    original: str
    _offsets: tuple[int, ...] | None = None  # None: nothing was removed, offsets are the same

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original text's span for the clean text's [start, end)."""
        if self._offsets is None:
            return start, end
        if start >= len(self._offsets):
            return len(self.original), len(self.original)
        last = self._offsets[end - 1] + 1 if end > 0 else 0
        return self._offsets[start], last


def strip_invisible(text: str) -> Clean:
    if INVISIBLE.isdisjoint(text):
        return Clean(text, text)
    offsets = tuple(i for i, ch in enumerate(text) if ch not in INVISIBLE)
    return Clean(text.translate(_DELETE), text, offsets)


@dataclass(frozen=True)
class Window:
    """Consecutive runs of one chain, joined without their separators: the token a disguise hid."""

    joined: str
    start: int  # offsets in the clean text
    end: int
    groups: tuple[int, ...]  # lengths of the runs joined


def windows(
    text: str,
    lengths: frozenset[int],
    *,
    chain: re.Pattern[str] = CHAIN,
    grouped: Callable[[tuple[int, ...]], bool] | None = None,
) -> Iterator[Window]:
    """Every window of whole runs, within one chain, whose joined length is one of `lengths` (and, with
    `grouped`, whose run lengths it accepts: prose joined across words is not worth hashing)."""
    longest = max(lengths)
    for found in chain.finditer(text):
        if found.end() - found.start() < min(lengths):
            continue
        runs = list(RUN.finditer(found[0]))
        sizes = [len(r[0]) for r in runs]
        base = found.start()
        for i, first in enumerate(runs):
            size = 0
            for j in range(i, len(runs)):
                size += sizes[j]
                if size > longest:
                    break
                if size in lengths and (grouped is None or i == j or grouped(tuple(sizes[i : j + 1]))):
                    parts = [r[0] for r in runs[i : j + 1]]
                    joined = "".join(parts)
                    yield Window(
                        joined,
                        base + first.start(),
                        base + runs[j].end(),
                        tuple(len(p) for p in parts),
                    )


def _grouped(size: int) -> str:
    run = f"[A-Za-z2-7]{{{size}}}"
    separator = f"(?P<s{size}>[ \\-._/:|])"
    return run + separator + f"(?:{run}(?P=s{size})){{{16 // size - 2}}}" + run


# A pseudonym body as a token: one run of 16 (17 with its P), or equal groups of 2, 4 or 8 joined by one separator
# repeated, with or without a "P" run before or after (the groupings people and tools write).
_BODY = "|".join([_grouped(2), _grouped(4), _grouped(8), "[A-Za-z2-7]{16}"])
PSEUDONYM_TOKEN = re.compile(rf"(?<![A-Za-z0-9])(?:[Pp][ \-._/:|]?)?(?:{_BODY})(?:[ \-._/:|]?[Pp])?(?![A-Za-z0-9])")


def pseudonym_tokens(text: str) -> Iterator[Window]:
    """Tokens shaped like a pseudonym body in one of its usual groupings (regex speed: no window search)."""
    for m in PSEUDONYM_TOKEN.finditer(text):
        runs = RUN.findall(m[0])
        joined = "".join(runs)
        if len(joined) in (16, 17, 18):
            yield Window(joined, m.start(), m.end(), tuple(len(r) for r in runs))


def regular_groups(groups: tuple[int, ...]) -> bool:
    """One run, or runs of (nearly) equal length, as people and tools write long codes: 4-4-4-4, 8-8, 3-3-4; a
    one-letter prefix or suffix run ("P-") aside."""
    if len(groups) > 2 and groups[0] == 1:
        groups = groups[1:]
    if len(groups) > 2 and groups[-1] == 1:
        groups = groups[:-1]
    return len(groups) <= 2 or max(groups) - min(groups) <= 1 or len(set(groups[:-1])) == 1
