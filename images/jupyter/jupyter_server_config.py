"""The workspace environment's Jupyter server config, the part that needs code (the JSON file beside it holds the
rest): jupyter-server-proxy's two routes and its host allow-list, terminals confined as kernels are, and lab
extensions from this environment only.
If this file failed to load, the enclave_workspace extension would find the proxy unconfigured and stop the server."""

import os
import sys
from pathlib import Path

from enclave_workspace.confine import launcher
from enclave_workspace.proxy import named_servers_only, proxied_servers

c = get_config()  # noqa: F821 (defined by traitlets when it runs a config file)

c.ServerProxy.servers = proxied_servers()
c.ServerProxy.host_allowlist = named_servers_only

# Terminals run confined, as kernels do (enclave_workspace/confine.py; kernels through the kernelspec manager).
c.ServerApp.terminado_settings = {"shell_command": [*launcher(), os.environ.get("SHELL") or "/bin/bash", "-l"]}

# The server's own XSRF cookie SameSite=Lax, as every Enclave cookie (its OAuth cookie's options come from the hub).
c.ServerApp.tornado_settings = {
    "xsrf_cookie_kwargs": {"path": os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/"), "samesite": "Lax"}
}

# Not the user's ~/.local/share/jupyter/labextensions: front-end extensions come from the environment only.
c.LabApp.labextensions_path = [str(Path(sys.prefix) / "share" / "jupyter" / "labextensions")]
