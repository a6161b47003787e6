"""Runs of standard text encodings (base64, URL-safe base64, base32, hex, ascii85) in text, found with compiled
regular expressions and decoded. Only long runs are candidates (a digest, a UUID or a git hash is short), and a run
joins the lines of a wrapped block."""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

MIN_RUN = 64  # characters: shorter tokens are hashes, ids and keys, never decoded
# A run of the base64 alphabet (hex and base32 are subsets), continued across wrapped lines (real or JSON-escaped
# line breaks) while every piece is long enough to be part of a block rather than a word.
RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,3}(?:[ \t]*(?:\r?\n|\\r\\n|\\n)[ \t]*[A-Za-z0-9+/_-]{16,}={0,3})*")
HEX_PAIRS = re.compile(r"(?:[0-9A-Fa-f]{2}[ :]){32,}[0-9A-Fa-f]{2}")  # "de ad be ef" and "de:ad:be:ef" dumps
HEX_ESCAPES = re.compile(r"(?:\\x[0-9A-Fa-f]{2}){32,}")
ASCII85 = re.compile(r"<~([!-uz\s]{40,}?)~>")
DATA_URI = re.compile(r"data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[\w.+-]+)*);base64,\s*$")
SPACE = re.compile(r"\s+|\\r|\\n")
DIGEST_WIDTHS = {32, 40, 56, 64, 96, 128}  # MD5, SHA-1, SHA-224, SHA-256, SHA-384, SHA-512 in hex
HEX = frozenset("0123456789abcdefABCDEF")
BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


@dataclass(frozen=True)
class Run:
    start: int  # offset in the text scanned
    encoding: str  # "base64", "URL-safe base64", "base32", "hex", "ascii85"
    chars: int
    data: bytes
    declared: str | None  # the media type a data: URI states, if the run is one
    random_looking: bool  # character mix of encoded random bytes (not a path or an identifier in CamelCase)


def entropy(text: str) -> float:
    """Shannon entropy in bits per character (of at most the first 4096 characters)."""
    sample = text[:4096]
    if not sample:
        return 0.0
    total = len(sample)
    return -sum(n / total * math.log2(n / total) for n in Counter(sample).values())


def _mixed(text: str) -> bool:
    """The character mix base64 of any content has: upper and lower case and digits, none rare. A path, a long
    snake_case name or a gene sequence falls short of it."""
    sample = text[:4096]
    n = len(sample)
    upper = sum(c.isupper() for c in sample)
    lower = sum(c.islower() for c in sample)
    digits = sum(c.isdigit() for c in sample)
    return upper >= 0.12 * n and lower >= 0.12 * n and digits >= 0.03 * n and entropy(sample) >= 4.5


def _decode(token: str) -> tuple[str, bytes] | None:
    """The encoding and bytes of one run without whitespace, or None when it is not a valid encoding."""
    try:
        if len(token) % 2 == 0 and all(c in HEX for c in token):
            if not (any(c.isdigit() for c in token) and any(c.isalpha() for c in token)):
                return None
            if any(c.islower() for c in token) and any(c.isupper() for c in token):
                return None  # hex is written in one case
            return "hex", binascii.unhexlify(token)
        bare = token.rstrip("=")
        if all(c in BASE32 for c in bare) and any(c.isdigit() for c in bare) and entropy(bare) >= 4.0:
            try:
                return "base32", base64.b32decode(bare + "=" * (-len(bare) % 8))
            except (binascii.Error, ValueError):
                pass  # not base32 after all: base64 uses the same letters
        if len(bare) % 4 == 1:
            return None
        padded = bare + "=" * (-len(bare) % 4)
        url = "-" in bare or "_" in bare
        if url and ("+" in bare or "/" in bare):
            return None
        if url:
            return "URL-safe base64", base64.urlsafe_b64decode(padded)
        return "base64", base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


_ASCII = [chr(i) for i in range(128)]
_CLASS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-")
# Prefilters: one C-speed pass maps every character to its class, so that text without a long run (most files)
# costs no regular-expression search at all.
RUN_TABLE = str.maketrans(
    {c: "a" if c in _CLASS else "\n" if c in "\n\\" else None if c in "\r=" else "." for c in _ASCII}
)
HEX_TABLE = str.maketrans({c: "h" if c in HEX else "s" if c in " :" else "." for c in _ASCII})


def _candidates(text: str) -> tuple[bool, bool]:
    """Whether `text` may hold a base64-alphabet run, and whether it may hold a spaced hex dump."""
    classes = text.translate(RUN_TABLE)
    long_run = "a" * MIN_RUN in classes or "a" * 16 + "\n" + "a" * 16 in classes
    return long_run, "hhs" * 32 in text.translate(HEX_TABLE)


def runs(text: str, max_runs: int) -> Iterator[Run]:
    """Decoded runs of at least MIN_RUN characters, in order of appearance (at most `max_runs`)."""
    found = 0
    long_run, hex_dump = _candidates(text)
    for match in RUN.finditer(text) if long_run else ():
        token = SPACE.sub("", match.group())
        if len(token) < MIN_RUN:
            continue
        decoded = _decode(token)
        if decoded is None:
            continue
        encoding, data = decoded
        declared = None
        uri = DATA_URI.search(text, max(0, match.start() - 120), match.start())
        if uri:
            declared = (uri.group(1) or "text/plain").lower()
        random_looking = encoding in ("hex", "base32") or _mixed(token)
        if encoding == "hex":
            # One digest a line (a checksum list without file names) is a list of hashes, not a block.
            widths = {len(p) for p in SPACE.split(match.group()) if p}
            random_looking = not (len(widths) == 1 and widths <= DIGEST_WIDTHS)
        yield Run(match.start(), encoding, len(token), data, declared, random_looking)
        found += 1
        if found >= max_runs:
            return
    for pattern, present in ((HEX_PAIRS, hex_dump), (HEX_ESCAPES, "\\x" in text)):
        for match in pattern.finditer(text) if present else ():
            token = re.sub(r"[\s:]|\\x", "", match.group())
            yield Run(match.start(), "hex", len(match.group()), binascii.unhexlify(token), None, True)
            found += 1
            if found >= max_runs:
                return
    for match in ASCII85.finditer(text) if "<~" in text else ():
        try:
            data = base64.a85decode(match.group(), adobe=True, ignorechars=" \t\n\r\v")
        except ValueError:
            continue
        yield Run(match.start(), "ascii85", len(match.group()), data, None, True)
        found += 1
        if found >= max_runs:
            return


def line_of(text: str, offset: int, cache: list[int]) -> int:
    """1-based line number of `offset`; `cache` holds [last offset, its line] so that runs in order cost O(n)."""
    last, line = cache
    if offset < last:
        last, line = 0, 1
    line += text.count("\n", last, offset)
    cache[:] = [offset, line]
    return line
