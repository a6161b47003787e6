"""Whitespace-aligned tables as pandas, R, tibble, skimr and SAS print them: header lines (one per column level,
then pandas' line of index names) over a body whose columns are found from its alignment. A table whose family
names its counts (a `count`/`N`/`Frequency` column, describe()'s `count` row) gives count cells; any other is
handed to the table rules as rows of strings."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from output_checks.checks.printed.cells import CountCell
from output_checks.checks.printed.layout import (
    MISSING,
    Line,
    count_of,
    cut,
    header_labels,
    is_number,
    is_numeric_cell,
    is_numeric_word,
    is_rule,
    spans,
    tokens,
)
from output_checks.checks.printed.vocabulary import (
    DESCRIBE_COUNT_ROWS,
    DESCRIBE_ROWS,
    header_key,
    is_count_header,
    is_missing_header,
)

TIBBLE_TITLE = re.compile(r"^#\s*(A tibble|A data frame|Groups|Source|Database|A grouped)", re.I)
TIBBLE_NOTE = re.compile(r"^#\s*(ℹ|…|\.\.\.|with \d+ more)")
TYPE_ROW = re.compile(r"^\s*(<[a-z_.]+>\s*)+$")
TOP_COUNTS = re.compile(r"(?<![\w.])([^\s:,]{1,12}):\s+(\d+)(?=,|\s|$)")
COUNT_PERCENT = re.compile(r"^\d[\d,]*\s*(?:/\s*[\d,]+\s*)?[\[(]\s*[\d.]+\s*%\s*[\])]$")
CODEBOOK = re.compile(r"^\s*[Tt]abulation:", re.M)  # Stata codebook: "Tabulation: Freq.  Numeric  Label"
KEY_VALUE = re.compile(r"\w: +\S")
SERIES_FOOTER = re.compile(r"^(?:Name: ([^,]+), )?(?:Length: \d+, )?dtype: (\w+)")
MAX_LINES = 5000  # a printed table longer than this is a data dump: the table rules get its head only
MAX_WIDTH = 2000


NUMERIC = re.compile(r"^(?=[^\d]*\d)[-+]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?([eE][-+]?\d+)?%?$")


@dataclass
class Printed:
    """A parsed printed table: its header labels, body rows (line, cells) and what it tells about counts."""

    first_line: int
    header: list[str]
    rows: list[tuple[Line, list[str]]]
    family: str = "printed table"
    columns: list[tuple[int, int]] = field(default_factory=list)
    cells: list[CountCell] = field(default_factory=list)
    named: bool = False  # the family named its count cells: the count rule, not the table rules, judges it

    def has_integers(self) -> bool:
        """Some column beyond the first holds only whole numbers: the table may hold counts."""
        width = max((len(cells) for _, cells in self.rows), default=0)
        for j in range(1, width):
            filled = [cells[j] for _, cells in self.rows if j < len(cells) and cells[j].strip().lower() not in MISSING]
            if filled and all(count_of(c) is not None for c in filled):
                return True
        return False

    def has_numbers(self) -> bool:
        """Some column beyond the first holds only numbers (counts, or statistics whose contributors the table
        rules look for)."""
        width = max((len(cells) for _, cells in self.rows), default=0)
        for j in range(1, width):
            filled = [cells[j] for _, cells in self.rows if j < len(cells) and cells[j].strip().lower() not in MISSING]
            if filled and all(NUMERIC.match(c.strip()) for c in filled):
                return True
        return False

    def as_rows(self) -> list[list[str]]:
        return [self.header, *(cells for _, cells in self.rows)]


def _data_like(text: str) -> bool:
    words = [w for _, _, w in tokens(text)]
    numbers = sum(is_numeric_word(w) for w in words)
    if not numbers:
        return False
    return is_numeric_word(words[-1]) or words[-1].lower() in MISSING or numbers >= max(2, len(words) // 2)


def _names_only(text: str, body: list[Line]) -> bool:
    """pandas' line of index names: words only over the leftmost columns, none over the numbers."""
    words = tokens(text)
    if not words or any(is_number(w) for _, _, w in words):
        return False
    right = min((s for line in body for s, _, w in tokens(line.text) if is_number(w)), default=10**9)
    return all(end <= right for _, end, _ in words)


def parse(block: list[Line], footer: str = "") -> Printed | None:
    """The printed table in `block`, or None; `footer` is the line after it (pandas' "Name: count, dtype: int64"
    says what a Series holds)."""
    lines = [ln for ln in block if not TIBBLE_NOTE.match(ln.text.strip())]
    family = "printed table"
    if lines and TIBBLE_TITLE.match(lines[0].text.strip()):
        family, lines = "R tibble", [ln for ln in lines if not ln.text.lstrip().startswith("#")]
    lines = [ln for ln in lines if not TYPE_ROW.match(ln.text)]
    if len(lines) < 2 or len(lines) > MAX_LINES or max(len(ln.text) for ln in lines) > MAX_WIDTH:
        return None
    lines = [Line(ln.number, CODEBOOK.sub(lambda m: " " * len(m[0]), ln.text)) for ln in lines]
    header, body = _split(lines)
    # R's table()/xtabs() print: the column variable's name alone, indented, over the row variable's name and
    # the column levels; every cell below is a count.
    r_table = len(header) == 2 and len(tokens(header[0].text)) == 1 and header[0].text.startswith("  ")
    for k in range(len(header) - 1, -1, -1):
        if KEY_VALUE.search(header[k].text):  # "Model 1: ldl ~ age" above an anova table is a caption
            header = header[k + 1 :]
            break
    body = [ln for ln in body if not is_rule(ln.text)]
    if not body or not any(_data_like(ln.text) for ln in body):
        return None
    columns = spans([ln.text for ln in body])
    if len(columns) > 60:
        return None
    rows = [(ln, cut(ln.text, columns)) for ln in body]
    numeric = [j for j in range(len(columns)) if _mostly_numbers([r[j] for _, r in rows])]
    if len(columns) < 2 or not numeric:
        table = _ragged(header, body, family, footer)
        if table is not None and r_table:
            _r_table(table)
        return table
    if len([ln for ln in body if _data_like(ln.text)]) < max(1, len(body) // 2):
        return None
    labels = header_labels([ln.text for ln in header], columns)
    table = Printed(header[0].number if header else body[0].number, labels, rows, family, columns)
    _drop_row_numbers(table)
    _series(table, footer)
    _named_counts(table)
    if r_table and not table.named:
        _r_table(table)
    return table


def _r_table(table: Printed) -> None:
    cells = [(ln, j, count_of(c)) for ln, row in table.rows for j, c in enumerate(row) if j > 0 and c]
    if cells and all(n is not None for _, _, n in cells):
        table.family, table.named = "R table()", True
        label = table.header
        table.cells.extend(
            CountCell("R table()", ln.number, label[j] if j < len(label) else "", n)
            for ln, j, n in cells
            if n is not None
        )


def _ragged(header: list[Line], body: list[Line], family: str, footer: str) -> Printed | None:
    """A table whose numbers are not aligned (edited by hand, or printed in a proportional font and re-typed):
    every body line is a label followed by the same number of numbers; the last header line names those
    columns from the right, and the lines above it (a variable's name) prefix every one."""
    tails: list[tuple[Line, str, list[str]]] = []
    for ln in body:
        words = ln.text.split()
        k = len(words)
        while k > 0 and is_numeric_word(words[k - 1]) and is_number(words[k - 1]):
            k -= 1
        if k == len(words):
            return None
        tails.append((ln, " ".join(words[:k]), words[k:]))
    width = len(tails[0][2])
    if len(tails) < 2 or any(len(t[2]) != width for t in tails) or not any(label for _, label, _ in tails):
        return None
    names = header[-1].text.split() if header else []
    above = " ".join(w for ln in header[:-1] for w in ln.text.split())
    columns = ([""] * width + names)[-width:] if len(names) >= width else [""] * (width - len(names)) + names
    first = " ".join(names[: len(names) - width]) if len(names) > width else ""
    labels = [first, *(f"{above} {c}".strip() for c in columns)]
    rows = [(ln, [label, *numbers]) for ln, label, numbers in tails]
    table = Printed(header[0].number if header else body[0].number, labels, rows, family)
    _series(table, footer)
    _named_counts(table)
    return table


def continued(previous: Printed, block: list[Line]) -> Printed | None:
    """A headerless block just after a table, in its columns (SAS prints each CLASS group of PROC MEANS apart;
    long prints wrap): read under the previous table's header."""
    lines = [ln for ln in block if not is_rule(ln.text)]
    if not lines or not previous.columns or not all(_data_like(ln.text) for ln in lines):
        return None
    reach = (previous.columns[0][0] - 2, previous.columns[-1][1] + 2)
    own = spans([ln.text for ln in lines])
    if len(own) > len(previous.columns) + 1 or own[0][0] < reach[0] - 8 or own[-1][1] > reach[1] + 8:
        return None
    rows = [(ln, cut(ln.text, previous.columns)) for ln in lines]
    if any(sum(bool(c) for c in cells) < 2 for _, cells in rows):
        return None
    table = Printed(previous.first_line, previous.header, rows, previous.family, previous.columns)
    _named_counts(table)
    return table


def _mostly_numbers(cells: list[str]) -> bool:
    filled = [c for c in cells if c]
    return bool(filled) and sum(is_numeric_cell(c) for c in filled) >= 0.8 * len(filled)


def _split(lines: list[Line]) -> tuple[list[Line], list[Line]]:
    rule = next((i for i, ln in enumerate(lines[:7]) if is_rule(ln.text)), None)
    if rule is not None and rule + 1 < len(lines) and any(_data_like(ln.text) for ln in lines[rule + 1 :]):
        return lines[:rule], lines[rule + 1 :]
    i = 0
    while i < len(lines) and not _data_like(lines[i].text) and i < 6:
        i += 1
    header, body = lines[:i], lines[i:]
    if not header and len(body) >= 3 and _levels_line(body[0], body[1:]):
        header, body = [body[0]], body[1:]  # column levels that are numbers (0/1, years) over labelled rows
    if (
        len(header) == 1
        and len(tokens(header[0].text)) == 1
        and header[0].text.startswith("  ")
        and len(body) >= 2
        and not body[0].text.startswith(" ")
    ):
        header.append(body.pop(0))  # R's two-way table(): column variable, then row variable and column levels
    for j in range(min(3, len(body) - 1)):
        if not _data_like(body[j].text) and _names_only(body[j].text, body[j + 1 :]):
            header, body = header + body[: j + 1], body[j + 1 :]
            break
    return header, body


def _levels_line(first: Line, rest: list[Line]) -> bool:
    """A line of numbers standing clear of the row labels below it: the column levels, not a row."""
    words = tokens(first.text)
    labels = [tokens(ln.text)[0] for ln in rest if tokens(ln.text)]
    if not words or not labels or any(is_number(w) for _, _, w in labels):
        return False
    return words[0][0] > max(end for _, end, _ in labels)


def _drop_row_numbers(table: Printed) -> None:
    """pandas' RangeIndex, R's row names and tibble's row numbers (1..n or 0..n-1, no header) are not data."""
    if not table.rows or table.header[0]:
        return
    firsts = [cells[0] for _, cells in table.rows]
    if all(c.isdigit() for c in firsts):
        values = [int(c) for c in firsts]
        if values == list(range(values[0], values[0] + len(values))) and values[0] in (0, 1):
            table.header, table.columns = table.header[1:], table.columns[1:]
            table.rows = [(ln, cells[1:]) for ln, cells in table.rows]


def _series(table: Printed, footer: str) -> None:
    """A pandas Series of integers with no name, or named as counts (value_counts, groupby().size()) holds counts;
    one with a name is labelled by it."""
    m = SERIES_FOOTER.match(footer.strip())
    if not m or table.header[-1]:
        return
    name, dtype = m[1], m[2]
    if dtype.startswith(("int", "Int", "uint")) and (name is None or is_count_header(name)):
        table.header[-1], table.family = "n", "pandas Series"
    elif name:
        table.header[-1] = name


def _named_counts(table: Printed) -> None:
    header = table.header
    first = [cells[0].strip().lower() for _, cells in table.rows]
    if sum(f in DESCRIBE_ROWS for f in first) >= 4 and "count" in first:
        table.family, table.named = "pandas describe()", True
        for ln, cells in table.rows:
            if cells[0].strip().lower() in DESCRIBE_COUNT_ROWS:
                for j, cell in enumerate(cells[1:], start=1):
                    n = count_of(cell)
                    if n is not None:
                        table.cells.append(CountCell(table.family, ln.number, header[j] if j < len(header) else "", n))
        return
    skim = any(header_key(h) in ("skim_variable", "n_missing", "complete_rate") for h in header)
    if skim:
        table.family, table.named = "skimr skim()", True
        _top_counts(table)
    _count_percent(table)
    for j, label in enumerate(header):
        if not label:
            continue
        missing = is_missing_header(label)
        if not (missing or is_count_header(label)):
            continue
        values = [(ln, count_of(cells[j])) for ln, cells in table.rows if j < len(cells)]
        filled = [(ln, n) for ln, n in values if n is not None]
        if not filled or len(filled) < 0.8 * sum(1 for _, c in table.rows if j < len(c) and c[j].strip()):
            continue
        table.named = True
        table.cells.extend(CountCell(table.family, ln.number, label, n, missing=missing) for ln, n in filled)


def _count_percent(table: Printed) -> None:
    """Cells printed as "n (p%)" (Table 1, gtsummary) are counts whatever their column holds besides."""
    for ln, cells in table.rows:
        for j, cell in enumerate(cells[1:], start=1):
            if COUNT_PERCENT.match(cell.strip()) and (n := count_of(cell)) is not None:
                label = table.header[j] if j < len(table.header) else ""
                table.cells.append(CountCell(table.family, ln.number, label, n))
                table.named = True


def _top_counts(table: Printed) -> None:
    """skimr's top_counts ("F: 151, M: 149") and n_unique-style pairs: each is a count of a factor level."""
    for ln, _ in table.rows:
        for m in TOP_COUNTS.finditer(ln.text):
            n = count_of(m[2])
            if n is not None:
                table.cells.append(CountCell(table.family, ln.number, "top_counts", n))
