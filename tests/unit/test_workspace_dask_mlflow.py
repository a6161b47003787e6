"""Workspace settings read from the environment: where the Dask dashboard listens and links to, and the MLflow
store an experiment must use. The servers themselves are exercised in tests/integration/test_workspace_services.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from workbench import cluster
from workbench.errors import WorkbenchError
from workbench.tracking import _inside, experiment

pytestmark = pytest.mark.unit


def test_dashboard_address_from_the_workspace_else_any_free_port() -> None:
    assert cluster.dashboard_address({"ENCLAVE_DASK_DASHBOARD": "127.0.0.1:8787"}) == "127.0.0.1:8787"
    assert cluster.dashboard_address({"ENCLAVE_DASK_DASHBOARD": "  "}) == ":0"
    assert cluster.dashboard_address({}) == ":0"


@pytest.mark.parametrize(
    ("prefix", "link"),
    [
        ("/user/alice/cardio-risk/", "/user/alice/cardio-risk/dask/status"),
        ("/user/alice/cardio-risk", "/user/alice/cardio-risk/dask/status"),
        ("user//bob/p/", "/user/bob/p/dask/status"),
        ("/", "/dask/status"),
        # Dask formats the link with str.format: braces must come out literally, not as a KeyError
        ("/user/{odd}/p/", "/user/{{odd}}/p/dask/status"),
    ],
)
def test_dashboard_link_goes_through_the_hub(prefix: str, link: str) -> None:
    assert cluster.dashboard_link({"JUPYTERHUB_SERVICE_PREFIX": prefix}) == link
    assert link.format(host="127.0.0.1", port=1).endswith("/dask/status")


def test_no_hub_no_link_override() -> None:
    assert cluster.dashboard_link({}) is None
    assert cluster.dashboard_link({"JUPYTERHUB_SERVICE_PREFIX": ""}) is None


def test_tracking_imports_without_mlflow() -> None:
    import workbench
    import workbench.tracking

    assert workbench.tracking.experiment and workbench.open_project

    if "mlflow" not in sys.modules:  # the main environment has no mlflow: importing workbench must not need it
        with pytest.raises(ModuleNotFoundError):
            import mlflow  # noqa: F401


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "-flag", "x" * 101, "tab\there", 7])
def test_experiment_names_must_be_plain_folder_names(name: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////nowhere/mlflow.db")
    monkeypatch.setenv("ENCLAVE_MLFLOW_ARTIFACTS", "/nowhere/artifacts")
    with pytest.raises(WorkbenchError, match="experiment name"):
        experiment(name)  # type: ignore[arg-type]


def test_experiment_needs_the_workspace_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("ENCLAVE_MLFLOW_ARTIFACTS", str(tmp_path / "artifacts"))
    with pytest.raises(WorkbenchError, match=r"\$MLFLOW_TRACKING_URI is not set"):
        experiment("cardiac-risk")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("ENCLAVE_MLFLOW_ARTIFACTS", " ")
    with pytest.raises(WorkbenchError, match=r"\$ENCLAVE_MLFLOW_ARTIFACTS is not set"):
        experiment("cardiac-risk")
    assert list(tmp_path.iterdir()) == []  # refused before anything was created


def test_artifact_locations_inside_the_project_store(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    assert _inside((root / "exp").as_uri(), root)
    assert _inside(str(root / "exp"), root)
    assert _inside(f"file://localhost{root}/exp", root)
    assert not _inside((tmp_path / "mlruns" / "1").as_uri(), root)
    assert not _inside(f"{root.as_uri()}/../../elsewhere", root)
    assert not _inside(f"file://otherhost{root}/exp", root)
    assert not _inside("s3://bucket/artifacts/exp", root)
    assert not _inside("mlflow-artifacts:/1/abc", root)
