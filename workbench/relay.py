"""The project's Dask cluster on SLURM as a notebook sees it: a `distributed.deploy.Cluster` (`ServiceCluster`) whose
scheduler runs outside the workspace and is reached only through the workspace's cluster service, a Unix socket in
its runtime folder (/run/enclave/dask-cluster.sock; the service is clusters/service.py, run by the hub).

The workspace has no network, so Dask's TCP reaches the scheduler through a forwarder on the workspace's own
loopback (its network namespace holds nothing else): each connection to `tls://127.0.0.1:PORT` opens the socket,
sends `connect`, and from then on passes bytes both ways. TLS runs end to end between the client here and the
scheduler; the credentials arrive as PEM text in the `start` answer and stay in memory (a `Security` of PEM strings).
A second forwarder on $ENCLAVE_DASK_DASHBOARD relays the scheduler's dashboard (`dashboard`), so the workspace's
proxy route `dask` shows it as it shows a LocalCluster's. The client talks to the scheduler only
(`direct_to_workers=False`): the workers are on the cluster network, which the workspace cannot reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import html
import json
import os
import ssl
from pathlib import Path
from typing import Any

from distributed import Client
from distributed.comm.core import Connector
from distributed.comm.registry import Backend
from distributed.core import Status, rpc
from distributed.deploy import Cluster
from distributed.security import Security
from distributed.utils import NoOpAwaitable

from workbench.errors import WorkbenchError
from workbench.view_contract import CLUSTER_SOCKET

ENV_RUN_DIR = "ENCLAVE_RUN_DIR"
PIPE_CHUNK = 1 << 16
ANSWER_BYTES = 1 << 16  # a `start` answer carries three PEMs
WAIT_SECONDS = 300  # for the first workers: a SLURM job may queue a while
# The address JupyterLab's Dask panel shows for the project's SLURM cluster (enclave_workspace/dask_panel.py); its
# scheme is ProjectClusterScheme's, so a `Client(address)` (the panel's "inject client code") says how to connect.
PANEL_ADDRESS = "enclave://project-cluster"
HOW_TO_CONNECT = (
    "the project's SLURM cluster is reached through workbench, which holds its credentials: "
    "`from workbench import open_project; client = open_project().client()` (a plain Client cannot connect to it)"
)


class ServiceRefused(WorkbenchError):
    """The cluster service answered with an error; its message says why."""


def service_socket(environ: dict[str, str] | os._Environ | None = None) -> Path:
    """The cluster service's socket: in the workspace's runtime folder ($ENCLAVE_RUN_DIR, /run/enclave)."""
    environ = os.environ if environ is None else environ
    run = environ.get(ENV_RUN_DIR, "").strip()
    if not run:
        raise WorkbenchError(f"${ENV_RUN_DIR} is not set: a SLURM cluster is reached from a workspace only")
    return Path(run) / CLUSTER_SOCKET


async def request(socket_path: Path, message: dict[str, Any]) -> dict[str, Any]:
    """One request to the service and its answer; ServiceRefused for an error answer."""
    reader, writer = await _open(socket_path, message)
    try:
        return await _answer(reader)
    finally:
        writer.close()


async def _open(socket_path: Path, message: dict[str, Any]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=ANSWER_BYTES)
    except (FileNotFoundError, ConnectionRefusedError):
        raise WorkbenchError(
            "this workspace has no cluster service: the project's SLURM cluster starts with a workspace whose "
            "project has compute.engine: slurm (restart the workspace after the setting changed)"
        ) from None
    writer.write(json.dumps(message).encode() + b"\n")
    await writer.drain()
    return reader, writer


async def _answer(reader: asyncio.StreamReader) -> dict[str, Any]:
    line = await reader.readline()
    if not line:
        raise ServiceRefused("the cluster service closed the connection without an answer")
    answer = json.loads(line)
    if not answer.get("ok"):
        raise ServiceRefused(str(answer.get("error", "the cluster service refused the request")))
    return answer


class Forwarder:
    """A TCP listener on loopback whose every connection is piped through the service socket after `op`."""

    def __init__(self, socket_path: Path, op: str) -> None:
        self.socket_path = socket_path
        self.op = op
        self.server: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await asyncio.start_server(self._forward, host, port)
        return self.server.sockets[0].getsockname()[1]

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await _open(self.socket_path, {"op": self.op})
            await _answer(up_reader)
        except (OSError, WorkbenchError, ValueError):
            writer.close()
            return
        try:
            await asyncio.gather(relay_bytes(reader, up_writer), relay_bytes(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)


async def relay_bytes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy `reader` into `writer` until either end closes, then pass the end on: one direction of a relay (the
    workspace's forwarders here, the cluster service's pipes to the scheduler in clusters/service.py)."""
    try:
        while chunk := await reader.read(PIPE_CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


class ServiceCluster(Cluster):
    """The project's SLURM cluster, through the workspace's cluster service. `jobs` SLURM jobs (each the size the
    project allows, `processes` workers each) start at once; `scale(n)` asks for enough jobs for n workers."""

    def __init__(
        self,
        jobs: int = 1,
        *,
        socket_path: Path | None = None,
        dashboard_address: str | None = None,
        dashboard_link: str | None = None,
        asynchronous: bool = False,
        loop: Any = None,
    ) -> None:
        self.socket_path = socket_path or service_socket()
        self._jobs = jobs
        self._dashboard_address = dashboard_address
        self._dashboard_link = dashboard_link
        self._forwarders: list[Forwarder] = []
        self.security: Security | None = None
        self.processes = 1
        self.max_jobs = 0
        super().__init__(asynchronous=asynchronous, loop=loop, name="slurm")
        if not self.called_from_running_loop:
            self._loop_runner.start()
            self.sync(self._start)

    async def _start(self) -> None:
        if self.status == Status.running:
            return
        self.status = Status.starting
        try:
            answer = await request(self.socket_path, {"op": "start", "jobs": self._jobs})
            pem = answer["security"]
            self.security = Security(
                require_encryption=True, tls_ca_file=pem["ca"], tls_client_cert=pem["cert"],
                tls_client_key=pem["key"],
            )  # fmt: skip
            self.processes, self.max_jobs = int(answer["processes"]), int(answer["max_jobs"])
            scheduler = Forwarder(self.socket_path, "connect")
            self._forwarders.append(scheduler)
            self._address = f"tls://127.0.0.1:{await scheduler.start()}"
            if self._dashboard_address:
                dashboard = Forwarder(self.socket_path, "dashboard")
                self._forwarders.append(dashboard)
                host, _, port = self._dashboard_address.rpartition(":")
                try:
                    self._dashboard_port = await dashboard.start(host or "127.0.0.1", int(port or 0))
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise
                    # Another client in this workspace, or JupyterLab's Dask panel, relays the same cluster's
                    # dashboard on that port already.
                    self._forwarders.remove(dashboard)
                    self._dashboard_port = int(port or 0)
            self.scheduler_comm = rpc(self._address, connection_args=self.security.get_connection_args("client"))
            await super()._start()
        except BaseException:
            await self._stop_forwarders()
            self.status = Status.failed
            raise

    @property
    def scheduler_address(self) -> str:
        return getattr(self, "_address", "<Not Connected>")

    @property
    def dashboard_link(self) -> str:
        if self._dashboard_link:
            return self._dashboard_link
        port = getattr(self, "_dashboard_port", None)
        return f"http://127.0.0.1:{port}/status" if port else ""

    def scale(self, n: int = 0, jobs: int | None = None) -> Any:
        """Ask for `jobs` SLURM jobs, or for enough to run `n` workers (never past the project's most)."""
        wanted = jobs if jobs is not None else -(-n // max(1, self.processes))
        if self.asynchronous:
            return self._scale(wanted)
        self.sync(self._scale, wanted)
        return None

    async def _scale(self, jobs: int) -> None:
        await request(self.socket_path, {"op": "scale", "jobs": jobs})
        self._jobs = jobs

    def adapt(self, *args: Any, **kwargs: Any) -> Any:
        raise WorkbenchError("a SLURM cluster is scaled by hand here: cluster.scale(jobs=N)")

    def jobs_status(self) -> dict[str, Any]:
        """What SLURM says now: jobs and their states, the ended ones and how, the workers (threads, memory), and any
        job killed for memory (in words). A notebook shows them as a table under the cluster's summary."""
        return self.sync(request, self.socket_path, {"op": "status"})

    def _repr_html_(self, cluster_status: Any = None) -> str:
        """Dask's summary of the cluster, and below it SLURM's jobs: each with its state, the ended ones with how they
        ended, a job killed for memory in words."""
        summary = super()._repr_html_(cluster_status)
        if self.asynchronous or self.status != Status.running:
            return summary
        try:
            status = self.jobs_status()
        except (OSError, WorkbenchError) as exc:
            return summary + f"<p>SLURM's jobs: not known ({html.escape(str(exc))})</p>"
        return summary + jobs_table(status)

    async def _close(self) -> None:
        if self.status == Status.closed:
            return
        await super()._close()
        with contextlib.suppress(OSError, WorkbenchError):
            await request(self.socket_path, {"op": "close"})
        await self._stop_forwarders()

    def close(self, timeout: float | None = None) -> Any:
        if self.status == Status.closed:
            return NoOpAwaitable() if self.asynchronous else None
        return super().close(timeout)

    async def _stop_forwarders(self) -> None:
        for forwarder in self._forwarders:
            await forwarder.close()
        self._forwarders.clear()


class ServiceClient(Client):
    """A Client that closes its ServiceCluster (and so the SLURM jobs) when it closes, as a Client closes the
    LocalCluster it started."""

    async def _close(self, *args: Any, **kwargs: Any) -> None:
        await super()._close(*args, **kwargs)
        if isinstance(self.cluster, ServiceCluster):
            await self.cluster._close()


def wait_for_workers(client: Client, cluster: ServiceCluster, n_workers: int, timeout: float = WAIT_SECONDS) -> None:
    """Wait until `n_workers` workers run; on timeout a WorkbenchError saying what SLURM says about the jobs."""
    try:
        client.wait_for_workers(n_workers, timeout=timeout)
    except TimeoutError as exc:
        status = cluster.jobs_status()
        jobs = ", ".join(f"{job} {state}" for job, state in sorted(status.get("jobs", {}).items())) or "none queued"
        killed = "\n".join(status.get("killed", []))
        raise WorkbenchError(
            f"{status.get('workers', 0)} of {n_workers} Dask workers after {timeout:.0f} s. SLURM's jobs: {jobs}."
            + (f"\n{killed}" if killed else "")
            + ("\nPENDING jobs wait for the cluster's resources." if "PENDING" in jobs else "")
        ) from exc


def jobs_table(status: dict[str, Any]) -> str:
    """SLURM's jobs of the cluster service's `status` answer as an HTML table (listed jobs, then ended ones), with the
    workers, and each memory kill's message."""
    rows = [(job, state) for job, state in sorted(status.get("jobs", {}).items())]
    rows += [(job, f"ended: {state}") for job, state in sorted(status.get("ended", {}).items())]
    cells = ((html.escape(str(job)), html.escape(str(state))) for job, state in rows)
    body = "".join(f"<tr><td>{job}</td><td>{state}</td></tr>" for job, state in cells)
    killed = "".join(f"<p><strong>{html.escape(str(message))}</strong></p>" for message in status.get("killed", []))
    return (
        f"<p>SLURM's jobs ({int(status.get('workers', 0))} Dask workers running):</p>"
        + f"<table><tr><th>job</th><th>state</th></tr>{body or '<tr><td colspan=2>none</td></tr>'}</table>"
        + killed
    )


class ProjectClusterScheme(Backend):
    """Dask's comm backend for `enclave://` addresses (the entry point `distributed.comm.backends` of workbench's
    pyproject.toml): it connects to nothing and says how to connect instead, so that `Client("enclave://...")`
    fails at once with the way to reach the project's cluster rather than waiting on an address that leads nowhere."""

    def get_connector(self) -> Connector:
        return _HowToConnect()

    def get_listener(self, loc: str, handle_comm: Any, deserialize: bool, **connection_args: Any) -> Any:
        raise WorkbenchError(HOW_TO_CONNECT)

    def get_address_host(self, loc: str) -> str:
        return loc

    def resolve_address(self, loc: str) -> str:
        return loc

    def get_local_address_for(self, loc: str) -> str:
        raise WorkbenchError(HOW_TO_CONNECT)


class _HowToConnect(Connector):
    async def connect(self, address: str, deserialize: bool = True, **connection_args: Any) -> Any:
        raise WorkbenchError(HOW_TO_CONNECT)
