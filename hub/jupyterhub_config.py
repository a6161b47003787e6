"""JupyterHub's configuration for Enclave: `jupyterhub -f hub/jupyterhub_config.py` (what `enclave up` runs).

Everything is set by hub/config.py's `apply_config` from the environment (ENCLAVE_HOME, ports); see the table there
and docs/reference/hub-config.md. Site-specific additions go after the call.
"""

from hub.config import HubSettings, apply_config

c = get_config()  # noqa: F821  (JupyterHub's config loader provides get_config)
apply_config(c, HubSettings.from_env())
