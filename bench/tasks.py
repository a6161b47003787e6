"""The Enclave side of each benchmark, run in its own process (python -m bench.tasks NAME ARGS) so that its time
and memory are measured alone. Prints one JSON object: the time of the measured step itself."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _warm_worker() -> None:
    # What a workspace's long-lived cluster has already done: import the readers and their libraries.
    import fabric.readers.imaging
    import fabric.readers.vcf  # noqa: F401


def _on_cluster(view: str, workers: str, compute) -> dict:
    from fabric.readers import open_project

    project = open_project(path=view)
    start = time.perf_counter()
    client = project.client(n_workers=int(workers))
    client.run(_warm_worker)
    started = time.perf_counter()
    size = len(compute(project))
    first = time.perf_counter()
    compute(project)
    second = time.perf_counter()
    client.close()
    return {"cluster_start": started - start, "compute": first - started, "again": second - first, "rows": size}


def allele_frequencies(view: str, workers: str) -> dict:
    return _on_cluster(view, workers, lambda p: p.allele_frequencies().compute())


def dicom_index(view: str, workers: str) -> dict:
    return _on_cluster(view, workers, lambda p: p.imaging_index().compute())


def materialise(home: str, project: str) -> dict:
    from fabric.config import Paths
    from fabric.db import Registry
    from fabric.materialise.view import materialise_project

    paths = Paths(Path(home))
    registry = Registry(paths.database_url)
    start = time.perf_counter()
    summary = materialise_project(registry, paths, project, actor="bench", progress=False)
    return {"compute": time.perf_counter() - start, "patients": summary.patients, "bytes": summary.bytes}


TASKS = {"allele_frequencies": allele_frequencies, "dicom_index": dicom_index, "materialise": materialise}

if __name__ == "__main__":
    print(json.dumps(TASKS[sys.argv[1]](*sys.argv[2:])))
