"""Free text (plain, markdown, HTML, XML, JSON that is not a table): every line screened for identifiers, streamed
so memory stays flat in file size. Tables inside HTML (spans expanded) and Markdown are checked as tables, and
printed output (logs, listings, code blocks, HTML `<pre>`) by the printed-output parsers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from typing import ClassVar

from output_checks.checks.base import Context, Subject, finding
from output_checks.checks.printed import for_screening
from output_checks.extract import html_content, json_strings
from output_checks.screening.text import Segment
from output_checks.sniff import open_text
from output_checks.verdicts import Finding, Verdict

LINES_PER_SEGMENT = 40
MAX_IN_MEMORY = 64 * 2**20  # HTML and JSON are parsed whole up to this size; beyond it they are read as lines


def line_segments(subject: Subject) -> Iterator[Segment]:
    with open_text(subject.path) as fh:
        number = 0
        while chunk := list(islice(fh, LINES_PER_SEGMENT)):
            first = number + 1
            number += len(chunk)
            yield Segment(f"lines {first}-{number}" if number > first else f"line {first}", "".join(chunk))


class TextCheck:
    name: ClassVar[str] = "text"
    kinds: ClassVar[frozenset[str] | None] = frozenset({"text", "markdown", "html", "xml", "json"})

    def run(self, subject: Subject, ctx: Context) -> Iterator[Finding]:
        if subject.kind == "html" and subject.size <= MAX_IN_MEMORY:
            with open_text(subject.path) as fh:
                html_source = fh.read()
            html = html_content(html_source)
            scripts = (Segment(f"script {n}", body) for n, body in enumerate(html.scripts, start=1))
            yield from ctx.screen(for_screening(_chain(_split_lines(html.text), scripts)), "identifiers")
            if "tables" in ctx.policy.checks:
                yield from _html_tables(html_source, ctx)
            if html.media:
                kinds = ", ".join(sorted(set(html.media)))
                yield finding(self.name, Verdict.REVIEW, f"{len(html.media)} embedded image(s) or frame(s) ({kinds})")
            return
        if subject.kind == "json" and subject.size <= MAX_IN_MEMORY:
            with open_text(subject.path) as fh:
                try:
                    data = json.load(fh)
                except ValueError as exc:
                    yield finding(self.name, Verdict.REVIEW, f"not valid JSON ({exc.msg} at line {exc.lineno})")
                    yield from ctx.screen(line_segments(subject), "identifiers")
                    return
            from output_checks.checks.tables import json_records

            if json_records(data) is not None:
                return  # a table: the tables check owns it
            yield from ctx.screen((Segment(w, t) for w, t in json_strings(data)), "identifiers")
            return
        segments = _Recorder(line_segments(subject), keep=subject.kind in ("text", "markdown"))
        yield from ctx.screen(for_screening(segments), "identifiers")
        if "tables" in ctx.policy.checks and segments.kept:
            from output_checks.checks.disclosure import pipe_tables, prose_counts
            from output_checks.checks.printed import text_findings
            from output_checks.checks.tables import check_rows

            yield from prose_counts(segments.kept, ctx)
            text = "".join(s.text for s in segments.kept)
            for line, rows in pipe_tables(text):
                yield from check_rows(rows, f"table at line {line}", ctx)
            yield from text_findings(text, subject.kind, ctx)


def _html_tables(source: str, ctx: Context) -> Iterator[Finding]:
    """HTML tables with their spans and multi-row headers flattened, and printed output in `<pre>` blocks."""
    from output_checks.checks.printed import html_tables, numbered, printed_findings, table_findings

    found = html_tables(source)
    yield from table_findings([(f"HTML table {n}", rows) for n, rows in enumerate(found.tables, start=1)], ctx)
    for number, block in enumerate(found.pre, start=1):
        yield from printed_findings(numbered(block), ctx, f"HTML <pre> block {number}, ")


class _Recorder:
    """Passes segments through and keeps them (up to a bound) for the disclosure checks that need the text."""

    LIMIT = 32 * 2**20

    def __init__(self, segments: Iterator[Segment], keep: bool) -> None:
        self.segments, self.keep, self.kept, self.size = segments, keep, [], 0

    def __iter__(self) -> Iterator[Segment]:
        for segment in self.segments:
            if self.keep and self.size < self.LIMIT:
                self.kept.append(segment)
                self.size += len(segment.text)
            yield segment


def _chain(*parts: Iterator[Segment]) -> Iterator[Segment]:
    for part in parts:
        yield from part


def _split_lines(text: str) -> Iterator[Segment]:
    lines = text.splitlines(keepends=True)
    for start in range(0, len(lines), LINES_PER_SEGMENT):
        chunk = "".join(lines[start : start + LINES_PER_SEGMENT])
        if chunk.strip():
            yield Segment(f"text lines {start + 1}-{start + len(lines[start : start + LINES_PER_SEGMENT])}", chunk)
