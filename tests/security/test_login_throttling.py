"""Red team: wrong passwords cannot be turned into a lock-out. Against a real JupyterHub (configurable-http-proxy in
front, Enclave's authenticator, a real registry), an attacker who does not know carol's password hammers her
login from one loopback address; carol still logs in with her password and code from another, while the attacker's
source is refused at once with 429, before any password is checked, whatever forwarding headers it sends. On the
hub's Unix socket a kernel is its own source (its Unix account), whatever it forwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pyotp
import pytest
import requests
from requests.adapters import HTTPAdapter
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_unix_socket

from hub import accounts, throttle
from hub.authenticator import client_source
from kernel import audit
from kernel.config import Paths
from kernel.db import Registry
from tests.hub_runner import CHP, NO_CHP, XSRF, free_ports, loopback_config, running_hub

pytestmark = [pytest.mark.security, pytest.mark.timeout(180)]
PASSWORD = "carol's long enough password"
ERROR = re.compile(r'<p class="login_error">([^<]*)</p>')
ATTACKER, CAROL = "127.0.0.1", "127.0.0.2"  # two loopback sources; the hub's proxy listens on 127.0.0.1


class FromAddress(HTTPAdapter):
    """Connections from one local address, as a second client machine would."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def client(address: str) -> requests.Session:
    http = requests.Session()
    http.mount("http://", FromAddress(address))
    return http


def post_login(http: requests.Session, url: str, data: dict[str, str], **headers: str) -> requests.Response:
    xsrf = XSRF.search(http.get(f"{url}/hub/login", headers=headers, timeout=30).text).group(1)
    return http.post(f"{url}/hub/login", data={**data, "_xsrf": xsrf}, headers=headers, timeout=30,
                     allow_redirects=False)  # fmt: skip


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub-throttle")
    home = tmp / "home"
    registry = Registry(Paths(home).database_url)
    with registry.session() as session:
        enrolment = accounts.add_account(session, "carol", PASSWORD, actor="test-admin")
    public, hub_port, api = free_ports(3)
    config = tmp / "jupyterhub_config.py"
    config.write_text(
        loopback_config(tmp, public=public, hub=hub_port, proxy_api=api)
        + f'c.JupyterHub.authenticator_class = "enclave"\nc.EnclaveAuthenticator.enclave_home = {str(home)!r}\n'
    )
    url = f"http://127.0.0.1:{public}"
    with running_hub(tmp, config, [f"{url}/hub/health"]):
        yield url, enrolment.secret, registry
    registry.close()


@pytest.mark.skipif(not CHP.exists(), reason=NO_CHP)
def test_a_guesser_cannot_lock_carol_out_and_is_throttled_itself(hub):
    url, secret, registry = hub
    attacker = client(ATTACKER)
    wrong = {"username": "carol", "password": "a guess that is wrong", "otp": pyotp.TOTP(secret).now()}
    free = throttle.POLICY[0].free
    for _ in range(free):
        assert post_login(attacker, url, wrong).status_code == 403  # checked, and wrong

    # more guesses are refused before checking, however the attacker names itself in forwarding headers
    for n in range(3):
        spoofed = {"X-Real-Ip": f"10.9.8.{n}", "X-Forwarded-For": f"10.9.{n}.7, 10.9.{n}.8"}
        refused = post_login(client(ATTACKER), url, wrong, **spoofed)
        assert refused.status_code == 429
        wait = int(refused.headers["Retry-After"])
        assert 0 < wait <= 30
        # the login form's message names neither the account nor any state of it (the form keeps what was typed)
        assert ERROR.findall(refused.text) == [f"Too many login attempts from here: try again in {wait} s."]
    # even her right password from there is refused, unchecked (the attacker learns nothing from it)
    right = {"username": "carol", "password": PASSWORD, "otp": pyotp.TOTP(secret).now()}
    assert post_login(attacker, url, right).status_code == 429

    # carol, from her own machine, logs in with her password and code
    carol = client(CAROL)
    ok = post_login(carol, url, right)
    assert ok.status_code == 302, ok.text[-500:]
    xsrf = {"X-XSRFToken": carol.cookies.get("_xsrf", "")}
    assert carol.get(f"{url}/hub/api/user", headers=xsrf, timeout=30).json()["name"] == "carol"

    with registry.session() as session:
        events = [e for e in audit.events(session, actor="carol") if e.action.startswith("user.login")]
    sources = {(e.action, e.detail.get("source")) for e in events}
    assert sources == {("user.login_failed", ATTACKER), ("user.login_throttled", ATTACKER), ("user.login", CAROL)}


ASK = """\
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"GET / HTTP/1.0\\r\\nX-Forwarded-For: 10.1.2.3, 10.4.5.6\\r\\nX-Real-Ip: 10.7.8.9\\r\\n\\r\\n")
print(b"".join(iter(lambda: s.recv(4096), b"")).split(b"\\r\\n\\r\\n", 1)[1].decode())
"""


@contextlib.contextmanager
def socket_server(path: Path):
    """A tornado server on a Unix socket that any account may connect to, trusting forwarding headers as JupyterHub's
    does (xheaders), and answering each request with the source the authenticator would name."""

    class Source(web.RequestHandler):
        def get(self):
            self.write(client_source(self.request))

    ready, done = threading.Event(), threading.Event()

    async def serve():
        server = HTTPServer(web.Application([("/", Source)]), xheaders=True)
        server.add_socket(bind_unix_socket(str(path), mode=0o666))
        ready.set()
        await asyncio.to_thread(done.wait)
        server.stop()

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    try:
        assert ready.wait(30)
        yield
    finally:
        done.set()
        thread.join(30)


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/python3").exists(), reason="needs root to be another uid")
def test_on_the_hubs_socket_a_kernels_account_is_its_own_source_whatever_it_forwards():
    folder = Path(tempfile.mkdtemp(prefix="enclave-hub-socket-"))
    try:
        folder.chmod(0o755)
        path = folder / "hub.sock"
        with socket_server(path):
            ask = ["/usr/bin/python3", "-I", "-c", ASK, str(path)]
            kernel = subprocess.run(ask, user=65534, group=65534, extra_groups=[], capture_output=True, text=True,
                                    timeout=30, check=True)  # fmt: skip
            proxy = subprocess.run(ask, capture_output=True, text=True, timeout=30, check=True)
        assert kernel.stdout.strip() == "unix:65534", "a kernel's forwarding headers are not believed"
        assert proxy.stdout.strip() == "10.4.5.6", "the hub's own account (the proxy): its appended hop, not X-Real-Ip"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
