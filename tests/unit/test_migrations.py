"""The Alembic migrations build exactly the schema the models declare, and downgrade cleanly."""

import ast
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

import kernel.db
from kernel.db import HISTORY, Base, alembic_config, load_tables, make_engine, migration_branches, upgrade
from kernel.migrations import __main__ as migrations_main
from provisioning.backup import current_revision, head_revision, sqlite_revision

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.unit


def test_every_package_with_tables_names_its_models():
    """The registry finds each package's tables through an `enclave.tables` entry point (pyproject.toml)."""
    assert load_tables() == ["airlock", "fabric", "federation", "hub", "kernel"]
    tables = set(Base.metadata.tables)
    assert {"release_requests", "accounts", "audit_events"} <= tables, sorted(tables)


def test_migrations_match_the_models(database_url):
    """On SQLite and on PostgreSQL (tests/postgres.py): types, indexes and constraints as the models say."""
    load_tables()  # every table the migrations must build
    url = database_url
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_is_idempotent_and_downgrade_empties(database_url):
    url = database_url
    upgrade(url)
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    engine = make_engine(url)
    assert inspect(engine).get_table_names() == ["alembic_version"]
    engine.dispose()


def test_each_package_migrates_on_a_branch_of_its_own_in_its_own_folder():
    """One head per package, labelled with its name; every revision after the shared history sits in the folder of
    the branch it belongs to (issue 12: a package adds a migration without editing another's)."""
    branches = migration_branches()
    assert set(branches) == {"kernel", "fabric", "hub", "airlock", "federation"}
    assert branches["hub"] == ROOT / "hub" / "migrations"
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    heads = {label: scripts.get_revision(f"{label}@head") for label in branches}
    assert set(scripts.get_heads()) == {head.revision for head in heads.values()}
    for label, folder in branches.items():
        for revision in scripts.iterate_revisions(f"{label}@head", "0012"):
            if revision.revision == "0012":
                continue
            assert Path(revision.path).parent == folder, (label, revision.revision, revision.path)
            assert label in revision.branch_labels or label in scripts.get_revision(revision.revision).branch_labels
    history = {Path(r.path).parent for r in scripts.walk_revisions() if not any(r.branch_labels)}
    assert history == {HISTORY}


def test_no_migration_imports_an_enclave_package():
    """Migrations are history: they spell out their tables instead of importing models, so none imports upwards."""
    ours = {"kernel", "fabric", "hub", "output_checks", "provisioning", "bench"}
    for folder in [HISTORY, *migration_branches().values()]:
        for path in folder.glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                assert not {n.split(".")[0] for n in names} & ours, f"{path} imports {names}"


def test_a_registry_at_every_head_reads_as_one_revision(database_url):
    url = database_url
    upgrade(url, "0006")
    assert current_revision(url) == "0006"
    upgrade(url)
    heads = "airlock_0001, fabric_0001, federation_0001, hub_0001, kernel_0001"
    assert current_revision(url) == head_revision(url) == heads
    if url.startswith("sqlite"):
        assert sqlite_revision(Path(url.removeprefix("sqlite:///"))) == current_revision(url)


def test_a_new_migration_lands_in_its_package_branch(tmp_path, monkeypatch):
    """`python -m kernel.migrations hub -m ...` writes hub_0002 on the hub's branch, in the hub's folder."""
    folder = tmp_path / "hub-migrations"
    folder.mkdir()
    branches = {**migration_branches(), "hub": folder}
    monkeypatch.setattr(kernel.db, "migration_branches", lambda: branches)
    for path in (ROOT / "hub" / "migrations").glob("hub_*.py"):
        (folder / path.name).write_bytes(path.read_bytes())
    migrations_main.main(["hub", "-m", "nothing changes"])
    (new,) = set(folder.glob("hub_0002_*.py"))
    text = new.read_text()
    assert "revision: str = 'hub_0002'" in text and "down_revision: str | None = 'hub_0001'" in text
