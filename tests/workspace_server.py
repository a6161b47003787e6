"""Test helper: a real Jupyter server from the workspace environment (images/), started the way a sandbox starts
it: as an unprivileged account (`nobody` when the tests run as root), with only the environment's Jupyter config
(JUPYTER_CONFIG_DIR/PATH, PYTHONNOUSERSITE), a scratch home, a token, on a free loopback port. The home holds
Jupyter config a user could write (~/.jupyter, ~/.local/etc/jupyter, the server's working folder) trying to switch
the hardening off. Used by tests/integration/test_workspace_server.py, tests/integration/test_workspace_routes.py and
tests/functional/test_workspace_lab.py."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
DOWNLOAD_PLUGIN = "@jupyterlab/filebrowser-extension:download"

# What a user might put in their own Jupyter config to undo the hardening.
USER_CONFIG_PY = """
c.ServerApp.jpserver_extensions = {"enclave_workspace": False}
c.ServerApp.contents_manager_class = "jupyter_server.services.contents.largefilemanager.AsyncLargeFileManager"
c.ServerProxy.servers = {"evil": {"port": 9}}
c.ServerProxy.host_allowlist = ["localhost", "127.0.0.1"]
c.LabApp.extension_manager = "pypi"
c.LabApp.lock_all_plugins = False
"""
USER_CONFIG_JSON = {
    "ServerApp": {
        "jpserver_extensions": {"enclave_workspace": False},
        "contents_manager_class": "jupyter_server.services.contents.largefilemanager.AsyncLargeFileManager",
    },
    "ServerProxy": {"servers": {"evil": {"port": 9}}},
}
USER_PAGE_CONFIG = {"disabledExtensions": {DOWNLOAD_PLUGIN: False}, "lockedExtensions": {DOWNLOAD_PLUGIN: False}}


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Workspace:
    url: str
    token: str
    home: Path
    env: Path
    dask_address: str
    run_as: list[str]
    environ: dict[str, str]
    log: Path | None = None  # the server's output (the first server started from this workspace)
    base_url: str = "/"  # `url` ends with it (without its last slash)

    def server_command(self, port: int) -> list[str]:
        as_root = ["--ServerApp.allow_root=True"] if os.geteuid() == 0 and not self.run_as else []
        return [
            *self.run_as,
            str(self.env / "bin" / "jupyter-server"),
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.home}",
            f"--ServerApp.base_url={self.base_url}",
            *as_root,
        ]

    def request(
        self, method: str, path: str, body: object = None, *, token: bool = True, headers: dict | None = None
    ) -> Answer:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if token:
            hdrs["Authorization"] = f"token {self.token}"
        req = urllib.request.Request(self.url + path, data=data, headers=hdrs, method=method)
        try:
            with urllib.request.urlopen(req, timeout=150) as resp:
                return Answer(resp.status, resp.read(), dict(resp.headers))
        except urllib.error.HTTPError as err:
            return Answer(err.code, err.read(), dict(err.headers))

    def upload(self, name: str, content: bytes, **extra: object) -> Answer:
        model = {"type": "file", "format": "base64", "content": base64.b64encode(content).decode(), **extra}
        return self.request("PUT", f"/api/contents/{name}", model)

    def page_config(self) -> dict:
        page = self.request("GET", "/lab").body.decode()
        found = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S)
        assert found, "no page config in /lab"
        return json.loads(found.group(1))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unprivileged(env: Path) -> tuple[list[str], int, int]:
    """The command prefix and account the server runs as: `nobody` when the tests run as root, as a project account
    runs it (which also proves the environment world-readable); root itself only when the environment's parent
    folders keep other accounts out (a sandbox mounts the environment on fresh parents, so that is no fault)."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid()
    if not all(os.stat(p).st_mode & 0o001 for p in [env, *env.parents]):
        return [], 0, 0
    nobody = pwd.getpwnam("nobody")
    setpriv = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
    return setpriv, nobody.pw_uid, nobody.pw_gid


def _plant_user_config(home: Path) -> list[Path]:
    planted = {
        home / ".jupyter" / "jupyter_server_config.py": USER_CONFIG_PY,
        home / "jupyter_server_config.py": USER_CONFIG_PY,  # the server's working folder
        home / ".jupyter" / "jupyter_server_config.d" / "evil.json": json.dumps(USER_CONFIG_JSON),
        home / ".local" / "etc" / "jupyter" / "jupyter_server_config.json": json.dumps(USER_CONFIG_JSON),
        home / ".jupyter" / "labconfig" / "page_config.json": json.dumps(USER_PAGE_CONFIG),
    }
    for path, text in planted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(planted)


def _wait_until_up(ws: Workspace, proc: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the workspace server exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            if ws.request("GET", "/api/status").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the workspace server did not answer in {seconds:.0f} s:\n{log.read_text()[-4000:]}")


def start_server(ws: Workspace, port: int, log: Path) -> tuple[Workspace, subprocess.Popen]:
    """Start `ws`'s server on `port` (logging to `log`) and wait until it answers."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ws.server_command(port),
            env=ws.environ,
            cwd=ws.home,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    serving = dataclasses.replace(ws, url=f"http://127.0.0.1:{port}{ws.base_url.rstrip('/')}")
    try:
        _wait_until_up(serving, proc, log)
    except BaseException:
        stop_server(proc)
        raise
    return serving, proc


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM to the server (it stops the processes it supervises, MLflow included), then its whole group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@contextlib.contextmanager
def running_workspace(workspace_env: Path, base_url: str = "/") -> Iterator[Workspace]:
    """A workspace server from `workspace_env` under `base_url` (a hub serves one under /user/NAME/SERVER/), stopped
    (with what it started) and cleaned up on exit."""
    run_as, uid, gid = _unprivileged(workspace_env)
    root = Path(tempfile.mkdtemp(prefix="enclave-workspace-test-"))
    try:
        os.chmod(root, 0o755)
        home = root / "home"
        (root / "mlflow" / "artifacts").mkdir(parents=True)
        (root / "run").mkdir()  # the runtime folder, /run/enclave in a sandbox (MLflow's socket)
        home.mkdir()
        _plant_user_config(home)
        for folder, dirs, files in os.walk(root):
            for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                os.chown(name, uid, gid)
        port, dask_port = free_port(), free_port()
        environ = {
            "PATH": f"{workspace_env / 'bin'}:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(home),
            "JUPYTER_CONFIG_DIR": str(workspace_env / "etc" / "jupyter"),
            "JUPYTER_CONFIG_PATH": str(workspace_env / "etc" / "jupyter"),
            "JUPYTER_PREFER_ENV_PATH": "1",
            "JUPYTER_DATA_DIR": str(home / ".local" / "share" / "jupyter"),
            "JUPYTER_RUNTIME_DIR": str(home / ".local" / "share" / "jupyter" / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(home / ".jupyter" / "lab" / "user-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / ".jupyter" / "lab" / "workspaces"),  # as hub/sandbox.py sets it
            "PYTHONNOUSERSITE": "1",
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
            "ENCLAVE_MLFLOW_ARTIFACTS": str(root / "mlflow" / "artifacts"),
            "ENCLAVE_DASK_DASHBOARD": f"127.0.0.1:{dask_port}",
            "ENCLAVE_RUN_DIR": str(root / "run"),
            "JUPYTER_TOKEN": base64.b32encode(os.urandom(15)).decode(),
        }
        ws = Workspace(
            url=f"http://127.0.0.1:{port}{base_url.rstrip('/')}",
            token=environ["JUPYTER_TOKEN"],
            home=home,
            env=workspace_env,
            dask_address=environ["ENCLAVE_DASK_DASHBOARD"],
            run_as=run_as,
            environ=environ,
            base_url=base_url,
        )
        ws.log = root / "server.log"
        _serving, proc = start_server(ws, port, ws.log)
        try:
            yield ws
        finally:
            stop_server(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)
