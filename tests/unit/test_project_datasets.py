"""`datasets: ['*']` is a decision, not a standing order (issue 16): a project takes the datasets registered when it is
created or replaced; one registered later waits, out of the view, until an admin accepts it (accept_datasets, or a
replace whose plan shows it), each acceptance audited; registries upgraded to 0008 keep every dataset a '*' project
had (a real registry database; dataset rows are written directly, no site files are read)."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from fabric.materialise.plan import plan_build
from fabric.models import Dataset, Project, Site
from fabric.projects import (
    ProjectSpec,
    accept_datasets,
    create_project,
    get_project,
    plan_replacement,
    project_datasets,
)
from kernel import audit
from kernel.config import Paths
from kernel.db import Registry, make_engine, upgrade
from kernel.errors import EnclaveError

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 7, 12, 0)
CHECKERS = [{"user": "carol", "role": "output_checker"}, {"user": "dave", "role": "output_checker"}]


def spec(datasets=("*",), **changes) -> ProjectSpec:
    fields = {"name": "heart", "title": "Heart", "purpose": "DS-CVD", "datasets": list(datasets), "members": CHECKERS}
    return ProjectSpec.model_validate({**fields, **changes})


def register(registry: Registry, *ids: str) -> None:
    with registry.session() as session:
        if session.get(Site, "s1") is None:
            session.add(Site(id="s1", name="s1", clinical_format="csv-local", root="/nonexistent", registered_at=NOW))
        for dataset_id in ids:
            session.add(Dataset(id=dataset_id, site_id="s1", modality="clinical", format="csv-local",
                                location=f"/nonexistent/{dataset_id}", checksum="0" * 64, files=1, bytes=1,
                                registered_at=NOW))  # fmt: skip


@pytest.fixture
def paths(tmp_path) -> Paths:
    return Paths(tmp_path)


@pytest.fixture
def registry(paths):
    registry = Registry(paths.database_url)
    register(registry, "a-clinical", "b-clinical")
    with registry.session() as session:
        create_project(session, spec(), actor="admin")
    yield registry
    registry.close()


def chosen(registry):
    with registry.session() as session:
        return project_datasets(session, get_project(session, "heart"))


def built_from(registry, paths) -> list[str]:
    return [d.id for d in plan_build(registry, paths, "heart").datasets]


def test_a_dataset_registered_later_waits_out_of_the_view(registry, paths):
    register(registry, "c-clinical")
    assert chosen(registry).accepted == ["a-clinical", "b-clinical"]
    assert chosen(registry).waiting == ["c-clinical"]
    assert built_from(registry, paths) == ["a-clinical", "b-clinical"]  # before issue 16: c joined silently


def test_accepting_lets_it_in_and_is_audited(registry, paths):
    register(registry, "c-clinical")
    with registry.session() as session:
        assert accept_datasets(session, "heart", actor="admin", expected=["c-clinical"]) == ["c-clinical"]
    assert chosen(registry).waiting == [] and built_from(registry, paths) == ["a-clinical", "b-clinical", "c-clinical"]
    with registry.session() as session:
        event = audit.events(session, project="heart")[-1]
        assert event.action == "project.accept_datasets" and event.detail["datasets"] == ["c-clinical"]
        assert accept_datasets(session, "heart", actor="admin") == []  # nothing waits: nothing recorded
        assert audit.events(session, project="heart")[-1].seq == event.seq


def test_acceptance_of_a_list_shown_earlier_is_refused_once_it_changed(registry):
    register(registry, "c-clinical")
    shown = chosen(registry).waiting
    register(registry, "d-clinical")
    with registry.session() as session, pytest.raises(EnclaveError, match="changed since they were shown"):
        accept_datasets(session, "heart", actor="admin", expected=shown)
    assert chosen(registry).waiting == ["c-clinical", "d-clinical"]


def test_a_replace_shows_the_new_dataset_in_its_plan_and_accepts_it(registry, paths):
    register(registry, "c-clinical")
    with registry.session() as session:
        plan = plan_replacement(session, spec())
        assert plan.datasets_added == ["c-clinical"] and plan.lines() == ["+ dataset c-clinical"]
        create_project(session, spec(), actor="admin", replace=True, expected=plan)
        event = audit.events(session, project="heart")[-1]
    assert event.action == "project.update" and event.detail["datasets_added"] == ["c-clinical"]
    assert built_from(registry, paths) == ["a-clinical", "b-clinical", "c-clinical"]
    with registry.session() as session:
        assert plan_replacement(session, spec()).empty


def test_switching_between_a_list_and_every_dataset_is_a_change(registry):
    with registry.session() as session:
        plan = plan_replacement(session, spec(["a-clinical", "b-clinical"]))
        assert plan.lines() == ["~ datasets: ['*'] -> ['a-clinical', 'b-clinical']"]
        create_project(session, spec(["a-clinical"]), actor="admin", replace=True)
        assert get_project(session, "heart").datasets_accepted is None
    register(registry, "c-clinical")
    assert chosen(registry).accepted == ["a-clinical"] and chosen(registry).waiting == []
    with registry.session() as session:
        assert plan_replacement(session, spec()).lines() == [
            "+ dataset b-clinical", "+ dataset c-clinical", "~ datasets: ['a-clinical'] -> ['*']",
        ]  # fmt: skip


def test_an_upgraded_registry_keeps_every_dataset_its_star_projects_had(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    upgrade(url, "0007")
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO sites (id, name, clinical_format, root, registered_at) "
                "VALUES ('s1', 's1', 'csv-local', '/x', '2026-01-01')"
            )
        )
        for dataset_id in ("b-clinical", "a-clinical"):
            connection.execute(
                sa.text(
                    "INSERT INTO datasets VALUES (:id, 's1', 'clinical', 'csv-local', '/x', :c, 1, 1, '2026-01-01')"
                ),
                {"id": dataset_id, "c": "0" * 64},
            )
        for name, datasets in (("star", '["*"]'), ("listed", '["a-clinical"]')):
            connection.execute(
                sa.text("INSERT INTO projects VALUES (:n, 't', 'HMB', 0, :s, '2026-01-01')"),
                {"n": name, "s": f'{{"name": "{name}", "datasets": {datasets}}}'},
            )
    engine.dispose()
    upgrade(url)
    registry = Registry(url)
    with registry.session() as session:
        assert session.get(Project, "star").datasets_accepted == ["a-clinical", "b-clinical"]
        assert session.get(Project, "listed").datasets_accepted is None
    registry.close()
