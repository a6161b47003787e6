"""Counts and model sizes in printed output, wherever text holds it: logs and listings (R, Stata, SAS), notebook
outputs, Markdown code blocks and HTML `<pre>` blocks. One parser per printed family turns text into count cells
(where the family names them) or rows for the table rules; each finding names the line.

Families: `bars` (Stata's and SAS's barred tables), `rout` (R's named vectors and `summary()`), `aligned`
(pandas, R data frames, tibbles, skimr, SAS listings: whitespace-aligned), `models` (regression summaries),
`html` (HTML tables with spans, `<pre>` blocks)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import replace

from output_checks.checks.base import Context, finding
from output_checks.checks.printed.aligned import Printed, continued, parse
from output_checks.checks.printed.bars import bar_cells, is_bar_block
from output_checks.checks.printed.cells import CountCell, count_findings
from output_checks.checks.printed.html import html_tables
from output_checks.checks.printed.layout import Line, blocks, is_number, numbered, strip_output_prefix
from output_checks.checks.printed.models import (
    hide_summary_vocabulary,
    is_model_summary,
    model_findings,
    residual_df_findings,
)
from output_checks.checks.printed.rout import summary_cells, vector_cells
from output_checks.checks.printed.vocabulary import is_model_table
from output_checks.screening.text import Segment
from output_checks.verdicts import Finding, Verdict

__all__ = [
    "Line",
    "code_blocks",
    "for_screening",
    "html_tables",
    "numbered",
    "printed_findings",
    "table_findings",
    "text_findings",
]

MAX_LINES = 200_000  # printed output scanned per text; past it the rest goes to a reviewer
MAX_TABLES = 200  # distinct printed tables handed to the table rules per text (each costs a table check)
ALIGNED = re.compile(r"\S {2,}\S|\||\t")  # a line with a column gap: prose has none
FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


def for_screening(segments: Iterable[Segment]) -> Iterator[Segment]:
    """Segments as identifier screening should read them: a model summary's fixed vocabulary ("Method: Least
    Squares") is not prose, so it is blanked; everything else is passed through unchanged."""
    for segment in segments:
        hidden = hide_summary_vocabulary(segment.text)
        yield segment if hidden is segment.text else replace(segment, text=hidden)


def printed_findings(lines: list[Line], ctx: Context, prefix: str = "") -> Iterator[Finding]:
    """Findings for printed output held in `lines` (numbered as in their file or output)."""
    if len(lines) > MAX_LINES:
        yield finding(
            "tables",
            Verdict.REVIEW,
            f"printed output longer than {MAX_LINES:,} lines: only the first {MAX_LINES:,} were read for tables",
            f"{prefix}line {lines[MAX_LINES].number}",
        )
        lines = lines[:MAX_LINES]
    lines = strip_output_prefix(lines)
    yield from model_findings(lines, ctx, prefix)
    from output_checks.checks.tables import check_rows

    cells: list[CountCell] = []
    text_at = {ln.number: ln.text for ln in lines}
    seen: set[tuple[tuple[str, ...], ...]] = set()
    skipped = 0
    previous: Printed | None = None
    heading: list[Line] = []  # a block of column names alone, printed a blank line above its body (sklearn)
    for block in blocks(lines):
        if not any(ALIGNED.search(ln.text) for ln in block):
            heading = []
            continue  # prose, or a line of code: nothing printed in columns
        if is_bar_block(block):
            cells.extend(bar_cells(block))
            continue
        found = summary_cells(block)
        if found is None:
            found = vector_cells(block)
        if found is not None:
            cells.extend(found)
            continue
        table = parse(block, text_at.get(block[-1].number + 1, ""))
        if heading and heading[-1].number + 2 >= block[0].number and (table is None or not any(table.header)):
            table = parse(heading + block, text_at.get(block[-1].number + 1, "")) or table
        heading = block if len(block) <= 2 and not any(is_number(w) for ln in block for w in ln.text.split()) else []
        if (table is None or not any(table.header)) and previous and block[0].number - previous.rows[-1][0].number <= 3:
            table = continued(previous, block) or table
        previous = table if table is not None and any(table.header) else None
        if table is None:
            continue
        if is_model_table(table.header):
            yield from residual_df_findings(table.header, table.rows, ctx.policy.safe_dof_threshold, prefix)
            continue  # a model's coefficients: its size is judged from the summary's own lines
        if table.named:
            cells.extend(table.cells)
        elif any(table.header) and len(table.header) >= 2 and table.has_numbers():
            # Counts and statistics alike go to the table rules: a printed table of means whose contributors it does
            # not state is review, as the same table in a CSV is (the verdict must not depend on the layout).
            key = tuple(tuple(row) for row in table.as_rows())
            if key in seen:
                continue  # the same table printed again (a loop, a re-run cell)
            if len(seen) >= MAX_TABLES:
                skipped += 1
                continue
            seen.add(key)
            first, last = table.rows[0][0].number, table.rows[-1][0].number
            where = f"{prefix}{table.family} at lines {table.first_line}-{last} (row 1 is line {first})"
            yield from check_rows(table.as_rows(), where, ctx)
    yield from count_findings(cells, ctx, prefix)
    if skipped:
        yield finding(
            "tables",
            Verdict.REVIEW,
            f"{skipped} printed table(s) past the first {MAX_TABLES} distinct ones were not checked for counts",
            f"{prefix}lines {lines[0].number}-{lines[-1].number}",
        )


def table_findings(tables: list[tuple[str, list[list[str]]]], ctx: Context) -> Iterator[Finding]:
    """Tables already held as rows (HTML): a model summary's (statsmodels' `summary().as_html()`) are judged by the
    model rules on their text, its coefficient table with it; every other table by the table rules."""
    from output_checks.checks.tables import check_rows

    summaries = any(is_model_summary(rows) for _, rows in tables)
    for where, rows in tables:
        if is_model_summary(rows):
            lines = [Line(n, "   ".join(row)) for n, row in enumerate(rows, start=1)]
            yield from model_findings(lines, ctx, f"{where}, ", unit="row")
        elif not (summaries and rows and is_model_table(rows[0])):
            yield from check_rows(rows, where, ctx)


def code_blocks(text: str) -> list[Line]:
    """The lines of a Markdown document's code blocks (fenced, or indented by four spaces after a blank line),
    numbered as in the document; a blank line separates blocks."""
    out: list[Line] = []
    fence: str | None = None
    previous_blank = True
    indented = False
    for line in numbered(text):
        text_ = line.text
        if fence is not None:
            if FENCE.match(text_) and text_.strip().startswith(fence):
                fence = None
                out.append(Line(line.number, ""))
            else:
                out.append(line)
            continue
        m = FENCE.match(text_)
        if m:
            fence = m[1][0] * 3
            out.append(Line(line.number, ""))
            continue
        if (text_.startswith("    ") or text_.startswith("\t")) and (previous_blank or indented) and text_.strip():
            indented = True
            out.append(Line(line.number, text_[4:] if text_.startswith("    ") else text_[1:]))
        elif text_.strip():
            if indented:
                out.append(Line(line.number, ""))
            indented = False
        previous_blank = not text_.strip()
    return out


def text_findings(text: str, kind: str, ctx: Context, prefix: str = "") -> Iterator[Finding]:
    """Printed output in a text file (all of it) or a Markdown document (its code blocks; model summaries
    anywhere, since a report may quote one in prose)."""
    lines = numbered(text)
    if kind == "markdown":
        code = code_blocks(text)
        yield from printed_findings(code, ctx, prefix)
        numbers = {ln.number for ln in code}
        yield from model_findings([ln for ln in lines if ln.number not in numbers], ctx, prefix)
        if "<table" in text.lower() or "<pre" in text.lower():  # raw HTML in Markdown (kable, R Markdown)
            found = html_tables(text)
            yield from table_findings([(f"{prefix}HTML table {n}", t) for n, t in enumerate(found.tables, 1)], ctx)
            for number, block in enumerate(found.pre, start=1):
                yield from printed_findings(numbered(block), ctx, f"{prefix}HTML <pre> block {number}, ")
        return
    yield from printed_findings(lines, ctx, prefix)
