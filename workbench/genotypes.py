"""Turning VCF text into numbers: GT fields to allele-index arrays, and those to dosages and allele counts.

All sample columns of a batch of records are parsed at once with numpy over the raw bytes (diploid and haploid
genotypes with single-digit alleles, `/` or `|`, any FORMAT with GT first); the rare field that is not in that
shape (allele index >= 10, ploidy > 2) is parsed one by one. Allele arrays hold the allele index, -1 for a missing
allele and -2 for "no second allele" (haploid calls).
"""

from __future__ import annotations

import re

import numpy as np

MISSING = -1
ABSENT = -2
_ZERO, _NINE, _DOT, _TAB, _NL, _COLON, _SLASH, _PIPE = (ord(c) for c in "09.\t\n:/|")
_GT_SPLIT = re.compile(r"[/|]")


class GenotypeParseError(ValueError):
    """A genotype field or sample column count that is not valid VCF; `record` is its index in the batch."""

    def __init__(self, record: int, problem: str) -> None:
        self.record = record
        self.problem = problem
        super().__init__(problem)


def parse_alleles(formats: list[str], sample_texts: list[str], n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, second) allele arrays, int16 of shape (records, samples), from FORMAT and the sample columns.

    `sample_texts[i]` is everything after FORMAT on record i (tab-separated sample fields).
    """
    n = len(formats)
    first = np.full((n, n_samples), MISSING, dtype=np.int16)
    second = np.full((n, n_samples), MISSING, dtype=np.int16)
    if n == 0 or n_samples == 0:
        return first, second
    gt_first = np.array([f == "GT" or f.startswith("GT:") for f in formats], dtype=bool)
    rows = np.flatnonzero(gt_first)
    for i in np.flatnonzero(~gt_first):
        keys = formats[i].split(":")
        if "GT" in keys:  # GT not first: invalid VCF, but unambiguous
            fields = [
                f.split(":")[keys.index("GT")] if f.count(":") >= keys.index("GT") else "."
                for f in sample_texts[i].split("\t")
            ]
            if len(fields) != n_samples:
                raise GenotypeParseError(int(i), f"has {len(fields)} sample columns, the header names {n_samples}")
            a, b = _parse_fields(fields, np.full(n_samples, i))
            first[i], second[i] = a, b
    if len(rows):
        first[rows], second[rows] = _parse_gt_first([sample_texts[i] for i in rows], rows, n_samples)
    return first, second


def _parse_fixed_width(texts: list[str], n_samples: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The common case, GT-only diploid calls with one-digit alleles (`0/1`, `1|1`, `./.`): every sample field is
    three bytes plus a separator, so the block reshapes to (records, samples, 4) with no search for separators.
    None when any record does not have that shape."""
    width = 4 * n_samples - 1
    if any(len(t) != width for t in texts):
        return None
    raw = np.frombuffer(("\t".join(texts) + "\t").encode(), dtype=np.uint8)
    if len(raw) != 4 * n_samples * len(texts):  # a non-ASCII character changed the byte length
        return None
    cells = raw.reshape(len(texts), n_samples, 4)
    c0, c1, c2, c3 = cells[..., 0], cells[..., 1], cells[..., 2], cells[..., 3]
    digit0, digit2 = (c0 >= _ZERO) & (c0 <= _NINE), (c2 >= _ZERO) & (c2 <= _NINE)
    shaped = (digit0 | (c0 == _DOT)) & ((c1 == _SLASH) | (c1 == _PIPE)) & (digit2 | (c2 == _DOT)) & (c3 == _TAB)
    if not shaped.all():
        return None
    first = np.where(digit0, c0.astype(np.int16) - _ZERO, MISSING).astype(np.int16)
    second = np.where(digit2, c2.astype(np.int16) - _ZERO, MISSING).astype(np.int16)
    return first, second


def _parse_gt_first(texts: list[str], rows: np.ndarray, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    if (fixed := _parse_fixed_width(texts, n_samples)) is not None:
        return fixed
    buf = ("\n".join(texts) + "\n").encode()
    raw = np.frombuffer(buf, dtype=np.uint8)
    seps = np.flatnonzero((raw == _TAB) | (raw == _NL))
    n = len(texts)
    if len(seps) != n * n_samples or not np.all(raw[seps[n_samples - 1 :: n_samples]] == _NL):
        for k, text in enumerate(texts):
            if (found := text.count("\t") + 1) != n_samples:
                raise GenotypeParseError(int(rows[k]), f"has {found} sample columns, the header names {n_samples}")
    starts = np.empty_like(seps)
    starts[0] = 0
    starts[1:] = seps[:-1] + 1
    padded = np.concatenate([raw, np.full(4, _NL, dtype=np.uint8)])
    c0, c1, c2, c3 = (padded[starts + k] for k in range(4))
    digit0, digit2 = (c0 >= _ZERO) & (c0 <= _NINE), (c2 >= _ZERO) & (c2 <= _NINE)
    allele0, allele2 = digit0 | (c0 == _DOT), digit2 | (c2 == _DOT)
    diploid = allele0 & ((c1 == _SLASH) | (c1 == _PIPE)) & allele2 & ((c3 == _TAB) | (c3 == _NL) | (c3 == _COLON))
    haploid = allele0 & ((c1 == _TAB) | (c1 == _NL) | (c1 == _COLON))
    first = np.where(digit0, c0.astype(np.int16) - _ZERO, MISSING).astype(np.int16)
    second = np.where(haploid, ABSENT, np.where(digit2, c2.astype(np.int16) - _ZERO, MISSING)).astype(np.int16)
    odd = np.flatnonzero(~(diploid | haploid))
    if len(odd):
        fields = [buf[starts[j] : seps[j]].decode().split(":", 1)[0] for j in odd]
        a, b = _parse_fields(fields, rows[odd // n_samples])
        first[odd], second[odd] = a, b
    return first.reshape(n, n_samples), second.reshape(n, n_samples)


def _parse_fields(fields: list[str], records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    first = np.full(len(fields), MISSING, dtype=np.int16)
    second = np.full(len(fields), ABSENT, dtype=np.int16)
    for j, field in enumerate(fields):
        record = int(records[j])
        parts = _GT_SPLIT.split(field)
        if len(parts) > 2:
            raise GenotypeParseError(record, f"genotype {field!r} has ploidy {len(parts)}; only 1 and 2 are read")
        try:
            values = [MISSING if p in (".", "") else int(p) for p in parts]
        except ValueError:
            raise GenotypeParseError(record, f"genotype {field!r} is not a VCF GT value") from None
        if any(v < MISSING or v > np.iinfo(np.int16).max for v in values):
            raise GenotypeParseError(record, f"genotype {field!r} has an invalid allele index")
        first[j] = values[0]
        if len(values) == 2:
            second[j] = values[1]
    return first, second


def allele_numbers(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """AN per record: called alleles over all samples (a half-missing `0/.` counts once, like bcftools)."""
    return (first >= 0).sum(axis=1, dtype=np.int64) + (second >= 0).sum(axis=1, dtype=np.int64)


def allele_counts(first: np.ndarray, second: np.ndarray, records: np.ndarray, alleles: np.ndarray) -> np.ndarray:
    """AC of allele `alleles[k]` on record `records[k]`, for each k."""
    out = np.empty(len(records), dtype=np.int64)
    for allele in np.unique(alleles):
        pick = np.flatnonzero(alleles == allele)
        rec = records[pick]
        out[pick] = (first[rec] == allele).sum(axis=1) + (second[rec] == allele).sum(axis=1)
    return out


def dosages(first: np.ndarray, second: np.ndarray, records: np.ndarray, alleles: np.ndarray) -> np.ndarray:
    """int8 count of allele `alleles[k]` in each sample on record `records[k]`; -1 where the call is missing."""
    a, b = first[records], second[records]
    target = alleles.astype(np.int16)[:, None]
    count = (a == target).astype(np.int8) + (b == target).astype(np.int8)
    count[(a == MISSING) | (b == MISSING)] = MISSING
    return count
