"""The automated checks on a request's snapshots, as functions of what they are given: the verified snapshots, the
policy and the project's known identifiers in, each file's report out (`check_snapshots`); the keyed cells of its
tables (`table_cells`) and the differencing findings against the project's release ledger (`add_differencing`).
Researcher bytes are parsed only in the checker sandbox (output_checks/sandbox). The business layer
(release/airlock.py) reads what they need from the registry and records what they return."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from output_checks.policy import Policy
from output_checks.release import ledger
from output_checks.release.ledger import Cell, Released
from output_checks.sandbox.runner import SandboxFile, check_files_sandboxed

if TYPE_CHECKING:
    from output_checks.screening.known import KnownIdentifiers


@dataclass(frozen=True)
class SnapshotToCheck:
    """One file of a request: its record's id, its path in the request, and its snapshot's bytes (verified)."""

    file_id: int
    path: str
    source: Path


def check_snapshots(
    snapshots: Sequence[SnapshotToCheck], policy: Policy, known: KnownIdentifiers | None
) -> dict[int, dict[str, Any]]:
    """Each snapshot's report (the engine's FileReport JSON) by file id, checked under the file's own name (the
    snapshot has none) in the checker sandbox."""
    batch = [SandboxFile(s.source, s.path, Path(s.path).name) for s in snapshots]
    reports = check_files_sandboxed(batch, policy, known)
    return {s.file_id: report.to_json() for s, report in zip(snapshots, reports, strict=True)}


def table_cells(snapshots: Iterable[SnapshotToCheck], key: bytes) -> dict[int, list[Cell]]:
    """The keyed cells (release/ledger.py) of each table among `snapshots`, read by the reviewer's previewer in the
    checker sandbox. A table whose preview is cut short gets no sums of its rows (they would not be the released
    totals)."""
    from output_checks.sandbox.runner import preview_sandboxed

    out: dict[int, list[Cell]] = {}
    for s in snapshots:
        shown = preview_sandboxed(s.source, Path(s.path).name)
        if shown.kind == "table":
            out[s.file_id] = ledger.keyed_cells(shown.columns, shown.rows, key, complete=not shown.truncated)
    return out


def tables_among(results: Mapping[int, dict[str, Any]]) -> set[int]:
    """The file ids whose report says they are a table (the kinds the ledger keeps)."""
    return {file_id for file_id, report in results.items() if report.get("type") in ledger.TABLE_KINDS}


def add_differencing(
    report: dict[str, Any], cells: list[Cell], released: dict[Released, dict[tuple[str, str], float]],
    min_cell_count: int,
) -> None:  # fmt: skip
    """A table that differs from a released one by a small group gets a review finding naming the earlier release
    (and its verdict is raised from pass to review)."""
    found = ledger.differencing_findings(cells, released, min_cell_count)
    if found:
        report["findings"] = [*report["findings"], *found]
        if report["verdict"] == "pass":
            report["verdict"] = "review"
