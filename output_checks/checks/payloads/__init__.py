"""Encoded payloads: data hidden in an allowed file by a standard encoding or after a container's end.

Text (plain, Markdown, HTML, XML, SVG, CSV/TSV, JSON strings, notebook sources and outputs, string cells of
Parquet and Excel tables) is searched for long base64, URL-safe base64, base32, hex and ascii85 runs; each is
decoded (and expanded, when it is compressed) and the bytes are checked as a file of their own, so a table hidden
in base64 blocks for its small counts as the table would. Numbers that carry bytes, text in image chunks and
segments, PDF attachments and metadata, and bytes after a container's end are found by walking the structures.
What cannot be read back is review; a page's own fonts, scripts and figures in data: URIs are not payloads.

Modules: `encodings` (finding and decoding runs), `judge` (what decoded bytes are; the per-file budget),
`containers` (container ends and hidden parts), `numbers` (bytes in numeric cells), `rules.yaml` (the lists)."""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any, ClassVar
from zipfile import BadZipFile

import pandas as pd

from output_checks.checks.base import Context, Subject, finding
from output_checks.checks.payloads import containers, numbers
from output_checks.checks.payloads.encodings import line_of, runs
from output_checks.checks.payloads.judge import CHECK, MAX_RUNS, RASTER, Scan, rules
from output_checks.screening.text import Segment
from output_checks.verdicts import Finding, Verdict

TEXT_KINDS = frozenset({"text", "markdown", "html", "xml", "svg", "csv", "tsv", "vcf-sites"})
JSON_KINDS = frozenset({"json", "ipynb", "fhir"})
# Kinds that are not text on disk (anything else whose bytes read as text is scanned as text).
BINARY_KINDS = RASTER | frozenset(
    {
        "pdf",
        "parquet",
        "xlsx",
        "docx",
        "pptx",
        "zip",
        "tar",
        "gzip",
        "bzip2",
        "xz",
        "zstd",
        "7z",
        "rar",
        "empty",
        "binary",
        "ole",
        "sqlite",
        "hdf5",
        "npy",
        "pickle",
        "arrow",
        "executable",
        "riff",
        "dicom",
        "bam",
        "cram",
        "bcf",
    }
)
FIGURE_PAGES = frozenset({"html", "svg", "ipynb"})  # kinds whose own checks already send embedded images to review
ZIP_FAMILY = frozenset({"zip", "xlsx", "docx", "pptx"})
MAX_TEXT = 64 * 2**20  # characters of a text file scanned
KEY = re.compile(r"^[A-Za-z_][\w-]{0,40}$")


class PayloadCheck:
    name: ClassVar[str] = CHECK
    kinds: ClassVar[frozenset[str] | None] = None  # every file: a payload can hide in any of them

    def run(self, subject: Subject, ctx: Context) -> Iterator[Finding]:
        scan = Scan(subject, ctx)
        try:
            yield from self._run(subject, ctx, scan)
        finally:
            scan.close()

    def _run(self, subject: Subject, ctx: Context, scan: Scan) -> Iterator[Finding]:
        kind = subject.kind
        texts = TextScan(scan, kind)
        if kind in ctx.policy.blocked_types:
            return  # raw data blocks whatever else it holds
        if kind in JSON_KINDS:
            yield from texts.json_file(subject)
        elif kind in TEXT_KINDS or (kind not in BINARY_KINDS and _is_text(subject)):
            from output_checks.sniff import open_text

            with open_text(subject.path) as fh:
                text = fh.read(MAX_TEXT)
            cache = [0, 1]
            yield from texts.search(text, lambda at: f"line {line_of(text, at, cache)}")
            if kind in ("svg", "html"):
                yield from texts.hidden_markup_text(text, kind)
        if kind in ("csv", "tsv", "parquet", "xlsx"):
            yield from _tables(subject, scan, texts)
        try:
            yield from _structure(subject, scan, texts)
        except (struct.error, IndexError, ValueError, OSError, zlib.error, EOFError, KeyError, BadZipFile) as exc:
            # The file's own readers judge a damaged file; this says only that its structure could not be walked.
            why = f"the {kind}'s structure could not be walked ({type(exc).__name__}): hidden parts were not checked"
            yield finding(CHECK, Verdict.REVIEW, why)
        if kind not in ZIP_FAMILY and not scan.trailing:
            yield from containers.appended_zip(subject.path, kind, scan)


def _structure(subject: Subject, scan: Scan, texts: TextScan) -> Iterator[Finding]:
    """Container ends and hidden parts, by the file's type."""
    kind = subject.kind
    with subject.path.open("rb") as fh:
        if kind == "png":
            yield from containers.png(fh, subject.size, scan, texts.screen)
        elif kind == "jpeg":
            yield from containers.jpeg(fh.read(containers.MAX_READ), scan, texts.screen)
        elif kind == "gif":
            yield from containers.gif(fh.read(containers.MAX_READ), scan, texts.screen)
        elif kind in ZIP_FAMILY:
            yield from containers.zip_end(fh, subject.size, scan)
    if kind == "pdf":
        yield from containers.pdf(subject.path, subject.size, scan, texts.screen)
    elif kind == "gzip":
        yield from containers.gzip_end(subject.path, scan)
    elif kind == "xlsx":
        yield from containers.workbook_parts(subject.path, scan, texts.screen)
    elif kind == "parquet":
        yield from containers.parquet(subject.path, subject.size, scan, texts.screen)


class TextScan:
    """Encoded runs in the text of one file; text from inside containers is also screened for identifiers."""

    def __init__(self, scan: Scan, page: str) -> None:
        self.scan, self.page = scan, page
        self.seen = 0
        self.warned = False

    def screen(self, text: str, where: str) -> Iterator[Finding]:
        """Text a viewer of the file does not show (image chunks, metadata): screened and searched for runs."""
        if not text.strip():
            return
        yield from self.scan.ctx.screen([Segment(where, text)], "identifiers")
        yield from self.scan_text(text, lambda _at: where)

    def search(self, text: str, locate: Callable[[int], str], declared: str | None = None) -> Iterator[Finding]:
        yield from self.scan_text(text, locate, declared)

    def scan_text(
        self, text: str, locate: Callable[[int], str], declared: str | None = None, layers: int = 1
    ) -> Iterator[Finding]:
        if len(text) < 64:
            return
        for run in runs(text, MAX_RUNS - self.seen + 1):
            self.seen += 1
            if self.seen > MAX_RUNS:
                if not self.warned:
                    self.warned = True
                    why = f"more than {MAX_RUNS} encoded runs: the rest were not decoded"
                    yield finding(CHECK, Verdict.REVIEW, why, locate(run.start))
                return
            where = f"{locate(run.start)} ({run.encoding})"
            how = f"{run.encoding} text ({run.chars:,} characters)"
            media = run.declared or declared
            if media and (handled := self._asset(run.data, media, where, layers)) is not None:
                yield from handled
                continue
            yield from self.scan.judge(run.data, where, how, layers=layers, opaque=run.random_looking)

    def _asset(self, data: bytes, media: str, where: str, layers: int) -> Iterator[Finding] | None:
        """Findings for a page's own asset (a font, script, style or figure in a data: URI or a notebook's image
        output), or None when the bytes are not what the media type says (then they are judged as any payload)."""
        from output_checks.sniff import HEAD, decode_text, sniff_bytes

        kind = sniff_bytes(data[:HEAD], len(data) <= HEAD)
        media = media.split(";")[0].strip()
        if media.startswith("image/") and kind in RASTER and self.page in FIGURE_PAGES:
            return containers.image_bytes(data, kind, self.scan, self.screen)
        if media in ("image/svg+xml",) and kind == "svg" and self.page in FIGURE_PAGES:
            return self._nested(data, where, layers)
        if media in rules()["asset_font"] and (
            data.startswith(tuple(m.encode("latin-1") for m in rules()["font_magic"])) or data[34:36] == b"LP"
        ):
            return iter(())
        if media in rules()["asset_code"] and decode_text(data[:HEAD]) is not None and _code_like(data[:HEAD]):
            return self._nested(data, where, layers)
        return None

    def _nested(self, data: bytes, where: str, layers: int) -> Iterator[Finding]:
        if self.scan.too_deep(layers):
            return
        text = data.decode("utf-8", errors="replace")
        yield from self.scan_text(text, lambda _at: where, layers=layers + 1)

    def hidden_markup_text(self, text: str, kind: str) -> Iterator[Finding]:
        """Comments (and an SVG's metadata): no viewer shows them, and the text check reads only what a page shows."""
        parts = re.findall(r"<!--(.*?)-->", text[:MAX_TEXT], flags=re.DOTALL)
        if kind == "svg":
            for block in re.findall(r"<metadata[^>]*>(.*?)</metadata>", text[:MAX_TEXT], flags=re.DOTALL):
                parts.append(re.sub(r"<[^>]+>", " ", block))
        hidden = "\n".join(p.strip() for p in parts if p.strip())
        if hidden:
            where = "SVG comments and metadata" if kind == "svg" else f"{kind.upper()} comments"
            yield from self.scan.ctx.screen([Segment(where, hidden)], "identifiers")

    def json_file(self, subject: Subject) -> Iterator[Finding]:
        from output_checks.sniff import open_text

        with open_text(subject.path) as fh:
            text = fh.read(MAX_TEXT)
        try:
            data = json.loads(text)
        except ValueError:
            cache = [0, 1]
            yield from self.search(text, lambda at: f"line {line_of(text, at, cache)}")
            return
        for where, key, value in json_values(data):
            if isinstance(value, str):
                declared = key if key.startswith("image/") else None  # a notebook's figure output
                yield from self.search(value, lambda _at, w=where: w, declared)
            else:
                yield from numbers.column(self.scan, where, [repr(v) for v in value])
        if subject.kind == "json":
            from output_checks.checks.tables import json_records

            records = json_records(data)
            if records:
                columns = list(dict.fromkeys(k for r in records[:5000] for k in r))
                rows = [[_cell(r.get(c)) for c in columns] for r in records[:5000]]
                yield from numbers.frame(self.scan, pd.DataFrame(rows, columns=[str(c) for c in columns]))


def _code_like(head: bytes) -> bool:
    """Scripts and styles are made of braced blocks; a table or a letter declared as a script is not."""
    return head.count(b"{") >= 2 and head.count(b"}") >= 2


def _is_text(subject: Subject) -> bool:
    from output_checks.sniff import HEAD, decode_text

    with subject.path.open("rb") as fh:
        return decode_text(fh.read(HEAD)) is not None


def _cell(value: Any) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def json_values(value: Any, path: str = "$") -> Iterator[tuple[str, str, str | list[float]]]:
    """(JSON path, key, value) for every string long enough to hold a run (lists of strings joined, as notebooks
    store lines) and every array of at least 8 numbers."""
    stack: list[tuple[str, str, Any]] = [(path, "", value)]
    while stack:
        where, key, item = stack.pop()
        if isinstance(item, str):
            if len(item) >= 64:
                yield where, key, item
        elif isinstance(item, dict):
            for position, (k, v) in enumerate(item.items(), start=1):
                label = str(k) if KEY.match(str(k)) else f"<key {position}>"
                stack.append((f"{where}.{label}", str(k), v))
        elif isinstance(item, list) and item:
            if all(isinstance(v, str) for v in item):
                joined = "".join(item)
                if len(joined) >= 64:
                    yield where, key, joined
            elif len(item) >= numbers.MIN_VALUES and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in item
            ):
                yield where, key, item
            else:
                stack.extend((f"{where}[{i}]", key, v) for i, v in reversed(list(enumerate(item))))


def _tables(subject: Subject, scan: Scan, texts: TextScan) -> Iterator[Finding]:
    """Numeric cells of a table, and (for Parquet and Excel, whose cells are not text on disk) its string cells,
    up to the rows the policy lets a table have (a longer table is review anyway)."""
    from output_checks.checks.tables import READERS

    keep = scan.ctx.policy.max_table_rows + 1
    try:
        for source in READERS[subject.kind](subject.path):
            chunks = list(islice(source.chunks, 1))
            if not chunks:
                continue
            table = chunks[0].head(keep)
            yield from numbers.frame(scan, table, source.name)
            if subject.kind in ("parquet", "xlsx"):
                for index, col in enumerate(table.columns, start=1):
                    values = table[col].astype(str).tolist()
                    text = "\n".join(values)
                    cache = [0, 1]
                    prefix = f"{source.name}, " if source.name else ""
                    yield from texts.search(
                        text,
                        lambda at, p=prefix, i=index, t=text, c=cache: f"{p}column {i}, row {line_of(t, at, c)}",
                    )
    except Exception:  # an unreadable table is the tables check's finding
        return
