"""Dummy data to write a federated notebook on: a view built by the real materialiser from a generated cohort, with
the schema of a site's view of the same project, opened and used like one, and marked as dummy."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.federation_benchmarks import notebook_rows
from federation.dummy_view import NOTICE, build_dummy_view
from federation.local_consortium import provision_site
from kernel.errors import EnclaveError
from tests.federation_nodes import PLAN, PROJECT, PURPOSE
from workbench import open_project

pytestmark = pytest.mark.integration


def test_a_dummy_view_has_a_site_views_schema_and_runs_the_notebooks_reading(tmp_path: Path, cohort: Path) -> None:
    dummy = build_dummy_view(tmp_path / "dummy", project=PROJECT, purpose=PURPOSE, patients=60)
    site = provision_site(tmp_path / "site", sorted(p for p in cohort.iterdir() if p.is_dir())[0], PLAN, actor="t")
    real = open_project(path=site.project_data(PROJECT))
    view = open_project(path=dummy)
    assert "Dummy data" in (dummy / NOTICE).read_text()
    assert view.manifest["purpose"] == PURPOSE and view.tables == real.tables
    for table in view.tables:
        mine, theirs = view.clinical(table), real.clinical(table)
        assert list(mine.columns) == list(theirs.columns) and dict(mine.dtypes) == dict(theirs.dtypes)
    rows = notebook_rows(dummy)  # what the example federated notebook computes
    assert len(rows) > 0 and set(rows.columns) == {"age_decades", "male", "current_smoker", "mace"}
    assert not set(view.pseudonyms) & set(real.pseudonyms)
    assert pd.api.types.is_float_dtype(rows["age_decades"])
    with pytest.raises(EnclaveError, match="exists"):
        build_dummy_view(dummy, project=PROJECT, purpose=PURPOSE)
