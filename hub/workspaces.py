"""Who may run a workspace, and everything made ready before one starts: the one layer that owns those rules.

The spawner (hub/spawner.py, a JupyterLab server per (user, project)) and `enclave run` (papermill in a project's
sandbox) both call `prepare`, then start the command `with plan.launch(command) as launch` (its argv, environment,
seccomp filter and `join_cgroup`, which runs in the child before exec) and call `plan.cleanup()` after it ends.
Refusals are `WorkspaceError`s carrying an HTTP status for the hub and a message for people: no path, identifier or
secret in them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from fabric.materialise.builds import BuildPin, pin_current, sweep_after
from fabric.models import Project, ProjectMember
from fabric.projects import ProjectRole, project_account_name
from hub import sandbox, seccomp
from hub.authorisation import WorkspaceError, WorkspaceGrant, authorise_workspace
from hub.limits import CgroupError, Limits, WorkspaceCgroup
from kernel.config import Paths
from kernel.db import Registry
from kernel.errors import EnclaveError

INSECURE_ENV = "ENCLAVE_INSECURE_DEV_MODE"


_registries: dict[str, Registry] = {}
_registries_lock = threading.Lock()


def registry_of(paths: Paths) -> Registry:
    """This process's one Registry for `paths` (opening one migrates the database, which alembic cannot do from
    several threads at once: the spawner prepares concurrent workspaces in threads)."""
    with _registries_lock:
        if paths.database_url not in _registries:
            _registries[paths.database_url] = Registry.of(paths)
        return _registries[paths.database_url]


def researcher_projects(registry: Registry, user: str) -> list[dict[str, str]]:
    """The projects `user` may open a workspace in: [{name, title}], by name."""
    with registry.session() as session:
        rows = session.execute(
            select(Project.name, Project.title)
            .join(ProjectMember, ProjectMember.project_name == Project.name)
            .where(ProjectMember.username == user, ProjectMember.role == ProjectRole.RESEARCHER.value)
            .order_by(Project.name)
        )
        return [{"name": name, "title": title} for name, title in rows]


def insecure_allowed() -> bool:
    """Whether the loudly named insecure development mode is on (`ENCLAVE_INSECURE_DEV_MODE=1`)."""
    return os.environ.get(INSECURE_ENV) == "1"


@dataclass(frozen=True)
class Launch:
    """A sandboxed command ready to start: the environment travels in bwrap's own environment, never its command
    line; `pass_fds` holds the seccomp filter bwrap reads; `preexec_fn` joins the workspace's control group."""

    argv: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...]
    preexec_fn: Callable[[], None]

    def popen_kwargs(self) -> dict[str, Any]:
        return {"env": self.env, "pass_fds": self.pass_fds, "preexec_fn": self.preexec_fn}


@dataclass
class WorkspacePlan:
    layout: sandbox.SandboxLayout
    cgroup: WorkspaceCgroup | None  # None in the insecure development mode
    secure: bool
    pin: BuildPin | None = None  # the project's build the sandbox binds, kept while it runs (fabric/materialise/builds)
    after: Callable[[], None] | None = None  # once the sandbox is gone: sweep the builds nobody uses any more
    engine: str = "local"  # the project's compute.engine: `slurm` gets a cluster service beside the sandbox

    @property
    def id(self) -> str:
        return self.layout.run.name

    def argv(
        self, command: list[str], *, bwrap: str = "bwrap", setpriv: str = "setpriv", seccomp_fd: int | None = None
    ) -> list[str]:
        argv = self.layout.argv(command, bwrap=bwrap, setpriv=setpriv, seccomp_fd=seccomp_fd)
        if not self.secure:  # no root: bubblewrap needs a user namespace to make the others, and forbids more
            argv[1:1] = ["--unshare-user", "--disable-userns"]
        return argv

    @contextlib.contextmanager
    def launch(
        self,
        command: list[str],
        *,
        bwrap: str = "bwrap",
        setpriv: str = "setpriv",
        environment: dict[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> Iterator[Launch]:
        """How to start `command` in the sandbox: pass the Launch's fields to asyncio/subprocess. The seccomp
        filter's file descriptor stays open for the block only; `pass_fds` are more descriptors the command keeps
        (at the same numbers), `environment` more variables for it."""
        fd = seccomp.filter_fd()
        try:
            yield Launch(
                argv=self.argv(command, bwrap=bwrap, setpriv=setpriv, seccomp_fd=fd),
                env={**self.layout.environment, **(environment or {})},
                pass_fds=(fd, *pass_fds),
                preexec_fn=self.join_cgroup,
            )
        finally:
            os.close(fd)

    def join_cgroup(self) -> None:
        if self.cgroup is not None:
            self.cgroup.join()

    def cleanup(self) -> None:
        """After the workspace ended: kill stragglers, remove its control group and socket folder, release its build
        (removed now if a newer one was published meanwhile and nobody else uses it)."""
        if self.cgroup is not None:
            self.cgroup.remove()
        shutil.rmtree(self.layout.run, ignore_errors=True)
        if self.pin is not None:
            self.pin.release()
            self.pin = None
            if self.after is not None:
                self.after()


def authorised_layout(
    paths: Paths,
    project: str,
    user: str,
    *,
    environment: dict[str, str] | None = None,
    insecure_dev_mode: bool = False,
    socket_root: Path = sandbox.SOCKET_ROOT,
    hub_socket_root: Path | None = sandbox.HUB_SOCKET_ROOT,
    instance: str = "",
) -> tuple[WorkspaceGrant, sandbox.SandboxLayout]:
    """Check `user` may work in `project` and that everything a sandbox binds is there; return the grant and the
    sandbox's layout. Makes nothing: `prepare` makes the folders, control group and pin of a sandbox started here;
    a notebook's SLURM job (provisioning/notebook_jobs.py) builds the same sandbox on its node."""
    # the one rule of every spawner (hub/authorisation.py), asked first: a refusal says nothing about this host
    grant = authorise_workspace(registry_of(paths), user, project)
    secure = os.geteuid() == 0
    if not (secure or insecure_dev_mode):
        raise WorkspaceError(
            503,
            "Workspaces need Enclave to run as root (to drop to the project's account and set limits). "
            f"On a development machine only, set {INSECURE_ENV}=1 (insecure development mode).",
        )
    if not paths.project_data(project).exists():
        raise WorkspaceError(409, f"project {project} has no published data yet: materialise it first")
    if not (paths.workspace_env / "bin" / "jupyterhub-singleuser").exists():
        raise WorkspaceError(503, "the workspace environment is not built: run `enclave workspace build`")
    uid, gid = _account(project) if secure else (os.getuid(), os.getgid())
    layout = sandbox.layout(
        paths,
        project,
        user,
        uid=uid,
        gid=gid,
        # the project's browser caps and budget last: nothing the hub passes can loosen them
        environment={
            **(environment or {}),
            **grant.spec.browser.environment(),
            "ENCLAVE_STORAGE_QUOTA": grant.spec.storage.quota,  # named in the message when a save finds it full
        },
        drop_privileges=secure,
        socket_root=socket_root,
        hub_socket_root=hub_socket_root,
        instance=instance,
    )
    return grant, layout


def prepare(
    paths: Paths,
    project: str,
    user: str,
    *,
    environment: dict[str, str] | None = None,
    insecure_dev_mode: bool = False,
    socket_root: Path = sandbox.SOCKET_ROOT,
    hub_socket_root: Path | None = sandbox.HUB_SOCKET_ROOT,
    instance: str = "",
) -> WorkspacePlan:
    """Check `user` may work in `project`, make the folders and control group, and return the plan to start it.
    `instance` and `hub_socket_root` go to `sandbox.layout` (a batch run: its own sandbox, no hub needed)."""
    grant, layout = authorised_layout(
        paths, project, user, environment=environment, insecure_dev_mode=insecure_dev_mode, socket_root=socket_root,
        hub_socket_root=hub_socket_root, instance=instance,
    )  # fmt: skip
    secure = layout.drop_privileges
    prepare_folders(layout, secure)
    layout.write_etc()
    # The build bound at /project/data is the one published now, pinned until the sandbox is gone: a newer build
    # published meanwhile leaves this workspace's data as it was (fabric/materialise/builds.py).
    try:
        pin = pin_current(paths.project_data(project))
    except EnclaveError as exc:
        raise WorkspaceError(409, str(exc)) from exc
    cgroup = None
    if secure:
        cgroup = WorkspaceCgroup(layout.run.name)
        try:
            cgroup.create(Limits.from_compute(grant.compute))
        except CgroupError as exc:
            pin.release()
            raise WorkspaceError(503, f"cannot limit the workspace's CPU and memory: {exc}") from exc
    after = functools.partial(sweep_after, registry_of(paths), paths, project)
    return WorkspacePlan(
        layout=replace(layout, data=pin.build), cgroup=cgroup, secure=secure, pin=pin, after=after,
        engine=grant.compute.engine,
    )  # fmt: skip


def _account(project: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(project_account_name(project))
    except KeyError:
        raise WorkspaceError(503, f"project {project} has no Unix account: run `enclave host apply`") from None
    return entry.pw_uid, entry.pw_gid


def prepare_folders(layout: sandbox.SandboxLayout, secure: bool, *, run: bool = True) -> None:
    """The user's home and (unless `run` is False: a sandbox built on another machine) the socket folder, owned by
    the project account; stale sockets removed."""
    for folder in (layout.outputs, layout.mlflow, layout.home.parent):
        if not folder.is_dir():
            raise WorkspaceError(503, f"project {layout.project} is not provisioned: run `enclave host apply`")
    if run:
        layout.run.parent.mkdir(parents=True, exist_ok=True)
        if secure:
            layout.run.parent.chmod(0o711)
    for folder in (layout.home, layout.run) if run else (layout.home,):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        if folder.is_symlink() or not folder.is_dir():
            raise WorkspaceError(409, f"the workspace folder for {layout.user} in {layout.project} is not a folder")
        if secure:
            os.chown(folder, layout.uid, layout.gid, follow_symlinks=False)
        folder.chmod(0o700)
    if run:
        with contextlib.suppress(FileNotFoundError):
            layout.socket.unlink()
