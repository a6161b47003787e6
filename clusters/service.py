"""One workspace's cluster service: the process, outside every sandbox and run as root, that owns the workspace's
Dask cluster on SLURM (clusters/slurm.py) and is the workspace's one door to it, a Unix socket in the workspace's
runtime folder (the host side of /run/enclave), owned by the project's account, mode 0600.

The SandboxSpawner starts it (`python -m clusters.service ...`, hub/cluster_service.py) before the workspace when
the project's `compute.engine` is `slurm`, and stops it with the workspace. Each connection starts with one JSON
line, a request, answered by one JSON line (`{"ok": true, ...}` or `{"ok": false, "error": "..."}`):

- `start` {"jobs": N}: makes the project's cluster unless one runs, scales it to N jobs (default 1); answers with
  the client's TLS credentials (PEM text), the worker processes per job and the most jobs the project may run;
- `scale` {"jobs": N}: scales to N jobs (never past the project's `max-jobs`); scaling down cancels jobs;
- `status`: what SLURM says: the jobs and their states, the jobs that ended and how, the message of any job killed
  for memory, the worker processes per job and the most jobs; and the workers the scheduler's dashboard lists (with
  their threads and memory);
- `close`: cancels every job, stops the scheduler, returns once squeue lists none;
- `connect`: after the answer, the connection is a byte pipe to the scheduler's TLS address;
- `dashboard`: after the answer, a byte pipe of plain HTTP to the scheduler's dashboard (the TLS to it is the
  service's).

TLS runs end to end between the researcher's client and the scheduler: `connect` only passes bytes. The dashboard
asks for a certificate of the cluster's authority (clusters/sandboxed.py), so the service connects to it with the
client's, and the workspace's forwarder speaks plain HTTP to the service. Unknown ops and malformed lines get an
error line; nothing the service logs holds a PEM.

Its environment is the hub's: the site setting $ENCLAVE_SLURM_CONF, when set, is the SLURM_CONF its SLURM commands
use (clusters/settings.py `use_site_slurm`), and DASK_ENCLAVE__SLURM__... variables are Dask settings as anywhere.

Trust: the project's scheduler runs the researcher's code (clusters/sandboxed.py), so this root process holds no
Dask comm to it or to a worker: `ProjectCluster` (clusters/slurm.py) starts the scheduler's process and submits and
cancels jobs, and learns the workers from the dashboard's JSON over HTTPS (`status`), never from a Dask message,
whose decoder would unpickle whatever the scheduler put in it. `connect` and `dashboard` pass bytes without reading
them. As a second wall, `refuse_pickles` replaces distributed's pickle loading with an error before anything else
runs here: a Dask message carrying a pickle that ever reached this process would fail to decode, not run code.

It ends, closing the cluster, on SIGTERM or SIGINT, when the workspace's server process (whose pid the spawner
writes on its standard input) exits, or when its standard input closes (the hub is gone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from distributed.core import Status

from clusters.settings import ClusterError, use_site_slurm
from clusters.slurm import ProjectCluster, project_cluster
from kernel.config import Paths
from kernel.errors import EnclaveError
from workbench.relay import relay_bytes

log = logging.getLogger("enclave.cluster_service")
PICKLES_REFUSED = (
    "the cluster service never unpickles (a Dask message from a project's scheduler could carry code): "
    "refusing a pickle"
)


def _refused_pickle(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(PICKLES_REFUSED)


def refuse_pickles() -> None:
    """Replace distributed's pickle loading with an error, for this process: `distributed.protocol.pickle.loads`,
    which every Dask message's pickled part and the `pickle` serializer go through, and the copies of it that
    distributed's client and scheduler modules bind. The service holds no Dask comm (clusters/slurm.py); this is the
    second wall, should a path of distributed's ever open one."""
    import distributed.client
    import distributed.protocol.pickle
    import distributed.scheduler

    for module in (distributed.protocol.pickle, distributed.client, distributed.scheduler):
        module.loads = _refused_pickle


MAX_LINE = 4096  # a request is a short JSON object
OPS = ("start", "scale", "status", "close", "connect", "dashboard")


class RequestError(Exception):
    """A request the service refuses; its message goes back to the client as it is (no path, no secret)."""


def parse_request(line: bytes) -> tuple[str, dict[str, Any]]:
    """The op and the request of one line; RequestError when the line is not one known request."""
    if not line.endswith(b"\n"):
        raise RequestError(f"a request is one JSON line of at most {MAX_LINE} bytes")
    try:
        request = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RequestError("a request is one JSON object on a line") from None
    if not isinstance(request, dict):
        raise RequestError("a request is one JSON object on a line")
    op = request.get("op")
    if op not in OPS:
        raise RequestError(f"unknown op {str(op)[:40]!r}: use one of {', '.join(OPS)}")
    jobs = request.get("jobs", 1)
    if op in ("start", "scale") and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 0):
        raise RequestError("jobs must be a whole number, 0 or more")
    return op, request


class ClusterService:
    """The workspace's cluster (none until the first `start`) and the requests on its socket."""

    def __init__(self, paths: Paths, project: str, socket_path: Path, uid: int, gid: int) -> None:
        self.paths = paths
        self.project = project
        self.socket_path = socket_path
        self.uid, self.gid = uid, gid
        self.cluster: ProjectCluster | None = None
        self._lock = asyncio.Lock()  # one start, scale or close at a time
        self._stopping = asyncio.Event()

    # -- the socket

    async def listen(self) -> asyncio.Server:
        """Bind the socket, 0600 from the start and then given to the project's account. bind() makes a new file
        and never follows a link planted at its path (it fails instead)."""
        previous = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(self.handle, path=str(self.socket_path), limit=MAX_LINE)
        finally:
            os.umask(previous)
        os.chown(self.socket_path, self.uid, self.gid, follow_symlinks=False)
        return server

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                line = b""
            except asyncio.IncompleteReadError as partial:
                line = partial.partial
            try:
                op, request = parse_request(line)
                answer = await self.answer(op, request)
            except (RequestError, EnclaveError) as refused:
                log.info("refused a request: %s", refused)
                await _send(writer, {"ok": False, "error": str(refused)})
                return
            if op in ("connect", "dashboard"):
                await self.pipe(op, reader, writer)
            else:
                await _send(writer, {"ok": True, **answer})
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("a request failed")
            with contextlib.suppress(ConnectionError):
                await _send(writer, {"ok": False, "error": "the cluster service failed: see its log"})
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def answer(self, op: str, request: dict[str, Any]) -> dict[str, Any]:
        if op == "start":
            return await self.start(request.get("jobs", 1))
        if op == "close":
            await self.close()
            return {}
        cluster = self._running()
        if op == "scale":
            async with self._lock:
                cluster.scale(jobs=request.get("jobs", 1))
            log.info("scaled to %d jobs", request.get("jobs", 1))
            return {"jobs": request.get("jobs", 1)}
        if op == "status":
            return await asyncio.to_thread(self.status, cluster)
        return {}  # connect, dashboard: piped by handle()

    def _running(self) -> ProjectCluster:
        if self.cluster is None or self.cluster.status != Status.running:
            raise RequestError("no cluster runs for this workspace: start one first")
        return self.cluster

    # -- the ops

    async def start(self, jobs: int) -> dict[str, Any]:
        async with self._lock:
            if self.cluster is None or self.cluster.status != Status.running:
                log.info("starting project %s's cluster", self.project)
                # made in the event loop's thread, as an asynchronous cluster must be (a second or less of blocking)
                cluster = project_cluster(self.paths, self.project, asynchronous=True)
                await cluster
                self.cluster = cluster
                log.info("cluster up: %d processes per job, at most %d jobs", self._processes(), cluster.max_jobs)
            self.cluster.scale(jobs=jobs)
            log.info("scaled to %d jobs", jobs)
            try:
                # the jobs are queued while the scheduler starts (clusters/sandboxed.py); its credentials leave
                # only once it has started where the jobs look for it
                await self.cluster.scheduler.ready()
            except BaseException:
                cluster, self.cluster = self.cluster, None
                with contextlib.suppress(Exception):
                    await cluster.close()
                raise
        security = self.cluster.client_security()
        return {
            "security": {"ca": security.tls_ca_file, "cert": security.tls_client_cert, "key": security.tls_client_key},
            "processes": self._processes(),
            "max_jobs": self.cluster.max_jobs,
        }

    def _processes(self) -> int:
        return self.cluster._dummy_job.worker_processes if self.cluster is not None else 0

    def status(self, cluster: ProjectCluster) -> dict[str, Any]:
        """What SLURM says about the cluster's jobs (those it lists, with their states, and those that ended, how;
        a job killed for memory in words), and the workers the scheduler's dashboard lists, their threads and
        memory (JSON over HTTPS: no Dask message)."""
        ends = cluster.ended_jobs()
        workers = cluster.scheduler_workers()
        return {
            "jobs": cluster.running_jobs(),
            "ended": {end.job_id: end.state for end in ends},
            "workers": len(workers),
            "threads": sum(int(worker.get("nthreads") or 0) for worker in workers.values()),
            "memory": sum(int(worker.get("memory_limit") or 0) for worker in workers.values()),
            "killed": [end.message for end in ends if end.exceeded_memory],
            "processes": self._processes(),
            "max_jobs": cluster.max_jobs,
        }

    async def close(self) -> None:
        async with self._lock:
            cluster, self.cluster = self.cluster, None
            if cluster is not None:
                log.info("closing the cluster: cancelling %d jobs", len(cluster.job_ids))
                await cluster.close()
                log.info("cluster closed")

    # -- the pipes

    async def pipe(self, op: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cluster = self._running()
        if op == "connect":
            host, port = _host_port(cluster.scheduler_address)
            upstream = await asyncio.open_connection(host, port)
        else:
            address = cluster.dashboard_address()
            if address is None:
                raise RequestError("the scheduler has no dashboard")
            upstream = await asyncio.open_connection(*address, ssl=cluster.dashboard_tls(), server_hostname="")
        await _send(writer, {"ok": True})
        up_reader, up_writer = upstream
        try:
            await asyncio.gather(relay_bytes(reader, up_writer), relay_bytes(up_reader, writer))
        finally:
            up_writer.close()

    # -- its life

    async def run(self, stdin: asyncio.StreamReader | None) -> None:
        """Serve until SIGTERM/SIGINT, the workspace's exit or the end of stdin; then close the cluster."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stopping.set)
        server = await self.listen()
        print("ready", flush=True)
        watch = asyncio.ensure_future(self._watch(stdin)) if stdin is not None else None
        try:
            await self._stopping.wait()
        finally:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            if watch is not None:
                watch.cancel()
            await self.close()

    async def _watch(self, stdin: asyncio.StreamReader) -> None:
        """The spawner writes the workspace's pid on stdin once it runs: stop when that process exits, or when stdin
        ends without one (the hub died)."""
        line = await stdin.readline()
        if not line.strip().isdigit():
            log.info("no workspace to watch (standard input ended): stopping")
            self._stopping.set()
            return
        pid = int(line)
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._stopping.set()
            return
        exited = asyncio.Event()
        asyncio.get_running_loop().add_reader(pidfd, exited.set)
        ended = asyncio.ensure_future(stdin.read())  # EOF: the hub is gone
        try:
            await asyncio.wait({asyncio.ensure_future(exited.wait()), ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            asyncio.get_running_loop().remove_reader(pidfd)
            os.close(pidfd)
        log.info("the workspace has ended: stopping")
        self._stopping.set()


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    return host.strip("[]"), int(port)


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message).encode() + b"\n")
    await writer.drain()


async def _stdin_reader() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def main_async(args: argparse.Namespace) -> None:
    service = ClusterService(Paths(Path(args.home)), args.project, Path(args.socket), args.uid, args.gid)
    await service.run(await _stdin_reader() if args.watch_stdin else None)


def main(argv: list[str] | None = None) -> int:
    refuse_pickles()  # before anything of distributed's runs here
    parser = argparse.ArgumentParser(prog="python -m clusters.service", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="the Enclave installation (ENCLAVE_HOME)")
    parser.add_argument("--project", required=True)
    parser.add_argument("--socket", required=True, help="the socket to make, in the workspace's runtime folder")
    parser.add_argument("--uid", type=int, required=True, help="the project account, who may connect")
    parser.add_argument("--gid", type=int, required=True)
    parser.add_argument("--watch-stdin", action="store_true", help="stop with the workspace whose pid stdin gives")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if os.geteuid() != 0:
        print("the cluster service runs as root (it submits the project's SLURM jobs)", file=sys.stderr)
        return 2
    try:
        use_site_slurm()  # the hub's environment is this one: $ENCLAVE_SLURM_CONF names the site's SLURM
        asyncio.run(main_async(args))
    except ClusterError as exc:
        print(f"cluster service: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
