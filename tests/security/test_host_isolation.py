"""Red team on the host folders: one project's account cannot read another project's data, outputs, homes,
MLflow store or sockets, and symlinks a project account plants in the folders it owns never make root (who runs
provisioning) change anything outside them. Root only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kernel.config import Paths
from provisioning.host import HostError, ensure_project_folders
from tests.host_accounts import VIEW, fake_build, needs_root, scratch_home, throwaway_account, try_as

pytestmark = [pytest.mark.integration, pytest.mark.security, needs_root("useradd", "userdel", "setpriv")]


def test_an_account_cannot_read_or_write_another_projects_folders():
    with scratch_home() as home, throwaway_account() as mine, throwaway_account() as theirs:
        paths = Paths(home)
        for account in (mine, theirs):
            fake_build(paths, account.project, "20260101T000000Z-aaaaaa", VIEW)
            ensure_project_folders(paths, account.project, account, ["alice"])
        (paths.project_outputs(theirs.project) / "table.csv").write_text("n\n12\n")
        os.chown(paths.project_outputs(theirs.project) / "table.csv", theirs.uid, theirs.gid)

        other = theirs.project
        assert try_as(mine, "read", paths.project_data(mine.project) / "clinical" / "patients.parquet") == "ok"
        refused = {
            ("read", paths.project_data(other) / "clinical" / "patients.parquet"),
            ("list", paths.project_dir(other)),
            ("list", paths.project_data(other)),
            ("read", paths.project_outputs(other) / "table.csv"),
            ("write", paths.project_outputs(other)),
            ("list", paths.project_home(other, "alice")),
            ("write", paths.project_mlflow(other) / "artifacts"),
            ("list", paths.projects),  # no account may list which projects exist
        }
        assert {(op, str(path)): try_as(mine, op, path) for op, path in refused} == {
            (op, str(path)): "EACCES" for op, path in refused
        }
        assert try_as(mine, "write", paths.project_outputs(mine.project)) == "ok"


def test_a_symlink_planted_in_outputs_does_not_make_root_change_its_target():
    with scratch_home() as home, throwaway_account() as account:
        paths, project = Paths(home), account.project
        fake_build(paths, project, "20260101T000000Z-aaaaaa", VIEW)
        ensure_project_folders(paths, project, account, ["alice"])
        secret = home / "root-only.txt"
        secret.write_text("root's")
        secret.chmod(0o600)
        (paths.project_outputs(project) / "planted").symlink_to(secret)
        (paths.project_home(project, "alice") / "planted").symlink_to(home)

        ensure_project_folders(paths, project, account, ["alice"])

        for target, mode in ((secret, 0o600), (home, 0o711)):
            st = os.stat(target)
            assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, mode)
        assert try_as(account, "read", paths.project_outputs(project) / "planted") == "EACCES"


@pytest.mark.parametrize(
    "owned",
    [
        lambda paths, project: paths.project_mlflow(project) / "artifacts",
        lambda paths, project: paths.project_home(project, "alice"),
    ],
    ids=["mlflow-artifacts", "home"],
)
def test_a_folder_the_account_replaced_by_a_symlink_is_refused_not_followed(owned):
    """mlflow/ and homes/USER/ belong to the account, which may swap what is inside for a link to
    anything: provisioning must refuse rather than chown the link's target to the account."""
    with scratch_home() as home, throwaway_account() as account:
        paths, project = Paths(home), account.project
        ensure_project_folders(paths, project, account, ["alice"])
        outside = home / "outside"
        outside.mkdir(mode=0o700)
        folder: Path = owned(paths, project)
        folder.rmdir()
        folder.symlink_to(outside)

        with pytest.raises(HostError, match="not a directory"):
            ensure_project_folders(paths, project, account, ["alice"])
        st = os.stat(outside)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o700)


def test_the_registry_raw_data_and_secrets_are_root_only():
    from provisioning.host import ensure_home_modes

    with scratch_home() as home, throwaway_account() as account:
        paths = Paths(home)
        (home / "registry.sqlite").write_text("registry")
        (home / "registry.sqlite").chmod(0o644)
        (home / "sites" / "site-a").mkdir(parents=True)
        (home / "sites" / "site-a" / "patients.csv").write_text("nhs\n9434765919\n")
        (home / "sites").chmod(0o755)
        (home / "secrets").mkdir(mode=0o755)
        (home / "audit").mkdir(mode=0o755)
        (home / "audit" / "anchors.log").write_text("1 " + "0" * 64 + "\n")
        (home / "audit" / "anchors.log").chmod(0o644)
        ensure_home_modes(paths)
        for op, path in (("read", home / "registry.sqlite"), ("read", home / "sites" / "site-a" / "patients.csv"),
                         ("list", home / "secrets"), ("list", home), ("list", home / "audit")):  # fmt: skip
            assert try_as(account, op, path) == "EACCES", path
        assert ensure_home_modes(paths).detail == "modes already right"
