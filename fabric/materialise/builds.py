"""A project's published builds over time: the current one (the `data` link's target), superseded ones still in use,
and removing the rest.

A build is in use while a workspace or batch run holds a pin on it (`pin_current`, taken before its sandbox binds
the build and released when the sandbox is gone) or while any process's mount namespace still has it mounted (read
from /proc/*/mountinfo: a workspace that outlived the hub that pinned it). A superseded build is removed once it is
in use by nobody and its grace period (`ENCLAVE_BUILD_GRACE_SECONDS`, default 0: at once, so a patient whose consent
was withdrawn does not linger) has passed since a newer build was published. Removal is swept after each publish,
after each workspace or run ends, at `enclave up` and by `enclave project prune-builds`; each removal is audited.

Pins are shared `flock`s on the build's folder; the sweep takes an exclusive one, without waiting, before it removes a
build, so a build being pinned is never removed under the one pinning it, and a pin taken on a build a sweep just
removed is noticed and taken again on the new current build.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import stat
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from kernel import audit
from kernel.clock import utcnow
from kernel.config import Paths
from kernel.db import Registry
from kernel.errors import EnclaveError
from workbench.view_contract import PUBLISHED, VIEWS

GRACE_ENV = "ENCLAVE_BUILD_GRACE_SECONDS"
BUILD_TIME_FORMAT = "%Y%m%dT%H%M%SZ"  # a build id is its publication time in this form, '-', 6 random hex digits
SWEEP_ACTOR = "enclave"
log = logging.getLogger(__name__)


def grace_seconds() -> int:
    """How long a superseded build that nobody uses is kept (`ENCLAVE_BUILD_GRACE_SECONDS`, default 0)."""
    raw = os.environ.get(GRACE_ENV, "0").strip() or "0"
    try:
        value = int(raw)
    except ValueError:
        raise EnclaveError(f"{GRACE_ENV} must be a whole number of seconds, not {raw!r}") from None
    if value < 0:
        raise EnclaveError(f"{GRACE_ENV} must not be negative")
    return value


def build_time(build_id: str) -> datetime | None:
    """When build `build_id` was made (naive UTC), or None for a name that is not a build id."""
    try:
        return datetime.strptime(build_id.split("-", 1)[0], BUILD_TIME_FORMAT)
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------------ pins


@dataclass
class BuildPin:
    """A shared lock on one build's folder, held for as long as a sandbox has it bound at /project/data."""

    build: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops its flock
            self.fd = None


def pin_current(data_link: Path, attempts: int = 5) -> BuildPin:
    """Pin the build `data_link` points to now. Returns the pin, whose `build` is the folder to bind (never the link:
    the link may move to a newer build while the sandbox runs)."""
    for _ in range(attempts):
        try:
            build = data_link.resolve(strict=True)
        except FileNotFoundError:
            raise EnclaveError(f"project {data_link.parent.name} has no published view") from None
        try:
            fd = os.open(build, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # removed between resolving and opening: the link has moved on
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a sweep is removing this very build
        if os.fstat(fd).st_nlink > 0:  # still there: removal takes the exclusive lock first, so it stays now
            return BuildPin(build, fd)
        os.close(fd)
    raise EnclaveError(f"project {data_link.parent.name}'s view kept changing while a workspace started; try again")


def _pinned(build: Path) -> tuple[bool, int | None]:
    """Whether someone pins `build`; if not, the exclusive lock taken to find out (held, for the removal)."""
    try:
        fd = os.open(build, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False, None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return True, None
    return False, fd


def mounted_builds(proc: Path = Path("/proc")) -> set[str]:
    """The names of every folder any mount namespace has bound from a project's `views/` (their build ids), read
    once per namespace from /proc/PID/mountinfo. Processes that end while being read, or that this process may not
    inspect, are skipped: root (which sweeps in production) may inspect every one."""
    seen: set[str] = set()
    found: set[str] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            namespace = os.readlink(entry / "ns" / "mnt")
            if namespace in seen:
                continue
            lines = (entry / "mountinfo").read_text().splitlines()
        except OSError:
            continue
        seen.add(namespace)
        for line in lines:
            fields = line.split(" ")
            if len(fields) > 4:
                root = fields[3].replace("\\040", " ")
                parent, _, name = root.rpartition("/")
                if parent.endswith("/views") or parent == "views":
                    found.add(name)
    return found


# ------------------------------------------------------------------------------------------------ the sweep


@dataclass
class Sweep:
    removed: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)
    within_grace: list[str] = field(default_factory=list)


def _make_writable(path: Path) -> None:
    for root, dirs, _files in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), stat.S_IRWXU)
    os.chmod(path, stat.S_IRWXU)


def remove_tree(path: Path) -> None:
    """Remove a sealed (read-only) build or staging folder."""
    if path.exists():
        _make_writable(path)
        shutil.rmtree(path)


def sweep(project_dir: Path, *, grace: int, now: datetime | None = None, proc: Path = Path("/proc")) -> Sweep:
    """Remove `project_dir`'s superseded builds that nobody uses and whose grace period is over. Staging folders
    (`.staging-*`, a build being written) and the current build are never touched; with no `data` link (a closed
    project's view withdrawn), every build is superseded."""
    views = project_dir / VIEWS
    result = Sweep()
    link = project_dir / PUBLISHED
    current = link.resolve().name if link.is_symlink() else None
    builds = (
        sorted(p.name for p in views.iterdir() if p.is_dir() and not p.name.startswith(".")) if views.is_dir() else []
    )
    superseded = [b for b in builds if b != current]
    if not superseded:
        return result
    now = now or utcnow()
    mounted = mounted_builds(proc)
    for build in superseded:
        newer = [b for b in builds if b > build]  # ids sort by their publication time
        since = build_time(newer[0]) if newer else None
        if since is not None and now - since < timedelta(seconds=grace):
            result.within_grace.append(build)
            continue
        pinned, lock = _pinned(views / build)
        if pinned or build in mounted:
            if lock is not None:
                os.close(lock)
            result.in_use.append(build)
            continue
        try:
            remove_tree(views / build)
        finally:
            if lock is not None:
                os.close(lock)
        result.removed.append(build)
    return result


def sweep_project(registry: Registry, paths: Paths, name: str, *, actor: str = SWEEP_ACTOR) -> Sweep:
    """Sweep project `name`'s builds with the site's grace period; each removal is audited (`project.build_removed`)."""
    result = sweep(paths.project_dir(name), grace=grace_seconds())
    if result.removed:

        def record(session: Session) -> None:
            for build in result.removed:
                audit.record(session, actor=actor, action="project.build_removed", target=name, build=build,
                             reason="superseded and no longer in use")  # fmt: skip

        registry.transaction(record)
    return result


def withdraw_view(registry: Registry, paths: Paths, name: str, *, actor: str) -> Sweep:
    """A closed project's view goes: its `data` link is removed (no workspace or run can start on it), then every
    build nobody uses is removed now, whatever the grace period, and those still in use when their last sandbox
    ends. Audited (`project.view_removed`)."""
    link = paths.project_data(name)
    if link.is_symlink():
        link.unlink()
    result = sweep(paths.project_dir(name), grace=0)
    registry.transaction(
        lambda session: audit.record(session, actor=actor, action="project.view_removed", target=name,
                                     builds_removed=result.removed, builds_in_use=result.in_use)
    )  # fmt: skip
    return result


def sweep_after(registry: Registry, paths: Paths, name: str) -> None:
    """`sweep_project` where a failure must not fail the caller (a workspace or run that ended): logged instead."""
    try:
        sweep_project(registry, paths, name)
    except Exception as exc:
        log.warning("could not sweep the superseded builds of %s: %s", name, exc)
