"""`enclave backup`, `restore` and `upgrade` end to end (issue 16): a provisioned installation backed up while another
process appends to its audit log, restored onto a second home whose audit chain verifies and whose rebuilt view is
file for file the original's (so every pseudonym is the same); a damaged backup and a home that holds a registry
refused with nothing written; an upgrade that backs up first and leaves the schema at head. Real files, real SQLite,
the installed `enclave` command in subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel.config import Paths
from kernel.db import Registry
from kernel.db import upgrade as migrate
from provisioning.backup import current_revision, head_revision
from tests.host_accounts import needs_root, throwaway_account
from tests.provisioned import provision

pytestmark = pytest.mark.integration

ENCLAVE = shutil.which("enclave", path=str(Path(sys.executable).parent)) or "enclave"
PROJECT = "cvd-risk"
WRITER = """
import sys
from pathlib import Path
from kernel import audit
from kernel.db import Registry

registry, stop, started, n = Registry(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), 0
while not stop.exists():
    with registry.session() as session:
        audit.record(session, actor="writer", action="test.appended", target="backup-test", n=n)
    n += 1
    if n == 5:
        started.write_text("appending")
print(n)
"""


def enclave(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([ENCLAVE, *args], capture_output=True, text=True, timeout=600, check=False)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def source(tmp_path_factory, cohort) -> Paths:
    """A provisioned home with one built project, and a store holding outputs, a home with a link, an MLflow
    database and artifacts (and ext4's lost+found, which stays out)."""
    env = provision(tmp_path_factory.mktemp("source") / "home", cohort, {PROJECT: "DS-CVD"})
    env.registry.close()
    paths = env.paths
    store = paths.project_store(PROJECT)
    (store / "outputs").mkdir(parents=True)
    (store / "outputs" / "table.csv").write_text("group,n\na,12\nb,15\n")
    home = paths.project_home(PROJECT, "alice")
    home.mkdir(parents=True)
    (home / "analysis.ipynb").write_text('{"cells": []}')
    (home / "latest").symlink_to("analysis.ipynb")
    (paths.project_mlflow(PROJECT) / "artifacts" / "run1").mkdir(parents=True)
    (paths.project_mlflow(PROJECT) / "artifacts" / "run1" / "model.txt").write_text("weights")
    mlflow = sqlite3.connect(paths.project_mlflow(PROJECT) / "mlflow.db")
    mlflow.execute("CREATE TABLE runs (id TEXT)")
    mlflow.execute("INSERT INTO runs VALUES ('run1')")
    mlflow.commit()
    mlflow.close()
    (store / "lost+found").mkdir()
    (store / "lost+found" / "#1234").write_text("fsck's")
    (paths.airlock / "snapshots" / "r1").mkdir(parents=True)
    (paths.airlock / "snapshots" / "r1" / "t.csv").write_text("group,n\na,12\n")
    return paths


@pytest.fixture(scope="module")
def backup(source, tmp_path_factory) -> tuple[Path, int, int]:
    """The backup, taken while another process appends audit events: (folder, writer events in the backup,
    writer events in all)."""
    dest = tmp_path_factory.mktemp("backups") / "nightly"
    flags = tmp_path_factory.mktemp("writer")
    stop, started = flags / "stop", flags / "started"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, source.database_url, str(stop), str(started)], stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert writer.poll() is None and time.monotonic() < deadline, "the writer did not start"
            time.sleep(0.05)
        out = enclave("--home", str(source.home), "backup", str(dest), "--quiet").stdout
    finally:
        stop.touch()
        written = int(writer.communicate(timeout=60)[0])
    assert f"backup written to {dest}" in out and "encrypt it at rest" in out
    copy = sqlite3.connect(dest / "registry.sqlite")
    in_backup = copy.execute("SELECT count(*) FROM audit_events WHERE action = 'test.appended'").fetchone()[0]
    copy.close()
    return dest, in_backup, written


def test_the_backup_is_whole_root_only_and_leaves_out_what_is_rebuilt(source, backup):
    dest, in_backup, written = backup
    assert 5 <= in_backup < written, "the writer appended before, during and after the backup"
    manifest = json.loads((dest / "MANIFEST.json").read_text())
    assert manifest["alembic_revision"] == head_revision(source.database_url)
    assert manifest["enclave_version"] and manifest["created_at"].endswith("Z")
    listed = manifest["files"]
    store = f"projects/{PROJECT}/store"
    expected = ["registry.sqlite", "audit/anchors.log", f"secrets/project-{PROJECT}.key", "airlock/snapshots/r1/t.csv",
                f"{store}/outputs/table.csv", f"{store}/mlflow/mlflow.db",
                f"{store}/mlflow/artifacts/run1/model.txt"]  # fmt: skip
    assert not [rel for rel in expected if rel not in listed]
    assert listed[f"{store}/homes/alice/latest"] == {"link": "analysis.ipynb"}
    assert any(rel.startswith("sites/") and rel.endswith("site.yaml") for rel in listed)
    assert not [r for r in listed if "/views/" in r or r.startswith(("hub/", "workspace-env/")) or "lost+found" in r]
    for rel, meta in listed.items():
        if "sha256" in meta:
            assert sha256(dest / rel) == meta["sha256"] and (dest / rel).stat().st_size == meta["bytes"], rel
    modes = {stat.S_IMODE(p.lstat().st_mode) for p in dest.rglob("*") if not p.is_symlink()}
    assert modes <= {0o700, 0o600} and stat.S_IMODE(dest.stat().st_mode) == 0o700
    mlflow = sqlite3.connect(dest / store / "mlflow" / "mlflow.db")
    assert mlflow.execute("SELECT id FROM runs").fetchall() == [("run1",)]
    mlflow.close()
    verified = enclave("--home", str(source.home), "audit", "verify").stdout
    assert "audit log intact" in verified
    shown = enclave("--home", str(source.home), "audit", "show", "--limit", "100000").stdout
    assert "backup.created" in shown and str(dest) in shown


@pytest.fixture(scope="module")
def restored(backup, tmp_path_factory) -> tuple[Paths, str]:
    dest = backup[0]
    home = tmp_path_factory.mktemp("restored") / "home"
    out = enclave("restore", str(dest), "--home", str(home), "--quiet").stdout
    if "waiting" in out:  # root: the stores wait for `host apply` to mount them, then go in alone
        assert f"restore {dest} --stores-only" in out
        out += enclave("--home", str(home), "restore", str(dest), "--stores-only", "--quiet").stdout
    return Paths(home), out


def test_the_restored_home_verifies_and_holds_the_stores(source, restored):
    paths, out = restored
    assert "backup verified: every file matches its manifest" in out and "audit log intact" in out
    assert f"stores     {PROJECT}" in out
    assert "audit log intact" in enclave("--home", str(paths.home), "audit", "verify").stdout
    assert current_revision(paths.database_url) == head_revision(paths.database_url)
    for rel in ("outputs/table.csv", "homes/alice/analysis.ipynb", "mlflow/artifacts/run1/model.txt"):
        assert sha256(paths.project_store(PROJECT) / rel) == sha256(source.project_store(PROJECT) / rel), rel
    assert os.readlink(paths.project_home(PROJECT, "alice") / "latest") == "analysis.ipynb"
    assert sha256(paths.project_key(PROJECT)) == sha256(source.project_key(PROJECT))
    shown = enclave("--home", str(paths.home), "audit", "show", "--limit", "3").stdout
    assert "backup.restored" in shown
    assert paths.project_key(PROJECT).read_bytes().hex()[:16] not in shown


def test_every_pseudonym_is_the_same_after_a_restore(source, restored):
    """The restored home rebuilds its view from the restored sites and key: every file of it is the original's."""
    paths, _ = restored
    enclave("--home", str(paths.home), "project", "materialise", PROJECT, "--quiet")
    before = json.loads((source.project_data(PROJECT) / "MANIFEST.json").read_text())
    after = json.loads((paths.project_data(PROJECT) / "MANIFEST.json").read_text())
    assert before["build_id"] != after["build_id"]
    assert after["files"] and after["files"] == before["files"]
    registry = sqlite3.connect(paths.home / "registry.sqlite")
    roots = [Path(root) for (root,) in registry.execute("SELECT root FROM sites")]
    registry.close()
    assert roots and all(root.parent == paths.sites.resolve() for root in roots)


def test_a_damaged_backup_is_refused_and_nothing_is_written(backup, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(backup[0], damaged, symlinks=True)
    key = damaged / "secrets" / f"project-{PROJECT}.key"
    text = key.read_bytes()
    key.write_bytes(bytes([text[0] ^ 1]) + text[1:])
    home = tmp_path / "home"
    refused = enclave("restore", str(damaged), "--home", str(home), ok=False)
    assert refused.returncode == 1
    assert "does not match its manifest, nothing was restored" in refused.stderr
    assert f"secrets/project-{PROJECT}.key: content differs" in refused.stderr
    assert not home.exists()


def test_a_home_that_holds_a_registry_is_refused(backup, restored):
    paths, _ = restored
    before = sorted(p.name for p in paths.home.iterdir())
    refused = enclave("restore", str(backup[0]), "--home", str(paths.home), ok=False)
    assert refused.returncode == 1 and "already holds a registry" in refused.stderr
    assert sorted(p.name for p in paths.home.iterdir()) == before


def test_upgrade_backs_up_first_then_migrates_to_head(tmp_path):
    paths = Paths(tmp_path / "home")
    paths.home.mkdir()
    migrate(paths.database_url, "0006")
    out = enclave("--home", str(paths.home), "upgrade", "--quiet").stdout
    head = head_revision(paths.database_url)
    assert f"registry migrated from revision 0006 to {head}" in out
    assert current_revision(paths.database_url) == head
    (taken,) = (paths.home / "backups").iterdir()
    assert stat.S_IMODE(taken.stat().st_mode) == 0o700
    assert json.loads((taken / "MANIFEST.json").read_text())["alembic_revision"] == "0006"
    assert "registry.upgraded" in enclave("--home", str(paths.home), "audit", "show").stdout
    again = enclave("--home", str(paths.home), "upgrade", "--quiet").stdout
    assert f"registry already at revision {head}" in again


@needs_root("useradd")
def test_as_root_restored_store_files_belong_to_the_project_account(tmp_path):
    """The production order: the store waits for `host apply` (here: the account made, the store an empty folder),
    then `--stores-only` writes it with each file's mode, owned by the project's account, folders it makes too."""
    with throwaway_account("bk") as account:
        project = account.name.removeprefix("enclave-")
        source = Paths(tmp_path / "source")
        Registry(source.database_url).close()
        (source.project_outputs(project) / "tables").mkdir(parents=True)
        (source.project_outputs(project) / "tables" / "t.csv").write_text("a,b\n")
        (source.project_outputs(project) / "tables" / "t.csv").chmod(0o640)
        dest = tmp_path / "backup"
        enclave("--home", str(source.home), "backup", str(dest), "--quiet")
        target = Paths(tmp_path / "target")
        out = enclave("restore", str(dest), "--home", str(target.home), "--quiet").stdout
        assert f"waiting    {project}: not mounted yet" in out
        assert not target.project_store(project).exists()
        target.project_store(project).mkdir(parents=True)
        out = enclave("--home", str(target.home), "restore", str(dest), "--stores-only", "--quiet").stdout
        assert f"stores     {project}" in out and "is not a mounted file system" in out
        for path, mode in ((target.project_outputs(project) / "tables" / "t.csv", 0o640),
                           (target.project_outputs(project) / "tables", 0o700)):  # fmt: skip
            st = path.lstat()
            assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (account.uid, account.gid, mode), path


def test_a_postgresql_registry_is_backed_up_with_pg_dump_and_restored(tmp_path, cohort, postgres, monkeypatch):
    """The pg_dump path (provisioning/backup.py): a home whose registry is on PostgreSQL (ENCLAVE_DATABASE_URL naming
    the server's Unix socket, the password only in libpq's password file, tests/postgres.py), backed up by `enclave
    backup` and restored by `enclave restore` into a second home on an empty database: the restored log is the
    source's, entry for entry, its chain verifies against the anchors restored with it, and the restore is audited."""
    from sqlalchemy import select

    from kernel import audit
    from kernel.models import AuditEvent

    source, target, dest = Paths(tmp_path / "source"), Paths(tmp_path / "target"), tmp_path / "backup"
    with postgres.database("source") as source_url, postgres.database("target") as target_url:
        # a server's registry keeps its anchors in ENCLAVE_HOME: each home named that way, not with --home
        monkeypatch.setenv("ENCLAVE_HOME", str(source.home))
        monkeypatch.setenv("ENCLAVE_DATABASE_URL", source_url)
        env = provision(source.home, cohort, {})  # sites and consent
        with env.registry.session() as session:
            logged = [(e.seq, e.hash) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
        env.registry.close()
        assert len(logged) > 3 and (source.home / "audit").is_dir()

        out = enclave("backup", str(dest), "--no-sites", "--quiet").stdout
        assert f"backup written to {dest}" in out
        manifest = json.loads((dest / "MANIFEST.json").read_text())
        assert manifest["database"] == "postgresql" and "registry.sqlite" not in manifest["files"]
        assert manifest["alembic_revision"] == head_revision(source_url)
        assert (dest / "registry.pgdump").read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
        assert stat.S_IMODE((dest / "registry.pgdump").stat().st_mode) == 0o600

        monkeypatch.setenv("ENCLAVE_HOME", str(target.home))
        monkeypatch.setenv("ENCLAVE_DATABASE_URL", target_url)
        enclave("restore", str(dest), "--quiet")
        assert enclave("audit", "verify").stdout.startswith("audit log intact")
        registry = Registry(target_url)
        try:
            with registry.session() as session:
                restored = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
                assert audit.verify(session) == []
        finally:
            registry.close()
        assert [(e.seq, e.hash) for e in restored[: len(logged)]] == logged
        assert restored[-1].action == "backup.restored" and restored[-1].detail["audit_problems"] == 0
        refused = enclave("restore", str(dest), "--quiet", ok=False)  # the database now holds a registry
        assert refused.returncode == 1 and "already holds a registry" in refused.stderr
