"""What JupyterLab's Dask panel shows of the project's SLURM cluster, from the cluster service's `status` answer:
the card's model (enclave_workspace/dask_panel.py: SLURM's jobs in the cluster's name, workers, cores, memory, the
workspace's own dashboard route, the `enclave://` address) and the jobs table under a notebook's cluster summary
(workbench/relay.py). dask_panel imports jupyter_server, which lives in the workspace environment only: that part
runs a short script there (this checkout's images/ and workbench first on the path)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.workspace_env import REPO, requires_workspace_env, workspace_python
from workbench import relay

pytestmark = pytest.mark.unit

STATUS = {
    "jobs": {"12": "RUNNING", "13": "PENDING", "14": "RUNNING"},
    "ended": {"9": "OUT_OF_MEMORY", "10": "CANCELLED"},
    "workers": 2,
    "threads": 4,
    "memory": 3 << 30,
    "killed": ["SLURM killed Dask worker job 9: its processes used more than the job's memory <b>"],
    "processes": 1,
    "max_jobs": 4,
}


@requires_workspace_env
def test_the_panels_card_says_what_slurm_says():
    script = f"""
import sys, json
sys.path[:0] = [{str(REPO / "images")!r}, {str(REPO)!r}]
from enclave_workspace.dask_panel import PROJECT_CLUSTER_ID, cluster_model, jobs_summary
print(json.dumps({{"model": cluster_model(json.loads({json.dumps(json.dumps(STATUS))}), "/user/alice/p/"),
                  "id": PROJECT_CLUSTER_ID, "none": jobs_summary({{"jobs": {{}}}})}}))
"""
    result = subprocess.run([str(workspace_python()), "-I", "-c", script], capture_output=True, text=True, cwd="/",
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout)
    assert found["model"] == {
        "id": found["id"],
        "name": "SLURM: 3 jobs: 1 PENDING, 2 RUNNING; 2 ended; 1 killed for memory (see cluster.jobs_status() in a "
        "notebook)",
        "scheduler_address": "enclave://project-cluster",
        "dashboard_link": "/user/alice/p/dask/status",
        "workers": 2,
        "cores": 4,
        "memory": "3.00 GiB",
    }
    assert found["none"] == "0 jobs"


def test_a_notebooks_cluster_summary_lists_slurms_jobs_escaped():
    table = relay.jobs_table(STATUS)
    assert "<td>12</td><td>RUNNING</td>" in table and "<td>13</td><td>PENDING</td>" in table
    assert "<td>9</td><td>ended: OUT_OF_MEMORY</td>" in table
    assert "job&#x27;s memory &lt;b&gt;" in table and "<b>" not in table.replace("<strong>", "")
    assert "2 Dask workers running" in table
    assert "none" in relay.jobs_table({"jobs": {}, "workers": 0})
