"""The example notebook run by `enclave run` with papermill inside the demo project's sandbox, as the project's
account: it reads the project's data read-only, logs to the project's MLflow store and writes to its outputs, and
what it writes passes the airlock's automated checks (the table) or goes to review (the figure)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workspace_hub import DEMO, needs_enclave

pytestmark = [pytest.mark.integration, needs_enclave, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
ENCLAVE = Path(sys.executable).with_name("enclave")


def enclave(paths, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ENCLAVE_HOME": str(paths.home)}
    return subprocess.run([str(ENCLAVE), *args], capture_output=True, text=True, env=env, timeout=800, check=False)


def test_the_example_notebook_runs_in_the_sandbox_with_papermill(running_enclave):
    paths = running_enclave.paths
    ran = enclave(paths, "run", str(REPO / "notebooks" / "cardiac_risk.ipynb"), "--project", DEMO, "--user", "bob",
                  "-p", "experiment_name", "sandbox-check")  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    executed = Path(ran.stdout.split("executed notebook: ")[1].split(" ")[0])
    assert executed.is_relative_to(paths.project_home(DEMO, "bob") / "runs")
    account = paths.project_outputs(DEMO).stat()
    outputs = paths.project_outputs(DEMO) / "cardiac_risk"
    for written in (outputs / "risk_groups.csv", outputs / "calibration.png"):
        assert written.stat().st_uid == account.st_uid  # written by the project's account, not root
    store = paths.project_mlflow(DEMO)
    assert (store / "mlflow.db").is_file() and any((store / "artifacts" / "sandbox-check").rglob("MLmodel"))

    checked = enclave(paths, "airlock", "check", "--json", "--project", DEMO, str(outputs))
    verdicts = {f["path"]: f["verdict"] for f in json.loads(checked.stdout)["files"]}
    assert verdicts == {"risk_groups.csv": "pass", "calibration.png": "review"}, checked.stdout


def test_enclave_run_refuses_an_output_checker(running_enclave):
    ran = enclave(running_enclave.paths, "run", str(REPO / "notebooks" / "cardiac_risk.ipynb"), "--project", DEMO,
                  "--user", "carol")  # fmt: skip
    assert ran.returncode == 1 and "not a researcher" in ran.stderr
