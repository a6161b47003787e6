"""The workspace's Dask dashboard and MLflow tracking, run in the workspace environment (where bokeh and mlflow
are installed) on a real small view and a real SQLite tracking store."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.readers_fixtures import build_view
from tests.workspace_env import requires_workspace_env, run_workspace_python

pytestmark = [pytest.mark.integration, requires_workspace_env]

DASHBOARD = """
import json, urllib.request
from workbench import open_project

if __name__ == "__main__":
    with open_project().client(n_workers=1, processes=False) as client:
        port = client.scheduler_info()["services"].get("dashboard")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        status = opener.open(f"http://127.0.0.1:{port}/status", timeout=60).status
        print(json.dumps({"link": client.dashboard_link, "port": port, "status": status}))
"""

TRACKING = """
import json, sys
from pathlib import Path
import mlflow
from workbench.errors import WorkbenchError
from workbench.tracking import experiment

def refused(name):
    try:
        experiment(name)
    except WorkbenchError as exc:
        return str(exc)
    return None

out = {}
first = experiment("cardiac-risk")
out["again"] = experiment("cardiac-risk") == first
out["location"] = mlflow.get_experiment(first).artifact_location
with mlflow.start_run() as run:
    mlflow.log_metric("auc", 0.75)
    mlflow.log_text("aggregate only", "note.txt")
out["run_experiment"] = run.info.experiment_id == first
out["run_id"] = run.info.run_id
mlflow.delete_experiment(experiment("old"))
out["deleted"] = refused("old")
mlflow.create_experiment("stray", artifact_location=str(Path(sys.argv[1]).resolve()))
out["stray"] = refused("stray")
print(json.dumps(out))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dashboard(tmp_path: Path, env: dict[str, str]) -> dict:
    view = tmp_path / "view"
    if not view.exists():
        build_view(view, with_imaging=False)
    (tmp_path / "dashboard.py").write_text(DASHBOARD)
    result = run_workspace_python(
        ["dashboard.py"], cwd=tmp_path, env={"ENCLAVE_PROJECT_DATA": str(view), **env}, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_dashboard_on_the_workspace_port_linked_through_the_hub(tmp_path: Path) -> None:
    port = _free_port()
    got = _dashboard(
        tmp_path,
        {"ENCLAVE_DASK_DASHBOARD": f"127.0.0.1:{port}", "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/cardio-risk/"},
    )
    assert got["port"] == port and got["status"] == 200  # served where the proxy route forwards
    assert got["link"] == "/user/alice/cardio-risk/dask/status"


def test_dashboard_outside_a_workspace_keeps_dasks_own_link(tmp_path: Path) -> None:
    got = _dashboard(tmp_path, {"ENCLAVE_DASK_DASHBOARD": "", "JUPYTERHUB_SERVICE_PREFIX": ""})
    assert got["status"] == 200
    assert got["link"].startswith("http://") and got["link"].endswith(f":{got['port']}/status")


def test_experiments_keep_runs_and_artifacts_in_the_project_store(tmp_path: Path) -> None:
    store, work = tmp_path / "mlflow", tmp_path / "home"
    work.mkdir()
    (work / "tracking.py").write_text(TRACKING)
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
        "ENCLAVE_MLFLOW_ARTIFACTS": str(store / "artifacts"),
    }
    store.mkdir()
    result = run_workspace_python(["tracking.py", str(tmp_path / "elsewhere")], cwd=work, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    home = store / "artifacts" / "cardiac-risk"
    assert out["location"] == home.as_uri() and out["again"] and out["run_experiment"]
    assert (home / out["run_id"] / "artifacts" / "note.txt").read_text() == "aggregate only"
    assert not (work / "mlruns").exists()  # nothing fell back to MLflow's default ./mlruns
    assert out["deleted"] and "is deleted" in out["deleted"]
    assert out["stray"] and "outside the project's store" in out["stray"]
