"""Where a table's header ends and its body starts: one header row, the two or three rows pandas writes for
multi-level columns (then the row of index names), or a spanning group header over sub-headers. The levels of a
column's name are joined with " / ", so the cells under them are checked like any other."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from output_checks.checks.tables.profile import COUNT_PERCENT, NUMBER

LEVEL_SEPARATOR = " / "
MAX_HEADER_ROWS = 4  # pandas writes one row per column level; deeper headers are rare in outputs
LOOKAHEAD = 6  # body rows read to decide which columns hold numbers
NA_TEXT = frozenset({"", "na", "nan", "none", "null", "nat", "-", "*", "."})


def _numeric(cell: str) -> bool:
    return bool(NUMBER.match(cell) or COUNT_PERCENT.match(cell))


def _numeric_columns(body: list[list[str]], width: int) -> list[int]:
    """Columns whose filled cells in `body` are mostly numbers."""
    out = []
    for j in range(width):
        filled = [r[j].strip() for r in body if j < len(r) and r[j].strip().lower() not in NA_TEXT]
        if filled and sum(_numeric(c) for c in filled) >= len(filled) * 0.5:
            out.append(j)
    return out


def _continues_header(row: list[str], body: list[list[str]], width: int) -> bool:
    """A row of sub-headers: every column that holds numbers below it holds text here."""
    columns = _numeric_columns(body, width)
    first = next((j for j, c in enumerate(row) if c.strip()), width)
    values = [j for j in columns if j >= first]  # numeric row labels (years) sit under empty header cells
    if not values:
        return False
    for j in values:
        cell = row[j].strip() if j < len(row) else ""
        if cell.lower() in NA_TEXT or _numeric(cell) or cell.startswith("<"):
            return False
    return True


def _index_names(row: list[str], width: int) -> int:
    """pandas' row of index names under multi-level columns: the first m cells named, the rest empty. Returns m."""
    filled = [bool(c.strip()) for c in row[:width]] + [False] * (width - len(row))
    m = 0
    while m < width and filled[m]:
        m += 1
    return m if 0 < m < width and not any(filled[m:]) else 0


def split_header(top: list[list[str]]) -> tuple[list[str], int]:
    """Column names from a table's first rows, and how many of those rows are header (the body starts after them)."""
    if not top:
        return [], 0
    width = max(len(r) for r in top)
    rows = [[str(c) for c in r] + [""] * (width - len(r)) for r in top]
    levels = [rows[0]]
    index_row: list[str] | None = None
    k = 1
    while k < min(len(rows), MAX_HEADER_ROWS + 1):
        row, below = rows[k], rows[k + 1 : k + 1 + LOOKAHEAD]
        if len(levels) >= 2 and below and _index_names(row, width):
            index_row = row
            k += 1
            break
        if below and _continues_header(row, below, width):
            levels.append(row)
            k += 1
            continue
        break
    if len(levels) == 1:
        return [c.strip() for c in rows[0]], 1
    names = []
    spanning = [""] * len(levels)
    index_width = _index_names(index_row, width) if index_row else 0
    for j in range(width):
        if j < index_width:
            names.append(index_row[j].strip())  # type: ignore[index]
            continue
        parts = []
        for depth, level in enumerate(levels):
            cell = level[j].strip()
            if cell:
                spanning[depth] = cell
                # a new group above resets the sub-levels' spanning text
                for deeper in range(depth + 1, len(levels)):
                    spanning[deeper] = ""
            elif depth == 0 and j > 0:
                cell = spanning[0]  # a merged group header spans the empty cells to its right
            if cell:
                parts.append(cell)
        names.append(LEVEL_SEPARATOR.join(parts))
    return names, k


def unnamed(i: int) -> str:
    return f"Unnamed: {i}"


def unique_header(header: list[str]) -> list[str]:
    """Column names made unique as pandas makes them: a repeated `x` becomes `x.1`, `x.2`..."""
    seen: dict[str, int] = {}
    out = []
    for h in header:
        seen[h] = seen.get(h, 0) + 1
        out.append(h if seen[h] == 1 else f"{h}.{seen[h] - 1}")
    return out


def with_header(raw: Iterator[pd.DataFrame], has_header: bool = True) -> Iterator[pd.DataFrame]:
    """Chunks read without a header (string cells, positional columns) given their column names from the header
    rows at the top of the first chunk."""
    names: list[str] | None = None
    for chunk in raw:
        if names is None:
            if has_header:
                top = chunk.iloc[: MAX_HEADER_ROWS + LOOKAHEAD + 1].astype(str).to_numpy().tolist()
                found, skip = split_header(top)
                chunk = chunk.iloc[skip:]
                names = [n or unnamed(i) for i, n in enumerate(found)]
            else:
                names = [f"column {i + 1}" for i in range(chunk.shape[1])]
            names = unique_header(names[: chunk.shape[1]] + [unnamed(i) for i in range(len(names), chunk.shape[1])])
        chunk = chunk.copy()
        chunk.columns = names
        if len(chunk):
            yield chunk.reset_index(drop=True)
