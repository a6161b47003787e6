"""R's printed named vectors and summaries: `table(x)` and `summary(factor)` print the levels on one line and
their counts right-aligned under them (wrapped over pairs of lines, after the variable's name when it has one);
`summary(data.frame)` prints a factor's levels as "level:count" beside the numeric columns' "Min.   :20.0"."""

from __future__ import annotations

import re

from output_checks.checks.printed.cells import CountCell
from output_checks.checks.printed.layout import Line, count_of, is_number, tokens
from output_checks.checks.printed.vocabulary import QUANTILE_LABEL, R_SUMMARY_MISSING, R_SUMMARY_STATS

SUMMARY_SIGNS = re.compile(r"(Min\.\s*:|1st Qu\.\s*:|Median\s*:|Length\s*:|Class\s*:|Mode\s*:)")
SUMMARY_CELL = re.compile(r"([^\s:](?:[^:\s]| (?! ))*?)\s*:\s*(\d[\d,]*)(?=\s{2,}|\s*$)")
STAT_NAMES = re.compile(r"^(Min\.|Max\.|Mean|Median|1st|3rd|Qu\.|NA's|Sum|Var|SD|Length|Class|Mode)$")


def vector_cells(block: list[Line]) -> list[CountCell] | None:
    """A named integer vector as R prints it, or None when the block is not one; a vector of statistics
    (`summary(x)`, `quantile(x)`) is recognised and holds no counts."""
    lines = list(block)
    if len(lines) % 2 == 1 and len(tokens(lines[0].text)) == 1 and len(lines) >= 3:
        lines = lines[1:]  # the dimnames' name
    if len(lines) < 2 or len(lines) % 2:
        return None
    cells: list[CountCell] = []
    statistics = False
    for labels, values in zip(lines[0::2], lines[1::2], strict=True):
        words = tokens(values.text)
        names = [w for _, _, w in tokens(labels.text)]
        stats = all(QUANTILE_LABEL.match(w) or STAT_NAMES.match(w) for w in names if w != "Qu.")
        if names and words and stats and all(is_number(w) or w == "NA" for _, _, w in words):
            statistics = True
            # summary(x) ends with "NA's": how many values are missing, right-aligned under it
            ends = {end for _, end, w in tokens(labels.text) if w == "NA's"}
            cells.extend(
                CountCell("R summary()", values.number, "NA's", n, missing=True)
                for _, end, w in words
                if end in ends and (n := count_of(w)) is not None
            )
            continue
        counts = [count_of(w) for _, _, w in words]
        if not words or any(n is None or "." in w for n, (_, _, w) in zip(counts, words, strict=True)):
            return None
        text = labels.text
        for _, end, _ in words:
            if end > len(text) or text[end - 1].isspace() or (end < len(text) and not text[end].isspace()):
                return None
        if any(QUANTILE_LABEL.match(w) or STAT_NAMES.match(w) or w.startswith("[") for w in names):
            return None
        cells.extend(CountCell("R table()", values.number, "", n) for n in counts if n is not None)
    return cells if cells or statistics else None


def summary_cells(block: list[Line]) -> list[CountCell] | None:
    """Factor levels' counts in a printed `summary(data.frame)`, or None when the block is not one."""
    if not any(SUMMARY_SIGNS.search(ln.text) for ln in block):
        return None
    cells = []
    for ln in block[1:]:
        for m in SUMMARY_CELL.finditer(ln.text):
            label = m[1].strip().lower()
            if label in R_SUMMARY_STATS:
                continue
            n = count_of(m[2])
            if n is not None:
                cells.append(CountCell("R summary()", ln.number, "", n, missing=label in R_SUMMARY_MISSING))
    return cells
