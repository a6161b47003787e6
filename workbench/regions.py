"""Genomic regions and how a tabix-indexed file is cut into region chunks that are read in parallel.

A region string is `CONTIG`, `CONTIG:POS` or `CONTIG:START-END` (1-based, inclusive, commas allowed). Chunks come
from the tabix index itself: its linear index records, for every 16 kb window, where that window's records start
in the compressed file, so a contig is cut where roughly equal compressed bytes fall into each chunk. A chunk owns
the records whose POS lies inside it, so a record overlapping two chunks is read exactly once.
"""

from __future__ import annotations

import gzip
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.errors import InvalidInputError, WorkbenchError

WINDOW = 1 << 14  # tabix linear-index window, in bases
_PSEUDO_BIN = 37450
_COMPRESSION = 4  # typical bgzip ratio for VCF text, to place in-block offsets on the compressed-byte scale
_REGION = re.compile(r"^(?P<contig>[^:\s]+)(?::(?P<start>[\d,]+)(?:-(?P<end>[\d,]*))?)?$")


@dataclass(frozen=True)
class Region:
    """A 1-based inclusive interval on a contig; `end=None` runs to the end of the contig."""

    contig: str
    start: int = 1
    end: int | None = None

    def __str__(self) -> str:
        if self.start == 1 and self.end is None:
            return self.contig
        return f"{self.contig}:{self.start}-{'' if self.end is None else self.end}"

    def intersect(self, other: Region) -> Region | None:
        if self.contig != other.contig:
            return None
        start = max(self.start, other.start)
        ends = [e for e in (self.end, other.end) if e is not None]
        end = min(ends) if ends else None
        if end is not None and end < start:
            return None
        return Region(self.contig, start, end)


def parse_region(text: str) -> Region:
    """`chr1`, `chr1:1000`, `chr1:1,000-2,000` or `chr1:1000-` as a Region; WorkbenchError when it does not parse."""
    if not isinstance(text, str) or not (match := _REGION.match(text.strip())):
        raise WorkbenchError(
            f"region {text!r} does not parse: expected CONTIG, CONTIG:POS or CONTIG:START-END (e.g. chr1:1000-2000)"
        )
    contig = match["contig"]
    if match["start"] is None:
        return Region(contig)
    start = int(match["start"].replace(",", "") or 0)
    end_text = match["end"]
    if end_text is None:
        end: int | None = start
    else:
        end = int(end_text.replace(",", "")) if end_text.replace(",", "") else None
    if start < 1 or (end is not None and end < start):
        raise WorkbenchError(f"region {text!r} is empty or inverted: positions are 1-based and START <= END")
    return Region(contig, start, end)


def parse_regions(
    region: str | Region | list[str | Region] | tuple[str | Region, ...] | None,
) -> list[Region] | None:
    """None (everything), one region or a list of them, as Regions."""
    if region is None:
        return None
    items = [region] if isinstance(region, str | Region) else list(region)
    return [r if isinstance(r, Region) else parse_region(r) for r in items]


@dataclass(frozen=True)
class ContigIndex:
    """Per contig: compressed byte offset where each 16 kb window's records start, and where the contig ends."""

    window_offsets: np.ndarray  # int64, compressed offset per window
    end_offset: int


def read_tabix_index(path: Path) -> dict[str, ContigIndex]:
    """The contigs of a `.tbi` file with their linear index; InvalidInputError if it is not a tabix index."""
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InvalidInputError(path, f"not a readable tabix index ({exc})") from exc
    try:
        return _parse_tbi(data)
    except (struct.error, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise InvalidInputError(path, f"tabix index is damaged ({exc})") from exc


def _parse_tbi(data: bytes) -> dict[str, ContigIndex]:
    if data[:4] != b"TBI\x01":
        raise ValueError("missing TBI magic")
    n_ref, *_fmt, l_nm = struct.unpack_from("<8i", data, 4)
    pos = 36
    names = data[pos : pos + l_nm].split(b"\0")[:n_ref]
    pos += l_nm
    contigs: dict[str, ContigIndex] = {}
    for name in names:
        (n_bin,) = struct.unpack_from("<i", data, pos)
        pos += 4
        end_offset = 0
        for _ in range(n_bin):
            bin_id, n_chunk = struct.unpack_from("<Ii", data, pos)
            pos += 8
            chunks = np.frombuffer(data, dtype="<u8", count=2 * n_chunk, offset=pos)
            pos += 16 * n_chunk
            if bin_id == _PSEUDO_BIN and n_chunk:
                end_offset = int(_estimated_bytes(chunks[1:2])[0])
            elif n_chunk:
                end_offset = max(end_offset, int(_estimated_bytes(chunks[1::2]).max()))
        (n_intv,) = struct.unpack_from("<i", data, pos)
        pos += 4
        ioff = np.frombuffer(data, dtype="<u8", count=n_intv, offset=pos)
        pos += 8 * n_intv
        offsets = _estimated_bytes(ioff)
        offsets = np.maximum.accumulate(offsets) if len(offsets) else offsets
        contigs[name.decode()] = ContigIndex(offsets, max(end_offset, int(offsets[-1]) if len(offsets) else 0))
    return contigs


def _estimated_bytes(virtual_offsets: np.ndarray) -> np.ndarray:
    """Compressed-byte position of BGZF virtual offsets: block start plus the in-block offset at ~4:1 compression.

    The in-block part lets a small file whose records share one 64 kB block still be cut into several chunks.
    """
    v = np.asarray(virtual_offsets, dtype=np.uint64)
    return (v >> np.uint64(16)).astype(np.int64) + (v & np.uint64(0xFFFF)).astype(np.int64) // _COMPRESSION


def plan_chunks(
    indexes: list[dict[str, ContigIndex]],
    contigs: list[str],
    target_bytes: int,
    within: list[Region] | None = None,
) -> list[Region]:
    """Region chunks over `contigs`, cut so each holds about `target_bytes` compressed bytes summed over files.

    Several files share one plan (their byte curves are added window by window), so chunk k of every file
    covers the same positions and per-chunk results from different files can be merged without a shuffle.
    """
    wanted = within if within is not None else [Region(c) for c in contigs]
    chunks: list[Region] = []
    for want in wanted:
        per_file = [ix[want.contig] for ix in indexes if want.contig in ix]
        if not per_file:
            continue
        n_win = max(len(c.window_offsets) for c in per_file)
        lo_win = (want.start - 1) // WINDOW
        hi_win = n_win if want.end is None else min(n_win, (want.end - 1) // WINDOW + 1)
        if lo_win >= hi_win:
            chunks.append(want)
            continue
        cumulative = np.zeros(n_win + 1, dtype=np.int64)
        for c in per_file:
            offs = np.append(c.window_offsets, c.end_offset)
            offs = np.concatenate([offs, np.full(n_win + 1 - len(offs), c.end_offset)])
            cumulative += offs - offs[0]
        span = cumulative[lo_win : hi_win + 1] - cumulative[lo_win]
        bucket = span[:-1] // max(target_bytes, 1)
        cut_windows = lo_win + np.flatnonzero(np.diff(bucket)) + 1
        bounds = [want.start, *(int(w) * WINDOW + 1 for w in cut_windows)]
        for i, start in enumerate(bounds):
            end = bounds[i + 1] - 1 if i + 1 < len(bounds) else want.end
            chunks.append(Region(want.contig, start, end))
    return chunks
