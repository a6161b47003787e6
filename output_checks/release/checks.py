"""The automated checks on a request's snapshots: the checks engine over the immutable copies, under the policy
`site_policy.resolve_policy` gives (defaults, the site's file, the project's overrides) and with the project's known
identifiers, run in the checker sandbox (output_checks/sandbox)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from output_checks.release import ledger, workflow
from output_checks.release.ledger import Cell
from output_checks.release.models import ReleaseRequest
from output_checks.release.site_policy import project_overrides, resolve_policy
from output_checks.release.storage import IntegrityError
from output_checks.sandbox.runner import SandboxFile, check_files_sandboxed

if TYPE_CHECKING:
    from output_checks.release.service import Airlock


def run_checks_on_snapshots(airlock: Airlock, request_id: str) -> dict[int, dict[str, Any]]:
    from output_checks.screening.known import build_known_identifiers

    def plan(session):
        request = session.get(ReleaseRequest, request_id)
        files = [(f.id, f.path, f.snapshot, f.sha256) for f in workflow.current_files(request)]
        return request.project, files, project_overrides(session, request.project)

    project, files, overrides = airlock.tx(plan)
    policy = resolve_policy(airlock.paths, overrides)
    known = build_known_identifiers(airlock.registry, airlock.paths, project)
    # Check exactly the bytes that will be reviewed, under the file's own name (the snapshot has none), in the
    # checker sandbox: researcher bytes are never parsed in the airlock's process.
    batch = [
        SandboxFile(airlock.store.verify(snapshot, sha), path, Path(path).name) for _, path, snapshot, sha in files
    ]
    reports = check_files_sandboxed(batch, policy, known)
    results = {file_id: report.to_json() for (file_id, *_), report in zip(files, reports, strict=True)}
    add_differencing(airlock, request_id, project, files, results, policy.min_cell_count)
    return results


def snapshot_tables(airlock: Airlock, project: str, files: list[tuple[int, str, str, str]]) -> dict[int, list[Cell]]:
    """The keyed cells (release/ledger.py) of each table among `files` ((id, path, snapshot, sha256)), read by the
    reviewer's previewer in the checker sandbox: the airlock never parses a researcher's file itself. A table
    whose preview is cut short gets no sums of its rows (they would not be the released totals)."""
    from output_checks.sandbox.runner import preview_sandboxed

    key = ledger.ledger_key(airlock.paths, project)
    out: dict[int, list[Cell]] = {}
    for file_id, path, snapshot, sha in files:
        try:
            source = airlock.store.verify(snapshot, sha)
        except IntegrityError:
            continue  # never keyed: the release that would copy it verifies it again, and aborts with the reason
        shown = preview_sandboxed(source, Path(path).name)
        if shown.kind == "table":
            out[file_id] = ledger.keyed_cells(shown.columns, shown.rows, key, complete=not shown.truncated)
    return out


def add_differencing(
    airlock: Airlock, request_id: str, project: str, files: list[tuple[int, str, str, str]],
    results: dict[int, dict[str, Any]], min_cell_count: int,
) -> None:  # fmt: skip
    """Compare each table of the request with the project's ledger of released tables; a table that differs from
    a released one by a small group gets a review finding naming the earlier release."""
    if not airlock.tx(lambda s: ledger.has_entries(s, project)):
        return
    tables = [f for f in files if results.get(f[0], {}).get("type") in ledger.TABLE_KINDS]
    for file_id, cells in snapshot_tables(airlock, project, tables).items():
        if not cells:
            continue
        released = airlock.tx(lambda s, cells=cells: ledger.released_cells(s, project, cells,
                                                                            exclude_request=request_id))  # fmt: skip
        found = ledger.differencing_findings(cells, released, min_cell_count)
        if found:
            report = results[file_id]
            report["findings"] = [*report["findings"], *found]
            if report["verdict"] == "pass":
                report["verdict"] = "review"
