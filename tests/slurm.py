"""Test helper: a real one-machine SLURM (Debian's slurmctld, slurmd and munge), configured by clusters/slurm_conf.py
in a temporary folder and started as root, and a provisioned Enclave whose projects have Unix accounts for its jobs.

`running_slurm()` writes the configuration and a munge key, starts munged, slurmctld and slurmd (each forks and
writes its pid file), waits until `sinfo` shows the node idle, and sets SLURM_CONF so that sbatch, squeue, scancel
and scontrol (dask-jobqueue's too) reach it. On the way out it cancels every job, waits until squeue is empty, stops
the daemons and checks each has exited, then removes the folder. It uses its own ports and munge socket, so a system
SLURM or munged on the machine is never touched.

Without root or the Debian binaries the tests skip with the reason, except under CI (the `CI` variable set), where
they fail: `make test` installs slurmctld, slurmd, slurm-client and munge (Makefile DEBIAN_PACKAGES)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from clusters import slurm_conf
from kernel.config import Paths
from provisioning import steps
from provisioning.host import ProjectAccount, ensure_project_account, ensure_project_folders, remove_project_account
from tests.host_accounts import throwaway_project
from tests.provisioned import spec_file

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo", "bwrap")


def unavailable() -> str | None:
    """Why a real SLURM cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root: starts slurmctld, slurmd and munged, and jobs that drop to project accounts"
    missing = [p for p in PROGRAMS if not shutil.which(p, path="/usr/bin:/usr/sbin:/bin:/sbin")]
    if missing:
        return f"needs {', '.join(missing)} (Debian: slurmctld slurmd slurm-client munge bubblewrap)"
    return None


def require_slurm() -> None:
    """Skip with the reason when SLURM cannot run here; under CI, fail instead."""
    if reason := unavailable():
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@dataclass(frozen=True)
class RunningSlurm:
    node: slurm_conf.SingleNode

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "SLURM_CONF": str(self.node.conf)}
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60, env=env)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed: {done.stderr.strip()}\n{self.log_tail()}")
        return done

    def jobs(self) -> dict[str, tuple[str, str]]:
        """Every job squeue lists: id -> (name, state)."""
        out = self.run("squeue", "--noheader", "--format=%i %j %T").stdout
        return {job: (name, state) for job, name, state in (line.split() for line in out.splitlines() if line.strip())}

    def wait_for(self, condition, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; squeue: {self.jobs()}\n{self.log_tail()}")
            time.sleep(0.3)

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


def _stop(pid: int, timeout: float = 30) -> bool:
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
def running_slurm() -> Iterator[RunningSlurm]:
    # under /tmp: munged wants every folder above its socket reachable by all (pytest's folders are root's 0700)
    folder = Path(tempfile.mkdtemp(prefix="enclave-slurm-", dir="/tmp"))
    controller, node_port = slurm_conf.free_ports(2)
    node = slurm_conf.this_host(folder, controller_port=controller, node_port=node_port)
    slurm = RunningSlurm(node)
    previous = os.environ.get("SLURM_CONF")
    started: dict[str, int] = {}
    try:
        slurm_conf.write(node)
        for daemon, argv in slurm_conf.daemon_commands(node).items():
            done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
            pid_file = node.pid_file(daemon)
            deadline = time.monotonic() + 30
            while _pid(pid_file) is None and done.returncode == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            if done.returncode != 0 or _pid(pid_file) is None:
                raise AssertionError(f"{daemon} did not start: {done.stderr.strip()}\n{slurm.log_tail()}")
            started[daemon] = _pid(pid_file)
        os.environ["SLURM_CONF"] = str(node.conf)

        def idle() -> bool:
            state = slurm.run("sinfo", "--noheader", "--format=%T", check=False).stdout.strip()
            return state == "idle"

        slurm.wait_for(idle, "the node to be idle", timeout=60)
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
        assert not killed, f"{killed} did not stop on SIGTERM"
        assert not any(_alive(pid) for pid in started.values())


# Small jobs: one worker process of one thread in 512 MiB, one CPU booked, so two jobs fit a two-core machine. The
# first project's workspaces use its SLURM cluster (tests/integration/test_slurm_workspace.py).
SMALL = "compute: {cpus: 1, memory: 512MiB, dask_workers: 1, threads_per_worker: 1, engine: %s}\n"


@dataclass(frozen=True)
class ClusterEnclave:
    """A provisioned Enclave with two materialised projects, each with its Unix account and folders."""

    paths: Paths
    projects: tuple[str, str]
    accounts: dict[str, ProjectAccount]


@contextmanager
def cluster_enclave(cohort: Path) -> Iterator[ClusterEnclave]:
    """Two projects (DS-CVD and HMB purposes, random names; the first's `compute.engine` is slurm, the second's
    local) over `cohort`, provisioned through the real steps, with their accounts and alice's folders; the accounts
    and the home are removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="enclave-slurm-home-", dir="/tmp"))
    home.chmod(0o711)
    names = (throwaway_project("sa"), throwaway_project("sb"))
    accounts: dict[str, ProjectAccount] = {}
    try:
        paths = Paths(home)
        paths.sites.symlink_to(cohort, target_is_directory=True)
        registry, _ = steps.ensure_registry(paths)
        try:
            steps.ensure_sites(registry, paths, actor="test-admin")
            steps.ensure_consent(registry, paths, actor="test-admin")
            for name, purpose, engine in zip(names, ("DS-CVD", "HMB"), ("slurm", "local"), strict=True):
                spec = spec_file(home, name, purpose, extra=SMALL % engine)
                steps.ensure_project(registry, spec, actor="test-admin")
                steps.ensure_materialised(registry, paths, name, actor="test-admin", progress=False)
                accounts[name], _ = ensure_project_account(name)
                ensure_project_folders(paths, name, accounts[name], ["alice"])
        finally:
            registry.close()
        yield ClusterEnclave(paths, names, accounts)
    finally:
        for name in names:
            remove_project_account(name)
        shutil.rmtree(home, ignore_errors=True)
