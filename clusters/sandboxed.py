"""A cluster's processes in the project's sandbox: the command that runs a Dask worker or scheduler as the project's
account in its `WorkerSandbox` (hub/sandbox.py), and the scheduler as such a process beside the one that holds the
cluster (`SandboxedScheduler`, dask-jobqueue's `scheduler_cls`).

Why the scheduler is sandboxed too: distributed's scheduler unpickles the task graphs clients send, so whoever may
submit work (the researcher) runs code in it. dask-jobqueue would run it inside the process holding the cluster,
root here; in the project's sandbox it runs as the project's account with the workspace environment's libraries
(the same as its client's and workers', which unpickling needs) and dies with its parent (bwrap --die-with-parent):
when the holder dies, the scheduler does, and the workers' death timeout then ends their jobs.

Its dashboard listens on the submit host's loopback (`enclave.slurm.scheduler.dashboard-address`), which every local
account reaches, other projects' workers included (the egress rule lets loopback through). So it speaks TLS with the
scheduler's certificate and asks every client for a certificate of this cluster's authority: distributed's own
`distributed.scheduler.dashboard.tls.*` settings give it TLS but never ask for a client certificate, so the
scheduler's program (`SCHEDULER_PROGRAM`, in place of `distributed.cli.dask_scheduler`) requires one on the
dashboard's TLS context right after the scheduler is made, before its event loop has run once and so before the
first connection can be accepted. Only the cluster service, which holds the client's certificate, reaches it, and
relays it to its workspace (clusters/service.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed.comm.addressing import unparse_host_port
from distributed.core import Status
from distributed.deploy.spec import ProcessInterface
from distributed.utils import get_ip_interface

from clusters.settings import ClusterError
from hub import seccomp
from hub.sandbox import WorkerSandbox

SCHEDULER_AT = re.compile(r"Scheduler at:\s+(\S+)")
DASHBOARD_AT = re.compile(r"^Enclave dashboard port: (\d+)$", re.MULTILINE)
START_SECONDS = 60

# The scheduler's process, run by the workspace environment's Python in the sandbox with one JSON argument (paths,
# the host and ports: nothing secret). distributed's dashboard TLS makes a server context that never asks for a
# client certificate; it is required here before the loop runs again, so no connection is accepted without one. The
# dashboard's port is printed then too: the holder reads it, with the scheduler's address, before any client can
# connect (clusters/slurm.py: the holder never asks the scheduler itself).
SCHEDULER_PROGRAM = """
import asyncio, json, signal, ssl, sys
import dask
from distributed import Scheduler
from distributed.security import Security

given = json.loads(sys.argv[1])

async def main():
    tls = {"ca-file": given["ca"], "cert": given["cert"], "key": given["key"]}
    dask.config.set({f"distributed.scheduler.dashboard.tls.{name}": value for name, value in tls.items()})
    security = Security(require_encryption=True, tls_ca_file=given["ca"], tls_scheduler_cert=given["cert"],
                        tls_scheduler_key=given["key"])
    scheduler = Scheduler(host=given["host"], port=given["port"], protocol="tls", security=security,
                          dashboard_address=given["dashboard"])
    dashboard = scheduler.http_server.ssl_options
    if not isinstance(dashboard, ssl.SSLContext):
        sys.exit("the dashboard has no TLS context: refusing to serve it")
    dashboard.verify_mode = ssl.CERT_REQUIRED
    print(f"Enclave dashboard port: {scheduler.http_server.port}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    async with scheduler:
        ended = asyncio.ensure_future(scheduler.finished())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)

asyncio.run(main())
"""


def program(name: str) -> str:
    """A program's absolute path on this host; the nodes must have it at the same path (Debian's packages do)."""
    found = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if found is None:
        raise ClusterError(f"{name} not found (Debian packages: coreutils, bubblewrap, util-linux)")
    return found


@dataclass(frozen=True)
class SandboxedPython:
    """The workspace environment's Python in the project's sandbox, with the settings every process of the cluster
    shares (TLS required on every connection)."""

    sandbox: WorkerSandbox

    def environment(self) -> dict[str, str]:
        return {**self.sandbox.environment(), "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True"}

    def argv(self, seccomp_fd: int) -> list[str]:
        """`env -i VARS bwrap ... setpriv ... python`: the environment goes on the command line through `env -i`,
        since it holds only paths, the project's name and Dask settings (nothing secret), and it replaces whatever
        environment the job or the holder has."""
        variables = [f"{key}={value}" for key, value in self.environment().items()]
        python = str(self.sandbox.env / "bin" / "python")
        inner = self.sandbox.argv([python], bwrap=program("bwrap"), setpriv=program("setpriv"), seccomp_fd=seccomp_fd)
        return [program("env"), "-i", *variables, *inner]

    def shell_prefix(self, seccomp_fd: int) -> str:
        """`argv` as one shell word sequence (dask-jobqueue's `python` setting, followed by `-m MODULE ARGS`)."""
        return shlex.join(self.argv(seccomp_fd))


def free_port(host: str) -> int:
    """A TCP port free on `host` now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class SandboxedScheduler(ProcessInterface):
    """distributed's scheduler (`SCHEDULER_PROGRAM`) in the project's sandbox, started by SpecCluster with the
    options dask-jobqueue gives a scheduler class; its address and its dashboard's port are read from its log, once,
    while it starts: before the cluster's client credentials have left the process that holds it, so before any
    researcher's code can run in the scheduler and write there."""

    def __init__(
        self,
        *,
        python: SandboxedPython,
        log: Path,
        security: Any,
        protocol: str | None = "tls://",
        dashboard_address: str = "127.0.0.1:0",
        interface: str | None = None,
        host: str | None = None,
        port: int = 0,
        **ignored: Any,
    ) -> None:
        super().__init__()
        tls = security.get_tls_config_for_role("scheduler")
        if not (protocol or "").startswith("tls"):
            raise ClusterError("a project's scheduler listens with TLS only")
        if not host and interface:
            host = get_ip_interface(interface)
        # Where the scheduler will listen, known before it starts when its host is (an interface or a host given):
        # free ports are chosen here, so the jobs can be submitted while its process starts (`start`), which is
        # most of a cluster's start-up otherwise spent in sequence. Another process taking a port meanwhile makes
        # the scheduler fail to start, which `ready` reports.
        self.preset: tuple[str, int] | None = None
        dashboard_host, _, dashboard_port = dashboard_address.rpartition(":")
        if host and not port:
            port = free_port(host)
        if host and dashboard_port == "0":
            dashboard_address = f"{dashboard_host}:{free_port(dashboard_host or '127.0.0.1')}"
        if host and port:
            self.preset = (unparse_host_port(host, port), int(dashboard_address.rpartition(":")[2]))
        given = {"ca": tls["ca_file"], "cert": tls["cert"], "key": tls["key"], "host": host or None, "port": port,
                 "dashboard": dashboard_address}  # fmt: skip
        self.python = python
        self.args = ["-c", SCHEDULER_PROGRAM, json.dumps(given)]
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        self.dashboard_port: int | None = None
        self._started: asyncio.Future[str] | None = None

    async def start(self) -> None:
        fd = seccomp.filter_fd()
        try:
            with self.log.open("ab") as log:
                os.chmod(self.log, 0o600)
                self.process = await asyncio.create_subprocess_exec(
                    *self.python.argv(fd), *self.args, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                    pass_fds=(fd,), env={}, start_new_session=True,
                )  # fmt: skip
        finally:
            os.close(fd)
        if self.preset is None:
            self.address = await self._address()
        else:
            # the jobs may be submitted now: their workers retry the scheduler until their death timeout
            self.address, self.dashboard_port = f"tls://{self.preset[0]}", self.preset[1]
            self._started = asyncio.ensure_future(self._address())
        await super().start()

    async def ready(self) -> None:
        """Return once the scheduler has said it listens where it was told to; raise ClusterError if it did not
        start. Whoever hands out the cluster's credentials waits for this first."""
        if self._started is not None:
            await asyncio.shield(self._started)

    def failure(self) -> BaseException | None:
        """Why the scheduler did not start, once that is known; None while it starts or after it has."""
        if self._started is None or not self._started.done() or self._started.cancelled():
            return None
        return self._started.exception()

    async def _address(self) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_SECONDS
        while loop.time() < deadline:
            text = self.log.read_text(errors="replace")
            found, dashboard = SCHEDULER_AT.search(text), DASHBOARD_AT.search(text)
            if found and dashboard:
                if self.preset is not None and (found.group(1), int(dashboard.group(1))) != (
                    f"tls://{self.preset[0]}",
                    self.preset[1],
                ):
                    break  # not where the jobs were told to look (its port was taken): a failed start
                self.dashboard_port = int(dashboard.group(1))
                return found.group(1)
            if self.process is not None and self.process.returncode is not None:
                break
            await asyncio.sleep(0.1)
        await self.close()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise ClusterError(f"the project's Dask scheduler did not start:\n{tail}")

    async def close(self) -> None:
        if self._started is not None and not self._started.done() and self._started is not asyncio.current_task():
            self._started.cancel()
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()  # bwrap: its sandbox dies with it
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        self.status = Status.closed
        await super().close()
