"""A project's own file system, its disk quota (provisioning/storage.py), made through the real steps on a real loop
device: made once, mounted once, grown and never shrunk, never mounted over files, and released without a trace;
the host step puts the project's outputs, homes and MLflow store on it with the owners and modes of the layout."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kernel.config import Paths
from provisioning.host import ensure_host, remove_egress_rules, remove_project_account
from provisioning.storage import (
    StorageError,
    ensure_project_storage,
    filesystem_bytes,
    loop_devices,
    mounted,
    mounts,
    release_all_under,
    release_project_storage,
)
from tests.host_accounts import scratch_home, throwaway_project

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0 or not Path("/dev/loop-control").exists() or not shutil.which("mkfs.ext4", path="/usr/sbin"),
        reason="needs root, loop devices and mkfs.ext4: a project's storage is a loop-mounted file system",
    ),
]

MiB = 2**20
ENCLAVE = shutil.which("enclave", path=str(Path(sys.executable).parent)) or "enclave"


@pytest.fixture
def home():
    with scratch_home() as home:  # its teardown releases every mount under it
        yield home


def test_the_store_is_made_and_mounted_once_and_a_rerun_changes_nothing(home):
    paths = Paths(home)
    first = ensure_project_storage(paths, "alpha", 96 * MiB)
    assert "image of 96 MiB made" in first.detail and "mounted at" in first.detail
    image, store = paths.project_image("alpha"), paths.project_store("alpha")
    assert stat.S_IMODE(os.stat(paths.storage).st_mode) == 0o700 and os.stat(image).st_uid == 0
    assert stat.S_IMODE(os.stat(image).st_mode) == 0o600
    assert os.stat(store).st_dev != os.stat(home).st_dev
    options = next(line for line in Path("/proc/self/mountinfo").read_text().splitlines() if f" {store} " in line)
    assert "nosuid" in options and "nodev" in options
    devices = loop_devices(image)
    again = ensure_project_storage(paths, "alpha", 96 * MiB)
    assert again.detail == "alpha: mounted (96 MiB)"
    assert loop_devices(image) == devices and len(devices) == 1 and mounted(paths, "alpha") == devices[0]


def test_the_store_grows_when_the_spec_asks_for_more_and_is_never_shrunk(home):
    paths = Paths(home)
    ensure_project_storage(paths, "alpha", 96 * MiB)
    (paths.project_store("alpha") / "kept.txt").write_text("still here")
    grown = ensure_project_storage(paths, "alpha", 192 * MiB)
    assert "grown from 96 MiB to 192 MiB" in grown.detail
    assert filesystem_bytes(paths.project_image("alpha")) == 192 * MiB
    assert (paths.project_store("alpha") / "kept.txt").read_text() == "still here"
    kept = ensure_project_storage(paths, "alpha", 96 * MiB)
    assert "WARNING: kept at 192 MiB" in kept.detail and "never shrunk" in kept.detail
    assert filesystem_bytes(paths.project_image("alpha")) == 192 * MiB


def test_files_in_the_mount_point_are_never_hidden_under_the_store(home):
    paths = Paths(home)
    ensure_project_storage(paths, "alpha", 96 * MiB)
    release_project_storage(paths, "alpha")
    (paths.project_store("alpha") / "outputs").mkdir()  # written while the store was not mounted
    with pytest.raises(StorageError, match="holds files outside project alpha's storage"):
        ensure_project_storage(paths, "alpha", 96 * MiB)


def test_released_storage_leaves_no_mount_and_no_loop_device_and_mounts_again(home):
    paths = Paths(home)
    ensure_project_storage(paths, "alpha", 96 * MiB)
    (paths.project_store("alpha") / "kept.txt").write_text("still here")
    assert "unmounted" in release_project_storage(paths, "alpha").detail
    assert mounted(paths, "alpha") is None and loop_devices(paths.project_image("alpha")) == []
    ensure_project_storage(paths, "alpha", 96 * MiB)  # what `enclave up` does after a reboot
    assert (paths.project_store("alpha") / "kept.txt").read_text() == "still here"
    ensure_project_storage(paths, "beta", 96 * MiB)
    released = release_all_under(home)
    assert len(released) == 4  # two mounts, two loop devices
    assert not [p for p in mounts() if p.is_relative_to(home)]


def test_host_apply_puts_outputs_homes_and_mlflow_on_the_project_file_system(home):
    project = throwaway_project("store")
    paths = Paths(home)
    table = "enclave_egress_store"
    try:
        ensure_host(paths, {project: ["erin"]}, egress_table=table)
        store = paths.project_store(project)
        assert os.stat(store).st_dev != os.stat(home).st_dev
        inside = (paths.project_outputs(project), paths.project_home(project, "erin"), paths.project_mlflow(project))
        for folder in inside:
            assert folder.is_relative_to(store) and os.stat(folder).st_dev == os.stat(store).st_dev
        account = f"enclave-{project}"
        st = os.stat(paths.project_outputs(project))
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (pwd.getpwnam(account).pw_uid, 0o2770)
        assert stat.S_IMODE(os.stat(store).st_mode) == 0o750 and os.stat(store).st_uid == 0
        # the default quota: the spec's (no registry here, so StorageLimits' default)
        assert filesystem_bytes(paths.project_image(project)) == 20 * 2**30
        assert os.stat(paths.project_image(project)).st_blocks * 512 < 2**30  # sparse: the host's disk as used
        rerun = ensure_host(paths, {project: ["erin"]}, egress_table=table)
        assert any(r.step == "storage" and r.detail.endswith("mounted (20.0 GiB)") for r in rerun)
        assert any(r.step == "folders" and "already right" in r.detail for r in rerun)
    finally:
        remove_egress_rules(table=table)
        release_all_under(home)
        remove_project_account(project)


def test_enclave_host_apply_mounts_and_host_release_unmounts_every_store(home, tmp_path):
    project = throwaway_project("cli")
    spec = tmp_path / "p.yaml"
    spec.write_text(
        f"name: {project}\ntitle: t\npurpose: DS-CVD\ndatasets: ['*']\n"
        # two output checkers: a project with fewer checkers than the reviews its releases need is refused
        "members: [{user: erin, role: researcher}, {user: carol, role: output_checker},"
        " {user: dave, role: output_checker}]\n"
        "storage: {quota: 128MiB}\n"
    )
    table = "enclave_egress_strel"
    try:
        enclave(home, "project", "create", "-f", str(spec))
        applied = enclave(home, "host", "apply", "--egress-table", table)
        assert f"{project}: image of 128 MiB made" in applied
        assert mounted(Paths(home), project) is not None
        assert "2 mounts and loop devices released" in enclave(home, "host", "release")
        assert mounted(Paths(home), project) is None and loop_devices(Paths(home).project_image(project)) == []
    finally:
        remove_egress_rules(table=table)
        release_all_under(home)
        remove_project_account(project)


def enclave(home: Path, *args: str) -> str:
    done = subprocess.run([ENCLAVE, "--home", str(home), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout
