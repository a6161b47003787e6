"""A project's SLURM cluster settings: slurm.yaml registered with `dask.config` under `enclave.slurm`, and the one
side-effect-free function that turns a project's compute limits, that configuration and the caller's arguments into
the size and placement of its worker jobs (`job_options`).

Precedence, as for the workspace's LocalCluster (workbench/cluster.py): arguments, then the Dask configuration (a
project's entry in `projects`, then the top level), then the project's compute limits; and whatever is asked, a job
never exceeds those limits. Unlike dask-jobqueue, no commented copy of the YAML goes to ~/.config/dask.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import yaml
from dask.utils import format_bytes, parse_bytes

from fabric.projects import ComputeLimits
from kernel.errors import EnclaveError

CONFIG_FILE = Path(__file__).with_name("slurm.yaml")
CONFIG = "enclave.slurm"
SITE_SLURM_CONF = "ENCLAVE_SLURM_CONF"  # a site setting (/etc/enclave/enclave.env may hold it; SLURM_CONF not)
PLACEMENT = ("queue", "account", "walltime", "job-extra-directives")  # what a project's own entry may change


class ClusterError(EnclaveError):
    """A project's cluster cannot be made as asked; the message says which limit or setting stops it."""


def register_defaults(path: Path = CONFIG_FILE) -> None:
    """Add one of this package's YAML files (slurm.yaml by default, kubernetes.yaml) to Dask's defaults: below every
    config file, variable and `dask.config.set`."""
    with path.open(encoding="utf-8") as fh:
        dask.config.update_defaults(yaml.safe_load(fh))


register_defaults()


def use_site_slurm(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Point this process's SLURM commands (sbatch, squeue, scancel: dask-jobqueue's and ours) at the site's SLURM:
    $ENCLAVE_SLURM_CONF, when set, becomes SLURM_CONF; unset, SLURM_CONF or SLURM's own default stands. Returns the
    file in force, if one is named; ClusterError when the setting is not an absolute path to a file."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(SITE_SLURM_CONF, "").strip()
    if chosen:
        path = Path(chosen)
        if not path.is_absolute() or not path.is_file():
            raise ClusterError(f"{SITE_SLURM_CONF} must be the absolute path of the site's slurm.conf, a file")
        environ["SLURM_CONF"] = chosen
    return environ.get("SLURM_CONF")


def setting(key: str) -> Any:
    """`enclave.slurm.KEY` from the Dask configuration now."""
    return dask.config.get(f"{CONFIG}.{key}")


@dataclass(frozen=True)
class JobSize:
    """One worker job: `processes` Dask workers sharing `cores` threads and `memory` bytes; SLURM books `cpus`."""

    cores: int
    processes: int
    memory: int
    cpus: int

    @property
    def threads_per_worker(self) -> int:
        return self.cores // self.processes

    @property
    def worker_memory(self) -> int:
        """Each worker process's memory limit (Dask's), its share of the job's."""
        return self.memory // self.processes


def job_size(
    limits: ComputeLimits, *, cores: int | None = None, processes: int | None = None, memory: str | int | None = None
) -> JobSize:
    """The job's size from the arguments, else `enclave.slurm.{cores,processes,memory}`, else the project's limits;
    ClusterError when it would exceed a limit or cannot be split into whole threads per worker."""
    most_cores = limits.dask_workers * limits.threads_per_worker
    cores = _first(cores, setting("cores"), most_cores)
    processes = _first(processes, setting("processes"), limits.dask_workers)
    memory = _first(memory, setting("memory"), limits.memory)
    size = parse_bytes(memory) if isinstance(memory, str) else int(memory)
    if not (isinstance(cores, int) and isinstance(processes, int)) or processes < 1 or cores < processes:
        raise ClusterError(f"a job needs whole cores >= processes >= 1, not cores={cores!r}, processes={processes!r}")
    if cores % processes:
        raise ClusterError(f"cores={cores} do not divide into processes={processes} workers of whole threads")
    if processes > limits.dask_workers:
        raise ClusterError(f"processes={processes}: this project allows up to {limits.dask_workers} workers per job")
    if cores > most_cores:
        raise ClusterError(f"cores={cores}: this project allows up to {most_cores} threads per job")
    if size > limits.memory_bytes():
        raise ClusterError(f"memory={format_bytes(size)}: this project allows up to {limits.memory} per job")
    if size < processes * 2**20:
        raise ClusterError(f"memory={format_bytes(size)} is too little for {processes} worker processes")
    return JobSize(cores=cores, processes=processes, memory=size, cpus=max(1, min(math.ceil(limits.cpus), cores)))


def job_placement(project: str, **arguments: Any) -> dict[str, Any]:
    """queue, account, walltime and job-extra-directives: the arguments (underscored names), else the project's
    entry under `enclave.slurm.projects`, else the top level."""
    entry = (setting("projects") or {}).get(project) or {}
    unknown = set(entry) - set(PLACEMENT)
    if unknown:
        raise ClusterError(f"{CONFIG}.projects.{project}: unknown keys {sorted(unknown)}; use {', '.join(PLACEMENT)}")
    placement = {}
    for key in PLACEMENT:
        given = arguments.get(key.replace("-", "_"))
        placement[key] = _first(given, entry.get(key), setting(key))
    placement["job-extra-directives"] = list(placement["job-extra-directives"] or [])
    return placement


def scheduler_options(host: str | None = None, port: int | None = None) -> dict[str, Any]:
    """Where the scheduler listens: the arguments, else `enclave.slurm.scheduler`. Without a host, dask-jobqueue
    uses `interface` for the scheduler too."""
    configured: Mapping[str, Any] = setting("scheduler") or {}
    options: dict[str, Any] = {
        "port": _first(port, configured.get("port"), 0),
        "dashboard_address": configured.get("dashboard-address") or "127.0.0.1:0",
    }
    if chosen := _first(host, configured.get("host"), None):
        options["host"] = chosen
    return options


def job_options(project: str, limits: ComputeLimits, size: JobSize, **arguments: Any) -> dict[str, Any]:
    """dask-jobqueue's SLURMCluster keyword arguments for `project`'s jobs of `size` (security, the worker's
    sandboxed command and its files are added by clusters/slurm.py)."""
    placement = job_placement(project, **arguments)
    extra = [*placement["job-extra-directives"], "--export=NONE"]  # nothing of the submitter's environment
    return {
        "queue": placement["queue"],
        "account": placement["account"],
        "walltime": placement["walltime"],
        "cores": size.cores,
        "processes": size.processes,
        "memory": str(size.memory),  # dask-jobqueue parses it; --mem is written in whole MiB, rounded up
        "job_cpu": size.cpus,
        "job_extra_directives": extra,
        "death_timeout": _first(arguments.get("death_timeout"), setting("death-timeout"), 60),
        "local_directory": _first(arguments.get("local_directory"), setting("local-directory"), "/tmp"),  # noqa: S108
        "interface": _first(arguments.get("interface"), setting("interface"), None),
        "scheduler_options": scheduler_options(arguments.get("scheduler_host"), arguments.get("scheduler_port")),
    }


def _first(*values: Any) -> Any:
    """The first value that is not None (the last one otherwise)."""
    for value in values[:-1]:
        if value is not None:
            return value
    return values[-1]
