"""Test helper: a real one-machine SLURM (clusters/dev_slurm.py: Debian's slurmctld, slurmd and munge, configured by
clusters/slurm_conf.py in a temporary folder and started as root), and a provisioned Enclave whose projects have Unix
accounts for its jobs.

Without root or the Debian binaries the tests skip with the reason, except under CI (the `CI` variable set), where
they fail: `make test` installs slurmctld, slurmd, slurm-client and munge (Makefile DEBIAN_PACKAGES)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from clusters import dev_slurm
from clusters.dev_slurm import RunningSlurm, running_slurm
from kernel.config import Paths
from provisioning import steps
from provisioning.host import ProjectAccount, ensure_project_account, ensure_project_folders, remove_project_account
from tests.host_accounts import throwaway_project
from tests.provisioned import spec_file

__all__ = ["RunningSlurm", "cluster_enclave", "require_slurm", "running_slurm", "unavailable"]

PROGRAMS = (*dev_slurm.PROGRAMS, "bwrap")  # the workers' sandbox too


def unavailable() -> str | None:
    """Why a real SLURM cannot run here, or None."""
    return dev_slurm.unavailable(PROGRAMS)


def require_slurm() -> None:
    """Skip with the reason when SLURM cannot run here; under CI, fail instead."""
    if reason := unavailable():
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


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
