"""A one-machine SLURM running for as long as a `with` block: Debian's munged, slurmctld and slurmd, configured by
clusters/slurm_conf.py in a folder of their own and started as root, for development, the tests and the benchmarks.

`running_slurm()` writes the configuration and a munge key, starts munged, slurmctld and slurmd (each forks and
writes its pid file), waits until `sinfo` shows the node idle, and sets SLURM_CONF so that sbatch, squeue, scancel
and scontrol (dask-jobqueue's too) reach it. On the way out it cancels every job, waits until squeue is empty, stops
the daemons and checks each has exited, then removes the folder and puts SLURM_CONF back. It uses its own ports and
munge socket, so a system SLURM or munged on the machine is never touched.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from clusters import slurm_conf
from clusters.settings import ClusterError

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo")
SYSTEM_PATH = "/usr/bin:/usr/sbin:/bin:/sbin"
START_SECONDS = 60  # for each daemon's pid file, and for the node to be idle
STOP_SECONDS = 30  # SIGTERM to SIGKILL


def unavailable(programs: tuple[str, ...] = PROGRAMS) -> str | None:
    """Why a one-machine SLURM cannot run here (not root, a program or the munge account missing), or None."""
    if os.geteuid() != 0:
        return "needs root: starts slurmctld, slurmd and munged, and jobs that drop to project accounts"
    missing = [p for p in programs if not shutil.which(p, path=SYSTEM_PATH)]
    if missing:
        return f"needs {', '.join(missing)} (Debian: slurmctld slurmd slurm-client munge bubblewrap)"
    try:
        pwd.getpwnam(slurm_conf.MUNGE_ACCOUNT)
    except KeyError:
        return f"needs the {slurm_conf.MUNGE_ACCOUNT} account (Debian's munge package creates it)"
    return None


@dataclass(frozen=True)
class RunningSlurm:
    """The running one-machine SLURM: its node, and its commands with SLURM_CONF pointing at it."""

    node: slurm_conf.SingleNode

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "SLURM_CONF": str(self.node.conf)}
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60, env=env)
        if check and done.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} failed: {done.stderr.strip()}\n{self.log_tail()}")
        return done

    def jobs(self) -> dict[str, tuple[str, str]]:
        """Every job squeue lists: id -> (name, state)."""
        out = self.run("squeue", "--noheader", "--format=%i %j %T").stdout
        return {job: (name, state) for job, name, state in (line.split() for line in out.splitlines() if line.strip())}

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}; squeue: {self.jobs()}\n{self.log_tail()}")
            time.sleep(0.3)

    def idle(self) -> bool:
        """Whether the node is idle (up, no job on it)."""
        return self.run("sinfo", "--noheader", "--format=%T", check=False).stdout.strip() == "idle"

    def log_tail(self, lines: int = 20) -> str:
        parts = []
        for daemon in ("slurmctld", "slurmd"):
            log = self.node.log_file(daemon)
            if log.exists():
                parts.append(f"--- {daemon}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(parts)


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with suppress(FileNotFoundError):  # a zombie is not running
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    return False


def _stop(pid: int, timeout: float = STOP_SECONDS) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; True when it had to be killed."""
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return True
        time.sleep(0.1)
    return False


@contextmanager
def running_slurm(*, memory_mib: int | None = None) -> Iterator[RunningSlurm]:
    """This machine as a one-node SLURM for the `with` block (root only; `memory_mib`: what the node offers jobs,
    by default most of the machine's memory). ClusterError when a daemon does not start, the node does not come up,
    or a job or daemon outlives the block."""
    if reason := unavailable():
        raise ClusterError(f"a one-machine SLURM {reason}")
    # under /tmp: munged wants every folder above its socket reachable by all (pytest's folders are root's 0700)
    folder = Path(tempfile.mkdtemp(prefix="enclave-slurm-", dir="/tmp"))
    controller, node_port = slurm_conf.free_ports(2)
    node = slurm_conf.this_host(folder, controller_port=controller, node_port=node_port, memory_mib=memory_mib)
    slurm = RunningSlurm(node)
    previous = os.environ.get("SLURM_CONF")
    started: dict[str, int] = {}
    try:
        slurm_conf.write(node)
        for daemon, argv in slurm_conf.daemon_commands(node).items():
            done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
            pid_file = node.pid_file(daemon)
            deadline = time.monotonic() + START_SECONDS
            while _pid(pid_file) is None and done.returncode == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            pid = _pid(pid_file)
            if done.returncode != 0 or pid is None:
                raise ClusterError(f"{daemon} did not start: {done.stderr.strip()}\n{slurm.log_tail()}")
            started[daemon] = pid
        os.environ["SLURM_CONF"] = str(node.conf)
        slurm.wait_for(slurm.idle, "the node to be idle", timeout=START_SECONDS)
        yield slurm
    finally:
        try:
            if "slurmctld" in started:
                leftover = list(slurm.jobs())
                if leftover:
                    slurm.run("scancel", *leftover, check=False)
                slurm.wait_for(lambda: not slurm.jobs(), "every job to end", timeout=60)
        finally:
            killed = [daemon for daemon in reversed(started) if _stop(started[daemon])]
            if previous is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = previous
            shutil.rmtree(folder, ignore_errors=True)
        if killed:
            raise ClusterError(f"{', '.join(killed)} did not stop on SIGTERM")
        if any(_alive(pid) for pid in started.values()):
            raise ClusterError("a SLURM daemon is still running after it was stopped")
