"""Tables drawn with vertical bars, as Stata's log and SAS's PROC FREQ cross-tabulation print them: the row label
left of the first bar, header lines above the first rule (`----+----`), cells aligned under the header.
`tabulate`'s `Freq.`, `summarize`'s `Obs`, `tabstat`'s `N` are counts by name; a two-way table whose labelled
rows hold only integers is a table of frequencies (percentages, when asked for, come on unlabelled lines)."""

from __future__ import annotations

from output_checks.checks.printed.cells import CountCell
from output_checks.checks.printed.layout import Line, count_of, cut, header_labels, is_number, is_rule, spans
from output_checks.checks.printed.vocabulary import has_stat_words, is_count_header, is_missing_header

SAS_LEGEND = ("frequency", "percent", "row pct", "col pct", "expected", "deviation", "cell chi-square")


def is_bar_block(block: list[Line]) -> bool:
    content = [ln for ln in block if not is_rule(ln.text)]
    barred = [ln for ln in content if "|" in ln.text]
    return len(barred) >= 3 and len(barred) >= 0.6 * len(content)


def bar_cells(block: list[Line]) -> list[CountCell]:
    """The count cells of one barred table (none when it is a table of statistics or a model's header)."""
    first_bar = next((i for i, ln in enumerate(block) if "|" in ln.text and not is_rule(ln.text)), len(block))
    first_rule = next((i for i, ln in enumerate(block) if is_rule(ln.text) and i > first_bar), None)
    if first_rule is None:
        return []
    head = [_split(ln.text) for ln in block[:first_rule] if "|" in ln.text]
    body = [(ln, *_split(ln.text)) for ln in block[first_rule + 1 :] if "|" in ln.text and not is_rule(ln.text)]
    labelled = [(ln, label, right) for ln, label, right in body if label]
    if not head or not labelled:
        return []
    columns = spans([right for _, _, right in body])
    if not columns or len(columns) > 60:
        return []
    labels = header_labels([right for _, right in head], columns)
    sas = any(label.lower().startswith(SAS_LEGEND) for label, _ in head)
    family = "SAS PROC FREQ" if sas else "Stata table"
    rows = [(ln, cut(right, columns)) for ln, _, right in labelled]
    named = [j for j, label in enumerate(labels) if is_count_header(label) or is_missing_header(label)]
    if any(label.lower().startswith("freq") for label in labels):
        family = "Stata tabulate"
    elif any(header_key_is(label, "obs") for label in labels):
        family = "Stata summarize"
    if named:
        return [
            CountCell(family, ln.number, labels[j], n, missing=is_missing_header(labels[j]))
            for ln, cells in rows
            for j in named
            if j < len(cells) and (n := count_of(cells[j])) is not None
        ]
    if has_stat_words(labels) or has_stat_words([label for label, _ in head if not sas]):
        return []
    integer_rows = [cells for _, cells in rows if all(count_of(c) is not None for c in cells if c)]
    if len(integer_rows) < 0.8 * len(rows) or not any(is_number(c) for _, cells in rows for c in cells):
        return []
    family = family if sas else "Stata two-way table"
    return [
        CountCell(family, ln.number, labels[j], n)
        for ln, cells in rows
        if all(count_of(c) is not None for c in cells if c)
        for j, c in enumerate(cells)
        if c and (n := count_of(c)) is not None
    ]


def header_key_is(label: str, word: str) -> bool:
    return label.strip().lower().rstrip(".") == word


def _split(text: str) -> tuple[str, str]:
    """(row label, the rest with its bars blanked so columns keep their positions)."""
    at = text.index("|")
    return text[:at].strip(), " " * (at + 1) + text[at + 1 :].replace("|", " ")
