"""The Alembic migrations build exactly the schema the models declare, and downgrade cleanly."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import fabric.models  # noqa: F401  (every table the migrations must build)
import hub.models  # noqa: F401
import output_checks.release.models  # noqa: F401
from fabric.db import Base, alembic_config, make_engine, upgrade

pytestmark = pytest.mark.unit


def test_migrations_match_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_is_idempotent_and_downgrade_empties(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    upgrade(url)
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    engine = make_engine(url)
    assert inspect(engine).get_table_names() == ["alembic_version"]
    engine.dispose()
