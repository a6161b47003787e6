"""The registry database: engine, sessions and schema migrations (Alembic). SQLite by default, any SQLAlchemy URL
(e.g. PostgreSQL) through `ENCLAVE_DATABASE_URL`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from fabric.audit_anchors import Anchors

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger(__name__)
# fabric/audit.py's Session.info keys (spelled here too: audit imports the models, which import this module)
AUDIT_ANCHORS = "enclave.audit_anchors"
AUDIT_APPENDED = "enclave.audit_appended"


TABLES_GROUP = "enclave.tables"  # entry points: each package's models module (pyproject.toml)


class Base(DeclarativeBase):
    pass


def load_tables() -> list[str]:
    """Every package's tables registered on Base.metadata, by importing the models module each package names as an
    `enclave.tables` entry point (a package adds its tables without editing this one, which imports none of them);
    the names of the packages found."""
    found = sorted(entry_points(group=TABLES_GROUP), key=lambda point: point.name)
    for point in found:
        point.load()
    return [point.name for point in found]


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers (the CLI, the hub) proceed while a long materialisation writes; foreign keys are off by
    # default in SQLite and the registry relies on them.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at `url` up to `revision` (idempotent)."""
    command.upgrade(alembic_config(url), revision)


def default_anchors(url: str) -> Anchors | None:
    """Where a registry's audit anchors live: beside a SQLite file (its installation's home), in ENCLAVE_HOME for
    any other database; none for an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return None
        return Anchors.for_home(Path(parsed.database).parent)
    from fabric.config import Paths

    return Anchors.for_home(Paths.from_env().home)


class Registry:
    """One registry database: migrated on open, handing out sessions that commit or roll back as a unit. After a
    commit that appended audit events, the committed head of the audit log is anchored (fabric/audit_anchors.py)."""

    def __init__(self, url: str, anchors: Anchors | None = None) -> None:
        self.url = url
        upgrade(url)
        self.engine = make_engine(url)
        self.anchors = anchors if anchors is not None else default_anchors(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, info={AUDIT_ANCHORS: self.anchors})
        event.listen(self._sessions, "after_commit", self._anchor_head)
        event.listen(self._sessions, "after_rollback", _forget_appended)

    def _anchor_head(self, session: Session) -> None:
        if not session.info.pop(AUDIT_APPENDED, False) or self.anchors is None:
            return
        # Read the head back as committed (on a connection of its own: this session's transaction is over), so a
        # rolled-back event can never be anchored, and another process's later commit is anchored as it stands.
        try:
            with self.engine.connect() as connection:
                head = connection.execute(text("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")).first()
            if head is not None:
                self.anchors.write(head[0], head[1])
        except Exception as exc:  # the change is committed; a missed anchor only shows as unanchored entries
            log.warning("could not anchor the audit log's head: %s", type(exc).__name__)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()


def _forget_appended(session: Session) -> None:
    session.info.pop(AUDIT_APPENDED, None)
