"""Test helper: a real JupyterHub with configurable-http-proxy, started in its own process group on loopback ports
and stopped with everything it started (the proxy, managed services)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
CHP = REPO / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
JUPYTERHUB = Path(sys.executable).with_name("jupyterhub")
XSRF = re.compile(r'name="_xsrf" value="([^"]+)"')
NO_CHP = f"no configurable-http-proxy at {CHP.relative_to(REPO)}: `make {CHP.relative_to(REPO)}` builds it (npm ci)"


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the hub (it stops the service and the proxy), then to its whole process group, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        if proc.poll() is None:
            proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
        try:
            os.killpg(proc.pid, sig)  # whatever is left of the group: the proxy, the service
        except ProcessLookupError:
            break
        time.sleep(0.5)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def tail(log: Path, n: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-n:]) if log.exists() else ""


def wait_for(url: str, proc: subprocess.Popen, log: Path, deadline: float) -> None:
    while True:
        if proc.poll() is not None:
            pytest.fail(f"jupyterhub exited ({proc.returncode}):\n{tail(log)}")
        try:
            if requests.get(url, timeout=5, allow_redirects=False).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer in time:\n{tail(log)}")
        time.sleep(0.5)


def loopback_config(tmp: Path, *, public: int, hub: int, proxy_api: int) -> str:
    """The part of a test hub's jupyterhub_config.py every test shares: loopback ports, this project's proxy,
    state in `tmp`, no spawning. A test appends its authenticator, roles and services."""
    return f"""\
c = get_config()
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {public}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub}
c.ConfigurableHTTPProxy.command = [{str(CHP)!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.ConfigurableHTTPProxy.pid_file = {str(tmp / "proxy.pid")!r}
c.JupyterHub.pid_file = {str(tmp / "hub.pid")!r}
c.JupyterHub.db_url = "sqlite:///{tmp / "jupyterhub.sqlite"}"
c.JupyterHub.cookie_secret_file = {str(tmp / "cookie_secret")!r}
c.JupyterHub.spawner_class = "simple"  # nobody spawns a server in these tests
"""


@contextlib.contextmanager
def running_hub(
    tmp: Path, config: Path, ready: list[str], timeout: float = 90
) -> Iterator[tuple[subprocess.Popen, Path]]:
    """Start `jupyterhub -f config` in `tmp`; yield once every URL in `ready` answers 200; stop it all after."""
    log = tmp / "jupyterhub.log"
    hub_env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "CONFIGPROXY_"))}
    with log.open("wb") as out:
        proc = subprocess.Popen([str(JUPYTERHUB), "-f", str(config)], cwd=tmp, env=hub_env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        for url in ready:
            wait_for(url, proc, log, deadline)
        yield proc, log
    finally:
        stop(proc)
    assert not group_alive(proc.pid), f"processes of the hub's group outlived it:\n{tail(log)}"


def login_form(url: str, data: dict[str, str]) -> tuple[requests.Session, requests.Response]:
    """POST the hub's login form (with its XSRF token) as a browser would."""
    http = requests.Session()
    xsrf = XSRF.search(http.get(f"{url}/hub/login", timeout=30).text).group(1)
    response = http.post(f"{url}/hub/login", data={**data, "_xsrf": xsrf}, timeout=30, allow_redirects=False)
    return http, response
