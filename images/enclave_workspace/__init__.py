"""Enclave's workspace-side hardening, a Jupyter server extension enabled by the environment's own config
(images/jupyter/): it puts the deny-by-default route table in front of every route of the server (routes.py), serves
kernel logos screened as images (kernelspecs.py) and JupyterLab's Dask panel its project's cluster (dask_panel.py),
checks once the server has started that every route it registers is in the table, and refuses to start a server
whose configuration is not the hardened one, so a broken or skipped config file cannot leave a workspace open. The
contents manager (contents.py, which screens what the browser reads with display.py), the authoriser (authorizer.py),
the proxy routes (proxy.py) and the lab extension manager (lab.py) are set by that config."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from jupyter_server.utils import url_path_join

from enclave_workspace import budget, connections, dask_panel, headers
from enclave_workspace.authorizer import WorkspaceAuthorizer
from enclave_workspace.confine import launcher
from enclave_workspace.contents import WorkspaceContentsManager
from enclave_workspace.display import CAP_VARIABLES, response_cap
from enclave_workspace.kernelspecs import EnvironmentKernelSpecManager, KernelLogoHandler
from enclave_workspace.lab import MANAGER
from enclave_workspace.proxy import named_servers_only
from enclave_workspace.routes import (
    KERNEL_LOGO,
    NO_EXPORT_FORMATS,
    NoExportFormatsHandler,
    add_in_front,
    front_rules,
    unclassified_routes,
)
from enclave_workspace.services import ServiceResponseScreen

__version__ = "0.1.0"

PROXIED = {"dask", "mlflow"}


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "enclave_workspace"}]


def hardening_problems(serverapp: Any) -> list[str]:
    """What in the running server's configuration differs from the hardened one (empty when all is well)."""
    problems = []
    if not isinstance(serverapp.contents_manager, WorkspaceContentsManager):
        problems.append("the contents manager is not enclave_workspace's")
    if not isinstance(serverapp.authorizer, WorkspaceAuthorizer):
        problems.append("the authorizer is not enclave_workspace's")
    if serverapp.disable_check_xsrf:
        problems.append("XSRF checks are disabled")
    if serverapp.allow_unauthenticated_access:
        problems.append("unauthenticated access is allowed")
    if serverapp.gateway_config.gateway_enabled:
        problems.append("a kernel gateway (remote kernels) is configured")
    environment = Path(sys.prefix).resolve()
    kernel_dirs = [Path(d).resolve() for d in serverapp.kernel_spec_manager.kernel_dirs]
    if not all(d == environment or environment in d.parents for d in kernel_dirs):
        problems.append("kernelspecs are read from outside the environment")
    if not isinstance(serverapp.kernel_spec_manager, EnvironmentKernelSpecManager):
        problems.append("kernels are not started confined")
    if serverapp.terminado_settings.get("shell_command", [])[: len(launcher())] != launcher():
        problems.append("terminals are not confined")
    try:
        budget.budget()
    except ValueError as exc:
        problems.append(str(exc))
    for kind in CAP_VARIABLES:
        try:
            response_cap(kind)
        except ValueError as exc:
            problems.append(str(exc))
    proxy = serverapp.config.get("ServerProxy", {})
    if set(proxy.get("servers", {})) != PROXIED:
        problems.append("the proxied servers are not exactly dask and mlflow")
    if proxy.get("host_allowlist") is not named_servers_only:
        problems.append("the proxy host allow-list is not enclave_workspace's")
    if serverapp.jpserver_extensions.get("dask_labextension"):
        problems.append("dask-labextension's server extension is on (the workspace answers the Dask panel itself)")
    lab = serverapp.config.get("LabApp", {})
    if lab.get("extension_manager") != MANAGER or lab.get("lock_all_plugins") is not True:
        problems.append("the lab extension and plugin managers are not read-only and locked")
    return problems


def _load_jupyter_server_extension(serverapp: Any) -> None:
    if problems := hardening_problems(serverapp):
        # With ServerApp.reraise_server_extension_failures (set in the environment's JSON config) this stops the
        # server: a workspace that is not hardened must not start.
        raise RuntimeError("workspace configuration is not hardened: " + "; ".join(problems))
    web_app = serverapp.web_app
    base_url = web_app.settings["base_url"]
    logo = (url_path_join(base_url, KERNEL_LOGO), KernelLogoHandler)
    formats = (url_path_join(base_url, NO_EXPORT_FORMATS), NoExportFormatsHandler)
    add_in_front(web_app, front_rules(base_url, web_app, [logo, formats, *dask_panel.handlers(base_url)]))
    # every response body of the proxied services is screened as it leaves (services.py), then every byte to the
    # browser is counted against the workspace's hourly budget (budget.py)
    ServiceResponseScreen.base_url = base_url
    web_app.add_transform(ServiceResponseScreen)
    budget.install(web_app, base_url)
    # kernel and terminal sessions reported to the hub's audit log on the budget's pipe (sessions.py)
    from enclave_workspace import sessions

    sessions.install(serverapp)
    # last, so refusals made by the transforms above carry the headers too: a CSP on every page (headers.py)
    headers.install(web_app, base_url)
    # the proxy asks every request to close its connection: close lingeringly, so none of its writes meets a
    # closed socket and turns a served request into a 503 (connections.py)
    connections.install()
    serverapp.log.info("enclave_workspace: routes outside the workspace's table refused")


async def _start_jupyter_server_extension(serverapp: Any) -> None:
    """Every extension has registered its routes by now: say whether the table covers them all. A route it misses
    is refused anyway (deny by default); the route inventory test fails on this line."""
    web_app = serverapp.web_app
    unknown = unclassified_routes(web_app, web_app.settings["base_url"])
    inventory = json.dumps({"unclassified": unknown})
    if unknown:
        serverapp.log.warning("enclave_workspace route inventory: %s (refused: not in the table)", inventory)
    else:
        serverapp.log.info("enclave_workspace route inventory: %s", inventory)


load_jupyter_server_extension = _load_jupyter_server_extension
