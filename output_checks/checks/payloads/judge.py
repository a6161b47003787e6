"""What decoded bytes are, and their verdict: a file the checks can read (a table, an archive, an image, text) is
written under the work folder and checked as a file of its own; compressed streams are expanded under the
archive limits first; anything else of more than a digest's length is an encoded payload the checker cannot read.
One `Scan` per file carries the budget (bytes decoded, runs decoded) so that no file costs more than its limits."""

from __future__ import annotations

import bz2
import lzma
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from output_checks.checks.base import Context, Subject, finding
from output_checks.verdicts import Finding, Verdict

CHECK = "payloads"
DIGEST_BYTES = 64  # opaque bytes up to this long are a hash, a key or a signature (SHA-512 is 64 bytes)
MAX_RUNS = 200  # decoded runs per file; past it the file goes to review
MAX_DECODED = 64 * 2**20  # bytes decoded per file, whatever the archive budget
RASTER = frozenset({"png", "jpeg", "gif", "webp", "tiff", "bmp"})
KIND_WORDS = {
    "csv": "a CSV table",
    "tsv": "a tab-separated table",
    "parquet": "a Parquet table",
    "xlsx": "an Excel workbook",
    "json": "JSON",
    "ipynb": "a notebook",
    "text": "text",
    "markdown": "Markdown text",
    "html": "an HTML page",
    "xml": "XML",
    "svg": "an SVG image",
    "pdf": "a PDF document",
    "zip": "a zip archive",
    "tar": "a tar archive",
    "gzip": "gzip-compressed data",
    "bzip2": "bzip2-compressed data",
    "xz": "xz-compressed data",
    "zstd": "zstd-compressed data (not expanded here)",
    "dicom": "a DICOM object",
    "pickle": "a Python pickle",
    "npy": "a NumPy array",
    "sqlite": "an SQLite database",
}


TEXTUAL = frozenset({"text", "markdown", "csv", "tsv", "json", "html", "xml", "svg"})


def printable(head: bytes) -> bool:
    """Whether bytes are text a person could read: UTF-8 (or UTF-16 with a BOM), nearly all printable."""
    from output_checks.sniff import decode_text

    text = decode_text(head)
    if text is None or not text:
        return False
    readable = sum(ch.isprintable() or ch in "\t\n\r" for ch in text[:4096])
    ascii_share = sum(ch < "\x80" for ch in text[:4096])
    return readable >= 0.95 * len(text[:4096]) and ascii_share >= 0.7 * len(text[:4096])


@cache
def rules() -> dict[str, Any]:
    return yaml.safe_load((Path(__file__).parent / "rules.yaml").read_text())


def describe(kind: str) -> str:
    if kind in RASTER:
        return f"a {kind.upper()} image"
    return KIND_WORDS.get(kind, f"a {kind} file")


def decompress(data: bytes, limit: int) -> tuple[str, bytes] | None:
    """(method, expanded bytes) when `data` is a bare zlib, raw deflate or LZMA stream (gzip, bzip2 and xz have
    magic numbers and are opened by the archive check); None otherwise. Expansion stops at `limit` bytes."""
    attempts: list[tuple[str, Callable[[], Any]]] = []
    if len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0:
        attempts.append(("zlib", lambda: zlib.decompressobj()))
    if data[:1] == b"\x5d":
        attempts.append(("LZMA", lambda: lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)))
    attempts.append(("raw deflate", lambda: zlib.decompressobj(-15)))
    for method, make in attempts:
        engine = make()
        try:
            out = engine.decompress(data, limit) if method != "LZMA" else engine.decompress(data, max_length=limit)
        except (zlib.error, lzma.LZMAError, EOFError, ValueError):
            continue
        # Random bytes can parse as a short deflate block: a raw stream must use (nearly) all of the input.
        if method == "raw deflate" and (not engine.eof or len(engine.unused_data) > 8 or len(out) < max(16, len(data))):
            continue
        if len(out) >= 16:
            return method, out
    return None


class Scan:
    """One file's payload scan: where decoded payloads are written, and how much has been decoded."""

    def __init__(self, subject: Subject, ctx: Context) -> None:
        self.subject, self.ctx = subject, ctx
        self.decoded = 0
        self.runs = 0
        self.limit = min(ctx.policy.archive_max_total_bytes, MAX_DECODED)
        self._folder: Path | None = None
        self.truncated = False
        self.trailing = False  # bytes were found after the container's end

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def room(self) -> int:
        return max(0, self.limit - self.decoded)

    def too_deep(self, layers: int) -> bool:
        return self.subject.depth + layers >= self.ctx.policy.archive_max_depth

    def judge(
        self, data: bytes, where: str, how: str, *, layers: int = 1, opaque: bool = True, verb: str = "decodes to"
    ) -> Iterator[Finding]:
        """Findings for bytes hidden in the file: `how` says what they are ("base64 text (1,204 characters)") and
        `verb` joins it to what they turn out to be; `where` is where they sit. `opaque` says whether unrecognised
        bytes are a finding."""
        from output_checks.sniff import HEAD, sniff_bytes

        self.decoded += len(data)
        if self.decoded > self.limit:
            if not self.truncated:
                self.truncated = True
                yield finding(CHECK, Verdict.REVIEW, f"more encoded content than the {self.limit // 2**20} MB "
                              "decoded per file: the rest was not decoded", where)  # fmt: skip
            return
        kind = sniff_bytes(data[:HEAD], len(data) <= HEAD)
        if kind in TEXTUAL and not printable(data[:HEAD]):
            kind = "binary"  # random bytes can pass for Latin-1 text; decoded text must read as text
        if kind == "binary":
            expanded = decompress(data, min(self.room(), self.limit))
            if expanded is not None:
                method, out = expanded
                if self.too_deep(layers):
                    yield self._deep(where, how)
                    return
                yield from self.judge(
                    out, where, f"{how}, {method}-compressed,", layers=layers + 1, opaque=opaque, verb="holds"
                )
                return
            if opaque and len(data) > DIGEST_BYTES:
                yield finding(
                    CHECK,
                    Verdict.REVIEW,
                    f"{how} {verb} {len(data):,} bytes of unrecognised binary: an encoded payload the checker "
                    "cannot read",
                    where,
                )
            return
        if kind == "empty":
            return
        yield finding(
            CHECK,
            Verdict.REVIEW,
            f"{how} {verb} {describe(kind)}: content a reader of the file does not see (checked below)",
            where,
        )
        if self.too_deep(layers):
            yield self._deep(where, how)
            return
        yield from self.member(data, where)

    def member(self, data: bytes, where: str) -> Iterator[Finding]:
        """Check `data` as a file of its own; its findings are placed under `where`."""
        from output_checks.sniff import refine, sniff

        if self.ctx.check_member is None:
            return
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="airlock-payload-", dir=self.ctx.workdir))
        self.runs += 1
        path = self._folder / f"payload-{self.runs:04d}"
        path.write_bytes(data)
        try:
            kind = refine(path, sniff(path))
            member = Subject(where, path, kind, len(data), self.subject.depth + 1)
            for f in self.ctx.check_member(member):
                if f.location.startswith(f"{where}!"):
                    yield f  # an archive inside the payload has placed its members already
                else:
                    yield finding(f.check, f.verdict, f.message, f"{where}: {f.location}" if f.location else where)
        finally:
            path.unlink(missing_ok=True)

    def _deep(self, where: str, how: str) -> Finding:
        depth = self.ctx.policy.archive_max_depth
        return finding(CHECK, Verdict.REVIEW, f"{how}: nested deeper than {depth} layers, not decoded", where)


def bz2_ok(data: bytes) -> bool:
    """Whether `data` opens as bzip2 (a cheap check for numeric streams that begin with its magic)."""
    try:
        return bool(bz2.BZ2Decompressor().decompress(data[:4096], 64))
    except (OSError, ValueError, EOFError):
        return False
