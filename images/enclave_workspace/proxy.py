"""jupyter-server-proxy's configuration for a workspace: the only two proxied routes, `dask` (the Dask dashboard that
the researcher's cluster serves on loopback) and `mlflow` (the project's MLflow UI, started on first visit), and a
host allow-list that refuses every proxy request not made through one of them.

Read by the environment's `jupyter_server_config.py`; the environment variables come from the sandbox:
ENCLAVE_DASK_DASHBOARD (host:port of the dashboard, loopback only), MLFLOW_TRACKING_URI and
ENCLAVE_MLFLOW_ARTIFACTS (the project's MLflow store)."""

from __future__ import annotations

import os
import sys
from typing import Any
from urllib.parse import urlsplit

from jupyter_server_proxy.handlers import NamedLocalProxyHandler
from tornado import web

DEFAULT_DASK_DASHBOARD = "127.0.0.1:8787"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]", ""}
MLFLOW_START_SECONDS = 90.0  # first start migrates the SQLite store; a small workspace takes 10-30 s


def dask_dashboard_port(address: str | None = None) -> int:
    """The dashboard's port from `host:port`; the host must be loopback (the proxy never leaves the workspace)."""
    address = address if address is not None else os.environ.get("ENCLAVE_DASK_DASHBOARD") or DEFAULT_DASK_DASHBOARD
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"ENCLAVE_DASK_DASHBOARD must be host:port, not {address!r}")
    if host not in LOOPBACK:
        raise ValueError(f"ENCLAVE_DASK_DASHBOARD must be on loopback, not {host!r}")
    return int(port)


def _browser_origins() -> list[str]:
    """The origins the researcher's browser uses (the hub's public URL), for MLflow's cross-origin check; MLflow
    itself always accepts localhost origins."""
    origins = []
    for name in ("JUPYTERHUB_PUBLIC_URL", "JUPYTERHUB_PUBLIC_HUB_URL", "JUPYTERHUB_HOST"):
        parts = urlsplit(os.environ.get(name, ""))
        if parts.scheme in ("http", "https") and parts.netloc:
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in origins:
                origins.append(origin)
    return origins


def mlflow_command(port: int, base_url: str, unix_socket: str) -> list[str]:
    """`mlflow server` on loopback `port`, serving the project's store under `<base_url>mlflow`.

    jupyter-server-proxy calls this when the route is first visited and formats every string it returns, so
    braces in values are doubled."""
    tracking = os.environ.get("MLFLOW_TRACKING_URI", "")
    artifacts = os.environ.get("ENCLAVE_MLFLOW_ARTIFACTS", "")
    if not tracking or not artifacts or not unix_socket:
        raise web.HTTPError(503, "MLflow is not configured in this workspace (no project MLflow store).")
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        tracking,
        # Runs logged from notebooks write to the same folder (file artifacts); the UI reads them in place, and the
        # server proxies no artifact uploads or downloads of its own.
        "--default-artifact-root",
        artifacts,
        "--no-serve-artifacts",
        # On a Unix socket in the workspace's runtime folder, where no kernel can create one (confine.py): the UI is
        # the server's own, not whatever a kernel binds. uvicorn ignores host and port when given --uds.
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--uvicorn-opts",
        f"--uds {unix_socket}",
        # The UI lives at /user/U/P/mlflow/ and jupyter-server-proxy forwards the full path (absolute_url).
        "--static-prefix",
        base_url.rstrip("/") + "/mlflow",
        "--workers",
        "1",
    ]
    if origins := _browser_origins():
        command += ["--cors-allowed-origins", ",".join(origins)]
    return [part.replace("{", "{{").replace("}", "}}") for part in command]


def mlflow_socket_setting() -> str | bool:
    """jupyter-server-proxy's `unix_socket` for MLflow: the runtime folder's socket (a temporary folder of the
    server's own outside a sandbox, as in the tests that start a bare server)."""
    folder = os.environ.get("ENCLAVE_RUN_DIR", "")
    return os.path.join(folder, "mlflow.sock") if folder else True


def named_servers_only(handler: Any, host: str) -> bool:
    """jupyter-server-proxy's `host_allowlist`: only the named routes may proxy (they always proxy to localhost);
    the generic `/proxy/<port>` and `/proxy/<host>:<port>` handlers are refused whatever the host."""
    return isinstance(handler, NamedLocalProxyHandler) and host == "localhost"


def proxied_servers() -> dict[str, dict[str, Any]]:
    """`c.ServerProxy.servers`: the Dask dashboard and MLflow, nothing else."""
    return {
        "dask": {
            "port": dask_dashboard_port(),
            # uncompressed bodies, which services.py can screen (it refuses any other encoding)
            "request_headers_override": {"Accept-Encoding": "identity"},
            "launcher_entry": {"title": "Dask dashboard", "category": "Other"},
            "new_browser_tab": True,
        },
        "mlflow": {
            "command": mlflow_command,
            "unix_socket": mlflow_socket_setting(),
            "absolute_url": True,
            "timeout": MLFLOW_START_SECONDS,
            # The browser's Host is the hub's public name, which MLflow's DNS-rebinding check would refuse; the
            # server listens on loopback only, so the loopback name is the true one. Origins are still checked.
            "request_headers_override": {"Host": "localhost", "Accept-Encoding": "identity"},
            "environment": {
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "DO_NOT_TRACK": "true",
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            },
            "launcher_entry": {"title": "MLflow", "category": "Other"},
            "new_browser_tab": True,
        },
    }
