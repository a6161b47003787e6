"""A task's pooled results at the coordinator: what each site released, read by the kind its task declared, pooled
(federation/pooling.py, federation/pooled_counts.py) and written as files for the researcher, each carrying the
task's coverage ("4 of 5 sites contributed; not included: …"), so that a site that refused, failed or was too small
is named, never silently left out.

Declared kinds and what pooling makes of them:

- `estimates` (`term, estimate, std_error, n`): fixed- and random-effects meta-analysis per term, a table and one
  forest plot per term;
- `counts` (one row a cell: one or two label columns and `n`, blank where the site suppressed it): pooled counts whose
  suppression stays safe across sites;
- `table`, `figure`, `text`: not pooled; each site's released file is kept as it came.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd

from federation.coverage import Coverage
from federation.forest_plot import forest_plot
from federation.pooled_counts import pool_counts
from federation.pooling import PoolingError, SiteEstimate, meta_analyse, read_estimates_table
from federation.states import TaskState
from federation.tasks import DeclaredOutput

COUNT_VALUE = "n"
MAX_TABLE_BYTES = 1 << 20


@dataclass
class PooledResult:
    """The files pooling made (name -> bytes) and the coverage they carry."""

    coverage: Coverage
    files: dict[str, bytes] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # an output that could not be pooled: its kind and why


def coverage_of(states: Mapping[str, tuple[str, str]], with_output: set[str]) -> Coverage:
    """The coverage of one output from each site's (state, reason), in the consortium's order: a site contributed
    when it released the output; released without it, its checkers withheld it."""
    contributed, refused, failed, pending = [], {}, {}, {}
    for site, (state, reason) in states.items():
        if site in with_output:
            contributed.append(site)
        elif state == TaskState.RELEASED:
            refused[site] = "withheld-by-site-checkers"
        elif state == TaskState.REFUSED:
            refused[site] = reason or "refused"
        elif state in (TaskState.FAILED, TaskState.EXPIRED):
            failed[site] = reason or state
        else:
            pending[site] = state
    return Coverage.of(contributed, refused=refused, failed=failed, pending=pending, order=list(states))


def pool_task(
    released: Mapping[str, Mapping[str, bytes]],
    outputs: list[DeclaredOutput],
    states: Mapping[str, tuple[str, str]],
    *,
    min_cell: int = 10,
) -> PooledResult:
    """Pool every declared output over the sites that released it (`released`: site -> path -> bytes; `states`:
    every site of the task, in the consortium's order, -> (state, reason))."""
    overall = coverage_of(states, {site for site, files in released.items() if files})
    result = PooledResult(coverage=overall)
    summary: dict[str, object] = {"coverage": overall.text(), "sites": _sites(overall), "outputs": {}}
    for output in outputs:
        having = {site: files[output.path] for site, files in released.items() if output.path in files}
        coverage = coverage_of(states, set(having))
        stem = PurePosixPath(output.path).stem
        entry: dict[str, object] = {"kind": output.kind, "coverage": coverage.text(), "sites": _sites(coverage)}
        try:
            if not having:
                raise PoolingError("nothing-released", "no site released it")
            if output.kind == "estimates":
                entry["files"] = _pool_estimates(result, stem, having, coverage)
            elif output.kind == "counts":
                entry["files"] = _pool_counts(result, stem, having, coverage, min_cell)
            else:
                entry["files"] = _keep(result, output.path, having)
        except PoolingError as exc:
            entry["problem"] = str(exc)
            result.problems.append(f"{output.path} ({output.kind}): {exc}")
        summary["outputs"][output.path] = entry  # type: ignore[index]
    result.files["pooled.json"] = json.dumps(summary, indent=2).encode()
    return result


def _sites(coverage: Coverage) -> dict[str, dict[str, str]]:
    return {name: {"status": o.status.value, "reason": o.reason} for name, o in coverage.sites.items()}


def _pool_estimates(result: PooledResult, stem: str, having: Mapping[str, bytes], coverage: Coverage) -> list[str]:
    estimates: dict[str, SiteEstimate] = {}
    with tempfile.TemporaryDirectory() as folder:
        for site, content in having.items():
            path = Path(folder) / f"{site}.csv"
            path.write_bytes(content)
            estimates[site] = read_estimates_table(path)
    pooled = meta_analyse(estimates, coverage=coverage)
    table = pooled.table()
    table.insert(0, "coverage", coverage.text())
    names = [f"pooled_{stem}.csv"]
    result.files[names[0]] = table.to_csv(index=False).encode()
    for term in pooled.terms:
        figure = forest_plot(pooled, term)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
        name = f"forest_{stem}_{_safe(term)}.png"
        result.files[name] = buffer.getvalue()
        names.append(name)
    return names


def _pool_counts(
    result: PooledResult, stem: str, having: Mapping[str, bytes], coverage: Coverage, min_cell: int
) -> list[str]:
    tables = {}
    for site, content in having.items():
        if len(content) > MAX_TABLE_BYTES:
            raise PoolingError("too-large", f"site {site}: a count table is at most {MAX_TABLE_BYTES} bytes")
        try:
            frame = pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False)
        except (ValueError, UnicodeDecodeError):
            raise PoolingError("bad-table", f"site {site}: not a CSV table") from None
        if COUNT_VALUE not in frame.columns:
            raise PoolingError("bad-table", f"site {site}: a count table has a column {COUNT_VALUE!r}")
        tables[site] = frame
    labels = [c for c in next(iter(tables.values())).columns if c != COUNT_VALUE]
    if any(list(t.columns) != list(next(iter(tables.values())).columns) for t in tables.values()):
        raise PoolingError("bad-table", "the sites' count tables do not have the same columns")
    pooled = pool_counts(tables, index=labels, value=COUNT_VALUE, min_cell=min_cell, coverage=coverage)
    cells, margins = pooled.cells.copy(), pooled.margins.copy()
    cells.insert(0, "coverage", coverage.text())
    names = [f"pooled_{stem}.csv", f"pooled_{stem}_totals.csv"]
    result.files[names[0]] = cells.to_csv(index=False).encode()
    result.files[names[1]] = margins.to_csv(index=False).encode()
    return names


def _keep(result: PooledResult, path: str, having: Mapping[str, bytes]) -> list[str]:
    names = []
    for site, content in having.items():
        name = f"{site}/{path}"
        result.files[name] = content
        names.append(name)
    return names


def _safe(term: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in term)[:60] or "term"
