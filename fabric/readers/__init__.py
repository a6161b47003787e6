"""Dask-native readers for a project's published view: what a research notebook imports.

from fabric.readers import open_project
view = open_project("cardio-risk")
client = view.client()
view.allele_frequencies("chr1").compute()
"""

from fabric.readers.regions import Region, parse_region
from fabric.readers.view import GenotypeMatrix, ProjectView, open_project

__all__ = ["GenotypeMatrix", "InvalidInputError", "ProjectView", "Region", "open_project", "parse_region"]
