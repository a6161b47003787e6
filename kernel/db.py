"""The registry database: engine, sessions, the one transaction helper every writer uses, and schema migrations
(Alembic). SQLite by default, any SQLAlchemy URL (e.g. PostgreSQL) through `ENCLAVE_DATABASE_URL`.

Migrations: the shared history until each package kept its own (kernel/migrations/history, 0001-0012), then one
Alembic branch per package in that package's folder, labelled with its name and found through the package's
`enclave.migrations` entry point (pyproject.toml), so a package adds a migration without editing this one and no
migration imports a package above the kernel. The registry's revision is then one head per branch."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from kernel.audit_anchors import Anchors
from kernel.config import Paths

MIGRATIONS = Path(__file__).with_name("migrations")
HISTORY = MIGRATIONS / "history"  # every package's migrations before each had a branch of its own
log = logging.getLogger(__name__)
T = TypeVar("T")
RETRIES = 5  # attempts of a transaction that met a concurrent writer
# kernel/audit.py's Session.info keys (spelled here too: audit imports the models, which import this module)
AUDIT_ANCHORS = "enclave.audit_anchors"
AUDIT_APPENDED = "enclave.audit_appended"


TABLES_GROUP = "enclave.tables"  # entry points: each package's models module (pyproject.toml)
MIGRATIONS_GROUP = "enclave.migrations"  # entry points: branch label -> the package holding its migrations


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


def migration_branches() -> dict[str, Path]:
    """Each package's branch of the migrations: its label -> the folder its revisions are in."""
    branches = {}
    for point in entry_points(group=MIGRATIONS_GROUP):
        top, *inner = point.value.split(".")
        spec = find_spec(top)  # a top-level name is found without importing anything
        folder = Path(next(iter(spec.submodule_search_locations or ())), *inner) if spec else None
        if folder is None or not folder.is_dir():
            raise RuntimeError(f"{MIGRATIONS_GROUP} entry point {point.name!r}: no folder for {point.value}")
        branches[point.name] = folder
    return dict(sorted(branches.items()))


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    folders = [HISTORY, *migration_branches().values()]
    config.set_main_option("version_locations", os.pathsep.join(str(f) for f in folders).replace("%", "%%"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "heads") -> None:
    """Bring the schema at `url` up to `revision` (idempotent); by default every branch to its head."""
    command.upgrade(alembic_config(url), revision)


def revision_text(revisions: Iterable[str]) -> str | None:
    """A registry's revision as people read it: its heads (one per branch), sorted; None for none."""
    return ", ".join(sorted(revisions)) or None


def default_anchors(url: str, home: Path | None = None) -> Anchors | None:
    """Where a registry's audit anchors live: beside a SQLite file (its installation's home), in the installation's
    `home` (default: ENCLAVE_HOME) for any other database; none for an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return None
        return Anchors.for_home(Path(parsed.database).parent)
    return Anchors.for_home(home if home is not None else Paths.from_env().home)


class Registry:
    """One registry database: migrated on open, handing out sessions that commit or roll back as a unit. After a
    commit that appended audit events, the committed head of the audit log is anchored (kernel/audit_anchors.py)."""

    def __init__(self, url: str, anchors: Anchors | None = None) -> None:
        self.url = url
        upgrade(url)
        self.engine = make_engine(url)
        self.anchors = anchors if anchors is not None else default_anchors(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, info={AUDIT_ANCHORS: self.anchors})
        event.listen(self._sessions, "after_commit", self._anchor_head)
        event.listen(self._sessions, "after_rollback", _forget_appended)

    @classmethod
    def of(cls, paths: Paths) -> Registry:
        """The registry of the installation at `paths`, its audit anchors in that installation's home (with a
        server database too: `enclave --home` may name another installation than ENCLAVE_HOME)."""
        return cls(paths.database_url, default_anchors(paths.database_url, paths.home))

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
        """One transaction: committed when the block ends, rolled back if it raises. For reading; a change goes
        through `transaction`, which runs it again when another writer got there first."""
        with self._sessions() as session, session.begin():
            yield session

    def transaction(self, change: Callable[[Session], T]) -> T:
        """Run `change` in one transaction, the change and its audit events committed together, and run it again
        (up to RETRIES times, backing off) when a concurrent writer held the database or took the audit sequence
        number it read: the hub's logins, the airlock, the CLI and materialisation write at once. `change` must have
        no effect outside its session, since it may run more than once."""
        for attempt in range(RETRIES):
            try:
                with self.session() as session:
                    return change(session)
            except (IntegrityError, OperationalError) as exc:
                if attempt == RETRIES - 1 or not is_conflict(exc):
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.engine.dispose()


# PostgreSQL's SQLSTATEs for "another transaction was in the way": class 40 (serialization failure, deadlock
# detected: the server rolled this one back) and lock_not_available.
RETRYABLE_SQLSTATES = ("40", "55P03")


def is_conflict(exc: Exception) -> bool:
    """Whether a database error means another writer got there first (retrying may succeed), not a broken rule."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(RETRYABLE_SQLSTATES):
        return True
    text = str(exc).lower()
    return "unique" in text or "locked" in text or "busy" in text or "duplicate" in text


def _forget_appended(session: Session) -> None:
    session.info.pop(AUDIT_APPENDED, None)
