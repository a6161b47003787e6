"""Test helper: a real Enclave (JupyterHub, configurable-http-proxy, the airlock service, sandboxed workspaces) on
loopback ports, provisioned through the real steps, and people using it the way a browser does.

`running_enclave(tmp)` provisions a small demo cohort, the demo project (alice and bob researchers, carol and dave
output checkers) and a second project `echo-study` where alice is a researcher, applies the host rules (project
accounts, folders, an nftables table of the test's own name), starts the hub with `hub.lifecycle.start` and stops
everything after. Like the product's default, the hub is on `http://localhost:PORT`, each person's workspaces on
`http://NAME.localhost:PORT` and the airlock on `http://airlock--service.localhost:PORT` (hub/origins.py; the test
process resolves these names as browsers do, tests/conftest.py); `subdomains=False` gives one origin,
`http://127.0.0.1:PORT`. `Person` logs in with password + TOTP, spawns and stops workspaces through the hub's REST
API with the browser's cookies and XSRF token, and runs code in a workspace's kernel over its websocket, as
JupyterLab does, each request carrying the cookies of its own origin only.

Root only (workspaces run as project accounts in bubblewrap); tests using it skip with the reason otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from hub import lifecycle
from hub.config import HubSettings
from kernel.config import Paths
from provisioning import steps
from provisioning.host import ensure_host, remove_egress_rules
from provisioning.storage import release_all_under
from tests.hub_runner import CHP, XSRF, free_ports
from tests.provisioned import spec_file
from tests.workspace_env import workspace_env

SECOND_PROJECT = "echo-study"
SECOND_BUDGET = "4MiB"  # a small hourly browser budget, so tests can spend it (tests/security/test_browser_budget.py)
DEMO = "cardio-risk"

needs_enclave = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("bwrap") or not CHP.exists() or not (workspace_env() / "bin").exists(),
    reason="needs root, bubblewrap, the proxy (make hub/node_modules/.bin/configurable-http-proxy) and the "
    "workspace environment (make .workspace): workspaces run as project accounts in bubblewrap",
)


@dataclass
class RunningEnclave:
    paths: Paths
    settings: HubSettings
    passwords: dict[str, str]
    egress_table: str
    people: dict[str, Person] = field(default_factory=dict)
    used_codes: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The hub's address, as a person opens it (its cookies are on this name)."""
        return self.settings.public_url

    def origin(self, user: str) -> str:
        """Where `user`'s workspaces are served: `http://USER.localhost:PORT`, or the hub's address on one origin."""
        return self._subdomain(user)

    @property
    def airlock(self) -> str:
        """Where the airlock is served: `http://airlock--service.localhost:PORT`, or the hub's address."""
        return self._subdomain("airlock--service")

    def _subdomain(self, name: str) -> str:
        # JupyterHub's default ("idna") subdomain hook: NAME.HOST for a person, NAME--service.HOST for a service
        if not self.settings.subdomain_host:
            return self.url
        scheme, netloc = self.settings.subdomain_host.split("://", 1)
        return f"{scheme}://{name}.{netloc}"

    def person(self, name: str) -> Person:
        """`name`, logged in (once per test session of this Enclave)."""
        if name not in self.people:
            self.people[name] = Person.log_in(self, name)
        return self.people[name]

    def totp(self, user: str) -> str:
        """`user`'s current code, as their authenticator app shows it; a fresh one if the last was used (the hub
        refuses a replayed code), which can mean waiting for the next 30-second step."""
        from hub import accounts
        from kernel.db import Registry

        registry = Registry(self.paths.database_url)
        try:
            while True:
                with registry.session() as session:
                    code = accounts.current_code(session, user)
                if code != self.used_codes.get(user):
                    self.used_codes[user] = code
                    return code
                time.sleep(1)
        finally:
            registry.close()


def localhost_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


class BrowserCookiePolicy(DefaultCookiePolicy):
    """Cookies matched to `localhost` names as a browser matches them (RFC 6265): http.cookiejar takes a host with no
    dot for `HOST.local`, so it refuses the session cookie JupyterHub sets with `domain=localhost` and never sends it
    back; and a host-only cookie goes to its own host alone, never to a subdomain. Other names: the default."""

    def __init__(self) -> None:
        super().__init__(strict_ns_domain=DefaultCookiePolicy.DomainStrictNonDomain)

    def set_ok_domain(self, cookie, request) -> bool:
        host = urlsplit(request.get_full_url()).hostname or ""
        if localhost_name(host) and cookie.domain_specified:
            return domain_match(host, cookie.domain)
        return super().set_ok_domain(cookie, request)

    def domain_return_ok(self, domain, request) -> bool:
        if localhost_name(urlsplit(request.get_full_url()).hostname or ""):
            return True  # return_ok_domain decides, cookie by cookie
        return super().domain_return_ok(domain, request)

    def return_ok_domain(self, cookie, request) -> bool:
        host = urlsplit(request.get_full_url()).hostname or ""
        if not localhost_name(host):
            return super().return_ok_domain(cookie, request)
        if cookie.domain_specified:
            return domain_match(host, cookie.domain)
        return cookie.domain in (host, f"{host}.local")  # how http.cookiejar stores a dotless host's own cookies


def domain_match(host: str, domain: str) -> bool:
    domain = domain.lstrip(".")
    return host == domain or host.endswith(f".{domain}")


class BrowserSession(requests.Session):
    """A `requests` session whose cookies behave as a browser's on `localhost` names (BrowserCookiePolicy)."""

    def __init__(self) -> None:
        super().__init__()
        self.cookies.set_policy(BrowserCookiePolicy())

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        prepared = super().prepare_request(request)
        # requests merges the session's cookies into a new jar of the default policy; choose them again with ours
        # (redirects copy the jar with its policy)
        prepared._cookies.set_policy(self.cookies.get_policy())
        prepared.headers.pop("Cookie", None)
        prepared.prepare_cookies(prepared._cookies)
        return prepared


def cookie_header(http: requests.Session, url: str) -> str:
    """The `Cookie` header `http` sends to `url`: that origin's and path's cookies only (for websockets, which
    requests does not open)."""
    return requests.cookies.get_cookie_header(http.cookies, requests.Request("GET", url)) or ""


def cookie_for(http: requests.Session, url: str, name: str) -> str:
    """The value of cookie `name` that `http` sends to `url`, or ""."""
    for pair in cookie_header(http, url).split("; "):
        key, _, value = pair.partition("=")
        if key == name:
            return value
    return ""


@dataclass
class Person:
    enclave: RunningEnclave
    name: str
    http: requests.Session

    @classmethod
    def log_in(cls, enclave: RunningEnclave, name: str) -> Person:
        http = BrowserSession()
        page = http.get(f"{enclave.url}/hub/login", timeout=30)
        xsrf = XSRF.search(page.text).group(1)
        data = {"username": name, "password": enclave.passwords[name], "otp": enclave.totp(name), "_xsrf": xsrf}
        response = http.post(f"{enclave.url}/hub/login", data=data, timeout=30, allow_redirects=False)
        assert response.status_code == 302, f"{name} could not log in: {response.status_code}"
        return cls(enclave, name, http)

    def hub_xsrf(self) -> dict[str, str]:
        return {"X-XSRFToken": cookie_for(self.http, f"{self.enclave.url}/hub/", "_xsrf")}

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        """The hub's REST API as the browser calls it: session cookie plus XSRF header."""
        return self.http.request(
            method, f"{self.enclave.url}/hub/api{path}", headers=self.hub_xsrf(), timeout=60, **kwargs
        )

    def spawn(self, project: str, timeout: float = 180) -> float:
        """Start this person's workspace for `project` through the REST API; seconds until the hub says ready."""
        started = time.monotonic()
        self.request_spawn(project)
        self.wait_ready(project, started + timeout)
        return time.monotonic() - started

    def request_spawn(self, project: str) -> None:
        response = self.api("POST", f"/users/{self.name}/servers/{project}")
        assert response.status_code in (201, 202), f"spawn refused: {response.status_code} {response.text[:300]}"

    def wait_ready(self, project: str, deadline: float) -> None:
        while True:
            server = self.api("GET", f"/users/{self.name}").json().get("servers", {}).get(project)
            if server and server.get("ready"):
                return
            if server is None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name}'s {project} workspace did not become ready: {server}")
            time.sleep(0.1)

    def stop(self, project: str) -> None:
        response = self.api("DELETE", f"/users/{self.name}/servers/{project}")
        assert response.status_code in (202, 204), response.text
        deadline = time.monotonic() + 60
        while self.api("GET", f"/users/{self.name}").json().get("servers", {}).get(project):
            assert time.monotonic() < deadline, "the workspace did not stop"
            time.sleep(0.1)

    @property
    def origin(self) -> str:
        """Where this person's workspaces are served (their own origin, with subdomains)."""
        return self.enclave.origin(self.name)

    def server(self, project: str) -> str:
        return f"{self.origin}/user/{self.name}/{project}"

    def open_workspace(self, project: str) -> requests.Response:
        """GET the workspace (following the hub's OAuth redirects), so its own cookies are set, as in a browser."""
        return self.http.get(f"{self.server(project)}/lab", timeout=60)

    def server_xsrf(self, project: str) -> dict[str, str]:
        return {"X-XSRFToken": cookie_for(self.http, f"{self.server(project)}/", "_xsrf")}

    def cookie_header(self, url: str) -> str:
        """The cookies this person's browser sends to `url`."""
        return cookie_header(self.http, url)

    def workspace(self, method: str, project: str, path: str, **kwargs) -> requests.Response:
        """A request to the workspace's own server (its REST API, /files, /nbconvert...)."""
        headers = {**self.server_xsrf(project), **kwargs.pop("headers", {})}
        return self.http.request(method, f"{self.server(project)}{path}", headers=headers, timeout=60, **kwargs)

    def execute(self, project: str, code: str, timeout: float = 120) -> str:
        """Run `code` in a new kernel of the workspace, as JupyterLab would; its stdout (raises on an error)."""
        with self.kernel(project) as run:
            return run(code, timeout)

    @contextlib.contextmanager
    def kernel(self, project: str) -> Iterator[Callable[[str, float], str]]:
        """A kernel in the workspace for the block: yields `run(code, timeout) -> stdout`; shut down after."""
        self.open_workspace(project)
        started = self.workspace("POST", project, "/api/kernels", json={"name": "python3"})
        assert started.status_code == 201, started.text
        kernel = started.json()["id"]
        try:
            yield lambda code, timeout=120: asyncio.run(self._execute(project, kernel, code, timeout))
        finally:
            self.workspace("DELETE", project, f"/api/kernels/{kernel}")

    async def _execute(self, project: str, kernel: str, code: str, timeout: float) -> str:
        url = f"{self.server(project)}/api/kernels/{kernel}/channels"
        headers = {"Cookie": self.cookie_header(url), **self.server_xsrf(project)}
        request = HTTPRequest(url.replace("http://", "ws://"), headers=headers)
        ws = await websocket_connect(request)
        msg_id = uuid.uuid4().hex
        ws.write_message(
            json.dumps(
                {
                    "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": uuid.uuid4().hex,
                               "username": self.name, "version": "5.3"},
                    "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                    "content": {"code": code, "silent": False, "store_history": False, "allow_stdin": False},
                }
            )
        )  # fmt: skip
        out: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                raw = await asyncio.wait_for(ws.read_message(), timeout=max(1, deadline - time.monotonic()))
                assert raw is not None, "the kernel's websocket closed"
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    out.append(content["text"])
                elif kind == "error":
                    raise AssertionError(f"{content['ename']}: {content['evalue']}")
                elif kind == "status" and content["execution_state"] == "idle":
                    return "".join(out)
        finally:
            ws.close()


def provision(home: Path, cohort: Path, second_extra: str = "") -> tuple[Paths, dict[str, str]]:
    """The demo project, a second project for alice, the demo users: through the real provisioning steps;
    `second_extra` is added to the second project's spec (e.g. a small storage quota)."""
    paths = Paths(home)
    paths.home.mkdir(parents=True, exist_ok=True)
    paths.home.chmod(0o711)
    paths.sites.symlink_to(cohort, target_is_directory=True)
    registry, _ = steps.ensure_registry(paths)
    steps.ensure_sites(registry, paths, actor="test-admin")
    steps.ensure_consent(registry, paths, actor="test-admin")
    steps.ensure_project(registry, steps.DEMO_SPEC, actor="test-admin")
    budget = f"browser: {{bytes_per_hour: {SECOND_BUDGET}}}\n"
    second = spec_file(home, SECOND_PROJECT, "GRU", extra=budget + second_extra)
    steps.ensure_project(registry, second, actor="test-admin")
    for project in (DEMO, SECOND_PROJECT):
        steps.ensure_materialised(registry, paths, project, actor="test-admin", progress=False)
    users, _ = steps.ensure_demo_users(registry, paths, steps.demo_users(), actor="test-admin")
    registry.close()
    return paths, {user: password for user, (password, _uri) in users.items()}


@contextlib.contextmanager
def running_enclave(
    home: Path, cohort: Path, *, second_extra: str = "", subdomains: bool = True
) -> Iterator[RunningEnclave]:
    """`subdomains` (the product's default): the hub serves people and services on their own origins under
    http://localhost:PORT (hub/origins.py); False: one origin, http://127.0.0.1:PORT."""
    paths, passwords = provision(home, cohort, second_extra)
    table = f"enclave_egress_t{secrets.token_hex(3)}"
    ensure_host(paths, {DEMO: ["alice", "bob"], SECOND_PROJECT: ["alice"]}, egress_table=table)
    public, proxy_api, airlock = free_ports(3)
    host = f"http://localhost:{public}" if subdomains else ""
    settings = HubSettings(home=paths.home, port=public, proxy_api_port=proxy_api, airlock_port=airlock,
                           subdomain_host=host)  # fmt: skip
    # the subdomain setting goes to the hub in `settings` only: in os.environ it would outlive this Enclave for the
    # `enclave` commands that later tests run
    env = {"ENCLAVE_WORKSPACE_ENV": str(workspace_env())}
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    process = None
    try:
        process = lifecycle.start(settings)
        yield RunningEnclave(paths, settings, passwords, table)
    finally:
        if process is not None:
            lifecycle.stop_process(process.pid)
        lifecycle.remove_runtime(paths)
        remove_egress_rules(table=table)
        release_all_under(paths.home)  # each project's file system (its quota), mounted by ensure_host
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def hub_log(enclave: RunningEnclave, lines: int = 80) -> str:
    return lifecycle.tail(enclave.paths.hub / "jupyterhub.log", lines)
