"""The researcher's library: Dask-native readers for a project's published view and the project's MLflow
experiments, what a research notebook imports. It is all a workspace installs of Enclave besides the workspace
server's extension (images/enclave_workspace), so it imports no other Enclave package.

from workbench import open_project
view = open_project()          # in a workspace: the view at $ENCLAVE_PROJECT_DATA; or open_project("cardio-risk")
client = view.client()         # a LocalCluster within the project's compute limits
view.allele_frequencies("chr1").compute()

In a workspace the cluster's dashboard listens on $ENCLAVE_DASK_DASHBOARD and `client.dashboard_link` goes through
the hub (`/user/<user>/<project>/dask/status`); see workbench.cluster, whose defaults (cluster.yaml) are registered
with dask.config. Experiments are tracked in the project's own MLflow store through workbench.tracking. What a view
is (its manifest, folders, modes and pseudonyms) is workbench.view_contract, which the fabric's builder writes to.
Its names load on first use (PEP 562), so that the builder and the host, which import only view_contract, do not
pay for Dask, pysam and pydicom, nor register the Dask defaults.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.errors import InvalidInputError, WorkbenchError
    from workbench.regions import Region, parse_region
    from workbench.tracking import experiment
    from workbench.view import GenotypeMatrix, ProjectView, open_project

_FROM = {
    "GenotypeMatrix": "workbench.view",
    "InvalidInputError": "workbench.errors",
    "ProjectView": "workbench.view",
    "Region": "workbench.regions",
    "WorkbenchError": "workbench.errors",
    "experiment": "workbench.tracking",
    "open_project": "workbench.view",
    "parse_region": "workbench.regions",
}
__all__ = [
    "GenotypeMatrix",
    "InvalidInputError",
    "ProjectView",
    "Region",
    "WorkbenchError",
    "experiment",
    "open_project",
    "parse_region",
]


def __getattr__(name: str) -> object:
    if name not in _FROM:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_FROM[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_FROM})
