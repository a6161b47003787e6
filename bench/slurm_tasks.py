"""The measured steps of the SLURM benchmarks, each run in a process of its own (`python -m bench.slurm_tasks NAME
ARGS`, as root, with SLURM_CONF pointing at the benchmark's SLURM) that holds its cluster, as the broker outside the
workspace will. Each prints one JSON object: its times, and the peak memory of its own process tree (the sandboxed
scheduler, the sandboxed client and its LocalCluster) together with its SLURM jobs' processes.

  startup-enclave HOME PROJECT JOBS        project_cluster() -> scale(jobs) -> all workers connected (the cluster's
                                           own wait: the process holding it has no Dask client, as in the service)
  startup-plain ENV JOBS CORES MEMORY LOGS  dask-jobqueue's SLURMCluster, no sandbox, no TLS: the same steps
  frequencies-slurm HOME PROJECT JOBS      a project cluster of JOBS jobs, then the sandboxed client on it
  frequencies-local HOME PROJECT JOBS      the sandboxed client starting its own LocalCluster of the same shape
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench.slurm_enclave import JobShape, PeakMemory, run_client

READY_SECONDS = 600  # a worker job that has not connected by then is a failed run, not a slow one


def _shape(home: str) -> JobShape:
    return JobShape(**json.loads((Path(home) / "shape.json").read_text()))


def startup_enclave(home: str, project: str, jobs: str) -> dict:
    from clusters.slurm import project_cluster
    from kernel.config import Paths

    shape = _shape(home)
    made_clusters: list = []
    with PeakMemory(lambda: [job for made in made_clusters for job in made.job_ids]) as memory:
        began = time.perf_counter()
        cluster = project_cluster(
            Paths(Path(home)), project, interface="lo", cores=shape.cores, processes=1, memory=shape.memory
        )
        made_clusters.append(cluster)
        try:
            made = time.perf_counter()
            cluster.scale(jobs=int(jobs))
            cluster.wait_for_workers(int(jobs), timeout=READY_SECONDS)  # the dashboard's JSON (clusters/slurm.py)
            ready = time.perf_counter()
        finally:
            closing = time.perf_counter()
            cluster.close()  # returns once squeue lists none of its jobs
            closed = time.perf_counter()
    return {
        "ready_s": ready - began,
        "cluster_made_s": made - began,
        "close_s": closed - closing,
        "peak_rss_bytes": memory.peak,
        "jobs_peak_rss_bytes": memory.peak_jobs,
    }


def startup_plain(env: str, jobs: str, cores: str, memory: str, logs: str) -> dict:
    """The baseline: dask-jobqueue's own SLURMCluster as its documentation starts it, with the job Enclave's would
    have (cores, one process, memory, --export=NONE, the same walltime, death timeout and spill folder) and the same
    workspace environment's Python, run as root on the node: no sandbox, no per-cluster TLS, the scheduler in this
    process."""
    from dask_jobqueue import SLURMCluster

    from clusters.settings import setting

    made_clusters: list[SLURMCluster] = []
    with PeakMemory(lambda: [job for made in made_clusters for job in _plain_jobs(made)]) as peak:
        began = time.perf_counter()
        cluster = SLURMCluster(
            cores=int(cores),
            processes=1,
            memory=f"{memory}B",
            python=str(Path(env) / "bin" / "python"),
            interface="lo",
            walltime=setting("walltime"),
            job_extra_directives=["--export=NONE"],
            death_timeout=setting("death-timeout"),
            local_directory=setting("local-directory"),
            log_directory=logs,
            scheduler_options={"dashboard_address": "127.0.0.1:0"},
        )
        made_clusters.append(cluster)
        try:
            made = time.perf_counter()
            cluster.scale(jobs=int(jobs))
            cluster.wait_for_workers(int(jobs), timeout=READY_SECONDS)  # distributed's: the scheduler's identity
            ready = time.perf_counter()
        finally:
            closing = time.perf_counter()
            cluster.close()  # scancel; SLURM may still list the jobs a moment (the caller waits for an idle node)
            closed = time.perf_counter()
    return {
        "ready_s": ready - began,
        "cluster_made_s": made - began,
        "close_s": closed - closing,
        "peak_rss_bytes": peak.peak,
        "jobs_peak_rss_bytes": peak.peak_jobs,
    }


def _plain_jobs(cluster) -> list[str]:
    return [job.job_id for job in list(cluster.workers.values()) if getattr(job, "job_id", None)]


def frequencies_slurm(home: str, project: str, jobs: str) -> dict:
    from clusters.slurm import project_cluster
    from kernel.config import Paths

    shape = _shape(home)
    cluster = project_cluster(
        Paths(Path(home)), project, interface="lo", cores=shape.cores, processes=1, memory=shape.memory
    )
    try:
        cluster.scale(jobs=int(jobs))
        cluster.wait_for_workers(int(jobs), timeout=READY_SECONDS)
        security = cluster.client_security()
        given = {
            "cluster": "slurm",
            "address": cluster.scheduler_address,
            "ca": security.tls_ca_file,
            "cert": security.tls_client_cert,
            "key": security.tls_client_key,
            "workers": int(jobs),
        }
        with PeakMemory(lambda: cluster.job_ids) as memory:
            result = run_client(Path(home), project, given)
    finally:
        cluster.close()
    return {**result, "peak_rss_bytes": memory.peak, "jobs_peak_rss_bytes": memory.peak_jobs}


def frequencies_local(home: str, project: str, jobs: str) -> dict:
    shape = _shape(home)
    given = {"cluster": "local", "workers": int(jobs), "threads": shape.cores, "memory": shape.memory}
    with PeakMemory() as memory:
        result = run_client(Path(home), project, given)
    return {**result, "peak_rss_bytes": memory.peak, "jobs_peak_rss_bytes": memory.peak_jobs}


TASKS = {
    "startup-enclave": startup_enclave,
    "startup-plain": startup_plain,
    "frequencies-slurm": frequencies_slurm,
    "frequencies-local": frequencies_local,
}

if __name__ == "__main__":
    print(json.dumps(TASKS[sys.argv[1]](*sys.argv[2:])))
