"""Red team against `enclave run` (provisioning/notebook_runs.py), which runs as root, and is offered through sudo:

- a link planted in the researcher's `runs/` (or `runs/` itself a link) never leads root to write outside it;
- root reads the notebook with the rights of the account that called sudo: a file that account cannot read (the
  project's pseudonym key) is refused, and so is anything that is not a notebook (the project's raw parquet);
- a run has its own sandbox (socket folder, control group): the same person's open workspace keeps answering;
- a run needs no hub, and is audited when it starts and ends;
- through sudo, a home root does not own is refused, for `--slurm` and `run-status` too.

Every refusal happens before anything is started; the runs that do start execute a one-cell notebook.
"""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from sqlalchemy import select

from hub import sandbox
from kernel.db import Registry
from kernel.models import AuditEvent
from provisioning.host import account_name, ensure_host, remove_egress_rules
from provisioning.storage import release_all_under
from tests.workspace_hub import DEMO, needs_enclave, provision

pytestmark = [pytest.mark.security, needs_enclave, pytest.mark.timeout(300)]

ENCLAVE = Path(sys.executable).with_name("enclave")
NOBODY = pwd.getpwnam("nobody")


def enclave(paths, *args: str, sudo_user: str | None = None) -> subprocess.CompletedProcess:
    """The real command line; `sudo_user`: as `sudo` leaves it when that person (mapped to the unprivileged
    `nobody` account, which owns none of the files here) calls it."""
    env = {**os.environ, "ENCLAVE_HOME": str(paths.home)}
    if sudo_user:
        env.update(SUDO_USER=sudo_user, SUDO_UID=str(NOBODY.pw_uid), SUDO_GID=str(NOBODY.pw_gid))
    return subprocess.run([str(ENCLAVE), *args], capture_output=True, text=True, env=env, timeout=240, check=False)


@pytest.fixture
def notebook() -> Iterator[Path]:
    """A one-cell notebook that every account may read (its folders too), as a researcher's own file would be."""
    with tempfile.TemporaryDirectory(prefix="enclave-run-") as folder:
        os.chmod(folder, 0o755)
        path = Path(folder) / "tiny.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")]), path)
        path.chmod(0o644)
        yield path


def runs_listing(paths, user: str) -> set[str]:
    runs = paths.project_home(DEMO, user) / "runs"
    return {p.name for p in runs.iterdir()} if runs.is_dir() and not runs.is_symlink() else set()


def test_a_link_planted_in_runs_is_not_followed(running_enclave, notebook, tmp_path):
    paths = running_enclave.paths
    victim = tmp_path / "victim.conf"  # root's, outside Enclave
    victim.write_text("root's own settings\n")
    runs = paths.project_home(DEMO, "bob") / "runs"
    runs.mkdir(exist_ok=True)
    account = pwd.getpwnam(account_name(DEMO))
    # the copy's name is the notebook's and the second: plant one for each of the next minutes' seconds
    now = datetime.now(UTC)
    for second in range(120):
        stamp = (now + timedelta(seconds=second)).strftime("%Y%m%dT%H%M%SZ")
        link = runs / f"{notebook.stem}-{stamp}.ipynb"
        link.symlink_to(victim)
        os.chown(link, account.pw_uid, account.pw_gid, follow_symlinks=False)
    try:
        ran = enclave(paths, "run", str(notebook), "--project", DEMO, "--user", "bob")
    finally:
        for link in runs.glob(f"{notebook.stem}-*.ipynb"):
            link.unlink()
    assert ran.returncode == 1, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "already exists (a file or a link); nothing was run" in ran.stderr
    assert victim.read_text() == "root's own settings\n"
    assert victim.stat().st_uid == 0


def test_runs_itself_a_link_is_not_followed(running_enclave, notebook, tmp_path):
    paths = running_enclave.paths
    elsewhere = tmp_path / "root-only"  # a root-owned folder outside Enclave
    elsewhere.mkdir(mode=0o700)
    runs = paths.project_home(DEMO, "bob") / "runs"
    aside = runs.with_name("runs-aside")
    if runs.exists():
        runs.rename(aside)
    runs.symlink_to(elsewhere, target_is_directory=True)
    try:
        ran = enclave(paths, "run", str(notebook), "--project", DEMO, "--user", "bob")
    finally:
        runs.unlink()
        if aside.exists():
            aside.rename(runs)
    assert ran.returncode == 1, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "runs/ in your project home is a link or not a folder" in ran.stderr
    assert list(elsewhere.iterdir()) == []


def test_through_sudo_a_file_the_caller_cannot_read_is_refused(running_enclave, tmp_path):
    paths = running_enclave.paths
    private = tmp_path / "root-only.ipynb"  # a valid notebook, readable by root alone
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), private)
    private.chmod(0o600)
    before = runs_listing(paths, "bob")
    for secret in (paths.project_key(DEMO), private):
        assert secret.exists()
        ran = enclave(paths, "run", str(secret), "--project", DEMO, sudo_user="bob")
        assert ran.returncode == 1, ran.stdout[-2000:] + ran.stderr[-2000:]
        assert "cannot be opened with your rights (Permission denied); nothing was run" in ran.stderr
    assert runs_listing(paths, "bob") == before  # nothing was copied


def test_through_sudo_a_person_runs_in_their_own_home_only(running_enclave, notebook):
    ran = enclave(running_enclave.paths, "run", str(notebook), "--project", DEMO, "--user", "alice", sudo_user="bob")
    assert ran.returncode == 1 and "runs in your own project home" in ran.stderr


def test_anything_but_a_notebook_is_refused_even_for_root(running_enclave, tmp_path):
    paths = running_enclave.paths
    parquet = next(paths.project_data(DEMO).rglob("*.parquet"))  # root may read it; it is still not a notebook
    renamed = tmp_path / "patients.ipynb"
    renamed.write_bytes(b"patient_id,age\nEP-1,54\n")
    before = runs_listing(paths, "bob")
    for path in (parquet, renamed, tmp_path):
        ran = enclave(paths, "run", str(path), "--project", DEMO, "--user", "bob")
        assert ran.returncode == 1, ran.stdout[-2000:] + ran.stderr[-2000:]
        assert "nothing was run" in ran.stderr
    assert runs_listing(paths, "bob") == before


def test_a_run_leaves_the_same_persons_open_workspace_answering(running_enclave, notebook):
    paths = running_enclave.paths
    alice = running_enclave.person("alice")
    alice.spawn(DEMO)
    try:
        socket = sandbox.SOCKET_ROOT / sandbox.workspace_id(paths, DEMO, "alice") / "jupyter.sock"
        assert socket.is_socket()
        ran = enclave(paths, "run", str(notebook), "--project", DEMO, sudo_user="alice")
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
        executed = Path(ran.stdout.split("executed notebook: ")[1].split(" ")[0])
        assert "42" in executed.read_text()
        assert socket.is_socket()  # the run's sandbox had its own socket folder
        assert alice.execute(DEMO, "print(6 * 7)").strip() == "42"
    finally:
        alice.stop(DEMO)


@pytest.fixture(scope="module")
def enclave_without_hub(tmp_path_factory, cohort, workspace_env):
    """A provisioned Enclave whose hub was never started."""
    paths, _ = provision(tmp_path_factory.mktemp("no-hub") / "home", cohort)
    table = f"enclave_egress_r{secrets.token_hex(3)}"
    ensure_host(paths, {DEMO: ["alice"]}, egress_table=table)
    try:
        yield paths
    finally:
        remove_egress_rules(table=table)
        release_all_under(paths.home)


def test_a_run_needs_no_hub(enclave_without_hub, notebook, monkeypatch, workspace_env):
    monkeypatch.setenv("ENCLAVE_WORKSPACE_ENV", str(workspace_env))
    paths = enclave_without_hub
    assert not sandbox.hub_socket(paths).parent.exists()
    ran = enclave(paths, "run", str(notebook), "--project", DEMO, "--user", "alice")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    executed = Path(ran.stdout.split("executed notebook: ")[1].split(" ")[0])
    assert "42" in executed.read_text()
    assert not list((paths.hub / "sandbox-etc").iterdir())  # the run's own /etc files are gone with it
    registry = Registry.of(paths)
    try:
        with registry.session() as session:
            events = session.scalars(select(AuditEvent).where(AuditEvent.target == DEMO).order_by(AuditEvent.seq))
            actions = [(event.action, event.detail.get("user"), event.detail.get("returncode")) for event in events]
    finally:
        registry.close()
    assert actions[-2:] == [("notebook.run_started", "alice", None), ("notebook.run_ended", "alice", 0)]


def test_through_sudo_a_home_the_caller_could_have_made_is_refused(running_enclave, notebook, tmp_path):
    """`sudo enclave --home DIR run …` with a DIR the caller made (their own registry and project folders) would let
    root mount whatever that registry names: a home root does not own, all the way down, is refused."""
    paths = running_enclave.paths
    forged = tmp_path / "forged-home"
    forged.mkdir()
    os.chown(forged, NOBODY.pw_uid, NOBODY.pw_gid)  # made by the caller
    ran = enclave(paths, "--home", str(forged), "run", str(notebook), "--project", DEMO, sudo_user="bob")
    assert ran.returncode == 1, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "uses only a root-owned Enclave home" in ran.stderr and "is not owned by root" in ran.stderr
    for command in (["run", str(notebook), "--project", DEMO, "--slurm"], ["run-status", "1"]):  # SLURM's too
        ran = enclave(paths, "--home", str(forged), *command, sudo_user="bob")
        assert ran.returncode == 1 and "uses only a root-owned Enclave home" in ran.stderr, ran.stderr
    world = tmp_path / "world-writable-home"
    world.mkdir()
    world.chmod(0o777)
    ran = enclave(paths, "--home", str(world), "run", str(notebook), "--project", DEMO, sudo_user="bob")
    assert ran.returncode == 1 and "writable by accounts other than root" in ran.stderr
