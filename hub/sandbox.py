"""The workspace sandbox as data: what a (user, project) workspace sees, and the bubblewrap command that builds it.

A workspace runs under bubblewrap, started as root: new mount, PID, IPC, UTS, cgroup and network namespaces (the
network namespace holds only loopback, so there is no route out), a root that starts empty and gets only what the
table below lists, then `setpriv` drops to the project's Unix account with no capabilities and no way to regain
privileges; bwrap loads the seccomp filter of hub/seccomp.py just before the first command. The layout inside is a
contract (docs/explanation/workspace-sandbox.md):

| inside | host | access |
| --- | --- | --- |
| /project/data | the project's published view (its current build) | read-only |
| /project/outputs | the project's outputs, the only place the airlock takes files from | read-write |
| /project/mlflow | the project's MLflow store | read-write |
| /home/USER | the user's home for this project | read-write |
| /run/enclave | the workspace's runtime folder (its server socket) | read-write |
| /run/hub | the hub's API socket folder, the only way out (none in a batch run) | read-only (connecting is allowed) |
| the workspace environment | the same absolute path as on the host | read-only |
| /usr and its /bin, /lib, ... links | the host's | read-only |
| /etc | generated passwd, group, hosts, nsswitch.conf, and the few host files of `HOST_ETC` | read-only |
| /tmp, /dev/shm | empty tmpfs | read-write |

`SandboxLayout.argv` starts nothing and writes nothing (it only looks at which host folders exist): tests check
every rule of the table without starting anything. `WorkerSandbox` is the same contract for a Dask worker that a
project's cluster runs on a SLURM node (clusters/): network shared with the node, and only its view and /tmp.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

from kernel.bubblewrap import HOST_ETC, NAMESPACES, base_python_home, system_mounts
from kernel.config import Paths
from workbench import view_contract

SOCKET_ROOT = Path("/run/enclave-workspaces")  # short: a Unix socket path must fit in 108 bytes
HUB_SOCKET_ROOT = Path("/run/enclave-hub")
INSIDE_RUN = "/run/enclave"
INSIDE_HUB = "/run/hub"  # the hub's API socket folder, the only way out of a workspace
INSIDE_SOCKET = f"{INSIDE_RUN}/jupyter.sock"
INSIDE_DATA = "/project/data"
INSIDE_OUTPUTS = "/project/outputs"
INSIDE_MLFLOW = "/project/mlflow"


def workspace_id(paths: Paths, project: str, user: str) -> str:
    """A short, stable name for one workspace of one installation (several test homes can share a machine)."""
    return hashlib.sha256(f"{paths.home}\0{project}\0{user}".encode()).hexdigest()[:16]


def hub_socket(paths: Paths, root: Path = HUB_SOCKET_ROOT) -> Path:
    """Where this installation's hub listens: a Unix socket that workspaces (and nothing on the network) reach."""
    return root / hashlib.sha256(str(paths.home).encode()).hexdigest()[:12] / "hub.sock"


def socket_url(path: Path) -> str:
    """JupyterHub's and configurable-http-proxy's URL for a server on a Unix socket."""
    return f"http+unix://{quote(str(path), safe='')}"


def etc_files(
    account: str, uid: int, gid: int, *, group: str, gecos: str, home: str, login_shell: str
) -> dict[str, str]:
    """A sandbox's own /etc/passwd, /etc/group, /etc/hosts and nsswitch.conf: root and the one account it runs as,
    loopback by name, and no DNS (a workspace has no resolver; a worker reaches its scheduler by address)."""
    return {
        "passwd": "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
        f"{account}:x:{uid}:{gid}:{gecos}:{home}:{login_shell}\n",
        "group": f"root:x:0:\n{group}:x:{gid}:\n",
        "hosts": "127.0.0.1 localhost\n::1 localhost\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    }


@dataclass(frozen=True)
class SandboxLayout:
    """Everything one workspace's sandbox is made of; `argv(command)` is the command line that builds it."""

    project: str
    user: str
    uid: int
    gid: int
    env: Path  # the workspace environment (a venv)
    data: Path
    outputs: Path
    mlflow: Path
    home: Path
    run: Path  # host folder bound at /run/enclave (holds the server socket)
    etc: Path  # root-owned folder with the generated passwd, group and hosts files
    hub: Path | None = None  # host folder holding the hub's API socket, bound at /run/hub
    environment: dict[str, str] = field(default_factory=dict)
    python_home: Path | None = None  # the env's base interpreter, when it is not under /usr
    drop_privileges: bool = True  # False only in the insecure development mode (no root to drop from)

    @property
    def inside_home(self) -> str:
        return f"/home/{self.user}"

    @property
    def socket(self) -> Path:
        return self.run / "jupyter.sock"

    def etc_files(self) -> dict[str, str]:
        """The sandbox's own /etc/passwd, /etc/group and /etc/hosts: the project account under the user's name."""
        return etc_files(self.user, self.uid, self.gid, group=self.project, gecos=f"{self.user} ({self.project})",
                         home=self.inside_home, login_shell="/bin/bash")  # fmt: skip

    def write_etc(self) -> None:
        _write_etc(self.etc, self.etc_files())

    def mounts(self) -> list[str]:
        args = _host_view(self.etc, self.etc_files())
        args += _environment_mounts(self.env, self.python_home)
        args += ["--perms", "0755", "--dir", "/project"]
        args += ["--ro-bind", str(self.data.resolve()), INSIDE_DATA]
        args += ["--bind", str(self.outputs), INSIDE_OUTPUTS, "--bind", str(self.mlflow), INSIDE_MLFLOW]
        args += ["--perms", "0755", "--dir", "/home", "--bind", str(self.home), self.inside_home]
        args += ["--perms", "0755", "--dir", "/run", "--bind", str(self.run), INSIDE_RUN]
        if self.hub is not None:
            # read-only: connecting to a socket is allowed there, creating files is not
            args += ["--ro-bind", str(self.hub), INSIDE_HUB]
        return args

    def argv(
        self, command: list[str], *, bwrap: str = "bwrap", setpriv: str = "setpriv", seccomp_fd: int | None = None
    ) -> list[str]:
        """bwrap's command line running `command` in this sandbox, as the project account.

        The environment is not on it: a command line is readable by every account through /proc/PID/cmdline, and
        the environment holds the workspace's hub token. Start bwrap with `env=self.environment` instead (its
        /proc/PID/environ is readable by root alone), as `WorkspacePlan.launch` does. `seccomp_fd` is an open file
        holding the BPF program of hub/seccomp.py, loaded by bwrap just before it runs the command."""
        args = [bwrap, *NAMESPACES, "--die-with-parent", "--new-session", *self.mounts(), "--chdir", self.inside_home]
        if seccomp_fd is not None:
            args += ["--seccomp", str(seccomp_fd)]
        args.append("--")
        if self.drop_privileges:
            args += _drop_to(self.uid, self.gid, setpriv)
        return args + command

    def base_environment(self) -> dict[str, str]:
        """The environment every process in the workspace starts with (the spawner adds JupyterHub's)."""
        config = str(self.env / "etc" / "jupyter")
        return {
            "HOME": self.inside_home,
            "USER": self.user,
            "LOGNAME": self.user,
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
            "PATH": f"{self.env / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": str(self.env),
            "ENCLAVE_PROJECT": self.project,
            view_contract.ENV_VIEW: INSIDE_DATA,
            "ENCLAVE_OUTPUTS": INSIDE_OUTPUTS,
            "MLFLOW_TRACKING_URI": f"sqlite:///{INSIDE_MLFLOW}/mlflow.db",
            "ENCLAVE_MLFLOW_ARTIFACTS": f"{INSIDE_MLFLOW}/artifacts",
            "ENCLAVE_DASK_DASHBOARD": "127.0.0.1:8787",
            "ENCLAVE_RUN_DIR": INSIDE_RUN,  # the runtime folder: the server's socket and MLflow's, never a kernel's
            # Only the environment's Jupyter configuration counts: ~/.jupyter and /etc/jupyter are never read.
            "JUPYTER_CONFIG_DIR": config,
            "JUPYTER_CONFIG_PATH": config,
            "JUPYTER_PREFER_ENV_PATH": "1",
            "JUPYTER_DATA_DIR": f"{self.inside_home}/.local/share/jupyter",
            "JUPYTER_RUNTIME_DIR": f"{self.inside_home}/.local/share/jupyter/runtime",
            "JUPYTERLAB_SETTINGS_DIR": f"{self.inside_home}/.jupyter/lab/user-settings",
            "JUPYTERLAB_WORKSPACES_DIR": f"{self.inside_home}/.jupyter/lab/workspaces",
            "PYTHONNOUSERSITE": "1",
            "MPLCONFIGDIR": f"{self.inside_home}/.config/matplotlib",
        }


# A Dask worker's sandbox on a cluster node (clusters/): what it sees, beside the workspace's table above.
INSIDE_WORKER_SCRATCH = "/tmp"  # noqa: S108  the worker's spill folder and home: the sandbox's own tmpfs


@dataclass(frozen=True)
class WorkerSandbox:
    """The sandbox a Dask worker of a project's cluster runs in: the workspace's rules (namespaces, /usr and the
    workspace environment read-only, generated /etc, the project's view read-only at /project/data, setpriv to the
    project account, the same seccomp filter), with three differences:

    - it shares the node's network namespace: a worker must reach its scheduler and its peers (the host's egress
      rule for project accounts, provisioning/host.py, still holds for it there);
    - it has no home, outputs, MLflow store, runtime folder or hub socket: only /tmp, its private tmpfs, is writable;
    - `binds` are more host folders bound read-only at their own paths (the cluster's TLS folder), so a command line
      built on the host (dask-jobqueue's worker command) names the same files inside.

    `argv` starts nothing and writes nothing; `write_etc` writes the generated /etc files."""

    project: str
    account: str  # the project's Unix account name, as /etc/passwd inside names it
    uid: int
    gid: int
    env: Path  # the workspace environment (a venv)
    data: Path  # the project's build to bind at /project/data (pinned by the caller)
    etc: Path  # root-owned folder with the generated passwd, group, hosts and nsswitch.conf
    binds: tuple[Path, ...] = ()
    python_home: Path | None = None

    def etc_files(self) -> dict[str, str]:
        return etc_files(self.account, self.uid, self.gid, group=self.account, gecos=self.project,
                         home=INSIDE_WORKER_SCRATCH, login_shell="/usr/sbin/nologin")  # fmt: skip

    def write_etc(self) -> None:
        _write_etc(self.etc, self.etc_files())

    def mounts(self) -> list[str]:
        args = _host_view(self.etc, self.etc_files())
        args += _environment_mounts(self.env, self.python_home)
        for folder in self.binds:
            args += [*_parents(folder), "--ro-bind", str(folder), str(folder)]
        args += ["--perms", "0755", "--dir", "/project", "--ro-bind", str(self.data), INSIDE_DATA]
        return args

    def argv(
        self, command: list[str], *, bwrap: str = "bwrap", setpriv: str = "setpriv", seccomp_fd: int | None = None
    ) -> list[str]:
        """bwrap's command line running `command` as the project account in this sandbox (see
        `SandboxLayout.argv`: the environment goes in bwrap's own environment, never on this line)."""
        namespaces = [ns for ns in NAMESPACES if ns != "--unshare-net"]
        args = [bwrap, *namespaces, "--die-with-parent", "--new-session", *self.mounts()]
        args += ["--chdir", INSIDE_WORKER_SCRATCH]
        if seccomp_fd is not None:
            args += ["--seccomp", str(seccomp_fd)]
        return [*args, "--", *_drop_to(self.uid, self.gid, setpriv), *command]

    def environment(self) -> dict[str, str]:
        """The worker's whole environment: nothing of the job's or the submitter's reaches it."""
        return {
            "HOME": INSIDE_WORKER_SCRATCH,
            "USER": self.account,
            "LOGNAME": self.account,
            "LANG": "C.UTF-8",
            "PATH": f"{self.env / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": str(self.env),
            "ENCLAVE_PROJECT": self.project,
            view_contract.ENV_VIEW: INSIDE_DATA,
            "PYTHONNOUSERSITE": "1",
            "MPLCONFIGDIR": f"{INSIDE_WORKER_SCRATCH}/.config/matplotlib",
        }


def _parents(path: Path) -> list[str]:
    """bwrap creates missing parents of a mount point root-only (0700); make them traversable instead."""
    args: list[str] = []
    for parent in reversed(path.parents):
        if str(parent) in ("/", "/usr") or str(parent).startswith("/usr/"):
            continue
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _host_view(etc: Path, etc_files: dict[str, str]) -> list[str]:
    """bwrap arguments every sandbox starts from: the host's programs read-only, a new /proc and /dev, empty /tmp and
    /dev/shm, and an /etc holding only the generated files in `etc` and the few host files of `HOST_ETC`."""
    args = system_mounts()
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--perms", "1777", "--tmpfs", "/tmp", "--perms", "1777", "--tmpfs", "/dev/shm"]  # noqa: S108
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in etc_files:
        args += ["--ro-bind", str(etc / name), f"/etc/{name}"]
    for name in HOST_ETC:
        if (Path("/etc") / name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    return args


def _environment_mounts(env: Path, python_home: Path | None) -> list[str]:
    """The workspace environment (and the interpreter it was made from) read-only at their host paths."""
    args: list[str] = []
    for source in (python_home, env):
        if source is not None:
            args += [*_parents(source), "--ro-bind", str(source), str(source)]
    return args


def _drop_to(uid: int, gid: int, setpriv: str) -> list[str]:
    """setpriv's arguments: setresuid/setresgid to the project account, no supplementary groups, every capability
    gone from the inheritable and bounding sets, and no_new_privs so no setuid binary can bring one back."""
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
            "--no-new-privs", "--"]  # fmt: skip


def _write_etc(etc: Path, files: dict[str, str]) -> None:
    etc.mkdir(parents=True, exist_ok=True, mode=0o755)
    for name, text in files.items():
        target = etc / name
        target.write_text(text)
        target.chmod(0o644)


def layout(
    paths: Paths,
    project: str,
    user: str,
    *,
    uid: int,
    gid: int,
    environment: dict[str, str] | None = None,
    drop_privileges: bool = True,
    socket_root: Path = SOCKET_ROOT,
    hub_socket_root: Path | None = HUB_SOCKET_ROOT,
    instance: str = "",
) -> SandboxLayout:
    """The sandbox of `user`'s workspace in `project` for this installation. `instance` names a sandbox of its own
    beside the workspace (a batch run: its own socket folder, /etc files and control group); `hub_socket_root`
    None binds no hub socket folder (a batch run needs no hub)."""
    wid = workspace_id(paths, project, user) + (f"-{instance}" if instance else "")
    env = paths.workspace_env
    sandbox = SandboxLayout(
        project=project,
        user=user,
        uid=uid,
        gid=gid,
        env=env,
        data=paths.project_data(project),
        outputs=paths.project_outputs(project),
        mlflow=paths.project_mlflow(project),
        home=paths.project_home(project, user),
        run=socket_root / wid,
        etc=paths.hub / "sandbox-etc" / wid,
        hub=hub_socket(paths, hub_socket_root).parent if hub_socket_root is not None else None,
        python_home=base_python_home(env),
        drop_privileges=drop_privileges,
    )
    return replace(sandbox, environment={**sandbox.base_environment(), **(environment or {})})
