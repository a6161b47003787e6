"""A project's Dask cluster on SLURM: dask-jobqueue's `SLURMCluster` whose workers run as the project's Unix account
in the workspace's sandbox, sized by the project's compute limits, and reachable only with its own certificates.

Who submits: root (the process that owns the cluster, a broker outside every workspace), and each job starts as
root on its node, builds the worker's sandbox with bubblewrap and drops to the project's account with setpriv before
the worker starts (hub/sandbox.py `WorkerSandbox`), as the hub does for a workspace. Not sbatch as the project
account: bubblewrap (not setuid on Debian) needs root to make namespaces without user namespaces, which hardened
nodes turn off, so a job already running as the project account could not build the sandbox; and an account that
may submit jobs could submit ones without it. The sandboxed worker never reaches munge's socket (its sandbox does not
mount it), so nothing in it can submit or cancel a job. The price: SLURM sees root as every job's user, so per-project
accounting and fair share come from `--account` (and the partition), which `enclave.slurm.projects` sets per project,
and from the job name `enclave-PROJECT`.

What a job's script holds: SLURM directives, one line opening the seccomp filter on a descriptor, and the worker's
command: `env -i` with the sandbox's environment (paths and the project's name, nothing secret), bwrap with its
mounts, setpriv, the workspace environment's Python and dask-jobqueue's worker arguments, among them the paths (never
the contents) of the worker's TLS files. `--export=NONE` and `env -i` keep every variable of the submitter's and of
SLURM's away from the worker.

Each cluster has a folder of its own (`enclave.slurm.shared-directory`, by default the project's folder; root's to
write, the project group's to read, on a file system every node mounts): the worker's certificate and key, the
sandbox's /etc files, the compiled seccomp filter and, unless configured elsewhere, SLURM's output of each job. It is
removed when the cluster closes; the project's view stays pinned (the build the workers bind) until then.

Trust: the process holding the cluster never speaks Dask to its scheduler or its workers. The scheduler runs the
researcher's code by design (it unpickles their graphs; `run_on_scheduler` runs a function there), and every Dask
message read is decoded by distributed/protocol/core.py, which unpickles any pickled part it holds whatever the
comm's deserializers say: a scheduler could make its reader run code, and the holder is root. So `ProjectCluster`
replaces the parts of distributed's `SpecCluster`/`Cluster` that open comms to the scheduler (the `rpc` that becomes
`scheduler_comm`, the live comm subscribed to the workers' status, the cluster-info sync, `retire_workers` on
scale-down, `terminate` on close) with what root knows without asking it:

- the scheduler's address and its dashboard's port come from the log of the process it started
  (clusters/sandboxed.py), read while it starts, before any credentials have left this process;
- the workers (how many, their threads and memory) come from the dashboard's `json/identity.json`, fetched over
  HTTPS with the cluster's client certificate and parsed with `json`, its size capped (`scheduler_workers`): data
  the researcher may forge, for the researcher's own panel only, never code;
- the jobs and their states come from SLURM (clusters/jobs.py), and a job it no longer lists is submitted again at
  the next scale;
- scaling down cancels jobs (scancel) instead of asking the scheduler to retire their workers gracefully: the tasks
  and data they held are recomputed from the graph; closing cancels every job and stops the scheduler's process;
- `scheduler_comm` is an object that raises on any use (`NoSchedulerComm`), so a path of distributed's left
  unreplaced fails loudly rather than connecting; adaptive scaling, which asks the scheduler, is refused.

The researcher's own client (workbench/relay.py, in the workspace, as the project's account) talks to the scheduler
as any Dask client does: whatever it unpickles comes from code its own user ran. Root's service
(clusters/service.py) also refuses distributed's pickle loading process-wide, as a second wall.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import pwd
import secrets
import shlex
import shutil
import ssl
import time
from pathlib import Path
from typing import Any

from dask.utils import parse_timedelta
from dask_jobqueue.slurm import SLURMCluster, SLURMJob
from distributed.core import Status
from distributed.exceptions import WorkerStartTimeoutError
from distributed.security import Security
from sqlalchemy import select

from clusters import certificates
from clusters.jobs import JobEnd, WorkerJobsKilled, job_end, queued
from clusters.sandboxed import SandboxedPython, SandboxedScheduler
from clusters.settings import ClusterError, job_options, job_size, setting
from fabric.materialise.builds import BuildPin, pin_current, sweep_after
from fabric.models import Project
from fabric.projects import ComputeLimits, project_account_name, project_spec
from hub import seccomp
from hub.sandbox import WorkerSandbox
from hub.workspaces import registry_of
from kernel.bubblewrap import base_python_home
from kernel.config import Paths
from kernel.errors import EnclaveError

SECCOMP_FD = 9  # the job script opens the filter on this descriptor; bwrap reads it with --seccomp
WORKER_COMMAND = "distributed.cli.dask_worker"
CLOSE_SECONDS = 60  # how long close() waits for SLURM to see the cancelled jobs gone
IDENTITY_PATH = "/json/identity.json"  # distributed's dashboard route: the scheduler's identity, its workers'
IDENTITY_BYTES = 8 << 20  # a scheduler's identity with a few hundred workers is well under this
IDENTITY_SECONDS = 10
NO_COMM = (
    "the process holding a project's cluster never talks Dask to its scheduler (which runs researchers' code): "
    "this part of distributed's cluster manager is not supported by ProjectCluster"
)


class NoSchedulerComm:
    """`scheduler_comm` of a ProjectCluster: the scheduler's address, and an error on any other use (an rpc call,
    a live comm, closing it), so that no path of distributed's cluster manager reaches the scheduler silently."""

    def __init__(self, address: str) -> None:
        self.address = address

    def __getattr__(self, name: str) -> Any:
        raise ClusterError(f"{NO_COMM} (scheduler_comm.{name})")


class ProjectJob(SLURMJob):
    """dask-jobqueue's SLURM job, noting each job id it submits on its cluster's list."""

    def __init__(self, *args: Any, submitted: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._submitted = submitted

    async def start(self) -> None:
        await super().start()
        if self._submitted is not None and self.job_id:
            self._submitted.append(self.job_id)


class ProjectCluster(SLURMCluster):
    """A project's SLURMCluster (made by `project_cluster`): at most `max_jobs` jobs, its client's credentials
    obtainable on their own, its folder and pinned view released when it closes, and no Dask comm to its scheduler
    (the module's docstring says why and what replaces each)."""

    job_cls = ProjectJob

    def __init__(
        self,
        *,
        project: str,
        folder: Path,
        certs: certificates.ClusterCertificates,
        pin: BuildPin,
        max_jobs: int,
        after: Any = None,
        **kwargs: Any,
    ) -> None:
        self.project = project
        self.folder = folder
        self.max_jobs = max_jobs
        self.job_ids: list[str] = []  # every job this cluster submitted, in order
        self._certs = certs
        self._pin: BuildPin | None = pin
        self._after = after
        super().__init__(submitted=self.job_ids, **kwargs)

    def client_security(self) -> Security:
        """The Security a client of this cluster connects with (the authority and the client's own certificate, in
        memory): a process that did not make the cluster (the researcher's kernel, through a relay) needs only it."""
        return self._certs.client_security()

    def scale(self, n: int | None = None, jobs: int = 0, memory: str | None = None, cores: int | None = None) -> Any:
        wanted = -(-n // self._dummy_job.worker_processes) if n is not None else jobs
        if wanted > self.max_jobs:
            raise ClusterError(f"{wanted} jobs asked for: a cluster of project {self.project} runs {self.max_jobs}")
        return super().scale(n, jobs=jobs, memory=memory, cores=cores)

    def adapt(self, *args: Any, **kwargs: Any) -> Any:
        raise ClusterError(
            "adaptive scaling asks the scheduler which workers to retire, and the process holding a project's "
            "cluster never talks to its scheduler: scale by jobs instead"
        )

    # -- distributed's cluster manager, without a comm to the scheduler

    async def _start(self) -> None:
        """SpecCluster's and Cluster's start, less the rpc, the worker-status subscription and the metadata sync:
        start the scheduler's process and note what it printed while starting."""
        while self.status == Status.starting:
            await asyncio.sleep(0.01)
        if self.status == Status.running:
            return
        if self.status == Status.closed:
            raise ValueError("Cluster is closed")
        self._lock = asyncio.Lock()
        self.status = Status.starting
        try:
            if self.scheduler_spec.get("cls") is not SandboxedScheduler:
                raise ClusterError("a project's scheduler runs in its sandbox (SandboxedScheduler) only")
            if self.scheduler is None:
                self.scheduler = SandboxedScheduler(**self.scheduler_spec.get("options", {}))
                self.scheduler = await self.scheduler
            self.scheduler_comm = NoSchedulerComm(self.scheduler.address)
            self.scheduler_info = {
                "type": "Scheduler", "address": self.scheduler.address, "workers": {},
                "services": {"dashboard": self.scheduler.dashboard_port},
            }  # fmt: skip
            for callback in self.periodic_callbacks.values():
                callback.start()
            self.status = Status.running
        except Exception as exc:
            self.status = Status.failed
            await self._close()
            raise RuntimeError(f"Cluster failed to start: {exc}") from exc

    @property
    def scheduler_address(self) -> str:
        return self.scheduler.address if self.scheduler is not None and self.scheduler.address else "<Not Connected>"

    async def _wait_for_workers(self, n_workers: int = 0, timeout: float | str | None = None) -> None:
        """Cluster's (and so a `Client(cluster)`'s `wait_for_workers`), from the dashboard's JSON."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + parse_timedelta(timeout) if timeout else None
        while True:
            if self.scheduler is not None and (failed := self.scheduler.failure()) is not None:
                raise failed
            workers = await asyncio.to_thread(self.scheduler_workers)
            running = sum(1 for worker in workers.values() if worker["status"] == Status.running.name)
            if running >= n_workers:
                return
            if deadline is not None and loop.time() > deadline:
                raise WorkerStartTimeoutError(running, n_workers, timeout)
            await asyncio.sleep(0.1)  # as often as distributed's own wait asks its scheduler

    async def _correct_state_internal(self) -> None:
        """SpecCluster's, less `retire_workers`: the jobs no longer wanted are cancelled (scancel) and those wanted
        submitted. A job SLURM no longer lists (killed for memory, past its wall time) is forgotten first, so the
        scale that follows submits it again, as distributed's cluster manager did once the scheduler lost its
        worker; here SLURM says so, not the scheduler."""
        async with self._lock:
            self._correct_state_waiting = None
            submitted = [job.job_id for job in self.workers.values() if getattr(job, "job_id", None)]
            with contextlib.suppress(ClusterError):  # squeue failed: nothing is forgotten this time
                listed = await asyncio.to_thread(queued, submitted) if submitted else {}
                for name, job in list(self.workers.items()):
                    if getattr(job, "job_id", None) and job.job_id not in listed:
                        del self.workers[name]
            to_close = set(self.workers) - set(self.worker_spec)
            await asyncio.gather(*(self.workers[name].close() for name in to_close if name in self.workers))
            for name in to_close:
                self.workers.pop(name, None)
            to_open = set(self.worker_spec) - set(self.workers)
            opened = []
            for name in to_open:
                spec = self.worker_spec[name]
                options = {"name": name, **spec.get("options", {})}
                job = spec["cls"](self.scheduler.address, **options)
                self._created.add(job)
                opened.append((name, job))
            if opened:
                started = [asyncio.ensure_future(job) for _, job in opened]
                await asyncio.wait(started)
                self.workers.update(dict(opened))
                await asyncio.gather(*started)  # a job that failed to submit raises here, the others recorded

    async def _close(self) -> None:
        try:
            await self._shut_down()
            # returns once SLURM lists none of the jobs (a cancelled job is COMPLETING a moment): "closed" means gone
            loop = asyncio.get_running_loop()
            deadline = loop.time() + CLOSE_SECONDS
            while self.job_ids and loop.time() < deadline and await asyncio.to_thread(queued, self.job_ids):
                await asyncio.sleep(0.5)
        finally:
            self._release()

    async def _shut_down(self) -> None:
        """SpecCluster's and Cluster's close, less the scheduler's comm: cancel every job, then stop the scheduler's
        process (SIGTERM, then SIGKILL: clusters/sandboxed.py)."""
        while self.status == Status.closing:
            await asyncio.sleep(0.1)
        if self.status == Status.closed:
            return
        if self.status in (Status.running, Status.failed):
            self.status = Status.closing
            self.worker_spec.clear()
            await self._correct_state()
            await asyncio.gather(*self._futures)
            if self.scheduler is not None and self.shutdown_scheduler:
                await self.scheduler.close()
        self._SpecCluster__exit_stack.__exit__(None, None, None)
        for callback in self.periodic_callbacks.values():
            callback.stop()
        self.status = Status.closed

    # -- what root knows of the cluster without a Dask comm

    def dashboard_address(self) -> tuple[str, int] | None:
        """Where the scheduler's dashboard listens (TLS, asking for the cluster's client certificate), or None."""
        port = self.scheduler.dashboard_port if self.scheduler is not None else None
        if not port:
            return None
        configured = str((setting("scheduler") or {}).get("dashboard-address") or "")
        host = configured.rpartition(":")[0].strip("[]")
        if host in ("", "0.0.0.0", "::"):  # noqa: S104 (read, never bound here)
            host = self.scheduler_address.split("://", 1)[-1].rpartition(":")[0].strip("[]")
        return host, int(port)

    def dashboard_tls(self) -> ssl.SSLContext:
        """The TLS context that reaches the dashboard: the cluster's client certificate and authority."""
        return self.client_security().get_connection_args("client")["ssl_context"]

    def scheduler_workers(self) -> dict[str, dict[str, Any]]:
        """The workers the scheduler says it has, `{address: {"name", "nthreads", "memory_limit", "status"}}`, from its
        dashboard's JSON (blocking, at most IDENTITY_SECONDS). The scheduler may say anything here (it runs the
        researcher's code): the answer is size-capped JSON, only numbers and names are kept, and it is only ever
        shown to the researcher. Empty when the dashboard does not answer."""
        address = self.dashboard_address()
        if address is None:
            return {}
        connection = http.client.HTTPSConnection(*address, timeout=IDENTITY_SECONDS, context=self.dashboard_tls())
        try:
            connection.request("GET", IDENTITY_PATH)
            answer = connection.getresponse()
            if answer.status != 200:
                return {}
            body = _read_capped(answer, IDENTITY_BYTES, time.monotonic() + IDENTITY_SECONDS)
            if body is None:
                return {}
            identity = json.loads(body)
        except (OSError, http.client.HTTPException, ValueError, RecursionError):
            return {}
        finally:
            with contextlib.suppress(OSError):
                connection.close()
        workers = identity.get("workers") if isinstance(identity, dict) else None
        if not isinstance(workers, dict):
            return {}
        return {
            str(address)[:200]: {
                "name": str(worker.get("name"))[:200],
                "nthreads": _count(worker.get("nthreads")),
                "memory_limit": _count(worker.get("memory_limit")),
                "status": str(worker.get("status"))[:40],
            }
            for address, worker in workers.items()
            if isinstance(worker, dict)
        }

    def running_jobs(self) -> dict[str, str]:
        """This cluster's jobs that SLURM still lists, with their states (PENDING, RUNNING, ...)."""
        return queued(self.job_ids)

    def ended_jobs(self) -> list[JobEnd]:
        """This cluster's jobs that have ended, and how (killed for memory, cancelled, ...)."""
        ends = (job_end(job_id, self.error_file(job_id)) for job_id in self.job_ids)
        return [end for end in ends if end is not None]

    def check_jobs(self) -> None:
        """Raise WorkerJobsKilled, saying so in words, if SLURM killed any of this cluster's jobs for memory."""
        killed = [end for end in self.ended_jobs() if end.exceeded_memory]
        if killed:
            raise WorkerJobsKilled(killed)

    def error_file(self, job_id: str) -> Path | None:
        """Where SLURM writes a job's standard error (dask-jobqueue's `-e` directive)."""
        log_directory = self._dummy_job.log_directory
        return Path(log_directory) / f"{self.job_name}-{job_id}.err" if log_directory else None

    def _release(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        if self._pin is not None:
            self._pin.release()
            self._pin = None
            if self._after is not None:
                self._after()


def _read_capped(answer: http.client.HTTPResponse, limit: int, deadline: float) -> bytes | None:
    """The answer's body, or None when it is longer than `limit` or still arriving at `deadline` (a scheduler that
    trickles bytes holds a thread of the service no longer than that)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := answer.read1(1 << 16):
        size += len(chunk)
        if size > limit or time.monotonic() > deadline:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _count(value: Any) -> int:
    """A whole number of threads or bytes as the scheduler stated it; 0 for anything else."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def project_limits(paths: Paths, project: str) -> ComputeLimits:
    """The project's compute limits as its spec in the registry states them."""
    with registry_of(paths).session() as session:
        row = session.execute(select(Project).where(Project.name == project)).scalar_one_or_none()
        if row is None:
            raise ClusterError(f"no project {project} in the registry")
        return project_spec(row).compute


def cluster_folder(paths: Paths, project: str, cluster_id: str) -> Path:
    """The cluster's own folder: root's (0750), group the project's, under `shared-directory` or the project's."""
    shared = setting("shared-directory")
    base = Path(shared) / project if shared else paths.project_dir(project) / "clusters"
    return base / cluster_id


def project_cluster(
    paths: Paths,
    project: str,
    *,
    limits: ComputeLimits | None = None,
    cores: int | None = None,
    processes: int | None = None,
    memory: str | int | None = None,
    queue: str | None = None,
    account: str | None = None,
    walltime: str | None = None,
    job_extra_directives: list[str] | None = None,
    interface: str | None = None,
    scheduler_host: str | None = None,
    scheduler_port: int | None = None,
    death_timeout: float | None = None,
    asynchronous: bool = False,
    **cluster_kwargs: Any,
) -> ProjectCluster:
    """A new Dask cluster on SLURM for `project`, with no jobs yet (`cluster.scale(jobs=N)` submits them).

    Each job is sized from the arguments, else `enclave.slurm` in the Dask config, else the project's compute
    limits (`limits`, default its spec in the registry), never beyond them (clusters/settings.py). Root only."""
    if os.geteuid() != 0:
        raise ClusterError("a project's SLURM cluster is made by root (its jobs build the workers' sandboxes)")
    limits = limits or project_limits(paths, project)
    size = job_size(limits, cores=cores, processes=processes, memory=memory)
    options = job_options(
        project, limits, size, queue=queue, account=account, walltime=walltime,
        job_extra_directives=job_extra_directives, interface=interface, scheduler_host=scheduler_host,
        scheduler_port=scheduler_port, death_timeout=death_timeout,
    )  # fmt: skip
    try:
        owner = pwd.getpwnam(project_account_name(project))
    except KeyError:
        raise ClusterError(f"project {project} has no Unix account: run `enclave host apply`") from None
    env = paths.workspace_env
    if not (env / "bin" / "python").exists():
        raise ClusterError("the workspace environment is not built: run `enclave workspace build`")
    try:
        pin = pin_current(paths.project_data(project))
    except EnclaveError as exc:
        raise ClusterError(str(exc)) from exc
    cluster_id = secrets.token_hex(6)
    folder = cluster_folder(paths, project, cluster_id)
    try:
        certs, sandbox_options = _prepare_folder(folder, project, owner, env, pin.build, cluster_id)
        options["scheduler_options"].update(sandbox_options.pop("sandbox_scheduler"))
        return ProjectCluster(
            project=project, folder=folder, certs=certs, pin=pin, max_jobs=int(setting("max-jobs")),
            after=lambda: sweep_after(registry_of(paths), paths, project), asynchronous=asynchronous,
            job_name=f"enclave-{project}", **options, **sandbox_options, **cluster_kwargs,
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        pin.release()
        raise


def _prepare_folder(
    folder: Path, project: str, owner: pwd.struct_passwd, env: Path, build: Path, cluster_id: str
) -> tuple[certificates.ClusterCertificates, dict[str, Any]]:
    """Write the cluster's folder; return its certificates and the SLURMCluster arguments that start the scheduler
    and each worker in the project's sandbox."""
    folder.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    os.chown(folder.parent, 0, owner.pw_gid)
    tls = folder / "tls"
    for made in (folder, tls):
        made.mkdir(mode=0o750)
        os.chown(made, 0, owner.pw_gid)
    certs = certificates.issue(f"enclave {project} {cluster_id}", int(setting("certificate-days")))
    files = certs.write_role_files(tls, owner.pw_gid)
    sandbox = WorkerSandbox(
        project=project, account=owner.pw_name, uid=owner.pw_uid, gid=owner.pw_gid, env=env, data=build,
        etc=folder / "etc", binds=(tls,), python_home=base_python_home(env),
    )  # fmt: skip
    sandbox.write_etc()
    bpf = folder / "seccomp.bpf"
    bpf.write_bytes(seccomp.compile_filter())
    bpf.chmod(0o644)
    logs = Path(setting("log-directory") or folder / "logs")
    logs.mkdir(mode=0o700, parents=True, exist_ok=True)  # SLURM writes there as the job's user, root
    python = SandboxedPython(sandbox)
    options = {
        "python": python.shell_prefix(SECCOMP_FD),
        "job_script_prologue": [f"exec {SECCOMP_FD}<{shlex.quote(str(bpf))}"],
        "shebang": "#!/bin/bash",
        "worker_command": WORKER_COMMAND,
        "worker_extra_args": [],  # nothing from a jobqueue.slurm config file reaches the worker's command line
        "job_directives_skip": [],
        "log_directory": str(logs),
        "security": certs.cluster_security(files),
        "shared_temp_directory": str(folder),  # unused (every worker file is already a file): never the cwd
        "scheduler_cls": SandboxedScheduler,
        "sandbox_scheduler": {"python": python, "log": logs / f"scheduler-{cluster_id}.log"},
    }
    return certs, options
