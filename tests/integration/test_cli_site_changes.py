"""Adding a site no longer changes projects silently (issue 16), through the installed `enclave` command: a project of
`datasets: ['*']` keeps the datasets it accepted when a site is added later, `project show` and `materialise` say
what waits and which command decides it, `accept-datasets` (shown first, then asked, audited) or a `--replace` whose
plan lists the new datasets let them in; and `site add` refuses a damaged export with every problem listed, leaving
the registry as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.enclave_cli import enclave

pytestmark = pytest.mark.integration

CHECKERS = "members: [{user: carol, role: output_checker}, {user: dave, role: output_checker}]\n"


def sites_of(cohort):
    return sorted(p for p in cohort.iterdir() if (p / "site.yaml").exists())


def built_from(home: Path) -> set[str]:
    """The sites whose datasets the project's published view was built from (its manifest)."""
    manifest = json.loads((home / "projects" / "star" / "data" / "MANIFEST.json").read_text())
    return {d["site"] for d in manifest["datasets"]}


def test_a_later_site_waits_for_an_admin_before_joining_a_star_project(tmp_path, cohort):
    home = tmp_path / "home"
    first, *_, last = sites_of(cohort)
    enclave(home, "site", "add", str(first), "--quiet")
    spec = tmp_path / "p.yaml"
    spec.write_text("name: star\ntitle: t\npurpose: HMB\ndatasets: ['*']\n" + CHECKERS)
    enclave(home, "project", "create", "-f", str(spec))
    enclave(home, "site", "add", str(last), "--quiet")

    shown = enclave(home, "project", "show", "star").stdout
    assert f"datasets * (accepted: {first.name}-clinical" in shown
    assert "4 dataset(s) registered since wait for a decision" in shown
    assert "enclave project accept-datasets star" in shown and f"{last.name}-clinical" in shown
    built = enclave(home, "project", "materialise", "star", "--quiet").stdout
    assert "note: 4 dataset(s) registered since wait for a decision, not in the view" in built
    assert "enclave project accept-datasets star" in built
    assert built_from(home) == {first.name}

    plan = enclave(home, "project", "create", "-f", str(spec), "--replace", stdin="n\n", ok=False)
    assert f"+ dataset {last.name}-imaging" in plan.stdout and "nothing changed" in plan.stderr
    declined = enclave(home, "project", "accept-datasets", "star", stdin="n\n", ok=False)
    assert f"+ dataset {last.name}-reads" in declined.stdout and "nothing changed" in declined.stderr
    accepted = enclave(home, "project", "accept-datasets", "star", "--yes").stdout
    assert "4 dataset(s) accepted; next: enclave project materialise star" in accepted
    assert "wait for a decision" not in enclave(home, "project", "show", "star").stdout
    assert "no datasets wait" in enclave(home, "project", "accept-datasets", "star").stdout
    assert "note:" not in enclave(home, "project", "materialise", "star", "--quiet").stdout
    assert built_from(home) == {first.name, last.name}
    assert "project.accept_datasets" in enclave(home, "audit", "show", "--project", "star").stdout
    assert "audit log intact" in enclave(home, "audit", "verify").stdout


def test_site_add_refuses_a_damaged_export_listing_every_problem(tmp_path, cohort):
    home = tmp_path / "home"
    source = next(p for p in sites_of(cohort) if "csv-local" in (p / "site.yaml").read_text())
    site = tmp_path / "sites" / source.name
    shutil.copytree(source, site, symlinks=True)
    (site / "clinical" / "patients.csv").write_bytes(b"")
    for bam in (site / "genomics" / "bam").glob("*.bam"):
        bam.unlink()
    result = enclave(home, "site", "add", str(site), "--quiet", ok=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "the export is incomplete or damaged, so nothing was registered; 2 problem(s)" in result.stderr
    assert "patients.csv: not a readable CSV (EmptyDataError)" in result.stderr
    assert "bam: no BAM files" in result.stderr
    assert enclave(home, "site", "list").stdout == "" and enclave(home, "dataset", "list").stdout == ""
