"""Starting, watching and stopping an installation's JupyterHub (what `enclave up | down | status` do).

The hub runs `jupyterhub -f hub/jupyterhub_config.py` in its own session, with its state, log and pid files in
`Paths.hub`; it starts the proxy and the airlock service and, on SIGTERM, stops every workspace, the service and the
proxy before it exits. `up` returns once the hub answers its health check; `down` sends SIGTERM and waits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from hub import limits, oidc_settings, sandbox
from hub.config import HubSettings
from hub.origins import OFF
from kernel.config import Paths
from kernel.errors import EnclaveError

CONFIG = Path(__file__).with_name("jupyterhub_config.py")
JUPYTERHUB = Path(sys.executable).with_name("jupyterhub")


@dataclass(frozen=True)
class HubStatus:
    pid: int | None
    healthy: bool
    url: str  # what a person opens
    workspaces: list[tuple[str, str]]  # (project, user) with a live server socket

    @property
    def running(self) -> bool:
        return self.pid is not None


def hub_environment(settings: HubSettings) -> dict[str, str]:
    """The hub's environment: this one, less anything JupyterHub would take as its own, plus the settings. With OIDC,
    JUPYTERHUB_CRYPT_KEY from its root-only file (here only: never on a command line, never logged)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "CONFIGPROXY_"))}
    if settings.oidc is not None:
        env.update(settings.oidc.environment())
        env["JUPYTERHUB_CRYPT_KEY"] = oidc_settings.crypt_key(settings.oidc)
    env.update(
        ENCLAVE_HOME=str(settings.home),
        ENCLAVE_HUB_IP=settings.ip,
        ENCLAVE_HUB_PORT=str(settings.port),
        ENCLAVE_PROXY_API_PORT=str(settings.proxy_api_port),
        ENCLAVE_AIRLOCK_PORT=str(settings.airlock_port),
        ENCLAVE_SUBDOMAIN_HOST=settings.subdomain_host or OFF,  # unset would mean the default, not one origin
    )
    return env


def ensure_hub_state(paths: Paths) -> None:
    """The hub's state folder (root only) and the folder of its API socket (traversable by workspaces)."""
    paths.hub.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths.hub.chmod(0o700)
    socket_dir = sandbox.hub_socket(paths).parent
    socket_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    socket_dir.chmod(0o755)


def ensure_workspace_ceiling() -> None:
    """The memory and CPU ceiling of all workspaces together (hub/limits.py), set before any of them starts, so
    they can never take what the hub, the proxy, the airlock and the OS need."""
    if os.geteuid() != 0:
        return  # no workspace is limited without root (the insecure development mode says so loudly)
    try:
        limits.ensure_ceiling()
    except limits.CgroupError as exc:
        raise EnclaveError(f"cannot reserve memory and CPU for Enclave's own services: {exc}") from exc


def read_pid(paths: Paths) -> int | None:
    """The hub's pid from its pid file, if that process is alive."""
    try:
        pid = int((paths.hub / "jupyterhub.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/hub/health", timeout=2) as response:  # noqa: S310 (our own loopback URL)
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def check_secrets(settings: HubSettings) -> None:
    """EnclaveError, saying what to do, when a secret the hub's sign-in needs is missing or unsafe: with OIDC, the
    crypt key and the client secret (`enclave up` asks this before it touches the host)."""
    if settings.oidc is not None:
        oidc_settings.crypt_key(settings.oidc)
        oidc_settings.read_secret(settings.oidc.client_secret_file)


def start(settings: HubSettings, *, timeout: float = 120) -> subprocess.Popen:
    """Start the hub and return once it answers; EnclaveError (with the log's tail) if it exits or never answers."""
    paths = Paths(settings.home)
    check_secrets(settings)
    if (pid := read_pid(paths)) is not None:
        raise EnclaveError(
            f"Enclave is already running (hub pid {pid}) at {settings.public_url}; `enclave down` stops it"
        )
    ensure_hub_state(paths)
    ensure_workspace_ceiling()
    log = paths.hub / "jupyterhub.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(JUPYTERHUB), "-f", str(CONFIG)],
            cwd=paths.hub,
            env=hub_environment(settings),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches it only through `enclave`, which stops it in order
        )
    deadline = time.monotonic() + timeout
    while not healthy(settings.url):
        if process.poll() is not None:
            raise EnclaveError(f"the hub exited ({process.returncode}); its log {log} ends:\n{tail(log)}")
        if time.monotonic() > deadline:
            stop_process(process.pid)
            raise EnclaveError(f"the hub did not answer at {settings.url} within {timeout:.0f} s; see {log}")
        time.sleep(0.25)
    return process


def stop_process(pid: int, timeout: float = 60) -> bool:
    """SIGTERM to the hub (it stops workspaces, the service and the proxy), SIGKILL to its group if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)  # anything of its session left behind (the proxy, the service)
    return True


def stop(paths: Paths, timeout: float = 60) -> int | None:
    """Stop the running hub of this installation; its pid, or None when none was running."""
    pid = read_pid(paths)
    if pid is not None:
        stop_process(pid, timeout)
    remove_runtime(paths)
    return pid


def remove_runtime(paths: Paths) -> None:
    """What a stopped hub leaves in /run: its socket's folder (its workspaces' folders go as each one stops)."""
    shutil.rmtree(sandbox.hub_socket(paths).parent, ignore_errors=True)


def status(settings: HubSettings, members: dict[str, list[str]]) -> HubStatus:
    """Whether the hub runs and answers, and which workspaces (of `members`: project -> researchers) are up."""
    paths = Paths(settings.home)
    running = []
    for project, users in sorted(members.items()):
        for user in sorted(users):
            run = sandbox.SOCKET_ROOT / sandbox.workspace_id(paths, project, user)
            if (run / "jupyter.sock").is_socket():
                running.append((project, user))
    pid = read_pid(paths)
    return HubStatus(
        pid=pid, healthy=pid is not None and healthy(settings.url), url=settings.public_url, workspaces=running
    )


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(FileNotFoundError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""
