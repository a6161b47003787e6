"""CPU, memory and process limits of a workspace, enforced by a control group per workspace.

These machines run cgroup v1 (one hierarchy per controller, systemd not PID 1); cgroup v2 hosts get the same limits
through the unified hierarchy. A workspace's group is made before its sandbox starts and the sandbox's first process
joins it before it runs anything (`join` in the child), so every process of the workspace is counted. The group is
removed when the workspace stops, after any process left in it is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from fabric.projects import ComputeLimits

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "enclave"
CFS_PERIOD_US = 100_000


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
class WorkspaceCgroup:
    """The control group(s) of one workspace: one folder per v1 controller, or one folder in the v2 hierarchy."""

    name: str
    root: Path = CGROUP_ROOT

    @property
    def unified(self) -> bool:
        return (self.root / "cgroup.controllers").exists()

    def folders(self) -> list[Path]:
        if self.unified:
            return [self.root / PARENT / self.name]
        return [self.root / controller / PARENT / self.name for controller in ("cpu", "memory", "pids")]

    def create(self, limits: Limits) -> None:
        """Make the group and write its limits; CgroupError if this host cannot enforce them."""
        try:
            if self.unified:
                parent = self.root / PARENT
                parent.mkdir(exist_ok=True)
                (self.root / "cgroup.subtree_control").write_text("+cpu +memory +pids")
                (parent / "cgroup.subtree_control").write_text("+cpu +memory +pids")
                folder = self.folders()[0]
                folder.mkdir(exist_ok=True)
                for name, value in limits.v2_files().items():
                    with contextlib.suppress(FileNotFoundError):  # memory.swap.max needs swap accounting
                        (folder / name).write_text(value)
                return
            for controller, files in limits.v1_files().items():
                if not (self.root / controller).is_dir():
                    raise CgroupError(f"cgroup v1 controller {controller!r} is not mounted at {self.root}")
                folder = self.root / controller / PARENT / self.name
                folder.mkdir(parents=True, exist_ok=True)
                for name, value in files.items():
                    (folder / name).write_text(value)
                if controller == "memory" and (folder / "memory.memsw.limit_in_bytes").exists():
                    # memory + swap, where the kernel accounts swap: no paging past the limit
                    (folder / "memory.memsw.limit_in_bytes").write_text(files["memory.limit_in_bytes"])
        except OSError as exc:
            raise CgroupError(f"cannot set workspace limits in {self.root}: {exc.strerror}") from exc

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
