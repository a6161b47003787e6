"""The Enclave side of each benchmark, run in its own process (python -m bench.tasks NAME ARGS) so that its time
and memory are measured alone. Prints one JSON object: the time of the measured step itself."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _warm_worker() -> None:
    # What a workspace's long-lived cluster has already done: import the readers and their libraries. (workbench's
    # package no longer imports its modules eagerly, so the view the tasks come from is named too.)
    import workbench.imaging
    import workbench.vcf
    import workbench.view  # noqa: F401


def _on_cluster(view: str, workers: str, compute) -> dict:
    from workbench import open_project

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
    from fabric.materialise.view import materialise_project
    from kernel.config import Paths
    from kernel.db import Registry

    paths = Paths(Path(home))
    registry = Registry.of(paths)
    start = time.perf_counter()
    summary = materialise_project(registry, paths, project, actor="bench", progress=False)
    return {"compute": time.perf_counter() - start, "patients": summary.patients, "bytes": summary.bytes}


def release_checks(home: str, files: str) -> dict:
    """Submit a request of the files listed in `files` (in the project's outputs) and time submit -> checks done,
    as the background runner does it."""
    from kernel.config import Paths
    from kernel.db import Registry
    from output_checks.release import workflow
    from output_checks.release.service import Airlock

    paths = Paths(Path(home))
    app = Airlock(Registry.of(paths), paths)
    names = Path(files).read_text().split()
    start = time.perf_counter()

    def create(session):
        request_id = workflow.create_request(session, project="cardio-risk", author="alice", title="bench")
        for name in names:
            workflow.add_file(session, paths, app.store, request_id, "alice", name)
        workflow.submit(session, request_id, "alice")
        return request_id

    request_id = app.tx(create)
    submitted = time.perf_counter()
    app.check_request(request_id)
    done = time.perf_counter()
    state = app.tx(lambda s: s.get(workflow.ReleaseRequest, request_id).state)
    return {"submit": submitted - start, "checks": done - submitted, "total": done - start, "state": state}


def engine_checks(home: str, files: str) -> dict:
    """The baseline: the checks engine alone on the same files, with the same policy and known identifiers."""
    from kernel.config import Paths
    from kernel.db import Registry
    from output_checks.engine import check_paths
    from output_checks.policy import load_policy
    from output_checks.screening.known import build_known_identifiers

    paths = Paths(Path(home))
    outputs = paths.project_outputs("cardio-risk")
    names = Path(files).read_text().split()
    start = time.perf_counter()
    registry = Registry.of(paths)
    known = build_known_identifiers(registry, paths, "cardio-risk")
    report = check_paths([outputs / n for n in names], load_policy(), known, workers=1)
    return {"total": time.perf_counter() - start, "files": len(report.files)}


def checker_isolation(home: str, files: str, mode: str) -> dict:
    """The checks on the same files, in this process (`inprocess`, how the airlock ran them before) or in checker
    sandboxes, started on demand (`sandboxed`: the command line) or ahead (`sandboxed-warm`: the airlock service);
    same policy, same known identifiers, timed from the index built (and the warm child ready)."""
    from kernel.config import Paths
    from kernel.db import Registry
    from output_checks.engine import Target, check_file, make_context
    from output_checks.policy import load_policy
    from output_checks.sandbox.runner import SandboxFile, check_files_sandboxed, isolation
    from output_checks.screening.known import build_known_identifiers

    paths = Paths(Path(home))
    outputs = paths.project_outputs("cardio-risk")
    names = Path(files).read_text().split()
    known = build_known_identifiers(Registry.of(paths), paths, "cardio-risk")
    policy = load_policy()
    if mode == "sandboxed-warm":  # as the airlock service runs them: a checker child started ahead of the request
        from output_checks.sandbox.runner import keep_warm, wait_warm

        keep_warm()
        assert wait_warm()
    start = time.perf_counter()
    if mode.startswith("sandboxed"):
        reports = check_files_sandboxed([SandboxFile(outputs / n, n) for n in names], policy, known)
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            ctx = make_context(policy, known, Path(scratch))
            reports = [check_file(Target(outputs / n, n), ctx) for n in names]
    verdicts = [str(r.verdict) for r in reports]
    return {"total": time.perf_counter() - start, "verdicts": verdicts, "sandbox": isolation().sandboxed}


TASKS = {
    "checker_isolation": checker_isolation,
    "allele_frequencies": allele_frequencies,
    "dicom_index": dicom_index,
    "materialise": materialise,
    "release_checks": release_checks,
    "engine_checks": engine_checks,
}

if __name__ == "__main__":
    print(json.dumps(TASKS[sys.argv[1]](*sys.argv[2:])))
