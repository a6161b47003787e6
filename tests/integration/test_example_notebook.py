"""notebooks/cardiac_risk.ipynb run with papermill in the workspace environment over a materialised project: it
must produce a table the airlock passes and a figure it sends to review, and log its run and model to the
project's MLflow store with the model's files inside the project's artifact folder.

The airlock is not weakened for it: the check runs with the default policy (and the project's known identifiers),
and once more with the rounding base the notebook declares."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.workspace_env import REPO, requires_workspace_env, run_workspace_python

pytestmark = [pytest.mark.integration, requires_workspace_env]

NOTEBOOK = REPO / "notebooks" / "cardiac_risk.ipynb"
EXPERIMENT = "risk-check"  # not the notebook's default: papermill's parameters reach the notebook
ENCLAVE = shutil.which("enclave", path=str(Path(sys.executable).parent)) or "enclave"

STORE_QUERY = """
import json, sys
import mlflow
exp = mlflow.get_experiment_by_name(sys.argv[1])
runs = mlflow.search_runs([exp.experiment_id], output_format="list")
models = mlflow.search_logged_models([exp.experiment_id], output_format="list")
print(json.dumps({
    "location": exp.artifact_location,
    "runs": [{"metrics": r.data.metrics, "params": r.data.params, "artifact_uri": r.info.artifact_uri} for r in runs],
    "models": [{"name": m.name, "artifact_location": m.artifact_location, "run_id": m.source_run_id} for m in models],
}))
"""


@pytest.fixture(scope="module")
def executed(enclave, tmp_path_factory) -> dict[str, Path]:
    """The notebook run once over the `cvd-risk` project's view, as `enclave run` would in a workspace."""
    root = tmp_path_factory.mktemp("notebook")
    places = {"home": root / "home", "outputs": root / "outputs", "mlflow": root / "mlflow"}
    for path in places.values():
        path.mkdir()
    env = {
        "ENCLAVE_PROJECT_DATA": str(enclave.view("cvd-risk")),
        "ENCLAVE_OUTPUTS": str(places["outputs"]),
        "MLFLOW_TRACKING_URI": f"sqlite:///{places['mlflow'] / 'mlflow.db'}",
        "ENCLAVE_MLFLOW_ARTIFACTS": str(places["mlflow"] / "artifacts"),
        "JUPYTERHUB_SERVICE_PREFIX": "",
        "ENCLAVE_DASK_DASHBOARD": "",
    }
    result = run_workspace_python(
        ["-m", "papermill", str(NOTEBOOK), "executed.ipynb", "--no-progress-bar", "-p", "experiment_name", EXPERIMENT],
        cwd=places["home"],
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return {**places, "env": env, "executed": places["home"] / "executed.ipynb"}


def airlock(*args: str, home: Path | None = None) -> dict:
    prefix = [ENCLAVE, "--home", str(home)] if home else [ENCLAVE]
    result = subprocess.run(
        [*prefix, "airlock", "check", "--json", *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def test_committed_without_outputs() -> None:
    notebook = json.loads(NOTEBOOK.read_text())
    assert notebook["nbformat"] == 4
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert sum("parameters" in c["metadata"].get("tags", []) for c in code) == 1


def test_table_is_aggregate_rounded_and_safe(executed) -> None:
    table = pd.read_csv(executed["outputs"] / "cardiac_risk" / "risk_groups.csv")
    assert list(table.columns) == [
        "risk_group",
        "patients",
        "events",
        "observed_rate_pct",
        "mean_predicted_risk_pct",
    ]
    assert 1 <= len(table) <= 4
    counts = pd.concat([table["patients"], table["events"], table["patients"] - table["events"]])
    assert (counts >= 10).all() and (counts % 5 == 0).all()


def test_airlock_passes_the_table_and_reviews_the_figure(enclave, executed) -> None:
    report = airlock("--project", "cvd-risk", str(executed["outputs"]), home=enclave.paths.home)
    verdicts = {f["path"]: f["verdict"] for f in report["files"]}
    assert verdicts == {"cardiac_risk/risk_groups.csv": "pass", "cardiac_risk/calibration.png": "review"}
    assert report["summary"]["block"] == 0


def test_airlock_accepts_the_declared_rounding(executed, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("rounding_base: 5\n")
    report = airlock("--policy", str(policy), str(executed["outputs"] / "cardiac_risk" / "risk_groups.csv"))
    assert report["files"][0]["verdict"] == "pass"


def test_executed_notebook_shows_no_individual_data(enclave, executed) -> None:
    report = airlock("--project", "cvd-risk", str(executed["executed"]), home=enclave.paths.home)
    findings = report["files"][0]["findings"]
    assert report["files"][0]["verdict"] == "review", findings  # its figure; nothing blocks
    assert all(f["verdict"] != "block" for f in findings)


def test_run_and_model_logged_in_the_project_store(executed) -> None:
    result = run_workspace_python(
        ["-c", STORE_QUERY, EXPERIMENT], cwd=executed["home"], env=executed["env"], timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    store = json.loads(result.stdout.strip().splitlines()[-1])
    artifacts = (executed["mlflow"] / "artifacts" / EXPERIMENT).resolve()
    assert store["location"] == artifacts.as_uri()
    [run] = store["runs"]
    assert 0.5 < run["metrics"]["cv_auc"] <= 1 and 0 < run["metrics"]["test_auc"] <= 1
    assert run["params"]["variant_id"] == "rs10455872" and run["params"]["seed"] == "7"
    assert run["artifact_uri"].startswith(artifacts.as_uri() + "/")
    [model] = store["models"]
    assert model["name"] == "risk_model" and model["artifact_location"].startswith(artifacts.as_uri() + "/")
    model_dir = Path(model["artifact_location"].removeprefix("file://"))
    assert (model_dir / "MLmodel").is_file() and (model_dir / "model.skops").is_file()
    assert not (executed["home"] / "mlruns").exists()
