"""The ceiling of all workspaces together (hub/limits.py): the host less a reserve for Enclave's own services, the
parent group's files, workspaces squeezed under it; and the project spec's storage quota (fabric/projects.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fabric.projects import ProjectSpec, StorageLimits
from hub.limits import (
    PARENT_CPU_SHARES,
    Ceiling,
    CgroupError,
    Host,
    Limits,
    Reserve,
    WorkspaceCgroup,
    ensure_ceiling,
    parent_name,
)
from provisioning.storage import mounts

pytestmark = pytest.mark.unit

GiB = 2**30


def test_the_default_memory_reserve_is_the_larger_of_a_floor_and_a_share():
    big = Host(memory_bytes=64 * GiB, cpus=32)
    assert Reserve().memory_for(big) == int(64 * GiB * 0.15)
    small = Host(memory_bytes=8 * GiB, cpus=2)
    assert Reserve().memory_for(small) == 2 * GiB
    assert Ceiling.for_host(small, Reserve()).memory_bytes == 6 * GiB


def test_the_default_cpu_reserve_is_a_weight_not_a_cap():
    """Work-conserving: no CFS quota on the parent, so idle services cost the workspaces nothing; every CPU of the
    host is the workspaces' ceiling, and the parent's weight (one host process) keeps the services' turn."""
    for host in (Host(memory_bytes=8 * GiB, cpus=2), Host(memory_bytes=64 * GiB, cpus=32)):
        ceiling = Ceiling.for_host(host, Reserve())
        assert not ceiling.capped and ceiling.cpus == host.cpus and ceiling.cfs_quota_us == -1
        assert ceiling.v1_files()["cpu"] == {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1",
                                             "cpu.shares": str(PARENT_CPU_SHARES)}  # fmt: skip
        assert ceiling.v2_files()["cpu.max"] == "max 100000" and ceiling.v2_files()["cpu.weight"] == "100"


def test_a_cpu_reserve_set_by_the_site_is_also_a_hard_cap():
    ceiling = Ceiling.for_host(Host(memory_bytes=8 * GiB, cpus=2), Reserve(cpus=0.5))
    assert ceiling.capped and ceiling.cpus == 1.5 and ceiling.cfs_quota_us == 150_000
    assert ceiling.v2_files()["cpu.max"] == "150000 100000"
    assert not Ceiling.for_host(Host(memory_bytes=8 * GiB, cpus=2), Reserve(cpus=0)).capped


def test_the_ceiling_is_page_aligned_so_a_rerun_finds_it_unchanged():
    ceiling = Ceiling.for_host(Host(memory_bytes=23 * GiB + 12345, cpus=2), Reserve())
    assert ceiling.memory_bytes % 4096 == 0


def test_the_reserve_comes_from_the_environment():
    assert Reserve.from_env({}) == Reserve()
    assert Reserve.from_env({"ENCLAVE_RESERVE_MEMORY": "4GiB", "ENCLAVE_RESERVE_CPUS": "1"}) == Reserve(4 * GiB, 1.0)
    assert Reserve.from_env({"ENCLAVE_RESERVE_MEMORY": "1073741824"}).memory_bytes == GiB
    for bad in ({"ENCLAVE_RESERVE_MEMORY": "lots"}, {"ENCLAVE_RESERVE_CPUS": "half"}):
        with pytest.raises(CgroupError, match="must be bytes or a size"):
            Reserve.from_env(bad)


def test_a_reserve_that_leaves_the_workspaces_nothing_is_refused():
    with pytest.raises(CgroupError, match="leaves the workspaces too little"):
        Ceiling.for_host(Host(memory_bytes=4 * GiB, cpus=2), Reserve(memory_bytes=4 * GiB))
    with pytest.raises(CgroupError, match="ENCLAVE_RESERVE_CPUS"):
        Ceiling.for_host(Host(memory_bytes=64 * GiB, cpus=1), Reserve(cpus=1))


def test_a_workspace_asking_for_more_than_the_ceiling_is_squeezed_to_it():
    ceiling = Ceiling(memory_bytes=6 * GiB, cpus=1.5)
    assert ceiling.squeeze(Limits(cpus=4, memory_bytes=64 * GiB, pids=512)) == Limits(1.5, 6 * GiB, 512)
    assert ceiling.squeeze(Limits(cpus=1, memory_bytes=GiB, pids=16)) == Limits(1, GiB, 16)


def test_the_parent_name_comes_from_the_environment_and_is_checked(monkeypatch):
    monkeypatch.delenv("ENCLAVE_CGROUP_PARENT", raising=False)
    assert parent_name() == "enclave"
    monkeypatch.setenv("ENCLAVE_CGROUP_PARENT", "enclave-test_1")
    assert parent_name() == "enclave-test_1" and WorkspaceCgroup("w").parent == "enclave-test_1"
    monkeypatch.setenv("ENCLAVE_CGROUP_PARENT", "../memory")
    with pytest.raises(CgroupError, match="not a control group name"):
        parent_name()


def v1_tree(root):
    for controller in ("cpu", "memory", "pids"):
        (root / controller).mkdir()
    return root


@pytest.mark.parametrize(("capped", "quota"), [(True, "150000"), (False, "-1")])
def test_the_parent_group_gets_the_ceiling_in_a_v1_tree_and_a_rerun_changes_nothing(tmp_path, capped, quota):
    root = v1_tree(tmp_path)
    ceiling = Ceiling(memory_bytes=6 * GiB, cpus=1.5, capped=capped)
    ensure_ceiling(ceiling, root=root, parent="enclave")
    cpu, memory = root / "cpu" / "enclave", root / "memory" / "enclave"
    assert (cpu / "cpu.cfs_quota_us").read_text() == quota and (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (cpu / "cpu.shares").read_text() == str(PARENT_CPU_SHARES)
    assert (memory / "memory.use_hierarchy").read_text() == "1"
    assert (memory / "memory.limit_in_bytes").read_text() == str(6 * GiB)
    written = {p: p.stat().st_mtime_ns for p in (*cpu.iterdir(), *memory.iterdir())}
    ensure_ceiling(ceiling, root=root, parent="enclave")
    assert {p: p.stat().st_mtime_ns for p in written} == written


def test_a_running_workspace_with_a_larger_cpu_quota_is_lowered_before_the_parent(tmp_path):
    """The kernel refuses a parent quota below a child's (EINVAL): the child is lowered first."""
    root = v1_tree(tmp_path)
    child = root / "cpu" / "enclave" / "w0"
    child.mkdir(parents=True)
    (child / "cpu.cfs_quota_us").write_text("400000")
    ensure_ceiling(Ceiling(memory_bytes=6 * GiB, cpus=1.5, capped=True), root=root, parent="enclave")
    assert (child / "cpu.cfs_quota_us").read_text() == "150000"


def test_a_workspace_group_is_made_under_the_ceiling(tmp_path):
    root = v1_tree(tmp_path)
    group = WorkspaceCgroup("w1", root=root, parent="enclave-x")
    ceiling = Ceiling(memory_bytes=6 * GiB, cpus=1.5, capped=True)
    given = group.create(Limits(cpus=8, memory_bytes=64 * GiB, pids=300), ceiling)
    assert given == Limits(cpus=1.5, memory_bytes=6 * GiB, pids=300)
    assert group.read("memory.limit_in_bytes") == str(6 * GiB) and group.read("cpu.cfs_quota_us") == "150000"
    assert (root / "memory" / "enclave-x" / "memory.limit_in_bytes").read_text() == str(6 * GiB)


def test_the_parent_group_gets_the_ceiling_in_a_v2_tree(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids")
    ensure_ceiling(Ceiling(memory_bytes=6 * GiB, cpus=1.5, capped=True), root=tmp_path, parent="enclave")
    folder = tmp_path / "enclave"
    assert (folder / "cpu.max").read_text() == "150000 100000" and (folder / "cpu.weight").read_text() == "100"
    assert (folder / "memory.max").read_text() == str(6 * GiB)


def test_the_storage_quota_has_a_default_and_a_floor():
    assert StorageLimits().quota_bytes() == 20 * GiB
    assert StorageLimits(quota="500GiB").quota_bytes() == 500 * GiB
    with pytest.raises(ValidationError, match="too small"):
        StorageLimits(quota="1MiB")
    with pytest.raises(ValidationError):
        StorageLimits(quota="lots")
    spec = {"name": "abc", "title": "t", "purpose": "HMB", "datasets": ["*"], "storage": {"quota": "64GiB"}}
    assert ProjectSpec.model_validate(spec).storage.quota_bytes() == 64 * GiB


def test_mount_points_are_read_from_mountinfo_with_their_escapes():
    info = (
        "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "90 22 7:3 / /var/lib/enclave/projects/a\\040b/store rw,nosuid,nodev - ext4 /dev/loop3 rw\n"
    )
    assert mounts(info) == {
        Path("/"): "/dev/vda",
        Path("/var/lib/enclave/projects/a b/store"): "/dev/loop3",
    }
