"""The provisioning steps behind `enclave demo` are idempotent: a second run changes nothing it need not."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from fabric.models import ConsentEvent, Dataset, Patient, ProjectBuild
from kernel.models import AuditEvent
from provisioning import steps
from tests.provisioned import provision

pytestmark = pytest.mark.integration


def counts(env) -> dict[str, int]:
    with env.registry.session() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (Patient, Dataset, ConsentEvent, ProjectBuild)
        }


def test_running_the_steps_twice_records_nothing_new_but_a_fresh_build(tmp_path, cohort, database_url):
    """On SQLite and on PostgreSQL (tests/postgres.py)."""
    env = provision(tmp_path / "home", cohort, {"cvd": "DS-CVD"}, database_url=database_url)
    before = counts(env)
    assert steps.ensure_sites(env.registry, env.paths, actor="t").detail.startswith("3 sites registered")
    assert steps.ensure_consent(env.registry, env.paths, actor="t").detail == "0 new consent events recorded"
    _name, result = steps.ensure_project(env.registry, tmp_path / "home" / "cvd.yaml", actor="t")
    assert result.detail == "cvd up to date"
    after = counts(env)
    assert after == before
    with env.registry.session() as session:
        actions = [a for (a,) in session.execute(select(AuditEvent.action).order_by(AuditEvent.seq))]
    # the re-run verified the datasets (unchanged checksums) rather than re-registering them
    assert actions[-1] == "consent.import" and "dataset.verify" in actions
    env.registry.close()


def test_a_different_cohort_is_not_silently_overwritten(tmp_path, cohort):
    from kernel.config import Paths
    from kernel.errors import EnclaveError

    paths = Paths(tmp_path / "home")
    paths.sites.mkdir(parents=True)
    (paths.sites / "someone-elses-site").mkdir()
    with pytest.raises(EnclaveError, match="holds another cohort"):
        steps.ensure_cohort(paths, patients=10, sites=1, seed=1, progress=False)


def test_example_notebooks_are_copied_where_missing_and_never_over_a_researchers_copy(tmp_path):
    from kernel.config import Paths

    paths = Paths(tmp_path)
    home = paths.project_home("p", "alice")
    home.mkdir(parents=True)
    examples = sorted(steps.EXAMPLES.glob("*.ipynb"))
    assert examples, "notebooks/ has no example"

    assert steps.ensure_example_notebooks(paths, "p", ["alice", "bob"]).detail.startswith(f"{len(examples)} ")
    copy = home / examples[0].name
    assert copy.read_bytes() == examples[0].read_bytes() and copy.stat().st_uid == home.stat().st_uid
    copy.write_text("alice's own version")
    assert steps.ensure_example_notebooks(paths, "p", ["alice"]).detail.startswith("0 ")
    assert copy.read_text() == "alice's own version"
