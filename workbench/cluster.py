"""A Dask cluster for a workspace, sized from the project's compute limits in MANIFEST.json, with its dashboard
where the workspace expects it.

The readers themselves build ordinary Dask collections and never look for a cluster: whichever
`distributed.Client` is current (this one, a gateway cluster, a scheduler the workspace was given) runs them.

Inside a workspace the dashboard listens on $ENCLAVE_DASK_DASHBOARD (a loopback address the workspace's
jupyter-server-proxy route `dask` forwards to), and the client's dashboard link goes through the hub
(`{JUPYTERHUB_SERVICE_PREFIX}dask/status`), since the browser cannot reach the sandbox's loopback directly.
Elsewhere the dashboard takes any free port and the link is Dask's own.

With `compute.engine: slurm` in the manifest, `start_client` gives a Client on the project's SLURM cluster instead,
through the workspace's cluster service (workbench/relay.py): same call, same dashboard route, workers elsewhere.
With `compute.engine: kubernetes`, on the project's Dask cluster beside a KubeSpawner workspace, made by the
platform's cluster service (workbench/kubernetes_cluster.py): again the same call and route.
A batch run of a notebook (`enclave run`, also as a SLURM job) has no cluster service: it sets $ENCLAVE_DASK_ENGINE
to `local`, which outranks the manifest, so the notebook's `client()` is a LocalCluster within the run's own limits
(a SLURM job's allocation is the project's compute limits already).

Its defaults live in cluster.yaml beside this module, registered with `dask.config` at import under
`enclave.local`, so a notebook (`dask.config.set`), a Dask config file or a DASK_ENCLAVE__... variable can change
them; the project's limits in MANIFEST.json and the arguments of `start_client` come first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dask
import yaml
from dask.utils import parse_bytes
from distributed import Client

from workbench import kubernetes_cluster, relay
from workbench.errors import WorkbenchError
from workbench.view_contract import ENGINES

CONFIG_FILE = Path(__file__).with_name("cluster.yaml")
CONFIG = "enclave.local"  # the LocalCluster's section of the Dask config
# Each compute limit of MANIFEST.json, and the key of CONFIG that supplies it when the manifest states none.
LIMIT_KEYS = {"dask_workers": "n-workers", "threads_per_worker": "threads-per-worker", "memory_limit": "memory-limit"}
ENV_DASHBOARD = "ENCLAVE_DASK_DASHBOARD"
ENV_SERVICE_PREFIX = "JUPYTERHUB_SERVICE_PREFIX"
DASHBOARD_ROUTE = "dask"  # the workspace's jupyter-server-proxy route to the dashboard port
ENV_ENGINE = "ENCLAVE_DASK_ENGINE"  # set by a batch run (no cluster service there): outranks compute.engine


def register_defaults(path: Path = CONFIG_FILE) -> None:
    """Add cluster.yaml to Dask's defaults: below every config file, variable and `dask.config.set`, and kept by
    `dask.config.refresh()`. Unlike dask-jobqueue, no commented copy goes to ~/.config/dask: importing the readers
    writes no file (cluster.yaml itself is the documentation)."""
    with path.open(encoding="utf-8") as fh:
        dask.config.update_defaults(yaml.safe_load(fh))


register_defaults()


def default_limits() -> dict[str, Any]:
    """The compute limits a view whose manifest states none gets, read from the Dask config now."""
    return {limit: dask.config.get(f"{CONFIG}.{key}") for limit, key in LIMIT_KEYS.items()}


def compute_limits(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's `compute` section over the configured defaults; WorkbenchError if it is malformed."""
    compute = manifest.get("compute") or {}
    if not isinstance(compute, dict):
        raise WorkbenchError(f"MANIFEST.json 'compute' must be an object, not {type(compute).__name__}")
    limits = {**default_limits(), **{k: v for k, v in compute.items() if k in LIMIT_KEYS}}
    for key in ("dask_workers", "threads_per_worker"):
        if not isinstance(limits[key], int) or isinstance(limits[key], bool) or limits[key] < 1:
            raise WorkbenchError(f"MANIFEST.json compute.{key} must be a positive integer, not {limits[key]!r}")
    return limits


def dashboard_address(environ: Mapping[str, str] | None = None) -> str:
    """Where the dashboard listens: $ENCLAVE_DASK_DASHBOARD in a workspace, else the configured address (any free
    port unless changed)."""
    environ = os.environ if environ is None else environ
    return environ.get(ENV_DASHBOARD, "").strip() or str(dask.config.get(f"{CONFIG}.dashboard-address"))


def dashboard_link(environ: Mapping[str, str] | None = None) -> str | None:
    """The dashboard link through the hub when running under JupyterHub (None elsewhere: Dask's own link).

    Returned as a `distributed.dashboard.link` template, which Dask formats with `str.format`: braces in the
    prefix are doubled so they stay literal.
    """
    environ = os.environ if environ is None else environ
    prefix = environ.get(ENV_SERVICE_PREFIX, "").strip()
    if not prefix:
        return None
    parts = [part for part in prefix.split("/") if part]  # "/user/alice/p/" and "user/alice/p" alike
    link = "/" + "/".join([*parts, DASHBOARD_ROUTE, "status"])
    return link.replace("{", "{{").replace("}", "}}")


def cluster_options(
    manifest: dict[str, Any],
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | int | None = None,
    processes: bool | None = None,
    **cluster_kwargs: Any,
) -> dict[str, Any]:
    """The LocalCluster's arguments: those given, within the manifest's limits, else the limits themselves; the
    rest from the Dask config (`enclave.local`). WorkbenchError for a request past a limit."""
    limits = compute_limits(manifest)
    workers = limits["dask_workers"] if n_workers is None else n_workers
    threads = limits["threads_per_worker"] if threads_per_worker is None else threads_per_worker
    if workers < 1 or workers > limits["dask_workers"]:
        raise WorkbenchError(f"n_workers={workers}: this project allows 1 to {limits['dask_workers']} Dask workers")
    if threads < 1 or threads > limits["threads_per_worker"]:
        raise WorkbenchError(f"threads_per_worker={threads}: this project allows 1 to {limits['threads_per_worker']}")
    in_processes = bool(dask.config.get(f"{CONFIG}.processes")) if processes is None else processes
    per_worker = limits["memory_limit"] if memory_limit is None else memory_limit
    return {
        "n_workers": workers,
        "threads_per_worker": threads,
        "memory_limit": per_worker if in_processes else shared_process_memory_limit(per_worker, workers),
        "processes": in_processes,
        "dashboard_address": cluster_kwargs.pop("dashboard_address", None) or dashboard_address(),
        **cluster_kwargs,
    }


def shared_process_memory_limit(per_worker: str | int | float, workers: int) -> str | int | float:
    """Each in-process worker's memory limit: the workers' total. Threads of one process share its memory, and Dask
    measures each worker against the whole process's, so a per-worker limit would pause every worker (and hang the
    computation) once the notebook itself holds 80 % of one worker's share. Dask's own forms (`auto`, a fraction of
    the machine, 0 for none) pass unchanged."""
    if workers <= 1 or isinstance(per_worker, float) or per_worker in (0, "auto"):
        return per_worker
    try:
        size = parse_bytes(per_worker) if isinstance(per_worker, str) else int(per_worker)
    except (TypeError, ValueError):
        return per_worker  # Dask's LocalCluster gives the error for a limit it cannot read
    return size * workers


def engine(manifest: dict[str, Any], environ: Mapping[str, str] | None = None) -> str:
    """Where the project's Dask cluster runs: $ENCLAVE_DASK_ENGINE when set (a batch run's `local`), else the
    manifest's `compute.engine`, `local` when it states none."""
    environ = os.environ if environ is None else environ
    if forced := environ.get(ENV_ENGINE, "").strip():
        if forced not in ENGINES:
            raise WorkbenchError(f"${ENV_ENGINE} must be one of {', '.join(ENGINES)}, not {forced!r}")
        return forced
    compute = manifest.get("compute") or {}
    chosen = compute.get("engine", "local") if isinstance(compute, dict) else "local"
    if chosen not in ENGINES:
        raise WorkbenchError(f"MANIFEST.json compute.engine must be one of {', '.join(ENGINES)}, not {chosen!r}")
    return chosen


def start_slurm_client(
    n_workers: int | None = None, *, jobs: int | None = None, timeout: float = relay.WAIT_SECONDS
) -> Client:
    """A Client on the project's SLURM cluster through the workspace's cluster service: `jobs` jobs (default one, the
    size of one workspace), or enough for `n_workers`; returns once their workers run (WorkbenchError after
    `timeout` seconds, saying what SLURM says about the jobs). Closing the client cancels the jobs."""
    link = (dashboard_link() or "").replace("{{", "{").replace("}}", "}")  # a link here, not a template
    cluster = relay.ServiceCluster(
        jobs if jobs is not None else 1, dashboard_address=dashboard_address(), dashboard_link=link or None
    )
    try:
        if n_workers is not None and jobs is None:
            cluster.scale(n_workers)
        wanted = n_workers if n_workers is not None else cluster.processes * (jobs if jobs is not None else 1)
        client = relay.ServiceClient(cluster, direct_to_workers=False, set_as_default=True)
    except BaseException:
        cluster.close()
        raise
    try:
        relay.wait_for_workers(client, cluster, wanted, timeout)
    except BaseException:
        client.close()
        raise
    return client


def start_kubernetes_client(n_workers: int | None = None, *, timeout: float = relay.WAIT_SECONDS) -> Client:
    """A Client on the project's Dask cluster on Kubernetes, made by the cluster service: `n_workers` workers (default
    the project's `dask_workers`), each the size of one LocalCluster worker of the workspace; returns once they run
    (WorkbenchError after `timeout` seconds, saying what Kubernetes says of the pods). Closing the client deletes the
    cluster."""
    link = (dashboard_link() or "").replace("{{", "{").replace("}}", "}")  # a link here, not a template
    cluster = kubernetes_cluster.KubernetesServiceCluster(
        n_workers, dashboard_address=dashboard_address(), dashboard_link=link or None
    )
    try:
        client = kubernetes_cluster.KubernetesServiceClient(cluster, direct_to_workers=False, set_as_default=True)
    except BaseException:
        cluster.close()
        raise
    try:
        kubernetes_cluster.wait_for_workers(client, cluster, cluster.workers_wanted, timeout)
    except BaseException:
        client.close()
        raise
    return client


def start_client(
    manifest: dict[str, Any],
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | int | None = None,
    processes: bool | None = None,
    **cluster_kwargs: Any,
) -> Client:
    """A Client on a new `distributed.LocalCluster` (see `cluster_options`): arguments override the manifest's
    limits and never exceed them; the manifest's limits override the configured defaults. With `compute.engine:
    slurm`, a Client on the project's SLURM cluster instead (`start_slurm_client`); with `kubernetes`, on its cluster
    on Kubernetes (`start_kubernetes_client`).

    The dashboard listens on `dashboard_address` if given, else on `dashboard_address()`; under JupyterHub the
    client's `dashboard_link` points through the hub (see the module docstring).
    """
    chosen = engine(manifest)
    if chosen == "kubernetes":
        unused = {"threads_per_worker": threads_per_worker, "memory_limit": memory_limit, "processes": processes}
        given = sorted([name for name, value in unused.items() if value is not None] + list(cluster_kwargs))
        if set(given) - {"timeout"}:
            raise WorkbenchError(
                f"{', '.join(given)}: on the project's Kubernetes cluster each worker's size is the project's (its "
                "compute limits and the site's settings); ask for n_workers"
            )
        return start_kubernetes_client(n_workers, **cluster_kwargs)
    if chosen == "slurm":
        unused = {"threads_per_worker": threads_per_worker, "memory_limit": memory_limit, "processes": processes}
        given = sorted([name for name, value in unused.items() if value is not None] + list(cluster_kwargs))
        if set(given) - {"jobs", "timeout"}:
            raise WorkbenchError(
                f"{', '.join(given)}: on the project's SLURM cluster each job's size is the project's (its compute "
                "limits and the site's settings); ask for n_workers or jobs"
            )
        return start_slurm_client(n_workers, **cluster_kwargs)
    options = cluster_options(manifest, n_workers, threads_per_worker, memory_limit, processes, **cluster_kwargs)
    if link := dashboard_link():
        # Global on purpose: Client.dashboard_link reads the template whenever it is asked, not at start.
        dask.config.set({"distributed.dashboard.link": link})
    # The Client starts (and on close() stops) its own LocalCluster.
    return Client(**options, set_as_default=True)


def current_client() -> Client | None:
    """The distributed client this process is using, if any."""
    try:
        from distributed import get_client

        return get_client()
    except ValueError:
        return None


def worker_threads(client: Client | None = None) -> int:
    """Threads across the workers of `client` (default: the current one), or this machine's cores without one."""
    client = client or current_client()
    if client is None:  # dask's local scheduler uses the cores
        return os.cpu_count() or 1
    return max(1, sum(client.nthreads().values()))
