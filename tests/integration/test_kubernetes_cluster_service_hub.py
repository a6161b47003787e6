"""The Kubernetes Dask cluster service's authentication in a real JupyterHub: the hub configured by
hub.kubernetes.configure_cluster_service (its service entry, roles and workspace token scopes), the service's real
HTTP handler and HubAuth, the workspace side's real client (workbench.kubernetes_cluster.call), the registry's
rule. It admits a running workspace's own token for its own project and refuses another project's, an output
checker's, a stopped workspace's, and a person's browser session and browser (OAuth) token.

No Kubernetes API server runs here: the service's Kubernetes calls go to tests/kubernetes_store.py's in-memory
store, which holds them to the service's Role, the Kubernetes models and the operator's CRD. The workspaces are
stand-ins too (an HTTP server on loopback where KubeSpawner's pod would be): what matters here is the token the hub
makes for each of them, which the stand-in hands to the test as KubeSpawner hands it to the pod.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dask
import pytest
import requests
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from traitlets.config import Config

from clusters.kubernetes import ClusterTLS
from clusters.kubernetes_network import DASHBOARD_PORT, SCHEDULER_PORT
from clusters.kubernetes_service import (
    NOT_A_WORKSPACE,
    NOT_RUNNING,
    ProjectClusters,
    hub_auth,
    make_app,
    project_limits,
)
from fabric.projects import ProjectSpec, create_project
from hub.authorisation import REFUSED
from hub.kubernetes import WORKSPACE_TOKEN_SCOPES, configure_cluster_service
from hub.roles import hub_roles
from kernel.db import Registry
from tests.hub_runner import CHP, NO_CHP, free_ports, login_form, loopback_config, running_hub
from tests.integration.test_clusters_kubernetes_tls import Pods
from tests.kubernetes_harness import IMAGE, OTHER_PROJECT, PROJECT, SPECS
from tests.kubernetes_store import AppliedObjects
from workbench.kubernetes_cluster import KubernetesServiceClient, KubernetesServiceCluster, call, wait_for_workers
from workbench.relay import ServiceRefused

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not CHP.exists(), reason=NO_CHP), pytest.mark.timeout(240)]
PASSWORD = "cluster-service-test-password"
SERVICE_TOKEN, ADMIN_TOKEN = "s" * 40, "a" * 40  # test-only tokens of the hub's two services

STAND_IN = '''
import os, socket, subprocess, sys
from pathlib import Path
from jupyterhub.spawner import Spawner

TOKENS = Path({tokens!r})


class StandInWorkspace(Spawner):
    """Where KubeSpawner's pod would be: an HTTP server on loopback. The hub's token for it is handed to the test
    through a file only the test's user may read (KubeSpawner hands it to the pod in JUPYTERHUB_API_TOKEN)."""

    process = None

    async def start(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        fd = os.open(TOKENS / f"{{self.user.name}}-{{self.name}}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, self.api_token.encode())
        os.close(fd)
        self.process = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                         "--directory", str(TOKENS.parent / "empty")])
        return f"http://127.0.0.1:{{port}}"

    async def poll(self):
        return None if self.process is not None and self.process.poll() is None else 0

    async def stop(self, now=False):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


c.JupyterHub.spawner_class = StandInWorkspace
'''


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """The service's web application on a loopback port, in a thread with its own event loop."""
    state: dict = {}
    ready = threading.Event()

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        server = HTTPServer(app, max_body_size=4096)
        sockets = bind_sockets(0, "127.0.0.1")
        server.add_sockets(sockets)
        state.update(loop=loop, port=sockets[0].getsockname()[1])
        ready.set()
        loop.run_forever()
        server.stop()
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{state['port']}"
    finally:
        state["loop"].call_soon_threadsafe(state["loop"].stop)
        thread.join(10)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A hub with alice and bob (researchers: cardio-risk and heart-imaging, both on Kubernetes) and carol (an
    output checker of cardio-risk); the cluster service; the in-memory store of what it applied."""
    tmp = tmp_path_factory.mktemp("cluster-service")
    (tmp / "tokens").mkdir(mode=0o700)
    (tmp / "empty").mkdir()
    registry = Registry(f"sqlite:///{tmp / 'registry.sqlite'}")
    with registry.session() as session:
        for spec in SPECS:
            create_project(session, ProjectSpec.model_validate({**spec, "compute": {**spec["compute"],
                                                                                    "engine": "kubernetes"}}),
                           actor="test-admin")  # fmt: skip
    public, hub_port, api = free_ports(3)
    c = Config()
    c.JupyterHub.load_roles = [
        *hub_roles(),
        {"name": "test-admin", "scopes": ["servers", "read:users"], "services": ["test-admin"]},
    ]
    c.JupyterHub.services = [{"name": "test-admin", "api_token": ADMIN_TOKEN}]
    configure_cluster_service(c, url="http://127.0.0.1:1", api_token=SERVICE_TOKEN)  # the hub's side, as configured
    assert c.KubeSpawner.server_token_scopes == WORKSPACE_TOKEN_SCOPES
    groups = {"researchers": {"users": ["alice", "bob"]}, "output-checkers": {"users": ["carol"]}}
    config = tmp / "jupyterhub_config.py"
    config.write_text(
        loopback_config(tmp, public=public, hub=hub_port, proxy_api=api)
        + STAND_IN.format(tokens=str(tmp / "tokens"))
        + f"""\
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {PASSWORD!r}
c.Authenticator.allowed_users = {{"alice", "bob", "carol"}}
c.JupyterHub.allow_named_servers = True
c.JupyterHub.load_roles = {c.JupyterHub.load_roles!r}
c.JupyterHub.load_groups = {groups!r}
c.JupyterHub.services = {c.JupyterHub.services!r}
c.Spawner.server_token_scopes = {WORKSPACE_TOKEN_SCOPES!r}  # what configure_cluster_service sets on KubeSpawner
"""
    )
    url = f"http://127.0.0.1:{public}"
    store = AppliedObjects()
    auth = hub_auth(1, api_url=f"http://127.0.0.1:{hub_port}/hub/api", api_token=SERVICE_TOKEN)
    app = make_app(ProjectClusters(store, poll_seconds=0.01), auth, limits=lambda w: project_limits(registry, w))
    with (
        dask.config.set({"enclave.kubernetes.image": IMAGE}),
        running_hub(tmp, config, [f"{url}/hub/health"]),
        serving(app) as service,
    ):
        yield {"hub": url, "service": service, "store": store, "tokens": tmp / "tokens", "registry": registry,
               "hub_api": f"http://127.0.0.1:{hub_port}/hub/api", "tmp": tmp}  # fmt: skip
    registry.close()


def admin(setup, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{setup['hub']}/hub/api/{path}", timeout=60,
                            headers={"Authorization": f"token {ADMIN_TOKEN}"}, **kwargs)  # fmt: skip


def workspace(setup, user: str, project: str) -> str:
    """Start `user`'s server `project` through the hub's API unless it runs, wait until it is ready; its
    JUPYTERHUB_API_TOKEN."""
    if project not in admin(setup, "GET", f"users/{user}").json()["servers"]:
        response = admin(setup, "POST", f"users/{user}/servers/{project}")
        assert response.status_code in (201, 202), response.text
    deadline = time.monotonic() + 60
    while not admin(setup, "GET", f"users/{user}").json()["servers"].get(project, {}).get("ready"):
        assert time.monotonic() < deadline, f"{user}/{project} did not start"
        time.sleep(0.3)
    path: Path = setup["tokens"] / f"{user}-{project}"
    return path.read_text()


def stop(setup, user: str, project: str) -> None:
    assert admin(setup, "DELETE", f"users/{user}/servers/{project}").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while project in admin(setup, "GET", f"users/{user}").json()["servers"]:
        assert time.monotonic() < deadline, f"{user}/{project} did not stop"
        time.sleep(0.3)


def refused(setup, token: str, op: str = "start") -> str:
    with pytest.raises(ServiceRefused) as refusal:
        call(op, url=setup["service"], token=token)
    assert not token or token not in str(refusal.value)
    return str(refusal.value)


def test_a_running_workspace_gets_its_own_projects_cluster_and_nothing_else(setup, caplog):
    caplog.set_level(logging.DEBUG)
    token = workspace(setup, "alice", PROJECT)
    answer = call("start", {"n_workers": 1}, url=setup["service"], token=token)
    assert answer["address"].startswith("tls://10.96.") and answer["address"].endswith(":8786")
    assert answer["security"]["key"].startswith("-----BEGIN")
    assert set(setup["store"].of_kind("DaskCluster")) == {"dask-alice"}
    assert set(setup["store"].of_kind("DaskCluster", f"enclave-{PROJECT}")) == {"dask-alice"}
    assert call("scale", {"n_workers": 2}, url=setup["service"], token=token)["workers"] == 2
    assert call("status", url=setup["service"], token=token)["workers"] == {"Ready": 2}
    assert refused(setup, token, "scale") == "scale needs n_workers"
    with pytest.raises(ServiceRefused, match="0 to 2 workers"):
        call("scale", {"n_workers": 3}, url=setup["service"], token=token)

    bob = workspace(setup, "bob", OTHER_PROJECT)
    call("start", {"n_workers": 1}, url=setup["service"], token=bob)
    assert set(setup["store"].of_kind("DaskCluster", f"enclave-{OTHER_PROJECT}")) == {"dask-bob"}
    assert set(setup["store"].of_kind("DaskCluster", f"enclave-{PROJECT}")) == {"dask-alice"}  # bob's is his own

    call("close", url=setup["service"], token=token)
    assert set(setup["store"].of_kind("DaskCluster")) == {"dask-bob"}
    # what the service (and HubAuth within it) logged holds no token and no PEM
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "made cluster dask-alice" in logged
    assert token not in logged and bob not in logged and SERVICE_TOKEN not in logged and "BEGIN" not in logged


def test_a_workspace_of_a_project_the_user_is_not_a_researcher_in_is_refused(setup):
    """alice's server named after bob's project: KubeSpawner's pre-spawn hook would refuse to start it; were it
    running, the service refuses it still (the registry's rule)."""
    before = dict(setup["store"].objects)
    assert refused(setup, workspace(setup, "alice", OTHER_PROJECT)) == REFUSED
    assert refused(setup, workspace(setup, "carol", PROJECT)) == NOT_A_WORKSPACE  # no researcher: no service scope
    assert setup["store"].objects == before


def test_a_stopped_workspaces_token_is_refused(setup):
    token = workspace(setup, "bob", OTHER_PROJECT)
    stop(setup, "bob", OTHER_PROJECT)
    # The hub asked about the server at once (never cached), or about the token once the service's short cache of
    # its identity ends: either way a refusal.
    assert refused(setup, token) in (NOT_RUNNING, NOT_A_WORKSPACE)
    gone = requests.get(f"{setup['hub']}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30)
    assert gone.status_code == 403  # the hub deleted the token with the server


def test_a_persons_browser_session_and_browser_token_are_refused(setup):
    token = workspace(setup, "alice", PROJECT)
    http, response = login_form(setup["hub"], {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    # the browser's session: cookies, which the service never reads
    answer = http.post(f"{setup['service']}/api/start", json={}, timeout=30)
    assert answer.status_code == 403 and answer.json()["error"] == NOT_A_WORKSPACE
    # the browser's OAuth token for alice's own workspace, as the workspace server gets it at login
    client_id = f"jupyterhub-user-alice-{PROJECT}"
    redirect = f"/user/alice/{PROJECT}/oauth_callback"
    authorised = http.get(f"{setup['hub']}/hub/api/oauth2/authorize", allow_redirects=False, timeout=30,
                          params={"client_id": client_id, "redirect_uri": redirect, "response_type": "code",
                                  "state": "s"})  # fmt: skip
    assert authorised.status_code == 302, authorised.text
    code = urllib.parse.parse_qs(urllib.parse.urlparse(authorised.headers["Location"]).query)["code"][0]
    issued = requests.post(f"{setup['hub']}/hub/api/oauth2/token", timeout=30,
                           data={"grant_type": "authorization_code", "code": code, "client_id": client_id,
                                 "client_secret": token, "redirect_uri": redirect})  # fmt: skip
    assert issued.status_code == 200, issued.text
    browser_token = issued.json()["access_token"]
    whoami = requests.get(f"{setup['hub']}/hub/api/user", headers={"Authorization": f"token {browser_token}"},
                          timeout=30).json()  # fmt: skip
    assert whoami["name"] == "alice" and whoami["session_id"]  # a browser session's token, for alice's workspace
    assert refused(setup, browser_token) == NOT_A_WORKSPACE
    # and no token at all, or a made-up one
    assert refused(setup, "") == NOT_A_WORKSPACE
    assert refused(setup, "not-a-token") == NOT_A_WORKSPACE


def test_the_services_own_token_is_not_a_workspace(setup):
    assert refused(setup, SERVICE_TOKEN) == NOT_A_WORKSPACE
    assert refused(setup, ADMIN_TOKEN) == NOT_A_WORKSPACE
    assert os.stat(setup["tokens"]).st_mode & 0o077 == 0


def test_a_notebooks_client_computes_on_the_cluster_the_service_made(setup):
    """The workspace's side end to end: KubernetesServiceCluster asks the service (alice's own token), which applies
    the Secret and the DaskCluster; the cluster's processes then run as test_clusters_kubernetes_tls runs them (the
    pods' commands and environments, this cluster's certificate from its Secret, free loopback ports where the
    operator's Service would be), the client connects over TLS and computes, the dashboard forwarder reaches the
    scheduler's dashboard, and closing the client deletes the cluster."""
    pods: list[Pods] = []

    def run_the_pods(cluster: dict, secret: dict) -> dict:
        pem = {name: base64.b64decode(value).decode() for name, value in secret["data"].items()}
        tls = ClusterTLS(ca=pem["ca.pem"], cert=pem["tls.pem"], key=pem["tls.key"])
        folder = setup["tmp"] / f"pods-{len(pods)}"
        folder.mkdir()
        started = Pods(folder, tls)
        pods.append(started)
        started.start("scheduler")
        started.start("worker")
        return {"ip": "127.0.0.1", "ports": {"tcp-comm": started.ports[SCHEDULER_PORT],
                                             "http-dashboard": started.ports[DASHBOARD_PORT]}}  # fmt: skip

    store = AppliedObjects(on_cluster=run_the_pods)
    auth = hub_auth(1, api_url=setup["hub_api"], api_token=SERVICE_TOKEN)
    app = make_app(ProjectClusters(store, poll_seconds=0.01), auth,
                   limits=lambda w: project_limits(setup["registry"], w))  # fmt: skip
    token = workspace(setup, "alice", PROJECT)
    try:
        with serving(app) as service:
            cluster = KubernetesServiceCluster(1, url=service, token=token, dashboard_address="127.0.0.1:0")
            client = KubernetesServiceClient(cluster, direct_to_workers=False, set_as_default=False)
            try:
                wait_for_workers(client, cluster, 1, timeout=120)
                assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
                assert cluster.scheduler_address == f"tls://127.0.0.1:{pods[0].ports[SCHEDULER_PORT]}"
                with urllib.request.urlopen(f"{cluster.dashboard_link.rsplit('/', 1)[0]}/health", timeout=30) as r:
                    assert r.read() == b"ok"  # through the forwarder the workspace's `dask` route proxies
                assert cluster.pods_status()["phase"] == "Pending"  # what the operator would have set: nothing here
            finally:
                client.close()
            assert store.of_kind("DaskCluster") == {} and store.of_kind("Secret") == {}
    finally:
        for started in pods:
            started.stop()
