"""A Dask cluster for a workspace, sized from the project's compute limits in MANIFEST.json.

The readers themselves build ordinary Dask collections and never look for a cluster: whichever
`distributed.Client` is current (this one, a gateway cluster, a scheduler the workspace was given) runs them.
"""

from __future__ import annotations

import os
from typing import Any

from distributed import Client

from fabric.errors import FabricError

DEFAULTS: dict[str, Any] = {"dask_workers": 2, "threads_per_worker": 1, "memory_limit": "4GiB"}


def compute_limits(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's `compute` section over the defaults; FabricError if it is malformed."""
    compute = manifest.get("compute") or {}
    if not isinstance(compute, dict):
        raise FabricError(f"MANIFEST.json 'compute' must be an object, not {type(compute).__name__}")
    limits = {**DEFAULTS, **{k: v for k, v in compute.items() if k in DEFAULTS}}
    for key in ("dask_workers", "threads_per_worker"):
        if not isinstance(limits[key], int) or isinstance(limits[key], bool) or limits[key] < 1:
            raise FabricError(f"MANIFEST.json compute.{key} must be a positive integer, not {limits[key]!r}")
    return limits


def start_client(
    manifest: dict[str, Any],
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | int | None = None,
    processes: bool = True,
    **cluster_kwargs: Any,
) -> Client:
    """A Client on a new `distributed.LocalCluster`; arguments override the manifest limits, never exceed them."""
    limits = compute_limits(manifest)
    workers = limits["dask_workers"] if n_workers is None else n_workers
    threads = limits["threads_per_worker"] if threads_per_worker is None else threads_per_worker
    if workers < 1 or workers > limits["dask_workers"]:
        raise FabricError(f"n_workers={workers}: this project allows 1 to {limits['dask_workers']} Dask workers")
    if threads < 1 or threads > limits["threads_per_worker"]:
        raise FabricError(f"threads_per_worker={threads}: this project allows 1 to {limits['threads_per_worker']}")
    # The Client starts (and on close() stops) its own LocalCluster.
    return Client(
        n_workers=workers,
        threads_per_worker=threads,
        memory_limit=limits["memory_limit"] if memory_limit is None else memory_limit,
        processes=processes,
        dashboard_address=cluster_kwargs.pop("dashboard_address", ":0"),
        set_as_default=True,
        **cluster_kwargs,
    )


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
