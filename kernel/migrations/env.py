"""Alembic environment for the registry database (run through kernel.db.upgrade, or `alembic` for development)."""

from alembic import context
from sqlalchemy import pool

from kernel.db import Base, load_tables, make_engine

config = context.config
load_tables()  # every package's tables (fabric's, the hub's accounts, the airlock's), through their entry points
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        # batch mode so ALTERs work on SQLite as on PostgreSQL
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
