"""The Alembic migrations build exactly the schema the models declare, and downgrade cleanly."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from fabric.db import Base, alembic_config, load_tables, make_engine, upgrade

pytestmark = pytest.mark.unit


def test_every_package_with_tables_names_its_models():
    """The registry finds each package's tables through an `enclave.tables` entry point (pyproject.toml)."""
    assert load_tables() == ["airlock", "fabric", "hub"]
    tables = set(Base.metadata.tables)
    assert {"release_requests", "accounts", "audit_events"} <= tables, sorted(tables)


def test_migrations_match_the_models(tmp_path):
    load_tables()  # every table the migrations must build
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
