"""HTML tables as a reader sees them: `rowspan`/`colspan` expanded into a grid, the header rows (`<thead>`, or
leading rows of `<th>` only: pandas' `to_html()` writes one per column level and one of index names; gt and
kableExtra write spanners) flattened into one label per column; and `<pre>` blocks, where R Markdown, Quarto
and Jupyter exports put printed output. The standard library's tokenizer only: nothing is fetched or run."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

MAX_SPAN = 1000  # a span past this is a malformed or hostile table: clipped
MAX_CELLS = 2_000_000


@dataclass
class _Table:
    rows: list[list[tuple[str, int, int, bool]]] = field(default_factory=list)  # (text, rowspan, colspan, is_th)
    head_rows: int = 0  # rows inside <thead>


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[_Table] = []
        self.stack: list[_Table] = []
        self.pre: list[str] = []
        self._pre_depth = 0
        self._pre_text: list[str] = []
        self._cell: list[str] | None = None
        self._span = (1, 1, False)
        self._in_head = False
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "pre":
            self._pre_depth += 1
        elif tag == "table":
            self.stack.append(_Table())
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr" and self.stack:
            self.stack[-1].rows.append([])
            if self._in_head:
                self.stack[-1].head_rows += 1
        elif tag in ("td", "th") and self.stack:
            a = dict(attrs)
            self._cell = []
            self._span = (_span(a.get("rowspan")), _span(a.get("colspan")), tag == "th")
        elif tag == "br" and self._pre_depth:
            self._pre_text.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag == "pre" and self._pre_depth:
            self._pre_depth -= 1
            if not self._pre_depth:
                self.pre.append("".join(self._pre_text))
                self._pre_text = []
        elif tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None and self.stack:
            table = self.stack[-1]
            if not table.rows:
                table.rows.append([])
            table.rows[-1].append((" ".join("".join(self._cell).split()), *self._span))
            self._cell = None
        elif tag == "table" and self.stack:
            self.tables.append(self.stack.pop())

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre_depth:
            self._pre_text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _span(value: str | None) -> int:
    try:
        return max(1, min(MAX_SPAN, int(str(value).strip())))
    except ValueError:
        return 1


@dataclass
class HtmlTables:
    tables: list[list[list[str]]]  # each: one flattened header row, then the body rows
    pre: list[str]  # text of each <pre> block


def html_tables(html: str) -> HtmlTables:
    parser = _Parser()
    parser.feed(html)
    parser.close()
    while parser.stack:
        parser.tables.append(parser.stack.pop())
    return HtmlTables([grid for t in parser.tables if (grid := _flatten(t))], parser.pre)


def _grid(table: _Table) -> list[list[tuple[str, bool]]]:
    """Cells placed on a grid, each spanning cell repeated over the rows and columns it covers."""
    grid: list[list[tuple[str, bool] | None]] = []
    cells = 0
    for r, row in enumerate(table.rows):
        while len(grid) <= r:
            grid.append([])
        c = 0
        for text, rowspan, colspan, is_th in row:
            while c < len(grid[r]) and grid[r][c] is not None:
                c += 1
            for dr in range(rowspan if r + rowspan <= len(table.rows) else len(table.rows) - r):
                while len(grid) <= r + dr:
                    grid.append([])
                line = grid[r + dr]
                while len(line) < c + colspan:
                    line.append(None)
                for dc in range(colspan):
                    line[c + dc] = (text, is_th)
                cells += colspan
            c += colspan
            if cells > MAX_CELLS:
                break
    width = max((len(r) for r in grid), default=0)
    return [[cell or ("", False) for cell in row] + [("", False)] * (width - len(row)) for row in grid]


def _flatten(table: _Table) -> list[list[str]] | None:
    grid = _grid(table)
    if not grid or not any(text for row in grid for text, _ in row):
        return None
    head = table.head_rows
    if not head:  # no <thead>: leading rows of header cells only
        while head < len(grid) - 1 and all(is_th or not text for text, is_th in grid[head]):
            head += 1
        head = max(head, 1)
    width = len(grid[0])
    labels = []
    for j in range(width):
        parts: list[str] = []
        for row in grid[:head]:
            text = row[j][0] if j < len(row) else ""
            if text and (not parts or parts[-1] != text):
                parts.append(text)
        labels.append(" ".join(parts))
    return [labels, *([text for text, _ in row] for row in grid[head:])]
