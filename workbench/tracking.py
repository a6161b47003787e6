"""A project's MLflow experiments: runs in the project's own tracking store, artifacts inside the project.

In a workspace $MLFLOW_TRACKING_URI names the project's SQLite store and $ENCLAVE_MLFLOW_ARTIFACTS its artifact
folder (both under /project/mlflow), so projects cannot see each other's runs. `experiment()` creates experiments
with their artifacts in that folder, never in ./mlruns, and refuses one whose artifacts live anywhere else. Model
files leave the enclave only through the airlock, like any output.

mlflow is installed in the workspace environment only, so it is imported when `experiment()` runs: the workbench
package imports without it.

    from workbench.tracking import experiment
    experiment("cardiac-risk")
    with mlflow.start_run(): ...
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from workbench.errors import WorkbenchError

ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
ENV_ARTIFACTS = "ENCLAVE_MLFLOW_ARTIFACTS"
# The name becomes a folder under the artifact root: no separators, no leading dot.
EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def experiment(name: str) -> str:
    """Make `name` the active MLflow experiment and return its id, creating it if missing with its artifacts in
    $ENCLAVE_MLFLOW_ARTIFACTS/<name>. WorkbenchError when the workspace's MLflow settings are missing, the name is
    not a plain folder name, or the experiment is deleted or keeps its artifacts outside the project's store."""
    if not isinstance(name, str) or not EXPERIMENT_NAME.match(name):
        raise WorkbenchError(
            f"experiment name {name!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    uri = os.environ.get(ENV_TRACKING_URI, "").strip()
    if not uri:
        raise WorkbenchError(
            f"${ENV_TRACKING_URI} is not set: a workspace sets it to the project's MLflow store "
            "(sqlite:////project/mlflow/mlflow.db); outside one, set it to a store of your own"
        )
    root = os.environ.get(ENV_ARTIFACTS, "").strip()
    if not root:
        raise WorkbenchError(
            f"${ENV_ARTIFACTS} is not set: a workspace sets it to the project's artifact folder "
            "(/project/mlflow/artifacts), so model files stay in the project's store"
        )
    try:
        import mlflow
        from mlflow.exceptions import MlflowException
    except ImportError as exc:
        raise WorkbenchError("mlflow is not installed here: it comes with the workspace environment (images/)") from exc

    artifacts = Path(root).expanduser().resolve()
    mlflow.set_tracking_uri(uri)  # the same store for this lookup and for the runs that follow
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(name)
    if found is None:
        location = artifacts / name
        location.mkdir(parents=True, exist_ok=True)
        try:
            client.create_experiment(name, artifact_location=location.as_uri())
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise WorkbenchError(f"could not create MLflow experiment {name!r}: {exc.message}") from exc
            # another process created it between the lookup and here: use theirs
        found = client.get_experiment_by_name(name)
        if found is None:
            raise WorkbenchError(f"MLflow experiment {name!r} was created but cannot be read back from {uri}")
    if found.lifecycle_stage == "deleted":
        raise WorkbenchError(
            f"MLflow experiment {name!r} is deleted: restore it (mlflow.MlflowClient().restore_experiment"
            f"({found.experiment_id!r})) or choose another name"
        )
    if not _inside(found.artifact_location, artifacts):
        raise WorkbenchError(
            f"MLflow experiment {name!r} keeps its artifacts outside the project's store ({artifacts}); "
            "choose another name so that a new experiment is created there"
        )
    mlflow.set_experiment(experiment_id=found.experiment_id)
    return found.experiment_id


def _inside(location: str, root: Path) -> bool:
    """Whether an experiment's artifact location (a file: URI or a plain path) lies under `root`."""
    if location.startswith("file:"):
        parsed = urlparse(location)
        if parsed.netloc not in ("", "localhost"):
            return False
        path = Path(unquote(parsed.path))
    elif URI_SCHEME.match(location):
        return False  # object storage or a tracking server's proxy (mlflow-artifacts:): not the project's folder
    else:
        path = Path(location)
    return path.expanduser().resolve().is_relative_to(root)
