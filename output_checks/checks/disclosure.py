"""Small counts outside tables: pipe tables in markdown and counts of people written in prose ("3 patients
died"). Shared by the text and notebook checks; printed output (pandas, R, Stata, SAS) is `printed`'s."""

from __future__ import annotations

import re
from collections.abc import Iterator

from output_checks.checks.base import Context, finding
from output_checks.screening.text import Segment
from output_checks.verdicts import Finding, Verdict

PEOPLE = (r"patients?|participants?|people|persons?|individuals?|subjects?|cases?|deaths?|women|men|children|"
          r"carriers?|donors?|adults?|infants?|pregnancies|admissions?|events?")  # fmt: skip
PROSE_COUNT = re.compile(rf"(?<![\d.,])\b(\d{{1,3}})\s+(?:of\s+the\s+|of\s+)?(?:\w+\s+)?({PEOPLE})\b", re.IGNORECASE)
N_EQUALS = re.compile(r"\bn\s*=\s*(\d{1,3})\b(?![.,]\d)")
PIPE_ROW = re.compile(r"^\s*\|.*\|\s*$")
PIPE_RULE = re.compile(r"\s*\|?(\s*:?-{2,}:?\s*\|)+\s*:?-*:?\s*\|?\s*")


def prose_counts(segments: list[Segment], ctx: Context) -> Iterator[Finding]:
    """Counts of people below the threshold written in sentences: review (a sentence is not a table, but a
    checker should see "2 patients" before it leaves)."""
    threshold = ctx.policy.min_cell_count
    places = []
    for segment in segments:
        for m in (*PROSE_COUNT.finditer(segment.text), *N_EQUALS.finditer(segment.text)):
            if 0 < int(m[1]) < threshold:
                places.append(segment.location)
                break
    if places:
        yield finding(
            "tables",
            Verdict.REVIEW,
            f"a count of people below {threshold} written in the text (e.g. '3 patients', 'n = 4')",
            "; ".join(list(dict.fromkeys(places))[:10]),
        )


def pipe_tables(text: str) -> Iterator[tuple[int, list[list[str]]]]:
    """(first line number, rows) for each markdown pipe table in `text`."""
    rows: list[list[str]] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if PIPE_ROW.match(line):
            if not rows:
                start = number
            if not PIPE_RULE.fullmatch(line):
                rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            yield start, rows
            rows = []
    if rows:
        yield start, rows
