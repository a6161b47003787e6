"""`enclave restore`: a backup written by provisioning/backup.py put back into a new Enclave home, trusted only
after every file matches the manifest, and never over anything that is already there.

The order: every file is checked against the manifest before anything is written (a damaged backup is refused
whole); a home that holds a registry, or any file the backup would write, is refused; the secrets, the audit log's
anchors, the airlock's stores, the sites' exports, the projects' specs and the registry are written; opening the
registry migrates it to this Enclave's schema; the audit chain is verified and the restore audited. As root, a
project's store that is not mounted yet waits for `enclave host apply` (which makes and mounts the project's file
system) and `enclave restore BACKUP --stores-only`; without root, the stores are restored as plain folders.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sqlalchemy.orm import Session
from tqdm import tqdm

from fabric.models import Site
from hub import lifecycle
from kernel import audit
from kernel.config import Paths
from kernel.db import Registry
from provisioning import backup_files as files
from provisioning.backup import (
    FORMAT,
    MANIFEST,
    REGISTRY_PGDUMP,
    REGISTRY_SQLITE,
    BackupError,
    current_revision,
    database_kind,
    postgres_environment,
    postgres_tool,
)
from provisioning.host import account_name
from provisioning.storage import mounted

_PROJECT = r"[a-z0-9][a-z0-9-]*"
_ALLOWED = re.compile(
    rf"^(?:{re.escape(REGISTRY_SQLITE)}|{re.escape(REGISTRY_PGDUMP)}|(?:secrets|audit|airlock|federation|sites)/.+"
    rf"|projects/{_PROJECT}/store/.+)$"
)
SHOWN_PROBLEMS = 5


@dataclass
class RestoreReport:
    home: Path
    files: int = 0
    bytes: int = 0
    backup_revision: str | None = None
    revision: str | None = None
    audit_problems: list[str] = field(default_factory=list)
    audit_note: str | None = None
    stores: list[str] = field(default_factory=list)  # projects whose store was restored
    waiting: list[str] = field(default_factory=list)  # projects whose store waits for `host apply` (root)
    notes: list[str] = field(default_factory=list)
    sites_moved: list[str] = field(default_factory=list)  # sites whose registered export folder is now the home's


def _store_project(rel: str) -> str | None:
    parts = PurePosixPath(rel).parts
    return parts[1] if len(parts) > 3 and parts[0] == "projects" and parts[2] == "store" else None


def verify_backup(backup: Path, *, progress: bool = False) -> dict:
    """The backup's manifest, once every file it lists is there with its size and SHA-256 and nothing else is;
    a BackupError naming the problems otherwise."""
    try:
        manifest = json.loads((backup / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{backup} is not an Enclave backup: it has no {MANIFEST}") from None
    except (ValueError, UnicodeDecodeError):
        raise BackupError(f"{backup}/{MANIFEST} is not readable JSON: the backup is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{backup} is not a backup this Enclave can read (format {FORMAT} expected)")
    listed: dict = manifest.get("files") or {}
    problems: list[str] = []
    total = sum(int(meta.get("bytes", 0)) for meta in listed.values())
    with tqdm(total=total, unit="B", unit_scale=True, desc="verify", disable=not progress, file=sys.stderr) as bar:
        for rel, meta in listed.items():
            problem = _check(backup, rel, meta, bar.update)
            if problem:
                problems.append(f"{rel}: {problem}")
    entries, others = files.walk(backup)
    unlisted = [str(e.rel) for e in entries if str(e.rel) != MANIFEST and "sha256" not in listed.get(str(e.rel), {})]
    problems += [f"{rel}: not in the manifest" for rel in unlisted]
    if others:
        problems.append(f"{others} special files (not plain files or links) in the backup")
    if problems:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        more = f" (and {len(problems) - SHOWN_PROBLEMS} more)" if len(problems) > SHOWN_PROBLEMS else ""
        raise BackupError(f"{backup}: the backup does not match its manifest, nothing was restored: {shown}{more}")
    return manifest


def _check(backup: Path, rel: str, meta: dict, progress) -> str | None:
    if not _ALLOWED.match(rel) or any(part in ("", ".", "..") for part in rel.split("/")):
        return "not a path a backup holds"
    if "link" in meta:  # a link is kept in the manifest alone (its target, never followed)
        return None if isinstance(meta["link"], str) and meta["link"] else "a link without a target"
    path = backup / rel
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    if not stat.S_ISREG(st.st_mode):
        return "not a plain file"
    if st.st_size != meta.get("bytes"):
        return f"{st.st_size} bytes, the manifest says {meta.get('bytes')}"
    if files.sha256_of(path, progress).sha256 != meta.get("sha256"):
        return "content differs from the manifest (SHA-256)"
    return None


def _holds_registry(paths: Paths) -> bool:
    if database_kind(paths.database_url) == "sqlite":
        return (paths.home / REGISTRY_SQLITE).exists() or current_revision(paths.database_url) is not None
    return current_revision(paths.database_url) is not None


def _refuse_running(paths: Paths) -> None:

    if paths.hub.is_dir() and (pid := lifecycle.read_pid(paths)) is not None:
        raise BackupError(f"Enclave is running in {paths.home} (hub pid {pid}); `enclave down` first")


def _store_waits(paths: Paths, project: str) -> bool:
    """As root, a store that is not its own mounted file system yet: `enclave host apply` mounts it first (it
    refuses to mount over files)."""

    return os.geteuid() == 0 and mounted(paths, project) is None


def _owner(project: str) -> tuple[int, int] | None:
    """As root, the project's account and group (made by `enclave host apply`), to own its restored files."""
    if os.geteuid() != 0:
        return None

    name = account_name(project)
    try:
        return pwd.getpwnam(name).pw_uid, grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _existing(paths: Paths, rels: list[str]) -> list[str]:
    return [rel for rel in rels if os.path.lexists(paths.home / rel)]


def restore_home(paths: Paths, backup: Path, *, actor: str, progress: bool = True) -> RestoreReport:
    """Restore everything in `backup` into the new home `paths`; the projects' stores too, unless (as root) they
    are not mounted yet. The registry is migrated, the audit chain verified and the restore audited."""
    manifest = verify_backup(backup, progress=progress)
    _refuse_running(paths)
    kind = manifest.get("database")
    if kind != database_kind(paths.database_url):
        raise BackupError(f"the backup's registry is {kind}, this home's is {database_kind(paths.database_url)}")
    if _holds_registry(paths):
        raise BackupError(f"{paths.home} already holds a registry; restore into a new, empty home")
    listed: dict = manifest["files"]
    waiting = sorted({p for rel in listed if (p := _store_project(rel)) and _store_waits(paths, p)})
    chosen = [rel for rel in listed if _store_project(rel) not in waiting]
    if clash := _existing(paths, chosen):
        raise BackupError(f"{paths.home} already holds {len(clash)} files the backup would write ({clash[0]}, …)")
    report = RestoreReport(paths.home, backup_revision=manifest.get("alembic_revision"), waiting=waiting)
    paths.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    registry = REGISTRY_SQLITE if kind == "sqlite" else REGISTRY_PGDUMP
    rest = [rel for rel in chosen if rel != registry]
    _write_files(paths, backup, listed, rest, report, progress)
    if kind == "sqlite":
        _write_files(paths, backup, listed, [registry], report, progress)
    else:
        _pg_restore(paths.database_url, backup / registry)
        report.files += 1
    report.stores = sorted({p for rel in rest if (p := _store_project(rel))})
    _finish(paths, report, actor, action="backup.restored", backup=backup, manifest=manifest)
    return report


def restore_stores(paths: Paths, backup: Path, *, actor: str, progress: bool = True) -> RestoreReport:
    """Restore only the projects' stores from `backup` into a home already restored from it (as root: after
    `enclave host apply` mounted them). Refuses a store that already holds a file the backup would write."""
    manifest = verify_backup(backup, progress=progress)
    _refuse_running(paths)
    if not _holds_registry(paths):
        raise BackupError(f"{paths.home} holds no registry: restore the backup without --stores-only first")
    listed: dict = manifest["files"]
    chosen = [rel for rel in listed if _store_project(rel)]
    if clash := _existing(paths, chosen):
        raise BackupError(f"{paths.home} already holds {len(clash)} files the backup would write ({clash[0]}, …)")
    report = RestoreReport(paths.home, backup_revision=manifest.get("alembic_revision"))
    report.stores = sorted({p for rel in chosen if (p := _store_project(rel))})
    for project in report.stores:
        if _store_waits(paths, project):
            report.notes.append(
                f"{project}: its store is not a mounted file system; `enclave host apply` will refuse to mount over "
                "these files (development only)"
            )
    _write_files(paths, backup, listed, chosen, report, progress)
    _finish(paths, report, actor, action="backup.stores_restored", backup=backup, manifest=manifest)
    return report


def _write_files(
    paths: Paths, backup: Path, listed: dict, rels: list[str], report: RestoreReport, progress: bool
) -> None:
    """Copy `rels` from the backup into the home, each checked again as it is copied: outside a store root's
    alone (0600 files, 0700 folders); in a store with the file's own mode, owned by the project's account."""
    home_fd = files.open_dir(paths.home)
    backup_fd = files.open_dir(backup)
    owners: dict[str, tuple[int, int] | None] = {}
    total = sum(int(listed[rel].get("bytes", 0)) for rel in rels)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="restore", disable=not progress, file=sys.stderr)
    try:
        for rel in rels:
            meta, path = listed[rel], PurePosixPath(rel)
            project = _store_project(rel)
            if project and project not in owners:
                owners[project] = _owner(project)
                if owners[project] is None and os.geteuid() == 0:
                    report.notes.append(f"{project}: no account enclave-{project} yet; its restored files are root's")
            owner = owners.get(project) if project else None
            if "link" in meta:
                files.make_link(home_fd, path, meta["link"], owner=owner)
                continue
            mode = int(meta.get("mode", "0600"), 8) & 0o777 if project else 0o600
            written = files.write_stream(home_fd, path, _read(backup_fd, path), mode=mode, progress=bar.update,
                                         owner=owner)  # fmt: skip
            if written.sha256 != meta["sha256"]:  # changed since it was verified: stop, and say so
                raise BackupError(f"{backup / rel} changed while it was restored; the restore is incomplete")
            report.files += 1
            report.bytes += written.size
    finally:
        bar.close()
        os.close(home_fd)
        os.close(backup_fd)


def _read(root_fd: int, rel: PurePosixPath) -> Iterator[bytes]:
    fd = os.open(rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
    with os.fdopen(fd, "rb") as source:
        while chunk := source.read(files.CHUNK):
            yield chunk


def _pg_restore(url: str, dump: Path) -> None:
    env = postgres_environment(url)
    argv = [postgres_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
            "--dbname", env.get("PGDATABASE", ""), str(dump)]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise BackupError(f"pg_restore failed: {last}")


def _finish(paths: Paths, report: RestoreReport, actor: str, *, action: str, backup: Path, manifest: dict) -> None:
    """Open the registry (which migrates it), verify the audit chain, and audit the restore."""

    registry = Registry.of(paths)
    try:
        with registry.session() as session:
            found = audit.verify_log(session)
        report.audit_problems = [f"entry {p.seq}: {p.problem}" for p in found.problems]
        report.audit_note = found.note
        report.revision = current_revision(paths.database_url)

        def record(session: Session) -> list[str]:
            moved = _move_sites(session, paths, manifest) if action == "backup.restored" else []
            audit.record(
                session, actor=actor, action=action, target=str(backup), created_at=manifest.get("created_at"),
                enclave_version=manifest.get("enclave_version"), files=report.files, bytes=report.bytes,
                revision_before=report.backup_revision, revision=report.revision, stores=report.stores,
                waiting=report.waiting, audit_problems=len(report.audit_problems), sites_moved=moved,
            )  # fmt: skip
            return moved

        report.sites_moved = registry.transaction(record)
    finally:
        registry.close()


def _move_sites(session: Session, paths: Paths, manifest: dict) -> list[str]:
    """Point each site the backup holds at its export as restored (`sites/ID` in the new home) instead of the
    folder it was registered from, its datasets' locations with it; the sites left out keep their folders."""

    if not manifest.get("sites_included"):
        return []
    moved = []
    for site_id, old_root in sorted((manifest.get("sites") or {}).items()):
        site, new_root = session.get(Site, site_id), (paths.sites / site_id).resolve()
        if site is None or not new_root.is_dir() or Path(site.root) == new_root:
            continue
        old = Path(old_root)
        for dataset in site.datasets:
            location = Path(dataset.location)
            if location.is_relative_to(old):
                dataset.location = str(new_root / location.relative_to(old))
        site.root = str(new_root)
        moved.append(site_id)
    return moved
