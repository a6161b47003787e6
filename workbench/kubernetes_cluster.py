"""The project's Dask cluster on Kubernetes as a notebook in a KubeSpawner workspace sees it: a
`distributed.deploy.Cluster` (`KubernetesServiceCluster`) made, scaled and closed by the Dask cluster service
(clusters/kubernetes_service.py, at $ENCLAVE_CLUSTER_SERVICE_URL), which the workspace calls with its own
JupyterHub API token ($JUPYTERHUB_API_TOKEN).

The service answers `start` with the scheduler's address (its Service's cluster IP) and the client's TLS credentials
(PEM text, kept in memory: a `Security` of PEM strings); the client connects to the scheduler directly over TLS,
which the project's NetworkPolicies allow (workspace -> scheduler 8786 and 8787, nothing else). A forwarder on
$ENCLAVE_DASK_DASHBOARD (the loopback port the workspace server's `dask` route proxies) relays to the scheduler's
dashboard, as workbench/relay.py's does for SLURM. The client talks to the scheduler only (`direct_to_workers=False`):
the workspace cannot reach the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from distributed import Client
from distributed.core import Status, rpc
from distributed.deploy import Cluster
from distributed.security import Security
from distributed.utils import NoOpAwaitable

from workbench.errors import WorkbenchError
from workbench.relay import WAIT_SECONDS, ServiceRefused, relay_bytes
from workbench.view_contract import ENV_CLUSTER_SERVICE

ENV_TOKEN = "JUPYTERHUB_API_TOKEN"  # noqa: S105 (the variable's name)
REQUEST_SECONDS = 600  # a `start` waits for the scheduler's pod, whose image may be pulled first


def service_url(environ: Mapping[str, str] | None = None) -> str:
    """The cluster service's URL: $ENCLAVE_CLUSTER_SERVICE_URL, which KubeSpawner sets in a workspace."""
    environ = os.environ if environ is None else environ
    url = environ.get(ENV_CLUSTER_SERVICE, "").strip()
    if not url:
        raise WorkbenchError(
            f"${ENV_CLUSTER_SERVICE} is not set: the project's Kubernetes cluster is reached from a KubeSpawner "
            "workspace of a hub that runs the Dask cluster service (ask your admin)"
        )
    if not url.startswith(("http://", "https://")):
        raise WorkbenchError(f"${ENV_CLUSTER_SERVICE} is not an http:// URL")
    return url.rstrip("/")


def call(op: str, body: dict[str, Any] | None = None, *, url: str | None = None, token: str | None = None) -> dict:
    """One request to the service (POST URL/api/OP with the workspace's token) and its answer; ServiceRefused with
    the service's message when it refuses."""
    url = service_url({ENV_CLUSTER_SERVICE: url}) if url else service_url()
    token = token or os.environ.get(ENV_TOKEN, "")
    request = urllib.request.Request(  # noqa: S310 (http or https only: service_url)
        f"{url}/api/{op}",
        data=json.dumps(body or {}).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never an HTTP proxy from the environment
    try:
        with opener.open(request, timeout=REQUEST_SECONDS) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as refused:
        try:
            answer = json.loads(refused.read())
        except ValueError:
            answer = {}
        raise ServiceRefused(str(answer.get("error") or f"the cluster service refused ({refused.code})")) from None
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"the cluster service did not answer ({type(exc).__name__})") from None
    if not isinstance(answer, dict) or not answer.get("ok"):
        raise ServiceRefused(str((answer or {}).get("error") or "the cluster service refused the request"))
    return answer


class TCPForwarder:
    """A TCP listener on loopback whose every connection is relayed to one address (the scheduler's dashboard)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await asyncio.start_server(self._forward, host, port)
        return self.server.sockets[0].getsockname()[1]

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
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


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise WorkbenchError("the cluster service answered an address that is not HOST:PORT")
    return host.strip("[]"), int(port)


class KubernetesServiceCluster(Cluster):
    """The workspace's cluster on Kubernetes, through the cluster service: `n_workers` workers (None: the
    project's `dask_workers`), each one of the workspace's LocalCluster workers' size."""

    def __init__(
        self,
        n_workers: int | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
        dashboard_address: str | None = None,
        dashboard_link: str | None = None,
        asynchronous: bool = False,
        loop: Any = None,
    ) -> None:
        self.url = service_url({ENV_CLUSTER_SERVICE: url}) if url else service_url()
        self._token = token
        self._n_workers = n_workers
        self._dashboard_address = dashboard_address
        self._dashboard_link = dashboard_link
        self._forwarder: TCPForwarder | None = None
        self.security: Security | None = None
        self.workers_wanted = 0
        self.max_workers = 0
        super().__init__(asynchronous=asynchronous, loop=loop, name="kubernetes")
        if not self.called_from_running_loop:
            self._loop_runner.start()
            self.sync(self._start)

    async def _call(self, op: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(call, op, body, url=self.url, token=self._token)

    async def _start(self) -> None:
        if self.status == Status.running:
            return
        self.status = Status.starting
        try:
            body = {} if self._n_workers is None else {"n_workers": self._n_workers}
            answer = await self._call("start", body)
            pem = answer["security"]
            self.security = Security(
                require_encryption=True, tls_ca_file=pem["ca"], tls_client_cert=pem["cert"],
                tls_client_key=pem["key"],
            )  # fmt: skip
            self.workers_wanted, self.max_workers = int(answer["workers"]), int(answer["max_workers"])
            self._address = str(answer["address"])
            if self._dashboard_address:
                self._forwarder = TCPForwarder(*_host_port(str(answer["dashboard"])))
                host, _, port = self._dashboard_address.rpartition(":")
                self._dashboard_port = await self._forwarder.start(host or "127.0.0.1", int(port or 0))
            self.scheduler_comm = rpc(self._address, connection_args=self.security.get_connection_args("client"))
            await super()._start()
        except BaseException:
            await self._stop_forwarder()
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

    def scale(self, n: int = 0) -> Any:
        """Ask for `n` workers (never past the project's most: the service refuses, saying how many)."""
        if self.asynchronous:
            return self._scale(n)
        self.sync(self._scale, n)
        return None

    async def _scale(self, n: int) -> None:
        answer = await self._call("scale", {"n_workers": n})
        self.workers_wanted = int(answer["workers"])

    def adapt(self, *args: Any, **kwargs: Any) -> Any:
        raise WorkbenchError("a Kubernetes cluster is scaled by hand here: cluster.scale(N)")

    def pods_status(self) -> dict[str, Any]:
        """What Kubernetes says now: the cluster's phase, whether its scheduler is ready, its workers' pod states."""
        return self.sync(self._call, "status")

    async def _close(self) -> None:
        if self.status == Status.closed:
            return
        await super()._close()
        with contextlib.suppress(OSError, WorkbenchError):
            await self._call("close")
        await self._stop_forwarder()

    def close(self, timeout: float | None = None) -> Any:
        if self.status == Status.closed:
            return NoOpAwaitable() if self.asynchronous else None
        return super().close(timeout)

    async def _stop_forwarder(self) -> None:
        if self._forwarder is not None:
            await self._forwarder.close()
            self._forwarder = None


class KubernetesServiceClient(Client):
    """A Client that deletes its cluster when it closes, as a Client closes the LocalCluster it started."""

    async def _close(self, *args: Any, **kwargs: Any) -> None:
        await super()._close(*args, **kwargs)
        if isinstance(self.cluster, KubernetesServiceCluster):
            await self.cluster._close()


def wait_for_workers(
    client: Client, cluster: KubernetesServiceCluster, n_workers: int, timeout: float = WAIT_SECONDS
) -> None:
    """Wait until `n_workers` workers run; on timeout a WorkbenchError saying what Kubernetes says of the pods."""
    try:
        client.wait_for_workers(n_workers, timeout=timeout)
    except TimeoutError as exc:
        status = cluster.pods_status()
        pods = ", ".join(f"{count} {state}" for state, count in sorted(status.get("workers", {}).items()))
        raise WorkbenchError(
            f"{len(client.scheduler_info().get('workers', {}))} of {n_workers} Dask workers after {timeout:.0f} s. "
            f"The cluster is {status.get('phase', 'unknown')}; its worker pods: {pods or 'none yet'}."
            + ("\nPending pods wait for room on the Kubernetes cluster." if "Pending" in pods else "")
        ) from exc
