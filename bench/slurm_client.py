"""The researcher's side of the SLURM benchmarks, run by the workspace environment's Python as the project's account
in its sandbox (bench/slurm_enclave.py `run_client` passes this file's text with -c and a JSON object on stdin).

`{"cluster": "slurm", "address": ..., "ca": ..., "cert": ..., "key": ..., "workers": N}`: connect to the project's
SLURM cluster with its client credentials (PEM text). `{"cluster": "local", "workers": N, "threads": T, "memory": M}`:
start a LocalCluster of N worker processes of T threads and M bytes, as a workspace does. Then, on either: wait for
the N workers, import the readers on each and on the scheduler (what a long-lived cluster has already done), and
time allele frequencies over /project/data twice. Prints one JSON object.
"""

import json
import sys
import time

from distributed import Client, LocalCluster
from distributed.security import Security

from workbench import open_project


def warm() -> None:
    import workbench.vcf
    import workbench.view  # noqa: F401


def main() -> None:
    given = json.loads(sys.stdin.read())
    began = time.perf_counter()
    if given["cluster"] == "slurm":
        security = Security(
            require_encryption=True, tls_ca_file=given["ca"], tls_client_cert=given["cert"], tls_client_key=given["key"]
        )
        client = Client(given["address"], security=security, timeout=120)
        cluster = None
    else:
        cluster = LocalCluster(
            n_workers=given["workers"],
            threads_per_worker=given["threads"],
            memory_limit=given["memory"],
            processes=True,
            dashboard_address="127.0.0.1:0",
        )
        client = Client(cluster)
    try:
        client.wait_for_workers(given["workers"], timeout=300)
        client.run(warm)
        # the scheduler unpickles the graph, and so imports the readers too: in a LocalCluster it is this process,
        # which has them already; a SLURM cluster's is a process of its own (timed apart: once per cluster)
        warmed = time.perf_counter()
        client.run_on_scheduler(warm)
        ready = time.perf_counter()
        project = open_project(path="/project/data")
        rows = len(project.allele_frequencies().compute())
        first = time.perf_counter()
        project.allele_frequencies().compute()
        second = time.perf_counter()
        threads = sum(client.nthreads().values())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    print(
        json.dumps(
            {
                "ready_s": warmed - began,
                "scheduler_warm_s": ready - warmed,
                "compute_s": first - ready,
                "again_s": second - first,
                "rows": rows,
                "threads": threads,
            }
        )
    )


if __name__ == "__main__":
    main()
