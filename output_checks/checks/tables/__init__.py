"""Tables: CSV/TSV in any common dialect and encoding, Parquet, Excel (hidden sheets too), JSON records and
sites-only VCFs. Three questions, each over every row (streamed, never sampled):

1. Is it individual-level? Pseudonym-shaped ids, identifier columns (NHS number, MRN, name, date of birth, full
   postcode, e-mail, ...), or one row per person (many rows, per-row measurements and exact quasi-identifiers, no
   counts) block.
2. Does it disclose small counts? Statistical disclosure control on count columns (ACRO's rules): cells under the
   policy threshold block, zeros and cells recoverable from totals go to review, suppressed cells ("<10",
   "[REDACTED]") are fine; ACRO's own results.json is accepted as evidence for tables it made.
3. Does any cell hold an identifier? Each column's distinct values are screened once (Presidio and known
   identifiers); numeric columns only where a number could be an identifier; a column stops at its first block.

The package splits by concept: `readers` (formats), `profile` (what each column holds), `persons` (question 1, with
each column's role in `person_columns` and genotype columns in `sample_columns`), `counts` (question 2), `acro`
(ACRO's evidence); this module drives them over one table.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pandas as pd

from kernel.digests import sha256_file
from output_checks.checks.base import Context, Subject, finding
from output_checks.checks.tables.acro import acro_evidence, is_acro_record
from output_checks.checks.tables.counts import count_rules
from output_checks.checks.tables.persons import individual_level
from output_checks.checks.tables.profile import TableState, profile_chunk, screen_values
from output_checks.checks.tables.readers import READERS, TableSource, json_records, rows_to_chunks
from output_checks.checks.tables.regressions import is_coefficient_table, regression_rules
from output_checks.checks.tables.roles import count_columns
from output_checks.checks.tables.statistics import statistic_rules
from output_checks.screening.text import Segment
from output_checks.verdicts import Finding, Verdict

__all__ = ["READERS", "TableCheck", "TableSource", "acro_evidence", "check_rows", "check_table", "json_records"]


def size_limits(state: TableState) -> Iterator[Finding]:
    policy = state.ctx.policy
    if state.rows > policy.max_table_rows:
        yield finding(
            "tables",
            Verdict.REVIEW,
            f"{state.rows:,} rows: more than the policy's {policy.max_table_rows:,} per table",
            state.location,
        )


def check_table(
    source: TableSource,
    location: str,
    ctx: Context,
    acro: str | None = None,
    *,
    infer_crosstab: bool = True,
    hint: str = "",
    path: Path | None = None,
) -> Iterator[Finding]:
    state = TableState(
        source.name, location, ctx, infer_crosstab=infer_crosstab, declared_counts=source.count_columns, hint=hint
    )
    if source.name:  # a sheet title is text the file controls
        state.findings.extend(ctx.screen([Segment(location, source.name)], "identifiers"))
    if source.note:
        state.findings.append(finding("tables", Verdict.REVIEW, source.note, location))
    keep = ctx.policy.max_table_rows + 1
    for chunk in source.chunks:
        chunk = chunk.reset_index(drop=True)
        if state.head_rows < keep:
            state.head.append(chunk.iloc[: keep - state.head_rows])
            state.head_rows += min(len(chunk), keep - state.head_rows)
        new: dict[str, list[tuple[int, str]]] = {}
        # Headers are text too: a column named after a patient is a finding.
        if state.rows == 0:
            header = " | ".join(str(c) for c in chunk.columns)
            flagged = list(ctx.screen([Segment(state.where() or "header", header)], "identifiers"))
            state.header_flagged = bool(flagged)
            state.findings.extend(flagged)
        profile_chunk(state, chunk, new)
        screen_values(state, new)
        yield from state.findings
        state.findings.clear()
    yield from individual_level(state)
    yield from size_limits(state)
    if "tables" in ctx.policy.checks and state.head:
        frame = pd.concat(state.head, ignore_index=True).astype(str)
        yield from count_rules(state, frame, acro)
        yield from _model_and_statistics(state, frame, path)


def _model_and_statistics(state: TableState, frame: pd.DataFrame, path: Path | None) -> Iterator[Finding]:
    """A coefficient table is judged by its model's degrees of freedom; other statistics by their contributors."""
    yield from regression_rules(state, frame, path)
    if is_coefficient_table(state, frame):
        return
    yield from statistic_rules(state, frame, count_columns(state, frame), set())


def check_rows(rows: list[list[str]], location: str, ctx: Context, *, infer_crosstab: bool = True) -> Iterator[Finding]:
    """A table held as rows of strings (from HTML, markdown or a notebook output)."""
    yield from check_table(TableSource("", rows_to_chunks(rows)), location, ctx, infer_crosstab=infer_crosstab)


class TableCheck:
    name: ClassVar[str] = "tables"
    kinds: ClassVar[frozenset[str] | None] = frozenset(READERS)

    def run(self, subject: Subject, ctx: Context) -> Iterator[Finding]:
        acro = None
        # ACRO's record lies beside the file itself (the runner may hand the file over through a link to it).
        if subject.depth == 0 and (subject.path.resolve().parent / "results.json").is_file():
            if is_acro_record(subject.path):
                return  # ACRO's own record of the session, not a table: the acro check sends it to a reviewer
            status = acro_evidence(subject.path, sha256_file(subject.path))
            # ACRO's pass adds nothing to Enclave's own rules (they still run); its fail or review is kept.
            acro = status if status in ("fail", "review") else None
        for source in READERS[subject.kind](subject.path):
            yield from check_table(
                source,
                source.name,
                ctx,
                acro=acro,
                hint=subject.path.name,
                path=subject.path if subject.depth == 0 else None,
            )
