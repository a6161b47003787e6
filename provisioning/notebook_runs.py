"""`enclave run`: execute a notebook with papermill inside a project's sandbox, as the project's account.

The notebook is read with the invoking person's rights (under sudo, the account that called sudo, never root's),
checked to be a Jupyter notebook within a size cap, and copied into the user's project home (`runs/`) without
following any link there (the home is the researcher's to write). papermill from the workspace environment runs it
with the same namespaces, mounts, limits and environment as a JupyterLab workspace (hub/workspaces.py), but as a
run of its own (its own control group and socket folder), so an open workspace of the same person is untouched and
no running hub is needed. The executed copy stays beside the input; what the notebook writes to /project/outputs is
what the airlock can take. Each run is audited when it starts and when it ends (`notebook.run_started`,
`notebook.run_ended`); the same checks and copy come before a run submitted to SLURM (provisioning/notebook_jobs.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import nbformat

from hub import sandbox
from hub.sandbox import SandboxLayout
from hub.workspaces import WorkspaceError, insecure_allowed, prepare, registry_of
from kernel import audit
from kernel.config import Paths
from kernel.errors import EnclaveError
from output_checks.release.storage import open_beneath
from workbench.cluster import ENV_ENGINE

MAX_NOTEBOOK_BYTES = 16 << 20  # the airlock's default per-file limit: a notebook larger than that is not a script
RUNS = "runs"
# A batch run has no cluster service: the notebook's `client()` is a LocalCluster within the run's limits, whatever
# the project's compute.engine (workbench/cluster.py).
BATCH_ENVIRONMENT = {ENV_ENGINE: "local"}


@dataclass(frozen=True)
class NotebookRun:
    executed: Path  # on the host
    inside: str  # the same file inside the workspace
    returncode: int


@dataclass(frozen=True)
class Invoker:
    """Whose rights open the notebook: the account that called sudo, or this process's own."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    name: str | None  # SUDO_USER, when run through sudo by another account


def invoker() -> Invoker:
    """Root through sudo acts for SUDO_UID/SUDO_GID (with that account's groups); anyone else for themselves."""
    sudo_uid = os.environ.get("SUDO_UID")
    if os.geteuid() != 0 or not sudo_uid or int(sudo_uid) == 0:
        return Invoker(os.getuid(), os.getgid(), tuple(os.getgroups()), None)
    uid, gid = int(sudo_uid), int(os.environ.get("SUDO_GID") or sudo_uid)
    try:
        groups = tuple(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
    except KeyError:
        groups = (gid,)
    return Invoker(uid, gid, groups, os.environ.get("SUDO_USER"))


@contextlib.contextmanager
def acting_as(who: Invoker) -> Iterator[None]:
    """Effective ids and groups of `who` for the block (root only; a no-op for anyone acting for themselves)."""
    if os.geteuid() != 0 or who.uid == 0:
        yield
        return
    saved = os.getegid(), os.getgroups()
    os.setgroups(list(who.groups))
    os.setegid(who.gid)
    os.seteuid(who.uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(saved[0])
        os.setgroups(saved[1])


def read_notebook(notebook: Path, who: Invoker) -> bytes:
    """The notebook's bytes as `who` may read them: refused unless it is a regular file they can open, within
    MAX_NOTEBOOK_BYTES, and a valid Jupyter notebook. Messages name the file as the caller gave it, nothing else."""
    try:
        with acting_as(who):
            fd = os.open(notebook, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # no FIFO can block the run
    except OSError as exc:
        raise EnclaveError(f"{notebook}: cannot be opened with your rights ({exc.strerror}); nothing was run") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise EnclaveError(f"{notebook}: not a regular file; nothing was run")
    with os.fdopen(fd, "rb") as source:
        content = source.read(MAX_NOTEBOOK_BYTES + 1)
    if len(content) > MAX_NOTEBOOK_BYTES:
        raise EnclaveError(f"{notebook}: larger than {MAX_NOTEBOOK_BYTES >> 20} MiB, not run as a notebook")
    try:
        nbformat.validate(nbformat.reads(content.decode("utf-8"), as_version=4))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, nbformat.ValidationError):
        # no detail: a validation message can quote the file's content
        raise EnclaveError(f"{notebook}: not a Jupyter notebook (.ipynb, nbformat 4); nothing was run") from None
    return content


def _open_runs(home: Path, uid: int | None, gid: int | None) -> int:
    """The user's `runs/` folder, made if missing and opened without following a link at the home or at runs/
    (the researcher can replace either with a link from the workspace); owned by the project account."""
    refused = EnclaveError(f"{RUNS}/ in your project home is a link or not a folder; nothing was run")
    try:
        fd = open_beneath(home.parent, Path(home.name))
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise refused
            with contextlib.suppress(FileExistsError):
                os.mkdir(RUNS, 0o700, dir_fd=fd)  # mkdir never follows a link at its last component
        finally:
            os.close(fd)
        runs = open_beneath(home.parent, Path(home.name, RUNS))
    except EnclaveError:
        raise refused from None
    if not stat.S_ISDIR(os.fstat(runs).st_mode):
        os.close(runs)
        raise refused
    if uid is not None and gid is not None:
        os.fchown(runs, uid, gid)
    return runs


def _create(runs: int, name: str, content: bytes, uid: int | None, gid: int | None) -> None:
    """A new file `name` in the open `runs` folder: never an existing one, never through a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, 0o600, dir_fd=runs)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise EnclaveError(f"{RUNS}/{name} already exists (a file or a link); nothing was run") from None
        raise EnclaveError(f"cannot create {RUNS}/{name} ({exc.strerror}); nothing was run") from None
    with os.fdopen(fd, "wb") as out:
        out.write(content)
        if uid is not None and gid is not None:
            os.fchown(out.fileno(), uid, gid)


def untrusted(path: Path) -> str | None:
    """Why root should not trust `path` as installed state (None when it may): every folder from / down to it must
    be root's, and none but root may replace an entry in it (not writable by others, or sticky like /tmp)."""
    # as written (a link is fine when root made it in a folder only root can change), then where it leads
    for spelling in (os.path.abspath(path), os.path.realpath(path)):
        current = Path("/")
        for part in Path(spelling).relative_to("/").parts:
            current = current / part
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                return f"{current} does not exist"
            if st.st_uid != 0:
                return f"{current} is not owned by root"
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
                return f"{current} is writable by accounts other than root"
    return None


def check_installation(paths: Paths, who: Invoker) -> None:
    """Through sudo the caller may choose --home or keep ENCLAVE_* variables: root must then not trust a registry,
    project folders or an environment that the caller (or anyone but root) could have made."""
    if who.name is None:
        return
    for what, path in (("Enclave home", paths.home), ("workspace environment", paths.workspace_env)):
        if problem := untrusted(path):
            raise EnclaveError(f"through sudo, `enclave run` uses only a root-owned {what}: {problem}")


def stage_notebook(layout: SandboxLayout, stem: str, content: bytes, secure: bool) -> tuple[str, str]:
    """Copy the notebook into the user's `runs/` (owned by the project account when `secure`); return the names of
    the copy and of the executed notebook papermill will write beside it."""
    owner = (layout.uid, layout.gid) if secure else (None, None)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    source, executed = f"{stem}-{stamp}.ipynb", f"{stem}-{stamp}.out.ipynb"
    runs = _open_runs(layout.home, *owner)
    try:
        _create(runs, source, content, *owner)
    finally:
        os.close(runs)
    return source, executed


def stage_inputs(layout: SandboxLayout, stem: str, inputs: Mapping[str, bytes], secure: bool) -> dict[str, str]:
    """Copy each input file beside the notebook in `runs/` (a run's own data, e.g. the pseudonyms a federated task
    leaves out), never through a link; its path inside the sandbox, by the parameter that names it."""
    owner = (layout.uid, layout.gid) if secure else (None, None)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    inside: dict[str, str] = {}
    runs = _open_runs(layout.home, *owner)
    try:
        for parameter, content in inputs.items():
            name = f"{stem}-{stamp}-{parameter}.json"
            _create(runs, name, content, *owner)
            inside[parameter] = f"{layout.inside_home}/{RUNS}/{name}"
    finally:
        os.close(runs)
    return inside


def papermill_command(layout: SandboxLayout, source: str, executed: str, parameters: dict[str, str]) -> list[str]:
    """papermill from the workspace environment, from `runs/source` to `runs/executed` inside the sandbox."""
    inside_runs = f"{layout.inside_home}/{RUNS}"
    command = [str(layout.env / "bin" / "papermill"), f"{inside_runs}/{source}", f"{inside_runs}/{executed}"]
    command += ["--cwd", layout.inside_home, "--kernel", "python3", "--language", "python"]
    command += ["--log-output", "--no-progress-bar"]
    for name, value in parameters.items():
        command += ["-p", name, value]
    return command


def audit_run(paths: Paths, project: str, *, actor: str, action: str, **detail: Any) -> None:
    """One audit event about a notebook run (`notebook.run_started`, `notebook.job_submitted`, ...) on `project`."""
    registry_of(paths).transaction(
        lambda session: audit.record(session, actor=actor, action=action, target=project, **detail)
    )


def run_in_sandbox(
    paths: Paths,
    notebook: Path,
    project: str,
    user: str,
    parameters: dict[str, str],
    *,
    timeout: float | None = None,
    actor: str | None = None,
    output: IO[bytes] | None = None,
    inputs: Mapping[str, bytes] | None = None,
    input_variables: Mapping[str, str] | None = None,
) -> NotebookRun:
    """Run `notebook` in `user`'s workspace sandbox of `project` with papermill `parameters` (as `-p NAME VALUE`);
    audited as `notebook.run_started` and `notebook.run_ended` (by `actor`, default `user`). papermill's output
    goes to the caller's terminal, or to `output` (a site's federated run keeps it at the site: it can quote data).
    `inputs` (parameter -> JSON bytes) are staged beside the notebook and each parameter set to its path inside;
    `input_variables` (parameter -> environment variable) also hand that path to the kernel's environment."""
    who = invoker()
    check_installation(paths, who)
    content = read_notebook(notebook, who)
    # A batch run needs no hub: bind its socket folder only when one is there.
    hub_root = sandbox.HUB_SOCKET_ROOT if sandbox.hub_socket(paths).parent.is_dir() else None
    instance = f"run-{secrets.token_hex(4)}"
    try:
        plan = prepare(
            paths,
            project,
            user,
            environment=BATCH_ENVIRONMENT,
            insecure_dev_mode=insecure_allowed(),
            instance=instance,
            hub_socket_root=hub_root,
        )
    except WorkspaceError as exc:
        raise EnclaveError(exc.message) from exc
    try:
        layout = plan.layout
        source, executed = stage_notebook(layout, notebook.stem, content, plan.secure)
        staged = stage_inputs(layout, notebook.stem, inputs, plan.secure) if inputs else {}
        parameters = {**parameters, **staged}
        variables = {variable: staged[name] for name, variable in (input_variables or {}).items() if name in staged}
        inside = f"{layout.inside_home}/{RUNS}/{executed}"
        command = papermill_command(layout, source, executed, parameters)
        audit_run(paths, project, actor=actor or user, action="notebook.run_started", user=user, executed=inside)
        with plan.launch(command, environment=variables) as launch:
            completed = subprocess.run(  # output streams to the caller's terminal unless `output` is given
                launch.argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                timeout=timeout,
                check=False,
                **launch.popen_kwargs(),
            )
        audit_run(paths, project, actor=actor or user, action="notebook.run_ended", user=user, executed=inside,
                  returncode=completed.returncode)  # fmt: skip
        return NotebookRun(executed=layout.home / RUNS / executed, inside=inside, returncode=completed.returncode)
    finally:
        plan.cleanup()
        if plan.layout.etc.name.endswith(instance):  # the run's own /etc files, never the workspace's
            shutil.rmtree(plan.layout.etc, ignore_errors=True)
