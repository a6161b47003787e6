"""`enclave backup`: one self-describing, root-only folder of everything an installation cannot rebuild, and the
manifest that lets `enclave restore` (provisioning/restore.py) trust it.

In the backup, in this order: the audit log's anchors, the registry (SQLite's online backup API, or `pg_dump` for
PostgreSQL), `secrets/`, the airlock's stores, the files of each project's store (outputs, homes, MLflow), and each
registered site's export (from wherever it was registered) unless left out. Every file's SHA-256 and size, the
Enclave version, the registry's Alembic revision and the time go in `MANIFEST.json`. Project views, the hub's state
and the workspace environment are rebuilt, not backed up. The backup is a folder, not an archive: each file can be
checked and restored alone, a site's backup system can copy it incrementally, and no second copy is needed to pack.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath

from sqlalchemy import text
from sqlalchemy.engine import make_url
from tqdm import tqdm

from kernel import audit
from kernel.config import Paths
from kernel.db import Registry, alembic_config, make_engine, revision_text
from kernel.errors import EnclaveError
from provisioning import backup_files as files

FORMAT = "enclave-backup/1"
MANIFEST = "MANIFEST.json"
REGISTRY_SQLITE = "registry.sqlite"
REGISTRY_PGDUMP = "registry.pgdump"
ANCHORS = "audit"  # the audit log's anchors (kernel/audit_anchors.py): copied before the registry, see below
STORE_SKIP = ("lost+found",)  # ext4's own folder at the root of a project's file system
LEFT_OUT = (
    "project views (rebuilt by `enclave project materialise` from the sites and the keys)",
    "the hub's state (sessions, tokens, cookie secret: made afresh by `enclave up`)",
    "the workspace environment (rebuilt by `enclave workspace build`)",
)


class BackupError(EnclaveError):
    """A backup that cannot be written or trusted, or a home it cannot be restored into."""


@dataclass
class Part:
    files: int = 0
    bytes: int = 0


@dataclass
class BackupReport:
    dest: Path
    database: str
    revision: str | None
    sites: bool
    parts: dict[str, Part] = field(default_factory=dict)
    skipped: int = 0  # sockets, fifos and files that vanished while the backup ran
    missing_sites: list[str] = field(default_factory=list)  # registered sites whose export folder is gone
    manifest_sha256: str = ""

    @property
    def files(self) -> int:
        return sum(part.files for part in self.parts.values())

    @property
    def bytes(self) -> int:
        return sum(part.bytes for part in self.parts.values())


def enclave_version() -> str:
    try:
        return version("enclave")
    except PackageNotFoundError:
        return "unknown"


def database_kind(url: str) -> str:
    return make_url(url).get_backend_name()


def current_revision(url: str) -> str | None:
    """The registry's Alembic revision as it stands, without migrating it (None: no registry there)."""
    from alembic.runtime.migration import MigrationContext

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not (parsed.database and Path(parsed.database).is_file()):
        return None
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return revision_text(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()


def head_revision(url: str) -> str | None:
    """The revision this Enclave's migrations end at: every branch's head."""
    from alembic.script import ScriptDirectory

    return revision_text(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def sqlite_revision(path: Path) -> str | None:

    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError:
        return None
    finally:
        connection.close()
    return revision_text(row[0] for row in rows)


def postgres_environment(url: str) -> dict[str, str]:
    """libpq's variables for `url`: the password travels in the environment, never on a command line. A server on a
    Unix socket is named by the URL's `host` (and `port`) query parameters, as psycopg reads them
    (`postgresql+psycopg://enclave@/enclave?host=/run/postgresql`)."""
    parsed = make_url(url)
    env = dict(os.environ)

    def query(name: str) -> str | None:
        value = parsed.query.get(name)
        return value[-1] if isinstance(value, tuple) else value

    for name, value in (("PGHOST", parsed.host or query("host")), ("PGPORT", parsed.port or query("port")),
                        ("PGUSER", parsed.username), ("PGPASSWORD", parsed.password),
                        ("PGDATABASE", parsed.database)):  # fmt: skip
        if value is not None:
            env[name] = str(value)
    return env


def postgres_tool(name: str) -> str:
    tool = shutil.which(name)
    if tool is None:
        raise BackupError(
            f"{name} not found: the registry is on PostgreSQL (ENCLAVE_DATABASE_URL) and {name} comes with "
            "PostgreSQL's client tools (Debian: postgresql-client, the server's major version or newer); install "
            "them and run this again"
        )
    return tool


def _pg_dump(url: str, dest: Path) -> None:
    argv = [postgres_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "--file", str(dest)]
    done = subprocess.run(argv, env=postgres_environment(url), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise BackupError(f"pg_dump failed: {last}")
    os.chmod(dest, 0o600)


@dataclass(frozen=True)
class Source:
    """One tree of the home that goes into the backup, and where in the backup it goes."""

    part: str
    root: Path
    prefix: PurePosixPath
    skip_top: tuple[str, ...] = ()


def sources(paths: Paths) -> list[Source]:
    """What the backup takes after the registry, in the order it takes it (keys after the registry, so every
    project in the copied registry has its key), but the sites' exports."""
    found = [Source("secrets", paths.secrets, PurePosixPath("secrets")),
             Source("airlock", paths.airlock, PurePosixPath("airlock")),
             Source("federation", paths.federation, PurePosixPath("federation"))]  # fmt: skip
    if paths.projects.is_dir():
        for project in sorted(p.name for p in paths.projects.iterdir() if p.is_dir() and not p.is_symlink()):
            prefix = PurePosixPath("projects") / project / "store"
            found.append(Source("projects", paths.project_store(project), prefix, STORE_SKIP))
    return [source for source in found if source.root.is_dir()]


def registered_sites(url: str, registry_copy: Path | None) -> dict[str, str]:
    """Each registered site's export folder (its id -> its root as registered), read from the copied registry: a
    site may have been added from anywhere, and the backup takes the export the registry names."""
    query = "SELECT id, root FROM sites ORDER BY id"
    if registry_copy is not None:
        connection = sqlite3.connect(f"file:{registry_copy}?mode=ro", uri=True)
        try:
            return dict(connection.execute(query).fetchall())
        finally:
            connection.close()

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {row[0]: row[1] for row in connection.execute(text(query))}
    finally:
        engine.dispose()


def create_backup(paths: Paths, dest: Path, *, include_sites: bool = True, progress: bool = True) -> BackupReport:
    """Write the backup of the installation at `paths` into the new folder `dest` (0700, files 0600): first under a
    temporary name beside it, renamed to `dest` once the manifest is written, so a backup that exists is whole."""
    dest = dest.absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} exists and is not an empty folder; name a new folder for the backup")
    if dest == paths.home or (paths.home in dest.parents and dest.parent != paths.home / "backups"):
        raise BackupError(f"{dest} is inside the Enclave home; put backups elsewhere (or under {paths.home}/backups)")
    if database_kind(paths.database_url) != "sqlite":
        postgres_tool("pg_dump")  # missing: said before anything is written
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    staging.mkdir(mode=0o700)
    try:
        report = _write(paths, staging, include_sites=include_sites, progress=progress)
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.dest = dest
    return report


def _write(paths: Paths, out: Path, *, include_sites: bool, progress: bool) -> BackupReport:
    kind = database_kind(paths.database_url)
    report = BackupReport(out, kind, None, include_sites)
    manifest: dict[str, dict] = {}
    audit = Source("audit", paths.home / ANCHORS, PurePosixPath(ANCHORS))
    walked = {}
    for source in [audit, *sources(paths)]:
        if source.root.is_dir():
            walked[source] = files.walk(source.root, skip_top=source.skip_top)
    registry_file = Path(make_url(paths.database_url).database or "") if kind == "sqlite" else None
    total = sum(e.size for entries, _ in walked.values() for e in entries)
    total += registry_file.stat().st_size if registry_file and registry_file.is_file() else 0
    out_fd = files.open_dir(out)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="backup", disable=not progress, file=sys.stderr)
    try:
        # The anchors before the registry: every anchor then names an entry the copied log holds (a later entry
        # is only "not anchored yet"); the other way round a copied anchor could name an entry the copy lacks.
        if audit in walked:
            _copy_tree(audit, walked.pop(audit), out, out_fd, manifest, report, bar)
        _copy_registry(paths, kind, registry_file, out, manifest, report, bar)
        sites = registered_sites(paths.database_url, out / REGISTRY_SQLITE if kind == "sqlite" else None)
        for site, root in sites.items() if include_sites else ():
            if not Path(root).is_dir():
                report.missing_sites.append(site)
                continue
            source = Source("sites", Path(root), PurePosixPath("sites") / site)
            walked[source] = files.walk(source.root)
            bar.total += sum(e.size for e in walked[source][0])
        for source, found in walked.items():
            _copy_tree(source, found, out, out_fd, manifest, report, bar)
    finally:
        bar.close()
        os.close(out_fd)
    report.skipped += sum(skipped for _entries, skipped in walked.values())
    document = {
        "format": FORMAT,
        "enclave_version": enclave_version(),
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "home": str(paths.home),
        "database": kind,
        "alembic_revision": report.revision,
        "sites_included": include_sites,
        "sites": sites,  # each site's export folder as registered: restore moves it to the new home's sites/
        "projects": sorted({PurePosixPath(p).parts[1] for p in manifest if p.startswith("projects/")}),
        "left_out": list(LEFT_OUT),
        "files": dict(sorted(manifest.items())),
    }
    body = (json.dumps(document, indent=1) + "\n").encode()
    out_fd = files.open_dir(out)
    try:
        report.manifest_sha256 = files.write_stream(out_fd, PurePosixPath(MANIFEST), iter([body])).sha256
    finally:
        os.close(out_fd)
    return report


def _copy_registry(
    paths: Paths, kind: str, registry_file: Path | None, out: Path, manifest: dict, report: BackupReport, bar: tqdm
) -> None:
    if kind == "sqlite":
        if registry_file is None or not registry_file.is_file():
            raise BackupError(f"no registry at {registry_file}: nothing to back up (is --home right?)")
        target = out / REGISTRY_SQLITE
        files.sqlite_copy(registry_file, target)
        report.revision = sqlite_revision(target)
    else:
        target = out / REGISTRY_PGDUMP
        report.revision = current_revision(paths.database_url)
        _pg_dump(paths.database_url, target)
    written = files.sha256_of(target)
    bar.update(written.size)
    manifest[target.name] = {"sha256": written.sha256, "bytes": written.size, "mode": "0600"}
    report.parts["registry"] = Part(1, written.size)


def _copy_tree(
    source: Source, found: tuple[list[files.Entry], int], out: Path, out_fd: int, manifest: dict,
    report: BackupReport, bar: tqdm,
) -> None:  # fmt: skip
    entries, _ = found
    part = report.parts.setdefault(source.part, Part())
    src_fd = files.open_dir(source.root)
    try:
        databases = {e.rel for e in entries if e.link is None and _is_sqlite(src_fd, e.rel)}
        for entry in entries:
            rel = source.prefix / entry.rel
            if entry.link is not None:
                manifest[str(rel)] = {"link": entry.link}
                continue
            if files.sqlite_side_file(entry.rel, databases):
                continue
            try:
                if entry.rel in databases:
                    files.make_dirs(out_fd, rel.parent)
                    files.sqlite_copy(source.root / entry.rel, out / rel)
                    written = files.sha256_of(out / rel)
                    bar.update(entry.size)
                else:
                    written = files.copy_file(src_fd, entry.rel, out_fd, rel, progress=bar.update)
            except FileNotFoundError:  # removed while the backup ran (a researcher's scratch file)
                report.skipped += 1
                continue
            manifest[str(rel)] = {"sha256": written.sha256, "bytes": written.size, "mode": f"{entry.mode:04o}"}
            part.files += 1
            part.bytes += written.size
    finally:
        os.close(src_fd)


def _is_sqlite(src_fd: int, rel: PurePosixPath) -> bool:
    try:
        return files.is_sqlite(src_fd, rel)
    except (FileNotFoundError, IsADirectoryError):
        return False


def record_backup(paths: Paths, report: BackupReport, actor: str) -> bool:
    """Audit the backup (what and where, never a file's content) when the registry is at this Enclave's schema;
    False when it is older (opening it to audit would migrate it: `enclave upgrade` audits its own backup)."""
    if report.revision != head_revision(paths.database_url):
        return False

    registry = Registry.of(paths)
    try:
        registry.transaction(
            lambda session: audit.record(
                session, actor=actor, action="backup.created", target=str(report.dest), **summary(report)
            )
        )
    finally:
        registry.close()
    return True


def summary(report: BackupReport) -> dict:
    return {"files": report.files, "bytes": report.bytes, "revision": report.revision, "sites": report.sites,
            "manifest_sha256": report.manifest_sha256}  # fmt: skip
