"""Test helper: a real PostgreSQL for the suite (Debian's `postgresql` server binaries), started once per session in
a temporary cluster and stopped at its end, with a fresh database per test (or per module) dropped afterwards.

The cluster is made by `initdb` as an unprivileged account (the server refuses root: as root, the `postgres` system
account Debian's package creates, else `nobody`; otherwise the current user), listens on a Unix socket in its own
0700 folder and on no TCP port, and asks for a password (scram-sha-256) that travels only in a 0600 password file
named by PGPASSFILE, the way libpq finds one: never on a command line, in a URL or in a log. Its settings trade
durability for speed (fsync off): a throwaway cluster.

Missing binaries skip the PostgreSQL half of each parametrised test with the reason, except under CI (the `CI`
variable set), where they fail it: `make test` installs `postgresql` (Makefile DEBIAN_PACKAGES)."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path

SERVERS = Path("/usr/lib/postgresql")  # Debian: one folder per major version, its binaries in NN/bin
SUPERUSER = "enclave"
DATABASES = ("sqlite", "postgresql")  # what the registry tests are parametrised over


def server_binaries() -> Path | None:
    """The newest installed server's bin folder (the version is found here, not assumed), or None."""
    found = [p / "bin" for p in SERVERS.glob("*") if (p / "bin" / "initdb").is_file() and p.name.isdigit()]
    return max(found, key=lambda p: int(p.parent.name)) if found else None


def _server_account() -> str | None:
    """Who runs the server: None for the current user, else an unprivileged account root hands the cluster to."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root with neither a postgres nor a nobody account to run PostgreSQL as")


@dataclass
class PostgresCluster:
    """One running throwaway cluster: its folder (socket, data, log, password file) and the account running it."""

    folder: Path
    binaries: Path
    account: str | None
    password_file: Path
    _names = count(1)

    @property
    def socket_dir(self) -> Path:
        return self.folder

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of `database`: the driver, the superuser, the socket folder; no password."""
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        argv = [str(self.binaries / tool), *args]
        if self.account is not None:
            argv = ["runuser", "-u", self.account, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=self.folder, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n{log}")
        return done

    def admin(self, sql: str) -> None:
        """Run one statement as the superuser on the maintenance database, outside a transaction."""
        import psycopg

        with psycopg.connect(dbname="postgres", user=SUPERUSER, host=str(self.socket_dir), autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, prefix: str = "registry") -> str:
        """A new empty database; its name."""
        name = f"{prefix}_{next(self._names)}_{secrets.token_hex(3)}"
        self.admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        # FORCE: a test that failed may have left a connection open; the database goes regardless
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def database(self, prefix: str = "registry") -> Iterator[str]:
        """A fresh database for the block, dropped after it; yields its URL."""
        name = self.create_database(prefix)
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)


@contextmanager
def postgres_cluster(binaries: Path) -> Iterator[PostgresCluster]:
    """initdb a cluster in a new temporary folder, start it, yield it, stop it and remove the folder. Sets
    PGPASSFILE for the process (and the commands it starts) while the cluster runs."""
    account = _server_account()
    # Outside pytest's temporary tree: that is root's 0700 folder, which the server's account cannot enter.
    folder = Path(tempfile.mkdtemp(prefix="enclave-pg-"))
    password = secrets.token_urlsafe(24)
    password_file = folder / "pgpass"
    server_secret = folder / "initdb-password"
    cluster = PostgresCluster(folder, binaries, account, password_file)
    previous = os.environ.get("PGPASSFILE")
    started = False
    try:
        password_file.write_text(f"*:*:*:{SUPERUSER}:{password}\n")
        password_file.chmod(0o600)  # libpq ignores a password file others can read
        server_secret.write_text(password + "\n")
        server_secret.chmod(0o600)
        if account is not None:
            entry = pwd.getpwnam(account)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
            os.chown(server_secret, entry.pw_uid, entry.pw_gid)
        folder.chmod(0o700)
        cluster.run(
            "initdb", "--pgdata", str(cluster.data), "--username", SUPERUSER, "--pwfile", str(server_secret),
            "--auth-local", "scram-sha-256", "--auth-host", "reject", "--encoding", "UTF8", "--locale", "C",
            "--no-instructions",
        )  # fmt: skip
        server_secret.unlink()
        settings = {
            "listen_addresses": "''",  # no TCP at all: the Unix socket below is the only way in
            "unix_socket_directories": f"'{folder}'",
            "max_connections": "200",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        with (cluster.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        os.environ["PGPASSFILE"] = str(password_file)
        cluster.run("pg_ctl", "--pgdata", str(cluster.data), "--log", str(cluster.log), "--wait", "start")
        started = True
        yield cluster
    finally:
        if started:
            cluster.run("pg_ctl", "--pgdata", str(cluster.data), "--mode", "fast", "--wait", "stop")
        if previous is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = previous
        shutil.rmtree(folder, ignore_errors=True)
