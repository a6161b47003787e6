"""How printed output is laid out: the numbered lines of a text, its blocks (runs of lines between blank lines and
prompts), and the columns of a whitespace-aligned table found from the alignment of many lines, not by splitting
each line on spaces (labels hold spaces)."""

from __future__ import annotations

import re
from dataclasses import dataclass

NUMBER = re.compile(r"^(?=\D*\d)[-+]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?([eE][-+]?\d+)?%?$")  # at least one digit
COUNT = re.compile(r"^\+?(\d{1,3}(,\d{3})+|\d+)(\.0+)?$")  # an integer, or a float pandas printed from one
MISSING = frozenset({"nan", "na", "<na>", "none", "null", "nat", ".", "-", ""})
RULE = re.compile(r"^\s*[-=_+|:~─━═┼┬┴╪]{3,}[-=_+|:~─━═┼┬┴╪ ]*$")
# Lines that start a command or end an output rather than print it: R/Python/Stata/SAS prompts, R's vector
# prints ("[1] 5"), pandas' footers.
PROMPT = re.compile(
    r"^(>>>|\.\.\.|In \[\d*\]:|Out\[\d*\]:|> |\+ |\. |\d+\s+proc |\[\d+\] |dtype: |Name: |\[\d+ rows x)"
)
# A section title drawn into a rule ("── Variable type: numeric ─────", skimr, cli): ends a block.
SECTION = re.compile(r"^\s*[─━═=-]{2,}\s+\S.*?\s[─━═=-]{3,}\s*$")
OUTPUT_PREFIX = re.compile(r"^(##|#>) ?")  # knitr's and reprex's marks on printed output


@dataclass(frozen=True)
class Line:
    number: int  # 1-based, in the text it came from
    text: str


def is_number(cell: str) -> bool:
    return bool(NUMBER.match(cell.strip()))


STAT_CELL = re.compile(
    r"^[-+]?[\d.,]+%?\s*[\[(]\s*[-+\d.,%;\s]+(?:to|-)?[-+\d.,%\s]*[\])]$"
)  # "55 (39, 72)", "3.2 (0.8)"


def is_numeric_cell(cell: str) -> bool:
    """A number, or a statistic printed with its spread or percentage ("151 (50%)", "55 (39, 72)")."""
    c = cell.strip()
    return is_number(c) or bool(STAT_CELL.match(c))


def is_numeric_word(word: str) -> bool:
    """A whitespace-separated word of such a cell ("(50%)", "(39,", "72)")."""
    return is_number(word.strip("()[],;"))


def count_of(cell: str) -> int | None:
    """The count in a cell ("12", "1,204", "47.0", "245 (59.5%)"), or None for anything that is not one."""
    c = cell.strip()
    m = re.match(r"^(\d{1,3}(?:,\d{3})+|\d+)\s*(?:/\s*[\d,]+\s*)?[\[(]\s*[\d.]+\s*%\s*[\])]$", c)
    if m:
        c = m[1]
    if not COUNT.match(c):
        return None
    return int(float(c.replace(",", "")))


def numbered(text: str, first: int = 1) -> list[Line]:
    return [Line(n, line.rstrip("\r\n").expandtabs(8)) for n, line in enumerate(text.splitlines(), start=first)]


def strip_output_prefix(lines: list[Line]) -> list[Line]:
    """Lines knitr or reprex marked as output ("## " / "#> ") lose the mark, when most non-blank lines carry it."""
    filled = [ln for ln in lines if ln.text.strip()]
    marked = [ln for ln in filled if OUTPUT_PREFIX.match(ln.text)]
    if not filled or len(marked) < len(filled) * 0.5:
        return lines
    return [Line(ln.number, OUTPUT_PREFIX.sub("", ln.text, count=1)) for ln in lines]


def blocks(lines: list[Line]) -> list[list[Line]]:
    """Runs of non-blank lines, split at blank lines and at prompt lines (which belong to no block)."""
    out: list[list[Line]] = []
    current: list[Line] = []
    for line in lines:
        if not line.text.strip() or PROMPT.match(line.text) or SECTION.match(line.text):
            if current:
                out.append(current)
            current = []
            continue
        current.append(line)
    if current:
        out.append(current)
    return out


def is_rule(text: str) -> bool:
    return bool(RULE.match(text)) and sum(ch in "-=_─━═" for ch in text) >= 3


def tokens(text: str) -> list[tuple[int, int, str]]:
    """(start, end, word) for each run of non-space characters."""
    return [(m.start(), m.end(), m[0]) for m in re.finditer(r"\S+", text)]


def spans(lines: list[str]) -> list[tuple[int, int]]:
    """Column spans shared by `lines`: runs of positions where some line has a character, separated by positions
    blank in every line. A one-space gap that only some lines bridge with a word ("North East" over "South") is a
    space inside a label, not a column boundary."""
    width = max((len(t) for t in lines), default=0)
    occupied = [False] * width
    for text in lines:
        for i, ch in enumerate(text):
            if not ch.isspace():
                occupied[i] = True
    runs: list[list[int]] = []
    for i, used in enumerate(occupied):
        if used and (not runs or runs[-1][1] != i):
            runs.append([i, i + 1])
        elif used:
            runs[-1][1] = i + 1
    merged: list[list[int]] = []
    for run in runs:
        if merged and run[0] - merged[-1][1] == 1 and _bridged(lines, merged[-1], run):
            merged[-1][1] = run[1]
        else:
            merged.append(run)
    return [(s, e) for s, e in merged]


def _bridged(lines: list[str], left: list[int], right: list[int]) -> bool:
    """The right run is a label's next word: some lines leave it empty, and wherever it is filled the left run's
    text runs up to the gap, and it holds no numbers."""
    filled = [t[right[0] : right[1]].strip() for t in lines]
    if all(filled) or not any(filled):
        return False
    for text, cell in zip(lines, filled, strict=True):
        if cell and (len(text) <= left[1] - 1 or text[left[1] - 1].isspace() or is_number(cell)):
            return False
    return True


def cut(text: str, columns: list[tuple[int, int]]) -> list[str]:
    """The line's cell under each column span (text between the end of one span and the start of the next goes
    to the nearer column, so a cell wider than its column's body is not lost)."""
    cells = []
    for i, (start, end) in enumerate(columns):
        lo = 0 if i == 0 else (columns[i - 1][1] + start) // 2
        hi = len(text) if i == len(columns) - 1 else (end + columns[i + 1][0] + 1) // 2
        cells.append(text[lo:hi].strip())
    return cells


def header_labels(header: list[str], columns: list[tuple[int, int]]) -> list[str]:
    """One label per column from header lines over the body's columns: each word goes to the column it overlaps
    most (or the nearest); in a header line above the last that labels several columns, a column with no word of
    its own takes its left neighbour's (pandas prints a spanning level once, over the first of its columns)."""
    levels: list[list[str]] = []
    for number, text in enumerate(header):
        words: list[list[str]] = [[] for _ in columns]
        for start, end, word in tokens(text):
            words[_column_of(start, end, columns)].append(word)
        level = [" ".join(w) for w in words]
        if number < len(header) - 1 and sum(bool(label) for label in level[1:]) >= 2:
            seen = False
            for i, label in enumerate(level):
                if label:
                    seen = True
                elif seen and i > 0:
                    level[i] = level[i - 1]
        levels.append(level)
    return [" ".join(lv[i] for lv in levels if lv[i]).strip() for i in range(len(columns))]


def _column_of(start: int, end: int, columns: list[tuple[int, int]]) -> int:
    def score(i: int) -> tuple[int, int]:
        s, e = columns[i]
        overlap = min(end, e) - max(start, s)
        return (overlap, 0) if overlap > 0 else (0, -min(abs(start - e), abs(s - end)))

    return max(range(len(columns)), key=score)
