"""Agreement with ACRO's rules without ACRO's help: tables made with ACRO's own functions (suppression off) from
generated data, saved as a researcher saves them and checked by Enclave alone (no results.json beside them).

Enclave must be at least as strict as ACRO: no table ACRO fails may pass (review is enough where the file cannot
show what ACRO saw, e.g. a mean with no count beside it). Tables ACRO passes should mostly pass; the rate is
reported, and counts ACRO passes must never be blocked (a clean aggregate blocked is a false alarm).
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import pytest

from output_checks.engine import check_paths
from output_checks.policy import load_policy
from tests.airlock_corpus.acro_tables import AcroTable, build_acro_tables

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SHOWS_N = ("printed summary", "ACRO's model-info table")


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> list[tuple[AcroTable, str, list[str]]]:
    pytest.importorskip("acro")
    folder = tmp_path_factory.mktemp("acro-tables")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = build_acro_tables(folder)
    assert not (folder / "results.json").exists()
    report = check_paths([folder], load_policy(), None, workers=1)
    by_name = {Path(f.path).name: f for f in report.files}
    out = []
    for table in tables:
        entry = by_name[table.name]
        findings = [f"{f.verdict} {f.check}: {f.message} @ {f.location}" for f in entry.findings]
        out.append((table, str(entry.verdict), findings))
    return out


def describe(rows) -> str:
    lines = []
    for table, verdict, findings in rows:
        lines.append(f"  {table.name} [{table.kind}; {table.layout}] ACRO {table.acro_status}, Enclave {verdict}")
        lines += [f"      - {f}" for f in findings[:4]] or ["      (no findings)"]
    return "\n".join(lines)


def test_both_directions_are_exercised(checked):
    statuses = Counter((t.kind, t.acro_status) for t, _, _ in checked)
    for kind in ("counts", "statistics", "regression"):
        assert statuses[(kind, "fail")] >= 2 and statuses[(kind, "pass")] >= 2, statuses


def test_no_table_acro_fails_passes(checked):
    wrong = [row for row in checked if row[0].acro_status != "pass" and row[1] == "pass"]
    failed = sum(t.acro_status != "pass" for t, _, _ in checked)
    assert not wrong, f"{len(wrong)} of {failed} tables ACRO fails passed Enclave alone:\n{describe(wrong)}"


def test_counts_acro_passes_are_not_blocked(checked):
    wrong = [row for row in checked if row[0].acro_status == "pass" and row[0].kind == "counts" and row[1] == "block"]
    assert not wrong, f"clean count tables blocked:\n{describe(wrong)}"


def test_tables_acro_passes_mostly_pass(checked):
    clean = [row for row in checked if row[0].acro_status == "pass"]
    passed = [row for row in clean if row[1] == "pass"]
    by_kind = Counter((t.kind, v) for t, v, _ in clean)
    print(f"\nEnclave passed {len(passed)} of {len(clean)} tables ACRO passes: {dict(by_kind)}")
    # Means and SDs with no count beside them, and coefficient tables with no N or df, are review by design (what
    # ACRO saw cannot be known from the file); counts, and models whose file states their observations, should pass.
    judgeable = [row for row in clean if row[0].kind == "counts" or row[0].layout in SHOWS_N]
    rate = sum(row[1] == "pass" for row in judgeable) / len(judgeable)
    assert rate >= 0.7, (
        f"only {rate:.0%} of the count tables and model summaries ACRO passes pass Enclave:\n"
        + describe([row for row in judgeable if row[1] != "pass"])
    )
