"""`enclave run --slurm` on a real one-machine SLURM (tests/slurm.py): a notebook run by papermill as a batch job in
the project's sandbox, as the project's account (provisioning/notebook_jobs.py).

- a notebook like the examples (the view opened, a count computed with `open_project().client()`, a file written to
  /project/outputs) runs through `--slurm --wait` in the project whose `compute.engine` is slurm: its `client()` is a
  LocalCluster (no cluster service in a batch job); the executed copy has the outputs; inside, the notebook ran as
  the project's account, could not see the other project's view and had no network; the submission and the end are
  audited; `run-status` says it finished;
- a notebook over the job's memory is killed by SLURM and `--wait` and `run-status` say so in words; so is one
  past its time limit (`enclave.slurm.walltime`, here one minute through its DASK_ variable);
- no job is left in squeue after either.

The job's files and the refusals through sudo are in tests/security/test_notebook_job_files.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from sqlalchemy import select

from kernel.db import Registry
from kernel.models import AuditEvent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ENCLAVE = Path(sys.executable).with_name("enclave")

PARAMETERS = 'marker = "unset"\nother_view = ""\n'
ANALYSIS = """\
import errno, json, os, pathlib, socket
from workbench import open_project
view = open_project()
client = view.client(processes=False)  # the test projects' 512 MiB hold papermill and the kernel, not a worker too
table = view.tables[0]
rows = int(view.clinical(table).map_partitions(len).sum().compute())
try:
    socket.create_connection(("198.18.0.1", 9), timeout=5).close()
    network = "connected"
except OSError as exc:
    network = errno.errorcode.get(exc.errno, str(exc))
record = {
    "uid": os.getuid(), "rows": rows, "workers": len(client.scheduler_info()["workers"]),
    "engine": os.environ.get("ENCLAVE_DASK_ENGINE"), "network": network,
    "other_view": os.path.exists(other_view), "data_writable": os.access("/project/data", os.W_OK),
}
client.close()
pathlib.Path("/project/outputs", marker + ".json").write_text(json.dumps(record))
print("rows", rows)
"""
HOG = 'marker = "unset"\n', "import time\nhog = b'1' * 900_000_000\ntime.sleep(60)\n"
SLEEPER = 'marker = "unset"\n', "import time\ntime.sleep(600)\n"


def write_notebook(folder: Path, name: str, parameters: str, body: str) -> Path:
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    notebook.cells = [cell, nbformat.v4.new_code_cell(body)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / name
    nbformat.write(notebook, path)
    return path


def enclave(paths, *args: str, timeout: float = 500, **variables: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ENCLAVE_HOME": str(paths.home), **variables}
    return subprocess.run([str(ENCLAVE), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


def job_id(ran: subprocess.CompletedProcess) -> str:
    return ran.stdout.split("submitted notebook job ")[1].split()[0]


def audited(paths, job: str) -> list[str]:
    registry = Registry.of(paths)
    try:
        with registry.session() as session:
            events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
            return [event.action for event in events if (event.detail or {}).get("job") == job]
    finally:
        registry.close()


def test_a_notebook_runs_as_a_slurm_job_in_the_projects_sandbox(cluster_enclave, slurm, tmp_path):
    paths = cluster_enclave.paths
    project, other = cluster_enclave.projects  # the first's compute.engine is slurm
    notebook = write_notebook(tmp_path, "analysis.ipynb", PARAMETERS, ANALYSIS)
    other_view = str(paths.project_data(other).resolve())
    ran = enclave(paths, "run", str(notebook), "--project", project, "--user", "alice", "--slurm", "--wait",
                  "-p", "marker", "slurm-run", "-p", "other_view", other_view)  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    job = job_id(ran)
    assert "executed notebook will be: " in ran.stdout and f"notebook job {job} finished" in ran.stdout

    runs = paths.project_home(project, "alice") / "runs"
    executed = next(runs.glob("analysis-*.out.ipynb"))
    outputs = [o for cell in nbformat.read(executed, as_version=4).cells for o in cell.get("outputs", [])]
    assert any("rows" in o.get("text", "") for o in outputs), outputs

    written = paths.project_outputs(project) / "slurm-run.json"
    record = json.loads(written.read_text())
    account = cluster_enclave.accounts[project]
    assert written.stat().st_uid == account.uid  # written by the project's account, not root
    assert record["uid"] == account.uid and record["engine"] == "local" and record["workers"] == 1
    assert record["rows"] > 0
    assert record["other_view"] is False and record["data_writable"] is False
    assert record["network"] in {"ENETUNREACH", "EHOSTUNREACH", "ENETDOWN"}, record

    status = enclave(paths, "run-status", job)
    assert status.returncode == 0 and f"notebook job {job} finished" in status.stdout, status.stdout + status.stderr
    assert audited(paths, job) == ["notebook.job_submitted", "notebook.job_ended"]
    assert job not in slurm.jobs()


def test_a_job_over_its_memory_is_killed_and_said_so_in_words(cluster_enclave, slurm, tmp_path):
    paths = cluster_enclave.paths
    project = cluster_enclave.projects[1]
    notebook = write_notebook(tmp_path, "hog.ipynb", *HOG)
    ran = enclave(paths, "run", str(notebook), "--project", project, "--user", "alice", "--slurm", "--wait")
    assert ran.returncode != 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    job = job_id(ran)
    said = f"SLURM killed notebook job {job}: it used more than its memory of 512M"
    assert said in ran.stderr, ran.stdout[-2000:] + ran.stderr[-2000:]
    status = enclave(paths, "run-status", job)
    assert status.returncode != 0 and said in status.stdout
    assert audited(paths, job) == ["notebook.job_submitted", "notebook.job_ended"]
    assert job not in slurm.jobs()


def test_a_job_past_its_time_limit_is_stopped_and_said_so_in_words(cluster_enclave, slurm, tmp_path):
    paths = cluster_enclave.paths
    project = cluster_enclave.projects[1]
    notebook = write_notebook(tmp_path, "sleeper.ipynb", *SLEEPER)
    ran = enclave(paths, "run", str(notebook), "--project", project, "--user", "alice", "--slurm", "--wait",
                  DASK_ENCLAVE__SLURM__WALLTIME="00:01:00")  # fmt: skip
    assert ran.returncode != 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    job = job_id(ran)
    said = f"SLURM stopped notebook job {job} at its time limit (00:01:00); it did not finish"
    assert said in ran.stderr, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert said in enclave(paths, "run-status", job).stdout
    assert job not in slurm.jobs()
