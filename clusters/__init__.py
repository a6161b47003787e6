"""Dask clusters for a project on the site's engines (a layer above the hub, below provisioning)."""
