"""Enclave's workspace-side hardening, a Jupyter server extension enabled by the environment's own config
(images/jupyter/): it refuses the download, export and generic proxy routes (routes.py), and refuses to start a
server whose configuration is not the hardened one, so a broken or skipped config file cannot leave a workspace
open. The contents manager (contents.py), the proxy routes (proxy.py) and the lab extension manager (lab.py) are set
by that config."""

from __future__ import annotations

from typing import Any

from enclave_workspace.contents import WorkspaceContentsManager
from enclave_workspace.lab import MANAGER
from enclave_workspace.proxy import named_servers_only
from enclave_workspace.routes import add_in_front, refused_rules

__version__ = "0.1.0"

PROXIED = {"dask", "mlflow"}


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "enclave_workspace"}]


def hardening_problems(serverapp: Any) -> list[str]:
    """What in the running server's configuration differs from the hardened one (empty when all is well)."""
    problems = []
    if not isinstance(serverapp.contents_manager, WorkspaceContentsManager):
        problems.append("the contents manager is not enclave_workspace's")
    if serverapp.disable_check_xsrf:
        problems.append("XSRF checks are disabled")
    if serverapp.allow_unauthenticated_access:
        problems.append("unauthenticated access is allowed")
    if serverapp.gateway_config.gateway_enabled:
        problems.append("a kernel gateway (remote kernels) is configured")
    proxy = serverapp.config.get("ServerProxy", {})
    if set(proxy.get("servers", {})) != PROXIED:
        problems.append("the proxied servers are not exactly dask and mlflow")
    if proxy.get("host_allowlist") is not named_servers_only:
        problems.append("the proxy host allow-list is not enclave_workspace's")
    lab = serverapp.config.get("LabApp", {})
    if lab.get("extension_manager") != MANAGER or lab.get("lock_all_plugins") is not True:
        problems.append("the lab extension and plugin managers are not read-only and locked")
    return problems


def _load_jupyter_server_extension(serverapp: Any) -> None:
    if problems := hardening_problems(serverapp):
        # With ServerApp.reraise_server_extension_failures (set in the environment's JSON config) this stops the
        # server: a workspace that is not hardened must not start.
        raise RuntimeError("workspace configuration is not hardened: " + "; ".join(problems))
    add_in_front(serverapp.web_app, refused_rules(serverapp.web_app.settings["base_url"]))
    serverapp.log.info("enclave_workspace: download, export and generic proxy routes refused")


load_jupyter_server_extension = _load_jupyter_server_extension
