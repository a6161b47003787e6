"""Notebooks: every cell's source (code and markdown), every output (text/plain, text/html with its tables,
markdown, LaTeX, JSON, streams, error tracebacks), attachments and widget state. Embedded images go to review.
Printed output (streams, plain-text results, code blocks in Markdown cells) is read for tables by `printed`.
The notebook is read as JSON data: never executed, and its HTML is tokenised, not rendered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

from output_checks.checks.base import Context, Subject, finding
from output_checks.checks.printed import for_screening
from output_checks.extract import html_content, json_strings, strip_ansi
from output_checks.screening.text import Segment
from output_checks.sniff import open_text
from output_checks.verdicts import Finding, Verdict

# Outputs that hold what code printed (streams, plain-text and Markdown results, HTML <pre>): read for printed tables.
PRINTED = ("(stdout)", "(stderr)", "(text)", "text/plain", "text/markdown", " text")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml", "application/pdf")


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return "" if value is None else str(value)


def _cells(nb: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(nb.get("cells"), list):
        return nb["cells"]
    cells: list[dict[str, Any]] = []
    for sheet in nb.get("worksheets") or []:  # nbformat 3
        if isinstance(sheet, dict):
            cells.extend(sheet.get("cells") or [])
    return cells


class NotebookCheck:
    name: ClassVar[str] = "notebooks"
    kinds: ClassVar[frozenset[str] | None] = frozenset({"ipynb"})

    def run(self, subject: Subject, ctx: Context) -> Iterator[Finding]:
        with open_text(subject.path) as fh:
            try:
                nb = json.load(fh)
            except ValueError as exc:
                yield finding(self.name, Verdict.REVIEW, f"not a readable notebook: invalid JSON ({exc.msg})")
                return
        if not isinstance(nb, dict):
            yield finding(self.name, Verdict.REVIEW, "not a readable notebook: the top level is not an object")
            return
        segments: list[Segment] = []
        tables: list[tuple[str, list[list[str]]]] = []
        images: list[str] = []
        for number, cell in enumerate(_cells(nb), start=1):
            if not isinstance(cell, dict):
                continue
            kind = cell.get("cell_type", "cell")
            where = f"cell {number} ({kind})"
            source = _text(cell.get("source", cell.get("input")))
            if source.strip():
                segments.append(Segment(f"{where} source", source))
            for name, attachment in (cell.get("attachments") or {}).items():
                images.append(f"{where} attachment {name!r}")
                for mime, data in (attachment or {}).items():
                    if mime.startswith("text/"):
                        segments.append(Segment(f"{where} attachment", _text(data)))
            for out_no, output in enumerate(cell.get("outputs") or [], start=1):
                if not isinstance(output, dict):
                    continue
                owhere = f"{where} output {out_no}"
                self._output(output, owhere, segments, tables, images)
        widgets = (nb.get("metadata") or {}).get("widgets")
        if widgets:
            segments.extend(Segment(f"widget state {w}", t) for w, t in json_strings(widgets))
        yield from ctx.screen(for_screening(segments), "identifiers")
        if "tables" in ctx.policy.checks:
            from output_checks.checks.disclosure import pipe_tables, prose_counts
            from output_checks.checks.printed import numbered, printed_findings, table_findings, text_findings
            from output_checks.checks.tables import check_rows

            yield from table_findings(tables, ctx)
            prose = [s for s in segments if "source" not in s.location or "(markdown)" in s.location]
            yield from prose_counts(prose, ctx)
            for segment in prose:
                for line, rows in pipe_tables(segment.text):
                    yield from check_rows(rows, f"{segment.location}, table at line {line}", ctx)
                if "(markdown)" in segment.location:
                    yield from text_findings(segment.text, "markdown", ctx, f"{segment.location}, ")
                elif segment.location.endswith(PRINTED) or " html pre " in segment.location:
                    yield from printed_findings(numbered(segment.text), ctx, f"{segment.location}, ")
        if images:
            yield finding(
                self.name,
                Verdict.REVIEW,
                f"{len(images)} embedded image(s): figures need a human look",
                "; ".join(images[:10]),
            )

    def _output(
        self,
        output: dict[str, Any],
        where: str,
        segments: list[Segment],
        tables: list[tuple[str, list[list[str]]]],
        images: list[str],
    ) -> None:
        """Collect the text, tables and images of one output."""
        otype = output.get("output_type")
        if otype == "stream" or ("text" in output and otype != "error"):
            segments.append(Segment(f"{where} ({output.get('name', 'text')})", strip_ansi(_text(output.get("text")))))
        if otype in ("error", "pyerr"):
            parts = [
                _text(output.get("ename")),
                _text(output.get("evalue")),
                *map(_text, output.get("traceback") or []),
            ]
            segments.append(Segment(f"{where} (error)", strip_ansi("\n".join(parts))))
        data = output.get("data") or {}
        if otype in ("pyout", "display_data") and not data:  # nbformat 3 keeps mime types at the top level
            data = {k: v for k, v in output.items() if k in ("text", "html", "png", "jpeg", "svg", "latex", "json")}
        for mime, value in data.items():
            if mime in IMAGE_TYPES or mime in ("png", "jpeg", "svg"):
                images.append(f"{where} {mime}")
                if "svg" in mime:
                    segments.append(Segment(f"{where} svg text", html_content(_text(value)).text))
            elif mime in ("text/html", "html"):
                from output_checks.checks.printed import html_tables

                source = _text(value)
                html = html_content(source)
                segments.append(Segment(f"{where} html", html.text))
                segments.extend(Segment(f"{where} html script {n}", s) for n, s in enumerate(html.scripts, start=1))
                found = html_tables(source)  # spans expanded, multi-row headers flattened
                tables.extend((f"{where} html table {i}", rows) for i, rows in enumerate(found.tables, start=1))
                segments.extend(Segment(f"{where} html pre {i}", t) for i, t in enumerate(found.pre, start=1))
                images.extend(f"{where} html {tag}" for tag in html.media)
            elif mime.endswith("json") or mime.startswith("application/vnd"):
                segments.extend(Segment(f"{where} {mime} {w}", t) for w, t in json_strings(value))
            elif mime != "text/plain" or otype != "stream":
                segments.append(Segment(f"{where} {mime}", strip_ansi(_text(value))))
