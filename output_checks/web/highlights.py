"""Where the checks' findings point in a file, for the reviewer's preview to highlight: table cells, rows and
columns, text lines and notebook cells, parsed from each finding's `location`.

The checks write locations as free text ("column 'n', row 3; column 'n', row 5", "line 12", "lines 4-9",
"HTML table 2, column 'x', row 4", "cell 5 (code) output 1"). Each part is read defensively: a part this module
cannot place is simply not highlighted (the findings table beside the preview still lists it). A part inside a
container the preview does not show as such (an HTML table, a sheet, a printed table) is placed only where its
line is known. Every note carried here is a finding's own message, which the checks have already masked."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_LINES = 60  # a longer range (a screening chunk) says "somewhere in here": not worth painting
COLUMN_NAME = re.compile(r"\bcolumn\s+('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")
COLUMN_NUMBER = re.compile(r"\bcolumn\s+(\d{1,6})\b")
ROW = re.compile(r"\brows?\s+(\d{1,9})(?:\s*[-–]\s*(\d{1,9}))?\b")
LINE = re.compile(r"\b(?:table at )?lines?\s+(\d{1,9})(?:\s*[-–]\s*(\d{1,9}))?\b")
NOTEBOOK_CELL = re.compile(r"\bcell\s+(\d{1,6})\b")
OUTPUT = re.compile(r"\boutput\s+(\d{1,4})\b")
SUM_OF_ROWS = re.compile(r"\btotal of the rows\b")
# A part about a table nested in something else: its rows and columns are not the preview's.
NESTED = re.compile(r"(?i)\b(?:html table|sheet|printed table|table at line|page|member|chunk|cell\s+\d)")


@dataclass
class Highlights:
    """What to paint, each with the findings' messages that put it there (for a tooltip)."""

    cells: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # (row index, column index), 0-based
    rows: dict[int, list[str]] = field(default_factory=dict)  # row index, 0-based
    columns: dict[int, list[str]] = field(default_factory=dict)  # column index, 0-based
    lines: dict[int, list[str]] = field(default_factory=dict)  # line number, 1-based
    notebook_cells: dict[int, list[str]] = field(default_factory=dict)  # cell number, 1-based
    outputs: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # (cell, output), 1-based

    def __bool__(self) -> bool:
        return any((self.cells, self.rows, self.columns, self.lines, self.notebook_cells))

    def note(self, where: dict, key: Any, message: str) -> None:
        notes = where.setdefault(key, [])
        if message not in notes:
            notes.append(message)

    @staticmethod
    def title(notes: Iterable[str] | None) -> str:
        return " | ".join(notes or ())

    def cell_title(self, row: int, column: int) -> str:
        """Every note that touches this cell: its own, its row's and its column's."""
        notes = [*self.cells.get((row, column), ()), *self.rows.get(row, ()), *self.columns.get(column, ())]
        return self.title(dict.fromkeys(notes))


def _parts(location: str) -> list[str]:
    return [p.strip() for p in location.split(";") if p.strip() and not p.strip().startswith("and ")]


def _column_index(part: str, columns: list[str]) -> int | None:
    if m := COLUMN_NAME.search(part):
        try:
            name = ast.literal_eval(m[1])
        except (ValueError, SyntaxError):
            return None
        if not isinstance(name, str):
            return None
        if name in columns:
            return columns.index(name)
        if name.endswith("...") and len(name) == 40:  # the checks shorten long names to 37 characters and "..."
            return next((i for i, c in enumerate(columns) if c.startswith(name[:37])), None)
        return None
    if m := COLUMN_NUMBER.search(part):
        number = int(m[1])
        return number - 1 if 0 < number <= len(columns) else None
    return None


def _range(m: re.Match) -> range | None:
    first = int(m[1])
    last = int(m[2]) if m[2] else first
    if first < 1 or last < first or last - first >= MAX_LINES:
        return None
    return range(first, last + 1)


def table_highlights(findings: Iterable[Mapping[str, Any]], columns: list[str], rows: int) -> Highlights:
    """Cells, rows and columns of a table preview (`rows` data rows shown) that findings name."""
    marks = Highlights()
    for finding in findings:
        message = str(finding.get("message", ""))
        for part in _parts(str(finding.get("location") or "")):
            if NESTED.search(part):
                continue
            column = _column_index(part, columns)
            if column is None and "column" in part:
                continue  # a cell whose column is not this table's: painting its whole row would mislead
            row_match = ROW.search(part)
            span = _range(row_match) if row_match else None
            if span is not None:
                for number in span:
                    if number > rows:
                        break
                    if column is not None:
                        marks.note(marks.cells, (number - 1, column), message)
                    else:
                        marks.note(marks.rows, number - 1, message)
            elif column is not None and not row_match:
                marks.note(marks.columns, column, message)  # a whole column, or its total
    return marks


def text_highlights(findings: Iterable[Mapping[str, Any]], lines: int) -> Highlights:
    """Lines of a text preview (`lines` lines shown) that findings name, including a printed table's first line."""
    marks = Highlights()
    for finding in findings:
        message = str(finding.get("message", ""))
        for part in _parts(str(finding.get("location") or "")):
            m = LINE.search(part)
            span = _range(m) if m else None
            for number in span or ():
                if number <= lines:
                    marks.note(marks.lines, number, message)
    return marks


def notebook_highlights(findings: Iterable[Mapping[str, Any]]) -> Highlights:
    """Notebook cells (and their outputs) that findings name."""
    marks = Highlights()
    for finding in findings:
        message = str(finding.get("message", ""))
        for part in _parts(str(finding.get("location") or "")):
            if m := NOTEBOOK_CELL.search(part):
                cell = int(m[1])
                marks.note(marks.notebook_cells, cell, message)
                if out := OUTPUT.search(part):
                    marks.note(marks.outputs, (cell, int(out[1])), message)
    return marks


def notebook_style(marks: Highlights) -> str:
    """A style sheet painting the named cells of nbconvert's page (its cells are the children of <main>, in order).
    Only numbers go into it, never text from the findings."""
    rules = []
    for cell in sorted(marks.notebook_cells):
        rules.append(f"main > .jp-Cell:nth-child({cell}) {{ outline: 3px solid #b3261e; outline-offset: 2px; }}")
    for cell, output in sorted(marks.outputs):
        rules.append(
            f"main > .jp-Cell:nth-child({cell}) .jp-OutputArea-child:nth-child({output}) {{ background: #fde2dd; }}"
        )
    return "<style>" + "\n".join(rules) + "</style>" if rules else ""


def mark_notebook(html: str, marks: Highlights) -> str:
    style = notebook_style(marks)
    if not style:
        return html
    at = html.rfind("</head>")
    return html[:at] + style + html[at:] if at >= 0 else style + html
