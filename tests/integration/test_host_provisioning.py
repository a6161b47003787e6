"""Host provisioning on the real host: a project's Unix account is created once and removed cleanly, and its
folders get exactly the owners and modes of provisioning/host.py's table, idempotently. Root only."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kernel.config import Paths
from provisioning.host import (
    HostError,
    ensure_project_account,
    ensure_project_folders,
    remove_egress_rules,
    remove_project_account,
)
from tests.host_accounts import (
    VIEW,
    fake_build,
    needs_root,
    scratch_home,
    throwaway_account,
    throwaway_project,
    try_as,
)

pytestmark = [pytest.mark.integration, needs_root("useradd", "userdel", "groupdel", "setpriv")]

MEMBERS = ["alice", "bob"]
ENCLAVE = shutil.which("enclave", path=str(Path(sys.executable).parent)) or "enclave"


def owner_mode(path: Path) -> tuple[str, str, int]:
    st = os.lstat(path)
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)


def test_an_account_is_created_once_with_its_own_group_and_no_login_then_removed():
    project = throwaway_project()
    name = f"enclave-{project}"
    try:
        account, result = ensure_project_account(project)
        assert result.detail.startswith(f"{name} created")
        user = pwd.getpwnam(name)
        assert (user.pw_uid, user.pw_gid) == (account.uid, account.gid)
        assert grp.getgrgid(user.pw_gid).gr_name == name
        assert grp.getgrnam(name).gr_mem == []
        assert (user.pw_shell, user.pw_dir) == ("/usr/sbin/nologin", "/nonexistent")
        assert not Path("/nonexistent").exists()

        again, result = ensure_project_account(project)
        assert again == account
        assert result.detail.startswith(f"{name} already there")
    finally:
        assert remove_project_account(project).detail == f"{name}: account and group removed"
    with pytest.raises(KeyError):
        pwd.getpwnam(name)
    with pytest.raises(KeyError):
        grp.getgrnam(name)
    assert remove_project_account(project).detail == f"{name}: not there"


def test_an_existing_account_that_enclave_did_not_make_is_not_adopted():
    project = throwaway_project()
    name = f"enclave-{project}"
    subprocess.run(["useradd", "--system", "--user-group", "--shell", "/bin/bash", name], check=True)
    try:
        with pytest.raises(HostError, match="not an Enclave project account"):
            ensure_project_account(project)
    finally:
        subprocess.run(["userdel", name], check=True)


def test_folders_get_the_owners_and_modes_of_the_table_and_a_rerun_changes_nothing():
    with scratch_home() as home, throwaway_account() as account:
        paths, project = Paths(home), account.project
        view = fake_build(paths, project, "20260101T000000Z-aaaaaa", VIEW)

        result = ensure_project_folders(paths, project, account, MEMBERS)
        assert "changes" in result.detail

        me, group = account.name, account.name
        expected = {
            paths.projects: ("root", "root", 0o711),
            paths.project_dir(project): ("root", group, 0o750),
            paths.project_dir(project) / "views": ("root", group, 0o2750),
            paths.project_outputs(project): (me, group, 0o2770),
            paths.project_homes(project): ("root", group, 0o750),
            paths.project_mlflow(project): (me, group, 0o700),
            paths.project_mlflow(project) / "artifacts": (me, group, 0o700),
        }
        for member in MEMBERS:
            expected[paths.project_home(project, member)] = (me, group, 0o700)
        assert {p: owner_mode(p) for p in expected} == expected

        assert paths.project_data(project).resolve() == view
        for path in [view, *view.rglob("*")]:
            mode = 0o550 if path.is_dir() else 0o440  # the materialiser's seal: nobody writes the view
            assert owner_mode(path) == ("root", group, mode), path

        assert ensure_project_folders(paths, project, account, MEMBERS).detail == (
            f"{project}: owners and modes already right"
        )


def test_the_account_reads_its_view_and_writes_its_own_folders():
    with scratch_home() as home, throwaway_account() as account:
        paths, project = Paths(home), account.project
        view = fake_build(paths, project, "20260101T000000Z-aaaaaa", VIEW)
        ensure_project_folders(paths, project, account, MEMBERS)

        assert try_as(account, "read", paths.project_data(project) / "clinical" / "patients.parquet") == "ok"
        assert try_as(account, "list", paths.project_data(project) / "imaging") == "ok"
        for folder in [
            paths.project_outputs(project),
            paths.project_home(project, "alice"),
            paths.project_mlflow(project) / "artifacts",
        ]:
            assert try_as(account, "write", folder) == "ok", folder
        # the view is read-only for the account, its own build included
        assert try_as(account, "write", view / "clinical") == "EACCES"
        assert try_as(account, "write", paths.project_dir(project)) == "EACCES"
        # outputs keep the project's group on what the account writes (set-group-id folder)
        written = paths.project_outputs(project) / "probe.txt"
        assert owner_mode(written)[:2] == (account.name, account.name)


def test_a_build_published_after_provisioning_is_readable_without_a_rerun():
    """views/ is set-group-id, so the materialiser's next build (written as root) takes the project's group."""
    with scratch_home() as home, throwaway_account() as account:
        paths, project = Paths(home), account.project
        fake_build(paths, project, "20260101T000000Z-aaaaaa", VIEW)
        ensure_project_folders(paths, project, account, MEMBERS)

        newer = fake_build(paths, project, "20260202T000000Z-bbbbbb", {**VIEW, "clinical/new.parquet": b"PAR1"})
        assert paths.project_data(project).resolve() == newer
        assert owner_mode(newer / "clinical" / "new.parquet") == ("root", account.name, 0o440)
        assert try_as(account, "read", paths.project_data(project) / "clinical" / "new.parquet") == "ok"


def test_a_project_whose_data_link_points_outside_its_views_is_refused():
    with scratch_home() as home, throwaway_account() as account:
        paths, project = Paths(home), account.project
        elsewhere = home / "elsewhere"
        elsewhere.mkdir()
        paths.project_dir(project).mkdir(parents=True)
        paths.project_data(project).symlink_to(elsewhere)
        with pytest.raises(HostError, match="does not point at a build"):
            ensure_project_folders(paths, project, account, MEMBERS)
        assert owner_mode(elsewhere)[:2] == ("root", "root")


def test_enclave_host_apply_provisions_every_project_in_the_registry(tmp_path):
    project = throwaway_project("cli")
    table = f"enclave_egress_t{secrets.token_hex(3)}"
    spec = tmp_path / "p.yaml"
    spec.write_text(
        f"name: {project}\ntitle: t\npurpose: DS-CVD\ndatasets: ['*']\n"
        # two output checkers: a project with fewer checkers than the reviews its releases need is refused
        "members: [{user: erin, role: researcher}, {user: carol, role: output_checker},"
        " {user: dave, role: output_checker}]\n"
    )
    with scratch_home() as home:
        try:
            enclave(home, "project", "create", "-f", str(spec))
            out = enclave(home, "host", "apply", "--egress-table", table)
            account = f"enclave-{project}"
            assert f"{account} created" in out and f"table inet {table}: egress denied to 1 accounts" in out
            uid = pwd.getpwnam(account).pw_uid
            assert owner_mode(Paths(home).project_home(project, "erin")) == (account, account, 0o700)
            listed = subprocess.run(["nft", "list", "table", "inet", table], check=True, capture_output=True, text=True)
            assert f"meta skuid {uid} " in listed.stdout
            assert "owners and modes already right" in enclave(home, "host", "apply", "--egress-table", table)
        finally:
            remove_egress_rules(table=table)
            remove_project_account(project)


def enclave(home: Path, *args: str) -> str:
    done = subprocess.run(
        [ENCLAVE, "--home", str(home), *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
