"""The server side of JupyterLab's Dask panel: the cluster API that dask-labextension's front end manages clusters
with (`dask/clusters`: list, start; `dask/clusters/<id>`: get, scale, close), answered by the workspace itself.

dask-labextension's own server extension stays off (the environment's config, checked by the extension): it imports
and calls a class named in `labextension.factory`, which Dask reads from `~/.config/dask` (the researcher's to write),
in the server's process, which no kernel may run code in; it writes that file at import; its `dashboard-check`
fetches any URL a browser names, from the server; and its `dask/dashboard/<id>` proxies to whatever host and port a
cluster's dashboard link names. None of that is needed here: the panel's dashboard is the workspace's own `dask/`
route (checked by the browser, through the route's screen), and its clusters are the project's:

- **SLURM** (the cluster service's socket is in the runtime folder, workbench/relay.py): the one cluster is the
  project's, owned by the service, which every client of the workspace shares (`open_project().client()` gets the
  same). The server speaks only the service's JSON ops to it (`start`, `scale`, `status`, `close`) and relays the
  dashboard's bytes (`dashboard`) on the workspace's dashboard port. It never speaks Dask to the scheduler: the
  scheduler runs the researcher's code, and Dask's messages may carry pickles, which the server must never load.
  The cluster's name in the panel says what SLURM says about its jobs (pending, running, ended, killed for memory).
- **local**: the cluster is the one a kernel starts (`open_project().client()`), its dashboard on the `dask/` route;
  the panel starts none (a LocalCluster started by the server would run researchers' tasks in processes the kernels'
  confinement does not cover, confine.py), and says how to start one instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import uuid
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from workbench import relay
from workbench.errors import WorkbenchError

# dask-labextension's routes, as its front end calls them
CLUSTER_ID = r"(?P<cluster_id>\w+-\w+-\w+-\w+-\w+)"
CLUSTERS = r"/dask/clusters/?$"
CLUSTER = rf"/dask/clusters/{CLUSTER_ID}$"
# The project's cluster has one id in every workspace: there is one such cluster.
PROJECT_CLUSTER_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "enclave:project-cluster"))
# The panel shows a listed cluster's dashboard at dask/dashboard/<id>/ (its front end builds that path unless the
# dashboard link is under /proxy/): for the project's cluster that is the workspace's own dask/ route, redirected.
PROJECT_DASHBOARD = rf"/dask/dashboard/{PROJECT_CLUSTER_ID}(?P<path>/.*)?$"
# The panel asks the dashboard for its panes every few seconds; while none runs, "no content" rather than the
# proxy's error (which every browser logs as a failed load and the server as an error).
DASHBOARD_PLOTS = r"/dask/individual-plots\.json$"
PLOTS_BYTES = 64 << 10
DASHBOARD_ROUTE = "dask/status"  # under the server's base URL: the proxied dashboard (proxy.py, services.py)
DEFAULT_DASHBOARD = "127.0.0.1:8787"
MOST_WORKERS = 100_000

LOCAL_START = (
    "In this project the Dask cluster runs in your notebook: `from workbench import open_project; "
    "client = open_project().client()`. Its dashboard then shows in this panel."
)
LOCAL_MANAGE = "In this project the Dask cluster is your notebook's: scale or close it there (client.cluster)."
ALREADY_RUNNING = "The project's SLURM cluster is already running: it is the one listed here (scale or close it)."
NO_ADAPT = "The project's SLURM cluster is scaled by hand: set the number of workers."
BAD_SCALE = 'Send {"workers": N} with N a whole number from 0.'


async def _read_until_closed(reader: asyncio.StreamReader, limit: int) -> bytes:
    """An HTTP/1.0 answer: everything until the other end closes, at most `limit` bytes."""
    chunks: list[bytes] = []
    total = 0
    while total < limit and (chunk := await reader.read(limit - total)):
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _byte_size(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def jobs_summary(status: dict[str, Any]) -> str:
    """SLURM's jobs of a `status` answer in a few words: `2 jobs: 1 RUNNING, 1 PENDING; 1 killed for memory`."""
    states: dict[str, int] = {}
    for state in status.get("jobs", {}).values():
        states[str(state)] = states.get(str(state), 0) + 1
    listed = sum(states.values())
    words = f"{listed} job{'s' if listed != 1 else ''}"
    if states:
        words += ": " + ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
    if ended := len(status.get("ended", {})):
        words += f"; {ended} ended"
    if killed := len(status.get("killed", [])):
        words += f"; {killed} killed for memory (see cluster.jobs_status() in a notebook)"
    return words


def cluster_model(status: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The panel's model of the project's SLURM cluster (dask-labextension's fields) from the service's `status`."""
    return {
        "id": PROJECT_CLUSTER_ID,
        "name": f"SLURM: {jobs_summary(status)}",
        "scheduler_address": relay.PANEL_ADDRESS,
        "dashboard_link": url_path_join(base_url, DASHBOARD_ROUTE),
        "workers": int(status.get("workers", 0)),
        "cores": int(status.get("threads", 0)),
        "memory": _byte_size(int(status.get("memory", 0))),
    }


class ProjectClusterPanel:
    """The server's view of the project's cluster for the panel: one per server."""

    def __init__(self, base_url: str, environ: dict[str, str] | os._Environ | None = None) -> None:
        self.base_url = base_url
        self.environ = os.environ if environ is None else environ
        self.dashboard: relay.Forwarder | None = None

    def service(self) -> Any:
        """The cluster service's socket, or None in a workspace without one (a local project)."""
        try:
            path = relay.service_socket(self.environ)
        except WorkbenchError:
            return None
        return path if path.is_socket() else None

    async def status(self) -> dict[str, Any] | None:
        """The service's `status`, or None when no cluster runs (or no service answers)."""
        socket = self.service()
        if socket is None:
            return None
        try:
            return await relay.request(socket, {"op": "status"})
        except (OSError, ValueError, WorkbenchError):
            return None

    def dashboard_port(self) -> tuple[str, int]:
        address = self.environ.get("ENCLAVE_DASK_DASHBOARD") or DEFAULT_DASHBOARD
        host, _, port = address.rpartition(":")
        return host or "127.0.0.1", int(port)

    async def dashboard_get(self, path: str, limit: int) -> tuple[int, bytes] | None:
        """`GET path` on the workspace's dashboard port (HTTP/1.0, at most `limit` bytes): its status and body, or
        None when nothing answers there."""
        host, port = self.dashboard_port()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        except (OSError, TimeoutError):
            return None
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
            await writer.drain()
            raw = await asyncio.wait_for(_read_until_closed(reader, limit), 20)  # a loaded machine's dashboard
        except (OSError, TimeoutError):
            return None
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        parts = head.split(b" ", 2)
        return (int(parts[1]), body) if len(parts) > 1 and parts[1].isdigit() else None

    async def dashboard_plots(self) -> dict[str, str] | None:
        """The dashboard's panes (`individual-plots.json`: names and their routes), None while no dashboard runs."""
        answer = await self.dashboard_get("/individual-plots.json", PLOTS_BYTES)
        if answer is None or answer[0] != 200:
            return None
        try:
            plots = json.loads(answer[1])
        except ValueError:
            return None
        if not isinstance(plots, dict):
            return None
        return {k: v for k, v in plots.items() if isinstance(k, str) and isinstance(v, str)}

    async def clusters(self) -> list[dict[str, Any]]:
        if self.service() is None:
            return []  # a local project's cluster is its notebook's: the panel shows its dashboard (dask/status)
        status = await self.status()
        if status is None:
            await self.stop_dashboard()
            return []
        await self.relay_dashboard()
        return [cluster_model(status, self.base_url)]

    async def start(self) -> dict[str, Any]:
        socket = self.service()
        if socket is None:
            raise web.HTTPError(403, LOCAL_START)
        if await self.status() is not None:
            raise web.HTTPError(403, ALREADY_RUNNING)
        try:
            # The answer holds the client's credentials: the server needs none of them and keeps none.
            await relay.request(socket, {"op": "start", "jobs": 1})
        except WorkbenchError as exc:
            raise web.HTTPError(500, str(exc)) from None
        return await self.model()

    async def model(self) -> dict[str, Any]:
        status = await self.status()
        if status is None:
            raise web.HTTPError(404, "No Dask cluster runs for this workspace.")
        await self.relay_dashboard()
        return cluster_model(status, self.base_url)

    async def scale(self, workers: int) -> dict[str, Any]:
        if self.service() is None:
            raise web.HTTPError(403, LOCAL_MANAGE)
        status = await self.status()
        if status is None:
            raise web.HTTPError(404, "No Dask cluster runs for this workspace.")
        processes = max(1, int(status.get("processes", 1)))
        jobs = -(-workers // processes)
        try:
            await relay.request(self.service(), {"op": "scale", "jobs": jobs})
        except WorkbenchError as exc:
            raise web.HTTPError(400, str(exc)) from None
        return await self.model()

    async def close(self) -> None:
        socket = self.service()
        if socket is None:
            raise web.HTTPError(403, LOCAL_MANAGE)
        if socket is None or await self.status() is None:
            raise web.HTTPError(404, "No Dask cluster runs for this workspace.")
        try:
            await relay.request(socket, {"op": "close"})
        except WorkbenchError as exc:
            raise web.HTTPError(500, str(exc)) from None
        await self.stop_dashboard()

    async def relay_dashboard(self) -> None:
        """Relay the cluster's dashboard on the workspace's dashboard port, where the `dask/` route forwards, unless
        something there already does (a kernel's client relays the same dashboard)."""
        if self.dashboard is not None:
            return
        socket = self.service()
        if socket is None:
            return
        host, port = self.dashboard_port()
        forwarder = relay.Forwarder(socket, "dashboard")
        try:
            await forwarder.start(host, port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            return
        self.dashboard = forwarder

    async def stop_dashboard(self) -> None:
        if self.dashboard is not None:
            forwarder, self.dashboard = self.dashboard, None
            with contextlib.suppress(Exception):
                await forwarder.close()


class DaskClustersHandler(APIHandler):
    """dask-labextension's cluster API, answered with the project's cluster (ProjectClusterPanel)."""

    auth_resource = "dask_clusters"

    def initialize(self, panel: ProjectClusterPanel) -> None:
        self.panel = panel

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # The panel shows `message`; a refusal's reason is the whole message (no traceback, no path).
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message, "reason": self._reason}))

    @web.authenticated
    @authorized
    async def get(self, cluster_id: str = "") -> None:
        if not cluster_id:
            self.finish(json.dumps(await self.panel.clusters()))
            return
        self._known(cluster_id)
        self.finish(json.dumps(await self.panel.model()))

    @web.authenticated
    @authorized
    async def put(self, cluster_id: str = "") -> None:
        self.finish(json.dumps(await self.panel.start()))

    @web.authenticated
    @authorized
    async def patch(self, cluster_id: str = "") -> None:
        self._known(cluster_id)
        try:
            wanted = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, BAD_SCALE) from None
        if not isinstance(wanted, dict):
            raise web.HTTPError(400, BAD_SCALE)
        if wanted.get("adapt") is not None:
            raise web.HTTPError(400, NO_ADAPT)
        workers = wanted.get("workers")
        if not isinstance(workers, int) or isinstance(workers, bool) or not 0 <= workers <= MOST_WORKERS:
            raise web.HTTPError(400, BAD_SCALE)
        self.finish(json.dumps(await self.panel.scale(workers)))

    @web.authenticated
    @authorized
    async def delete(self, cluster_id: str = "") -> None:
        self._known(cluster_id)
        await self.panel.close()
        self.set_status(204)
        self.finish()

    def _known(self, cluster_id: str) -> None:
        if cluster_id != PROJECT_CLUSTER_ID:
            raise web.HTTPError(404, "No such Dask cluster in this workspace.")


class ProjectDashboardHandler(JupyterHandler):
    """`dask/dashboard/<the project cluster's id>/PATH`: a redirect to `dask/PATH`, the workspace's own dashboard
    route, so the panel's panes of the project's cluster load through the one filtered proxy. Nothing is fetched
    here and no other id is answered (routes.py refuses them before routing)."""

    auth_resource = "dask_clusters"

    @web.authenticated
    @authorized
    def get(self, path: str | None = None) -> None:
        target = url_path_join(self.base_url, "dask", (path or "/status").lstrip("/"))
        if self.request.query:
            target += "?" + self.request.query
        self.redirect(target)


class DashboardPlotsHandler(JupyterHandler):
    """`dask/individual-plots.json`, which the panel polls: the dashboard's list of panes, or 204 while no dashboard
    runs (the proxy would answer an error). Only a JSON object of names and routes passes."""

    auth_resource = "dask_clusters"

    def initialize(self, panel: ProjectClusterPanel) -> None:
        self.panel = panel

    @web.authenticated
    @authorized
    async def get(self) -> None:
        plots = await self.panel.dashboard_plots()
        if plots is None:
            self.set_status(204)
            self.finish()
            return
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(plots))


def handlers(base_url: str) -> list[tuple[str, type, dict[str, Any]]]:
    """The panel's routes (all in the route table), sharing one ProjectClusterPanel."""
    panel = ProjectClusterPanel(base_url)
    return [
        (url_path_join(base_url, PROJECT_DASHBOARD), ProjectDashboardHandler, {}),
        (url_path_join(base_url, DASHBOARD_PLOTS), DashboardPlotsHandler, {"panel": panel}),
        (url_path_join(base_url, CLUSTER), DaskClustersHandler, {"panel": panel}),
        (url_path_join(base_url, CLUSTERS), DaskClustersHandler, {"panel": panel}),
    ]
