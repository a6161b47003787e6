"""The sandboxed workspace spawner: one JupyterLab per (user, project), in bubblewrap, as the project's account.

JupyterHub's named servers are the workspaces: a server's name is a project's name, so `/hub/spawn/alice/cardio-risk`
starts alice's workspace for cardio-risk and `/user/alice/cardio-risk/` reaches it. Only a researcher member of that
project may start it (checked here, whatever the hub's scopes say); the default (unnamed) server does not exist.

`start` makes the workspace's control group, writes the sandbox's /etc files, starts `jupyterhub-singleuser` inside
the sandbox (hub/sandbox.py) listening on a Unix socket, and returns that socket's `http+unix://` URL, which
configurable-http-proxy routes to. The hub must run as root (to drop to the project account and set limits); without
root it refuses, unless the loudly named `insecure_dev_mode` is on.

Each start, failed start and stop is in the audit log (`workspace.start`, `workspace.start_failed`,
`workspace.stop` with why), and so are the kernel and terminal sessions the server reports (hub/session_events.py).

A project whose `compute.engine` is `slurm` gets a cluster service beside each workspace (hub/cluster_service.py):
started before the sandbox, its socket in the workspace's runtime folder, told the workspace's pid, stopped (its
jobs cancelled) before the workspace's folders are removed.

Entry point `jupyterhub.spawners: enclave` (pyproject.toml); options are traitlets with help, set in
hub/jupyterhub_config.py or any `jupyterhub_config.py` as `c.SandboxSpawner.<option>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jupyterhub.handlers.base import BaseHandler
from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import Bool, Float, Integer, Unicode, default

from hub import browser_usage, sandbox, seccomp
from hub.cluster_service import ClusterServiceProcess, ServiceError, start_service
from hub.limits import WorkspaceCgroup
from hub.revocation import ADMIN_SERVICE as REVOCATION_SERVICE
from hub.session_events import SessionAudit
from hub.workspaces import INSECURE_ENV, WorkspaceError, insecure_allowed, prepare, registry_of
from kernel import audit
from kernel.config import Paths

PASSED_ENV_PREFIXES = ("JUPYTERHUB_", "JPY_")  # what of JupyterHub's environment reaches the workspace
# A stop asked for by the hub service through which Enclave's revocation acts is a revocation (an account removed, a
# membership or role changed).


class SandboxSpawner(Spawner):
    """Start each workspace in its own bubblewrap sandbox with no network, as its project's Unix account."""

    enclave_home = Unicode(
        help="The Enclave installation (ENCLAVE_HOME) whose registry, projects and workspace environment to use; "
        "default: the hub's ENCLAVE_HOME."
    ).tag(config=True)

    @default("enclave_home")
    def _default_home(self) -> str:
        return str(Paths.from_env().home)

    bwrap = Unicode("bwrap", help="The bubblewrap executable (Debian package `bubblewrap`).").tag(config=True)
    setpriv = Unicode("setpriv", help="util-linux's setpriv, which drops to the project account.").tag(config=True)
    socket_root = Unicode(
        str(sandbox.SOCKET_ROOT),
        help="Root-owned folder holding one 0700 folder per running workspace with its server socket (kept short: "
        "Unix socket paths are limited to 108 bytes).",
    ).tag(config=True)
    stop_grace = Float(10, help="Seconds a stopping workspace gets to shut its kernels down.").tag(config=True)
    insecure_dev_mode = Bool(
        help="INSECURE, for development machines only: start workspaces when the hub is not root, as the hub's own "
        "user, with no CPU/memory limits and the sandbox in a user namespace. Never set this where real data is. "
        f"Default: whether ${INSECURE_ENV} is 1."
    ).tag(config=True)

    @default("insecure_dev_mode")
    def _default_insecure(self) -> bool:
        return insecure_allowed()

    pid = Integer(0, help="(state) the bwrap process of the running workspace")
    workspace = Unicode("", help="(state) the workspace id: its socket folder and control group name")

    # -- JupyterHub's Spawner interface

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.pid = state.get("pid", 0)
        self.workspace = state.get("workspace", "")

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.pid:
            state["pid"] = self.pid
            state["workspace"] = self.workspace
        return state

    def clear_state(self) -> None:
        super().clear_state()
        self.pid = 0
        self.workspace = ""

    async def start(self) -> str:
        paths = Paths(Path(self.enclave_home))
        try:
            return await self._start(paths)
        except web.HTTPError as exc:
            await asyncio.to_thread(self._audit, paths, "workspace.start_failed", reason=exc.log_message)
            raise

    async def _start(self, paths: Paths) -> str:
        try:
            plan = await asyncio.to_thread(
                prepare,
                paths,
                self.name,
                self.user.name,
                environment=self._hub_environment(paths),
                insecure_dev_mode=self.insecure_dev_mode,
                socket_root=Path(self.socket_root),
            )
        except WorkspaceError as exc:
            raise web.HTTPError(exc.status, exc.message) from exc
        if not plan.secure:
            self.log.warning("INSECURE DEVELOPMENT MODE: %s runs as the hub's own user, without limits", self._log_name)
        self.workspace = plan.id
        cluster_service = await self._start_cluster_service(paths, plan)
        command = [str(plan.layout.env / "bin" / "jupyterhub-singleuser"), f"--sock={sandbox.INSIDE_SOCKET}"]
        # The browser budget's ledger: what this workspace already sent this hour, and a pipe for its reports.
        ledger = self._usage_ledger(paths)
        hour, spent = await asyncio.to_thread(ledger.spent, plan.id)
        usage_read, usage_write = os.pipe()
        usage = {
            "ENCLAVE_BROWSER_HOUR": str(hour),
            "ENCLAVE_BROWSER_SPENT": str(spent),
            "ENCLAVE_USAGE_FD": str(usage_write),
        }
        try:
            with (
                plan.launch(
                    [*command, *self.get_args()],
                    bwrap=self.bwrap,
                    setpriv=self.setpriv,
                    environment=usage,
                    pass_fds=(usage_write,),
                ) as launch,
                self._log_path(paths).open("ab") as out,
            ):
                process = await asyncio.create_subprocess_exec(
                    *launch.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    # the environment (with the hub token) in bwrap's environ, the seccomp filter, the limits
                    **launch.popen_kwargs(),
                )
        except (OSError, seccomp.SeccompUnavailable) as exc:
            os.close(usage_read)
            if cluster_service is not None:
                await cluster_service.stop()
            await asyncio.to_thread(plan.cleanup)
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            self.workspace = ""  # nothing runs: the stop JupyterHub sends next has nothing to record
            raise web.HTTPError(503, f"the workspace sandbox could not start ({reason})") from exc
        finally:
            os.close(usage_write)  # the workspace server holds the only write end now
        target = f"workspace:{self.name}/{self.user.name}"
        sessions = SessionAudit(registry_of(paths), plan.id, self.name, actor=self.user.name, target=target)
        self._usage = asyncio.ensure_future(
            browser_usage.follow(usage_read, ledger, plan.id, actor=self.user.name, target=target, sessions=sessions)
        )
        self.pid = process.pid
        self._process = process
        self._plan = plan
        self._cluster_service = cluster_service
        if cluster_service is not None:
            await cluster_service.watch(process.pid)
        # Return once the server accepts connections: JupyterHub's own readiness probe backs off up to 5 s between
        # tries, which on its own would often double the time to a ready workspace.
        if await self._wait_for_socket(plan.layout.socket, process):
            limits = await asyncio.to_thread(_limits_of, plan)
            await asyncio.to_thread(self._audit, paths, "workspace.start", workspace=plan.id, **limits)
        else:
            why = "the server exited" if process.returncode is not None else "the server did not answer in time"
            await asyncio.to_thread(self._audit, paths, "workspace.start_failed", workspace=plan.id, reason=why)
        url = sandbox.socket_url(plan.layout.socket)
        # JupyterHub keeps a server's address as ip:port; a socket has neither, so hand it the URL to proxy to.
        self.server.connect_url = url
        return url

    async def poll(self) -> int | None:
        process = getattr(self, "_process", None)
        if process is not None:
            return process.returncode
        if not self.pid:
            return 0
        try:  # a workspace from before a hub restart: --die-with-parent makes this rare
            os.kill(self.pid, 0)
        except ProcessLookupError:
            self.clear_state()
            return 0
        return None

    async def stop(self, now: bool = False) -> None:
        why = self._stop_reason()  # first: read from the hub's call before anything is awaited
        ran = self.workspace
        cgroup = WorkspaceCgroup(self.workspace) if self.workspace and os.geteuid() == 0 else None
        if not now and cgroup is not None:
            # SIGTERM to the workspace's processes: jupyter-server shuts its kernels down and exits.
            for pid in cgroup.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        process = getattr(self, "_process", None)
        if process is not None:
            if now:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            try:
                await asyncio.wait_for(process.wait(), timeout=self.stop_grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        elif self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        cluster_service = getattr(self, "_cluster_service", None)
        if cluster_service is not None:  # cancels the jobs; its socket goes with the runtime folder below
            await cluster_service.stop()
        plan = getattr(self, "_plan", None)
        if plan is not None:
            await asyncio.to_thread(plan.cleanup)
        elif cgroup is not None:  # a workspace from before a hub restart
            await asyncio.to_thread(cgroup.remove)
        usage = getattr(self, "_usage", None)
        if usage is not None:  # the server is gone, so its pipe ends: the hour's totals reach the audit log
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(usage, timeout=10)
        self._process = self._plan = self._usage = self._cluster_service = None
        self.clear_state()
        if ran:
            paths = Paths(Path(self.enclave_home))
            try:
                await asyncio.to_thread(self._audit, paths, "workspace.stop", workspace=ran, **why)
            except Exception as exc:  # stopped all the same; the hub's log says the record is missing
                self.log.error("could not record the stop of %s in the audit log: %s", self._log_name, exc)

    # -- helpers

    async def _start_cluster_service(self, paths: Paths, plan: Any) -> ClusterServiceProcess | None:
        """The workspace's cluster service when its project's engine is slurm (root only: it submits the jobs)."""
        if plan.engine != "slurm":
            return None
        if not plan.secure:
            self.log.warning("%s: no SLURM cluster in the insecure development mode (it needs root)", self._log_name)
            return None
        try:
            return await start_service(paths, plan.layout, self._log_path(paths).with_suffix(".cluster.log"))
        except (OSError, ServiceError) as exc:
            await asyncio.to_thread(plan.cleanup)
            self.workspace = ""
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise web.HTTPError(503, f"the workspace's cluster service could not start ({reason})") from exc

    def _stop_reason(self) -> dict[str, str | int]:
        """Why this workspace stops, as far as the hub's call says: it exited by itself, the hub is shutting down,
        or someone asked (the person, an admin, a service such as a revocation or idle culler, or a logout)."""
        process = getattr(self, "_process", None)
        if process is not None and process.returncode is not None:
            return {"reason": "exited", "exit_status": process.returncode}
        handler = _requesting_handler()
        if handler is not None:
            requester = handler.current_user
            kind, name = getattr(requester, "kind", ""), getattr(requester, "name", "")
            if type(handler).__name__ == "LogoutHandler":
                return {"reason": "logout"}
            if kind == "service":
                return {"reason": "revocation"} if name == REVOCATION_SERVICE else {"reason": "service", "by": name}
            if name == self.user.name:
                return {"reason": "user"}
            return {"reason": "admin", "by": name} if name else {"reason": "requested"}
        task = asyncio.current_task()
        if task is not None and getattr(task.get_coro(), "__qualname__", "") == "User.stop":
            return {"reason": "hub shutdown"}  # only JupyterHub's cleanup runs User.stop as a task of its own
        return {"reason": "hub"}

    def _audit(self, paths: Paths, action: str, **detail: Any) -> None:
        registry_of(paths).transaction(
            lambda session: audit.record(
                session,
                actor=self.user.name,
                action=action,
                target=f"workspace:{self.name}/{self.user.name}",
                project=self.name,
                **detail,
            )
        )

    async def _wait_for_socket(self, path: Path, process: asyncio.subprocess.Process) -> bool:
        deadline = asyncio.get_running_loop().time() + self.start_timeout
        while process.returncode is None and asyncio.get_running_loop().time() < deadline:
            if path.is_socket():
                try:
                    _reader, writer = await asyncio.open_unix_connection(str(path))
                except OSError:
                    pass
                else:
                    writer.close()
                    return True
            await asyncio.sleep(0.05)
        # exited or never listened: JupyterHub's own probe reports it (and stop() cleans up)
        return False

    def _hub_environment(self, paths: Paths) -> dict[str, str]:
        env = self.get_env()
        passed = {k: v for k, v in env.items() if k.startswith(PASSED_ENV_PREFIXES)}
        # The hub's socket is bound at /run/hub inside the sandbox: rewrite its URL in what the server is told.
        outside = quote(str(sandbox.hub_socket(paths)), safe="")
        inside = quote(f"{sandbox.INSIDE_HUB}/hub.sock", safe="")
        passed = {k: v.replace(outside, inside) for k, v in passed.items()}
        # The server listens on its socket only; this URL just tells jupyterhub-singleuser its base path.
        passed["JUPYTERHUB_SERVICE_URL"] = f"http://127.0.0.1:8888{self.server.base_url if self.server else '/'}"
        return passed

    def _usage_ledger(self, paths: Paths) -> browser_usage.UsageLedger:
        return browser_usage.UsageLedger(paths.hub / "browser-usage.json", registry_of(paths))

    def _log_path(self, paths: Paths) -> Path:
        logs = paths.hub / "workspace-logs"
        logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        return logs / f"{self.workspace}.log"


def _requesting_handler() -> BaseHandler | None:
    """The hub request handler whose call is stopping a server, found on the calling coroutines' frames (JupyterHub
    passes no reason to `Spawner.stop`; its stop task is a closure over the handler)."""
    frame = sys._getframe(2)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, BaseHandler):
            return candidate
        frame = frame.f_back
    return None


def _limits_of(plan: Any) -> dict[str, Any]:
    """The limits the workspace runs under, as its control group and environment have them."""
    found: dict[str, Any] = {
        "browser_bytes_per_hour": plan.layout.environment.get("ENCLAVE_BROWSER_BYTES_PER_HOUR", ""),
        "confined": plan.secure,
    }
    if plan.cgroup is None:
        return found
    for key, names in {
        "memory": ("memory.max", "memory.limit_in_bytes"),
        "cpu": ("cpu.max", "cpu.cfs_quota_us"),
        "pids": ("pids.max",),
    }.items():
        for name in names:
            with contextlib.suppress(FileNotFoundError, OSError):
                found[key] = plan.cgroup.read(name)
                break
    return found
