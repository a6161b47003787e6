"""A project's superseded builds (fabric/materialise/builds.py): kept while pinned by a sandbox or mounted anywhere,
kept within the grace period, removed otherwise; a pin never lands on a build being removed. Real folders, real
`flock`s and, as root, a real bind mount in a mount namespace of its own."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from fabric.materialise import builds
from kernel import audit
from kernel.config import Paths
from kernel.db import Registry
from kernel.errors import EnclaveError

pytestmark = pytest.mark.unit

OLD, MIDDLE, NEW = "20261201T100000Z-aaaaaa", "20261203T100000Z-bbbbbb", "20261205T100000Z-cccccc"
NOW = datetime(2026, 12, 5, 10, 0, 30)


def publish(project: Path, build: str) -> Path:
    """A sealed build folder with one file, and the `data` link moved to it as the materialiser does."""
    folder = project / "views" / build
    folder.mkdir(parents=True)
    (folder / "MANIFEST.json").write_text("{}")
    (folder / "MANIFEST.json").chmod(0o440)
    folder.chmod(0o550)
    link = project / f".data-{build}"
    link.symlink_to(os.path.relpath(folder, project))
    os.replace(link, project / "data")
    return folder


def remaining(project: Path) -> list[str]:
    return sorted(p.name for p in (project / "views").iterdir())


@pytest.fixture
def project(tmp_path) -> Path:
    project = tmp_path / "projects" / "p1"
    for build in (OLD, MIDDLE, NEW):
        publish(project, build)
    return project


def test_superseded_builds_nobody_uses_are_removed_and_the_current_one_stays(project):
    (project / "views" / ".staging-20261206T000000Z-dddddd").mkdir()
    swept = builds.sweep(project, grace=0, now=NOW)
    assert swept.removed == [OLD, MIDDLE] and swept.in_use == [] and swept.within_grace == []
    assert remaining(project) == [".staging-20261206T000000Z-dddddd", NEW], "a build being written is not touched"
    assert builds.sweep(project, grace=0, now=NOW).removed == [], "a second sweep has nothing to do"


def test_a_pinned_build_is_kept_until_its_pin_is_released(project):
    (project / "data").unlink()
    (project / "data").symlink_to(f"views/{OLD}")
    pin = builds.pin_current(project / "data")
    assert pin.build == project / "views" / OLD
    (project / "data").unlink()
    (project / "data").symlink_to(f"views/{NEW}")  # a newer build is published while the workspace runs

    swept = builds.sweep(project, grace=0, now=NOW)
    assert swept.in_use == [OLD] and swept.removed == [MIDDLE]
    assert (pin.build / "MANIFEST.json").read_text() == "{}", "the running workspace's data went away"
    pin.release()
    assert builds.sweep(project, grace=0, now=NOW).removed == [OLD]
    assert remaining(project) == [NEW]


def test_the_grace_period_counts_from_the_next_publication(project):
    # MIDDLE was superseded at NEW's time (30 s before NOW), OLD at MIDDLE's (two days before)
    swept = builds.sweep(project, grace=60, now=NOW)
    assert swept.removed == [OLD] and swept.within_grace == [MIDDLE]
    swept = builds.sweep(project, grace=60, now=NOW + timedelta(seconds=31))
    assert swept.removed == [MIDDLE]


def test_a_pin_taken_while_its_build_is_being_removed_moves_to_the_new_build(project):
    """The race a spawn runs against a publish: the link is read, then the build it named is swept away before the
    pin is taken. The sweep holds the exclusive lock while it removes, so the pin waits, sees the folder gone and
    pins the build the link names now."""
    (project / "data").unlink()
    (project / "data").symlink_to(f"views/{MIDDLE}")
    old = project / "views" / MIDDLE
    sweeper = os.open(old, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(sweeper, fcntl.LOCK_EX)
    result: dict[str, builds.BuildPin] = {}
    pinning = threading.Thread(target=lambda: result.setdefault("pin", builds.pin_current(project / "data")))
    pinning.start()
    time.sleep(0.3)
    assert "pin" not in result, "the pin did not wait for the removal"
    (project / "data").unlink()
    (project / "data").symlink_to(f"views/{NEW}")
    builds.remove_tree(old)
    os.close(sweeper)
    pinning.join(10)
    assert result["pin"].build == project / "views" / NEW
    result["pin"].release()


def test_pinning_a_project_with_no_view_is_a_clear_error(tmp_path):
    with pytest.raises(EnclaveError, match="has no published view"):
        builds.pin_current(tmp_path / "projects" / "empty" / "data")


def test_the_grace_setting_is_checked(monkeypatch):
    monkeypatch.setenv(builds.GRACE_ENV, "600")
    assert builds.grace_seconds() == 600
    monkeypatch.delenv(builds.GRACE_ENV)
    assert builds.grace_seconds() == 0
    for bad in ("ten", "-5"):
        monkeypatch.setenv(builds.GRACE_ENV, bad)
        with pytest.raises(EnclaveError, match=builds.GRACE_ENV):
            builds.grace_seconds()


def test_each_removal_is_audited(tmp_path, monkeypatch):
    monkeypatch.delenv(builds.GRACE_ENV, raising=False)
    paths = Paths(tmp_path / "home")
    paths.home.mkdir()
    for build in (OLD, NEW):
        publish(paths.project_dir("p1"), build)
    registry = Registry(paths.database_url)
    try:
        assert builds.sweep_project(registry, paths, "p1", actor="test-admin").removed == [OLD]
        with registry.session() as session:
            events = [e for e in audit.events(session) if e.action == "project.build_removed"]
            assert [(e.actor, e.target, e.detail["build"]) for e in events] == [("test-admin", "p1", OLD)]
            assert audit.verify(session) == []
    finally:
        registry.close()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="a mount namespace needs root")
def test_a_build_mounted_in_another_mount_namespace_is_in_use(project):
    """A workspace that outlived the hub which pinned its build (no pin left) still has the build bound: the sweep
    reads every mount namespace's mountinfo and keeps it."""
    target = project.parent / "mnt"
    target.mkdir()
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f"mount --bind {project / 'views' / MIDDLE} {target} && echo ready && exec sleep 60"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert MIDDLE in builds.mounted_builds()
        swept = builds.sweep(project, grace=0, now=NOW)
        assert swept.in_use == [MIDDLE] and swept.removed == [OLD]
    finally:
        holder.kill()
        holder.wait()
    assert builds.sweep(project, grace=0, now=NOW).removed == [MIDDLE]


def test_a_closed_projects_view_goes_except_what_a_sandbox_still_uses(tmp_path, monkeypatch):
    monkeypatch.setenv(builds.GRACE_ENV, "3600")  # a closed project's view goes whatever the grace period
    paths = Paths(tmp_path / "home")
    paths.home.mkdir()
    project = paths.project_dir("p1")
    for build in (OLD, NEW):
        publish(project, build)
    pin = builds.pin_current(project / "data")  # a run still reading the last build
    registry = Registry(paths.database_url)
    try:
        swept = builds.withdraw_view(registry, paths, "p1", actor="test-admin")
        assert not (project / "data").exists() and not (project / "data").is_symlink()
        assert swept.removed == [OLD] and swept.in_use == [NEW]
        with pytest.raises(EnclaveError, match="has no published view"):
            builds.pin_current(project / "data")  # nothing new starts on it
        pin.release()
        # as the sandbox's end sweeps it: nothing superseded it, so no grace period counts for it
        assert builds.sweep_project(registry, paths, "p1").removed == [NEW]
        with registry.session() as session:
            [event] = [e for e in audit.events(session) if e.action == "project.view_removed"]
            assert event.detail["builds_removed"] == [OLD] and event.detail["builds_in_use"] == [NEW]
    finally:
        registry.close()
