"""CPU, memory and process limits of a workspace, enforced by a control group per workspace, and the ceiling of
all workspaces together, enforced by their parent group, which keeps a reserve for the hub, proxy, airlock and OS.

These machines run cgroup v1 (one hierarchy per controller, systemd not PID 1); cgroup v2 hosts get the same limits
through the unified hierarchy. A workspace's group is made before its sandbox starts and the sandbox's first process
joins it before it runs anything (`join` in the child), so every process of the workspace is counted. The group is
removed when the workspace stops, after any process left in it is killed.

The parent group (`enclave`, or $ENCLAVE_CGROUP_PARENT) gets the host's memory less a reserve (hierarchical
accounting on, so the sum of the workspaces counts). CPU is reserved by weight, which costs nothing while the
services idle: all workspaces together weigh as much as one process of the host (v1 `cpu.shares` 1024, v2
`cpu.weight` 100), so when the CPUs are busy the hub, the proxy and the airlock, each outside the group, get their
turn before any workspace, and when they are idle the workspaces use every CPU. A site that wants a hard cap as well
sets $ENCLAVE_RESERVE_CPUS: the parent then also gets a CFS quota of the host's CPUs less that many. A workspace
whose own limits exceed the ceiling is squeezed to it, not refused: no workspace can use more than the ceiling
anyway, and the kernel refuses a CPU quota above the parent's.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from fabric.projects import ComputeLimits, size_bytes

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "enclave"
PARENT_ENV = "ENCLAVE_CGROUP_PARENT"
RESERVE_MEMORY_ENV = "ENCLAVE_RESERVE_MEMORY"  # bytes, or a size such as 4GiB
RESERVE_CPUS_ENV = "ENCLAVE_RESERVE_CPUS"
CFS_PERIOD_US = 100_000
MIN_RESERVE_MEMORY = 2 * 2**30
RESERVE_MEMORY_SHARE = 0.15
PAGE = 4096
MIN_CEILING_MEMORY = 256 * 2**20  # below this no workspace starts: a reserve that leaves less is a mistake
MIN_CEILING_CPUS = 0.1
# All workspaces together weigh as much as one host process when the CPUs are busy (v1 shares, v2 weight: the
# defaults, written so a changed value is put back). This weight is the CPU reserve: a service thread outside the
# group competes with the whole group as an equal, and it costs the workspaces nothing while the services idle.
# Lower would starve the workspaces on a host busy with anything else.
PARENT_CPU_SHARES = 1024
PARENT_CPU_WEIGHT = 100
NO_QUOTA_V2 = "max"


def parent_name() -> str:
    """The parent group of every workspace's group: $ENCLAVE_CGROUP_PARENT (a second installation, or a test), else
    `enclave`."""
    name = os.environ.get(PARENT_ENV) or PARENT
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", name):
        raise CgroupError(f"{PARENT_ENV}={name!r} is not a control group name (lower case, digits, '-' and '_')")
    return name


@dataclass(frozen=True)
class Limits:
    cpus: float
    memory_bytes: int
    pids: int  # processes and threads: the server, kernels, Dask workers and all their threads

    @classmethod
    def from_compute(cls, compute: ComputeLimits) -> Limits:
        """The project spec's `compute`: cpus, memory and max_processes."""
        return cls(cpus=compute.cpus, memory_bytes=compute.memory_bytes(), pids=compute.max_processes)

    def v1_files(self) -> dict[str, dict[str, str]]:
        """What to write in each cgroup v1 controller's folder."""
        return {
            "cpu": {"cpu.cfs_period_us": str(CFS_PERIOD_US), "cpu.cfs_quota_us": str(int(self.cpus * CFS_PERIOD_US))},
            "memory": {"memory.limit_in_bytes": str(self.memory_bytes)},
            "pids": {"pids.max": str(self.pids)},
        }

    def v2_files(self) -> dict[str, str]:
        return {
            "cpu.max": f"{int(self.cpus * CFS_PERIOD_US)} {CFS_PERIOD_US}",
            "memory.max": str(self.memory_bytes),
            "memory.swap.max": "0",
            "pids.max": str(self.pids),
        }


class CgroupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Host:
    """What the machine has: its memory and the CPUs this process may run on."""

    memory_bytes: int
    cpus: float

    @classmethod
    def current(cls) -> Host:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
                break
        else:
            raise CgroupError("/proc/meminfo has no MemTotal")
        return cls(memory_bytes=memory, cpus=float(len(os.sched_getaffinity(0))))


@dataclass(frozen=True)
class Reserve:
    """What the workspaces together may never take: for the hub, the proxy, the airlock and the OS. Memory: None is
    the default, max(2 GiB, 15 %). CPUs: None (the default) reserves by weight alone (work-conserving, see the
    module's docstring); a number also caps the workspaces at the host's CPUs less that many."""

    memory_bytes: int | None = None
    cpus: float | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Reserve:
        """$ENCLAVE_RESERVE_MEMORY (bytes, or a size such as 4GiB) and $ENCLAVE_RESERVE_CPUS."""
        env = os.environ if env is None else env
        memory, cpus = env.get(RESERVE_MEMORY_ENV, "").strip(), env.get(RESERVE_CPUS_ENV, "").strip()
        try:
            return cls(
                memory_bytes=(int(memory) if memory.isdigit() else size_bytes(memory)) if memory else None,
                cpus=float(cpus) if cpus else None,
            )
        except (ValueError, KeyError, AttributeError):
            raise CgroupError(
                f"{RESERVE_MEMORY_ENV} must be bytes or a size such as 4GiB, {RESERVE_CPUS_ENV} a number of CPUs"
            ) from None

    def memory_for(self, host: Host) -> int:
        if self.memory_bytes is not None:
            return self.memory_bytes
        return max(MIN_RESERVE_MEMORY, int(host.memory_bytes * RESERVE_MEMORY_SHARE))

    def cpus_for(self, host: Host) -> float:
        """CPUs held back by a hard cap: none unless the site asked for one."""
        return self.cpus or 0.0


@dataclass(frozen=True)
class Ceiling:
    """What every workspace together may use: the host less the reserve. `capped`: the CPUs are a hard CFS quota
    (the site set a CPU reserve); otherwise they are the host's, shared by weight."""

    memory_bytes: int
    cpus: float
    capped: bool = False

    @classmethod
    def for_host(cls, host: Host, reserve: Reserve) -> Ceiling:
        memory = host.memory_bytes - reserve.memory_for(host)
        memory -= memory % PAGE  # as the kernel stores it, so a rerun finds nothing to change
        cpus = round(host.cpus - reserve.cpus_for(host), 3)
        if memory < MIN_CEILING_MEMORY or cpus < MIN_CEILING_CPUS:
            raise CgroupError(
                f"the reserve for the host's services ({reserve.memory_for(host) / 2**30:.1f} GiB, "
                f"{reserve.cpus_for(host):g} CPUs) leaves the workspaces too little of this host's "
                f"{host.memory_bytes / 2**30:.1f} GiB and {host.cpus:g} CPUs; lower {RESERVE_MEMORY_ENV} or "
                f"{RESERVE_CPUS_ENV}"
            )
        return cls(memory_bytes=memory, cpus=cpus, capped=reserve.cpus_for(host) > 0)

    @classmethod
    def from_env(cls) -> Ceiling:
        return cls.for_host(Host.current(), Reserve.from_env())

    def squeeze(self, limits: Limits) -> Limits:
        """A workspace's limits, no larger than the ceiling."""
        memory = min(limits.memory_bytes, self.memory_bytes)
        return replace(limits, cpus=min(limits.cpus, self.cpus), memory_bytes=memory)

    @property
    def cfs_quota_us(self) -> int:
        """The parent's CFS quota: -1 (none) unless capped."""
        return int(self.cpus * CFS_PERIOD_US) if self.capped else -1

    def v1_files(self) -> dict[str, dict[str, str]]:
        """The parent group's files per v1 controller, in the order they are written."""
        return {
            "cpu": {
                "cpu.cfs_period_us": str(CFS_PERIOD_US),
                "cpu.cfs_quota_us": str(self.cfs_quota_us),
                "cpu.shares": str(PARENT_CPU_SHARES),
            },
            "memory": {"memory.use_hierarchy": "1", "memory.limit_in_bytes": str(self.memory_bytes)},
        }

    def v2_files(self) -> dict[str, str]:
        return {
            "cpu.max": f"{self.cfs_quota_us if self.capped else NO_QUOTA_V2} {CFS_PERIOD_US}",
            "cpu.weight": str(PARENT_CPU_WEIGHT),
            "memory.max": str(self.memory_bytes),
            "memory.swap.max": "0",
        }


def _write_if_changed(path: Path, value: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.read_text().strip() == value:
            return
    path.write_text(value)


def ensure_ceiling(ceiling: Ceiling | None = None, *, root: Path = CGROUP_ROOT, parent: str | None = None) -> Ceiling:
    """The parent group of the workspaces, made if absent, with the ceiling's limits (idempotent: only what differs
    is written). A workspace group already there with a larger CPU quota is lowered first, as the kernel asks."""
    ceiling = Ceiling.from_env() if ceiling is None else ceiling
    parent = parent_name() if parent is None else parent
    try:
        if (root / "cgroup.controllers").exists():
            folder = root / parent
            folder.mkdir(exist_ok=True)
            (root / "cgroup.subtree_control").write_text("+cpu +memory +pids")
            for name, value in ceiling.v2_files().items():
                with contextlib.suppress(FileNotFoundError):  # memory.swap.max needs swap accounting
                    _write_if_changed(folder / name, value)
            return ceiling
        for controller, files in ceiling.v1_files().items():
            if not (root / controller).is_dir():
                raise CgroupError(f"cgroup v1 controller {controller!r} is not mounted at {root}")
            folder = root / controller / parent
            folder.mkdir(exist_ok=True)
            if controller == "cpu" and ceiling.capped:
                for child in (c for c in folder.iterdir() if c.is_dir()):
                    with contextlib.suppress(FileNotFoundError):
                        quota = int((child / "cpu.cfs_quota_us").read_text())
                        if quota < 0 or quota > ceiling.cfs_quota_us:
                            (child / "cpu.cfs_quota_us").write_text(str(ceiling.cfs_quota_us))
            for name, value in files.items():
                try:
                    _write_if_changed(folder / name, value)
                except OSError as exc:
                    if name == "memory.use_hierarchy" and exc.errno in (errno.EBUSY, errno.EINVAL):
                        raise CgroupError(
                            f"hierarchical memory accounting cannot be turned on in {folder} while it has groups "
                            "in it; stop Enclave's workspaces first"
                        ) from None
                    if name == "memory.limit_in_bytes" and exc.errno == errno.EBUSY:
                        raise CgroupError(
                            f"the workspaces already use more memory than the ceiling of "
                            f"{ceiling.memory_bytes / 2**30:.1f} GiB; stop some and start again"
                        ) from None
                    raise
    except OSError as exc:
        raise CgroupError(f"cannot set the workspaces' ceiling in {root}: {exc.strerror}") from exc
    return ceiling


@dataclass(frozen=True)
class WorkspaceCgroup:
    """The control group(s) of one workspace: one folder per v1 controller, or one folder in the v2 hierarchy."""

    name: str
    root: Path = CGROUP_ROOT
    parent: str = field(default_factory=parent_name)

    @property
    def unified(self) -> bool:
        return (self.root / "cgroup.controllers").exists()

    def folders(self) -> list[Path]:
        if self.unified:
            return [self.root / self.parent / self.name]
        return [self.root / controller / self.parent / self.name for controller in ("cpu", "memory", "pids")]

    def create(self, limits: Limits, ceiling: Ceiling | None = None) -> Limits:
        """Make the group under the parent (its ceiling ensured first) and write its limits, squeezed under the
        ceiling; the limits it got. CgroupError if this host cannot enforce them."""
        ceiling = ensure_ceiling(ceiling, root=self.root, parent=self.parent)
        limits = ceiling.squeeze(limits)
        try:
            if self.unified:
                parent = self.root / self.parent
                parent.mkdir(exist_ok=True)
                (self.root / "cgroup.subtree_control").write_text("+cpu +memory +pids")
                (parent / "cgroup.subtree_control").write_text("+cpu +memory +pids")
                folder = self.folders()[0]
                folder.mkdir(exist_ok=True)
                for name, value in limits.v2_files().items():
                    with contextlib.suppress(FileNotFoundError):  # memory.swap.max needs swap accounting
                        (folder / name).write_text(value)
                return limits
            for controller, files in limits.v1_files().items():
                if not (self.root / controller).is_dir():
                    raise CgroupError(f"cgroup v1 controller {controller!r} is not mounted at {self.root}")
                folder = self.root / controller / self.parent / self.name
                folder.mkdir(parents=True, exist_ok=True)
                for name, value in files.items():
                    (folder / name).write_text(value)
                if controller == "memory" and (folder / "memory.memsw.limit_in_bytes").exists():
                    # memory + swap, where the kernel accounts swap: no paging past the limit
                    (folder / "memory.memsw.limit_in_bytes").write_text(files["memory.limit_in_bytes"])
        except OSError as exc:
            raise CgroupError(f"cannot set workspace limits in {self.root}: {exc.strerror}") from exc
        return limits

    def join(self) -> None:
        """Move the calling process into the group (run in the sandbox's first process, before exec)."""
        pid = str(os.getpid())
        for folder in self.folders():
            (folder / "cgroup.procs").write_text(pid)

    def pids(self) -> set[int]:
        found: set[int] = set()
        for folder in self.folders():
            with contextlib.suppress(FileNotFoundError):
                found |= {int(line) for line in (folder / "cgroup.procs").read_text().split()}
        return found

    def remove(self, grace: float = 5.0) -> None:
        """Kill what is left in the group and remove it."""
        deadline = time.monotonic() + grace
        while (left := self.pids()) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        for folder in self.folders():
            with contextlib.suppress(FileNotFoundError, OSError):
                folder.rmdir()

    def read(self, name: str) -> str:
        """A value of the group (e.g. `memory.limit_in_bytes`), from whichever controller folder holds it."""
        for folder in self.folders():
            if (folder / name).exists():
                return (folder / name).read_text().strip()
        raise FileNotFoundError(name)
