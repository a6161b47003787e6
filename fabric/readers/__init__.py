"""Dask-native readers for a project's published view: what a research notebook imports.

from fabric.readers import open_project
view = open_project()          # in a workspace: the view at $ENCLAVE_PROJECT_DATA; or open_project("cardio-risk")
client = view.client()         # a LocalCluster within the project's compute limits
view.allele_frequencies("chr1").compute()

In a workspace the cluster's dashboard listens on $ENCLAVE_DASK_DASHBOARD and `client.dashboard_link` goes through
the hub (`/user/<user>/<project>/dask/status`); see fabric.readers.cluster. Experiments are tracked in the
project's own MLflow store through fabric.tracking.
"""

from fabric.readers.regions import Region, parse_region
from fabric.readers.view import GenotypeMatrix, ProjectView, open_project
from kernel.errors import InvalidInputError

__all__ = ["GenotypeMatrix", "InvalidInputError", "ProjectView", "Region", "open_project", "parse_region"]
