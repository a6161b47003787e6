"""A workspace's cluster service as the spawner runs it: started as root, outside the sandbox, before the workspace
when the project's `compute.engine` is `slurm`, told the workspace's pid once it runs, and stopped with it.

The service itself (clusters/service.py) owns the project's Dask cluster on SLURM; the hub only starts the process
(`python -m clusters.service`, a package above the hub's layer, reached by its command and never imported) and ends
it. Its socket is `CLUSTER_SOCKET` in the workspace's runtime folder, /run/enclave inside. Its standard input is a
pipe from the hub: the workspace's pid goes there, and if the hub dies the pipe ends and so does the service, closing
the cluster. Nothing secret is on its command line: paths, the project's name, the account's ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from hub.sandbox import SandboxLayout
from kernel.config import Paths
from workbench.view_contract import CLUSTER_SOCKET

READY_SECONDS = 60
STOP_SECONDS = 120  # closing waits for SLURM to list none of the jobs (clusters/slurm.py CLOSE_SECONDS) and more


class ServiceError(RuntimeError):
    """The cluster service did not start; the message says why, without paths or secrets."""


def service_socket(layout: SandboxLayout) -> Path:
    """The service's socket on the host: in the workspace's runtime folder, bound at /run/enclave inside."""
    return layout.run / CLUSTER_SOCKET


def service_command(paths: Paths, layout: SandboxLayout) -> list[str]:
    return [
        sys.executable, "-m", "clusters.service", "--home", str(paths.home), "--project", layout.project,
        "--socket", str(service_socket(layout)), "--uid", str(layout.uid), "--gid", str(layout.gid), "--watch-stdin",
    ]  # fmt: skip


@dataclass
class ClusterServiceProcess:
    """A running cluster service, for one workspace."""

    process: asyncio.subprocess.Process

    @property
    def pid(self) -> int:
        return self.process.pid

    async def watch(self, workspace_pid: int) -> None:
        """Tell the service which process is the workspace: when it exits, the service closes the cluster."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{workspace_pid}\n".encode())
        with contextlib.suppress(ConnectionError):
            await self.process.stdin.drain()

    async def stop(self, timeout: float = STOP_SECONDS) -> int:
        """SIGTERM (the service cancels the jobs and waits for SLURM to list none), SIGKILL after `timeout`."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()
        return self.process.returncode or 0


async def start_service(paths: Paths, layout: SandboxLayout, log: Path) -> ClusterServiceProcess:
    """Start the workspace's cluster service and return once its socket is listening; ServiceError otherwise. Its
    output goes to `log` (root's); the environment is the hub's (ENCLAVE_SLURM_CONF or SLURM_CONF, Dask settings such
    as DASK_ENCLAVE__SLURM__INTERFACE), since the service submits jobs as the hub would."""
    with log.open("ab") as out:
        os.chmod(log, 0o600)
        process = await asyncio.create_subprocess_exec(
            *service_command(paths, layout), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=out, start_new_session=True, cwd="/",
        )  # fmt: skip
    service = ClusterServiceProcess(process)
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), READY_SECONDS)
    except TimeoutError:
        line = b""
    if line.strip() != b"ready":
        await service.stop(timeout=10)
        raise ServiceError("the workspace's cluster service did not start (see the workspace's cluster log)")
    return service
