"""The Kubernetes Dask cluster service's rules (clusters/kubernetes_service.py), without a cluster: who may (the hub's
answer about a token, the hub's answer about the server, the registry), what each operation applies (checked by
tests/kubernetes_store.py against the service's Role, the Kubernetes models and the operator's CRD, with the
operator's own controller functions making the scheduler's Service), the limits, and the refusals. No Kubernetes
API server runs here: the store stands in for it. Also the hub's side (hub/kubernetes.py) and the manifests."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dask
import pytest
from jupyterhub.scopes import scope_definitions
from jupyterhub.utils import maybe_future
from kubernetes_asyncio.client import ApiClient
from traitlets.config import Config

from clusters.kubernetes import CLUSTER_NAME, ClusterTLS, dask_cluster, tls_secret
from clusters.kubernetes_network import cluster_service_access
from clusters.kubernetes_service import (
    NOT_A_WORKSPACE,
    Kr8sAPI,
    ProjectClusters,
    ServiceRefused,
    Workspace,
    cluster_name,
    project_limits,
    requested_workers,
    server_is_running,
    service_manifests,
    workspace_of,
)
from fabric.projects import ComputeLimits, ProjectSpec, create_project
from hub.kubernetes import (
    CLUSTER_SERVICE,
    CLUSTER_SERVICE_HUB_SCOPES,
    CLUSTER_SERVICE_PORT,
    CLUSTER_SERVICE_SCOPE,
    WORKSPACE_TOKEN_SCOPES,
    cluster_service_url,
    configure_kubespawner,
    project_manifests,
)
from kernel.db import Registry
from tests.kubernetes_harness import IMAGE, PROJECT, SPECS, FakeKubernetesAPI, kube_spawner
from tests.kubernetes_models import as_model
from tests.kubernetes_store import AppliedObjects, Forbidden
from tests.networkpolicy import Network, Pod
from workbench import cluster as workbench_cluster
from workbench import kubernetes_cluster
from workbench.errors import WorkbenchError
from workbench.view_contract import ENV_CLUSTER_SERVICE

pytestmark = pytest.mark.unit

LIMITS = ComputeLimits.model_validate({"engine": "kubernetes", "cpus": 3, "memory": "6GiB", "dask_workers": 3})
ALICE = Workspace("alice", PROJECT)
SERVICE_URL = "http://10.96.7.7:8082"


def token_model(user: str = "alice", server: str = PROJECT, **changes) -> dict:
    """What GET /hub/api/user answers for a workspace's own token (JupyterHub's `server` role and the service's
    access scope, expanded as the hub expands them)."""
    model = {
        "kind": "user",
        "name": user,
        "session_id": None,
        "token_id": "a1",
        "scopes": sorted([f"access:servers!server={user}/{server}", f"users:activity!user={user}",
                          CLUSTER_SERVICE_SCOPE, f"read:users:name!user={user}"]),
    }  # fmt: skip
    return {**model, **changes}


# -- who may


def test_a_workspaces_own_token_names_its_user_and_project():
    assert workspace_of(token_model()) == ALICE
    assert workspace_of(token_model("bob", "heart-imaging")) == Workspace("bob", "heart-imaging")


REFUSED_TOKENS = {
    "no answer (an unknown or revoked token)": None,
    "a browser session's token": token_model(session_id="f00d"),
    "a token without the service's scope": token_model(scopes=[f"access:servers!server=alice/{PROJECT}"]),
    "a token for another user's server": token_model(scopes=["access:servers!server=bob/heart-imaging",
                                                             CLUSTER_SERVICE_SCOPE]),
    "a token for two servers": token_model(scopes=[f"access:servers!server=alice/{PROJECT}",
                                                   "access:servers!server=alice/heart-imaging", CLUSTER_SERVICE_SCOPE]),
    "a token for every server of the user": token_model(scopes=["access:servers!user=alice", CLUSTER_SERVICE_SCOPE]),
    "a token for the default server": token_model(scopes=["access:servers!server=alice/", CLUSTER_SERVICE_SCOPE]),
    "a service's token": {"kind": "service", "name": "airlock", "scopes": [CLUSTER_SERVICE_SCOPE]},
}  # fmt: skip


@pytest.mark.parametrize("model", REFUSED_TOKENS.values(), ids=REFUSED_TOKENS.keys())
def test_anything_but_a_workspaces_own_token_is_refused_with_one_message(model):
    with pytest.raises(ServiceRefused) as refused:
        workspace_of(model)
    assert (refused.value.status, refused.value.message) == (403, NOT_A_WORKSPACE)


def test_only_a_ready_server_counts_as_running():
    ready = {"servers": {PROJECT: {"ready": True, "pending": None}}}
    assert server_is_running(ready, PROJECT)
    assert not server_is_running(ready, "heart-imaging")
    assert not server_is_running({"servers": {PROJECT: {"ready": False, "pending": "spawn"}}}, PROJECT)
    assert not server_is_running({"servers": {PROJECT: {"ready": True, "pending": "stop"}}}, PROJECT)
    assert not server_is_running({"name": "alice"}, PROJECT)  # no `servers`: the service may not read them
    assert not server_is_running(None, PROJECT)


@pytest.fixture
def registry(tmp_path):
    """cardio-risk on Kubernetes (alice researches, carol checks), heart-imaging still local (bob)."""
    registry = Registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with registry.session() as session:
        first, second = (dict(spec, compute=dict(spec["compute"])) for spec in SPECS)
        first["compute"]["engine"] = "kubernetes"
        for spec in (first, second):
            create_project(session, ProjectSpec.model_validate(spec), actor="test-admin")
    yield registry
    registry.close()


def test_the_registry_decides_membership_and_the_engine(registry):
    assert project_limits(registry, ALICE).engine == "kubernetes"
    for caller, status in [(Workspace("carol", PROJECT), 403), (Workspace("bob", PROJECT), 403),
                           (Workspace("alice", "heart-imaging"), 403), (Workspace("mallory", PROJECT), 403),
                           (Workspace("bob", "heart-imaging"), 409)]:  # fmt: skip
        with pytest.raises(ServiceRefused) as refused:
            project_limits(registry, caller)
        assert refused.value.status == status, caller
    assert "compute.engine is local" in refused.value.message


# -- what the requests say


@pytest.mark.parametrize("user", ["alice", "A.Smith", "a_smith", "o'brien", "x" * 60, "ünïcode", "1st"])
def test_every_user_gets_a_valid_cluster_name_of_their_own(user):
    name = cluster_name(user)
    assert CLUSTER_NAME.match(name), name
    assert name != cluster_name(user + "2")
    assert cluster_name("a.smith") != cluster_name("a_smith")


BAD_BODIES = {
    b"not json": "a request is a JSON object",
    b"[1]": "a request is a JSON object",
    b'{"n_workers": -1}': "n_workers must be a whole number, 0 or more",
    b'{"n_workers": true}': "n_workers must be a whole number, 0 or more",
    b'{"n_workers": 2.5}': "n_workers must be a whole number, 0 or more",
    b'{"image": "evil@sha256:1"}': "start takes n_workers only",
    b" " * 5000: "a request is a JSON object of at most 4096 bytes",
}


@pytest.mark.parametrize("body", BAD_BODIES, ids=[repr(b[:20]) for b in BAD_BODIES])
def test_a_malformed_request_gets_a_clear_400(body):
    with pytest.raises(ServiceRefused) as refused:
        requested_workers("start", body)
    assert (refused.value.status, refused.value.message) == (400, BAD_BODIES[body])


def test_requests_name_at_most_a_worker_count():
    assert requested_workers("start", b"") is None
    assert requested_workers("start", b'{"n_workers": 2}') == 2
    assert requested_workers("scale", b'{"n_workers": 0}') == 0
    with pytest.raises(ServiceRefused, match="scale needs n_workers"):
        requested_workers("scale", b"{}")
    with pytest.raises(ServiceRefused, match="close takes nothing"):
        requested_workers("close", b'{"n_workers": 1}')


# -- what gets applied


@pytest.fixture(autouse=True)
def image():
    with dask.config.set({"enclave.kubernetes.image": IMAGE}):
        yield


def run(coroutine):
    return asyncio.run(coroutine)


def service(store: AppliedObjects, **kwargs) -> ProjectClusters:
    return ProjectClusters(store, poll_seconds=0.01, **kwargs)


def test_start_applies_the_secret_then_the_cluster_and_answers_the_address_and_credentials():
    store = AppliedObjects()
    answer = run(service(store).start(ALICE, LIMITS, None))
    creates = [(kind, name) for verb, kind, _, name in store.calls if verb == "create"]
    assert creates == [("Secret", "dask-alice-tls"), ("DaskCluster", "dask-alice")]
    assert {ns for _, _, ns, _ in store.calls} == {f"enclave-{PROJECT}"}  # the caller's project's namespace only
    cluster = store.of_kind("DaskCluster")["dask-alice"]
    assert cluster["spec"]["worker"]["replicas"] == 3  # the project's dask_workers
    ip = store.of_kind("Service")["dask-alice-scheduler"]["spec"]["clusterIP"]
    assert answer["address"] == f"tls://{ip}:8786" and answer["dashboard"] == f"{ip}:8787"
    assert (answer["workers"], answer["max_workers"]) == (3, 3)
    assert set(answer["security"]) == {"ca", "cert", "key"}
    assert answer["security"]["key"].startswith("-----BEGIN")
    secret = store.of_kind("Secret")["dask-alice-tls"]
    assert secret["immutable"] is True and set(secret["data"]) == {"ca.pem", "tls.pem", "tls.key"}


def test_a_second_start_reuses_the_cluster_and_its_key():
    store = AppliedObjects()
    clusters = service(store)
    first = run(clusters.start(ALICE, LIMITS, 1))
    second = run(clusters.start(ALICE, LIMITS, 2))
    assert first["security"] == second["security"] and first["address"] == second["address"]
    assert store.of_kind("DaskCluster")["dask-alice"]["spec"]["worker"]["replicas"] == 2
    assert [c for c in store.calls if c[0] == "create"] == [c for c in store.calls[:3] if c[0] == "create"]


def test_a_cluster_whose_key_this_service_no_longer_holds_is_replaced():
    """After a restart the service cannot read the Secret (its Role has no `get` on Secrets) and has lost the key:
    the old cluster is deleted and a new one, with a new key, made."""
    store = AppliedObjects()
    before = run(service(store).start(ALICE, LIMITS, None))
    after = run(service(store).start(ALICE, LIMITS, None))  # a new process: nothing in memory
    assert before["security"]["key"] != after["security"]["key"]
    assert ("delete", "DaskCluster", f"enclave-{PROJECT}", "dask-alice") in store.calls
    assert len(store.of_kind("DaskCluster")) == 1 and len(store.of_kind("Secret")) == 1


def test_users_of_one_project_get_clusters_of_their_own():
    store = AppliedObjects()
    clusters = service(store)
    run(clusters.start(ALICE, LIMITS, 1))
    run(clusters.start(Workspace("dave", PROJECT), LIMITS, 1))
    assert set(store.of_kind("DaskCluster", f"enclave-{PROJECT}")) == {"dask-alice", "dask-dave"}
    run(clusters.close(Workspace("dave", PROJECT)))
    assert set(store.of_kind("DaskCluster")) == {"dask-alice"}


def test_scale_and_status_and_close():
    store = AppliedObjects()
    clusters = service(store)
    with pytest.raises(ServiceRefused, match="start one first") as refused:
        run(clusters.scale(ALICE, LIMITS, 1))
    assert refused.value.status == 409
    assert run(clusters.status(ALICE))["phase"] == "none"
    run(clusters.start(ALICE, LIMITS, None))
    assert run(clusters.scale(ALICE, LIMITS, 1)) == {"workers": 1}
    status = run(clusters.status(ALICE))
    assert status["scheduler"] is True and status["workers"] == {"Ready": 1} and status["wanted"] == 1
    assert run(clusters.close(ALICE)) == {}
    assert store.objects == {}  # the cluster, its Secret, and what the operator made of it
    run(clusters.close(ALICE))  # closing what is not there is no error


def test_limits_are_the_projects_and_refusals_say_which():
    store = AppliedObjects()
    clusters = service(store)
    with pytest.raises(ServiceRefused, match=r"n_workers=4: this project's clusters have 0 to 3 workers") as refused:
        run(clusters.start(ALICE, LIMITS, 4))
    assert refused.value.status == 400 and store.objects == {}
    run(clusters.start(ALICE, LIMITS, 0))
    with pytest.raises(ServiceRefused, match="0 to 3 workers"):
        run(clusters.scale(ALICE, LIMITS, 4))
    with dask.config.set({"enclave.kubernetes.max-workers": 5}):  # a site with room allows more
        assert run(clusters.scale(ALICE, LIMITS, 5)) == {"workers": 5}


def test_a_site_without_the_image_setting_gets_a_clear_refusal():
    with (
        dask.config.set({"enclave.kubernetes.image": None}),
        pytest.raises(ServiceRefused, match="pinned by digest") as refused,
    ):
        run(service(AppliedObjects()).start(ALICE, LIMITS, None))
    assert refused.value.status == 400


def test_a_scheduler_that_never_gets_ready_is_a_504_that_names_no_secret():
    store = AppliedObjects(scheduler_ready=False)
    with pytest.raises(ServiceRefused) as refused:
        run(service(store, ready_seconds=0.05).start(ALICE, LIMITS, None))
    assert refused.value.status == 504 and "not ready" in refused.value.message
    assert "BEGIN" not in refused.value.message and "tls" not in refused.value.message.lower()


def test_the_service_never_reads_a_secret():
    store = AppliedObjects()
    with pytest.raises(Forbidden):
        run(store.read("Secret", f"enclave-{PROJECT}", "dask-alice-tls"))
    store.calls.clear()
    run(service(store).start(ALICE, LIMITS, None))
    run(service(store).start(ALICE, LIMITS, None))  # replacing the cluster too
    assert not [c for c in store.calls if c[1] == "Secret" and c[0] not in ("create", "delete")]


# -- the hub's side


def hub_config(registry: Registry) -> Config:
    c = Config()
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self"]}]
    configure_kubespawner(c, image=IMAGE, hub_namespace="enclave-hub", registry=registry,
                          cluster_service_url=SERVICE_URL, cluster_service_token="t" * 32)  # fmt: skip
    return c


def test_the_hub_knows_the_service_by_its_token_with_no_route_and_the_least_scopes(registry):
    c = hub_config(registry)
    (entry,) = [s for s in c.JupyterHub.services if s["name"] == CLUSTER_SERVICE]
    assert set(entry) == {"name", "api_token"}  # no url: the proxy has no route to it, browsers never reach it
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    assert roles["user"]["scopes"] == ["self"]  # what was there stays
    assert roles["enclave-dask-clusters-service"]["scopes"] == CLUSTER_SERVICE_HUB_SCOPES == ["read:servers"]
    assert roles["enclave-dask-clusters-users"] == {**roles["enclave-dask-clusters-users"], "groups": ["researchers"],
                                                    "scopes": [CLUSTER_SERVICE_SCOPE]}  # fmt: skip
    assert c.KubeSpawner.server_token_scopes == WORKSPACE_TOKEN_SCOPES
    for scope in WORKSPACE_TOKEN_SCOPES + CLUSTER_SERVICE_HUB_SCOPES:
        assert scope.split("!", 1)[0] in scope_definitions


def test_a_workspace_is_told_the_services_url(registry, tmp_path, monkeypatch):
    async def granted_pod():
        spawner = kube_spawner(hub_config(registry), api, "alice", PROJECT)
        await maybe_future(spawner.run_pre_spawn_hook())
        async with ApiClient() as client:  # the pod as the cluster would receive it
            return client.sanitize_for_serialization(await spawner.get_pod_manifest())

    with FakeKubernetesAPI().running() as api:
        api.use_as_cluster(monkeypatch, tmp_path)
        pod = run(granted_pod())
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[ENV_CLUSTER_SERVICE] == SERVICE_URL and env["ENCLAVE_PROJECT"] == PROJECT


def test_the_services_url_comes_from_the_hub_pods_service_variables():
    assert (
        cluster_service_url({"ENCLAVE_CLUSTERS_SERVICE_HOST": "10.96.7.7", "ENCLAVE_CLUSTERS_SERVICE_PORT": "8082"})
        == SERVICE_URL
    )
    assert cluster_service_url({}) is None


def test_the_service_needs_its_token(registry):
    with pytest.raises(ValueError, match="hub API token"):
        configure_kubespawner(
            Config(), image=IMAGE, hub_namespace="h", registry=registry, cluster_service_url=SERVICE_URL
        )


# -- its manifests and the network


def manifests() -> list[dict]:
    return service_manifests(hub_namespace="enclave-hub", image=IMAGE, workspace_image=IMAGE,
                             api_server="192.0.2.10/32", database="192.0.2.20/32")  # fmt: skip


def test_the_services_manifests_are_valid_kubernetes_objects():
    for manifest in manifests():
        model = "V1ServiceAccount" if manifest["kind"] == "ServiceAccount" else None
        assert as_model(manifest, model) == manifest, manifest["kind"]
    deployment = next(m for m in manifests() if m["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "enclave-clusters" and deployment["spec"]["replicas"] == 1
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    secrets = [e["name"] for e in container["env"] if "valueFrom" in e]
    assert secrets == ["JUPYTERHUB_API_TOKEN", "ENCLAVE_DATABASE_URL"]  # never a value in the manifest


def test_workspaces_reach_the_service_and_nothing_else_does():
    hub_ns = {"kubernetes.io/metadata.name": "enclave-hub"}
    project = project_manifests(PROJECT, hub_namespace="enclave-hub", data_volume="pv", storage_class="nfs")
    policies = [m for m in project + manifests() if m["kind"] == "NetworkPolicy"]
    network = Network(policies, {f"enclave-{PROJECT}": {"enclave.project": PROJECT, "enclave.role": "workspace"},
                                 "enclave-hub": hub_ns, "elsewhere": {}})  # fmt: skip
    workspace = Pod("workspace", f"enclave-{PROJECT}", {"component": "singleuser-server"})
    service = Pod("clusters", "enclave-hub", {"component": "enclave-clusters"})
    stray = Pod("debug", f"enclave-{PROJECT}", {"app": "debug"})
    other = Pod("x", "elsewhere", {"component": "singleuser-server"})
    assert network.allows(workspace, service, CLUSTER_SERVICE_PORT)
    assert not network.allows(workspace, service, 8081)
    assert not network.allows(stray, service, CLUSTER_SERVICE_PORT)
    assert not network.allows(other, service, CLUSTER_SERVICE_PORT)  # a namespace not labelled a workspace's


# -- the workspace's side


def test_start_client_asks_the_kubernetes_service_and_nothing_else(monkeypatch):
    """engine: kubernetes goes to the cluster service named in the workspace's environment, never a LocalCluster;
    without that variable, or with sizes the project decides, a clear error."""
    monkeypatch.delenv(ENV_CLUSTER_SERVICE, raising=False)
    assert workbench_cluster.engine({"compute": {"engine": "kubernetes"}}) == "kubernetes"
    with pytest.raises(WorkbenchError, match=f"{ENV_CLUSTER_SERVICE} is not set"):
        workbench_cluster.start_client({"compute": {"engine": "kubernetes"}})
    with pytest.raises(WorkbenchError, match="threads_per_worker: on the project's Kubernetes cluster"):
        workbench_cluster.start_client({"compute": {"engine": "kubernetes"}}, threads_per_worker=2)
    monkeypatch.setenv(ENV_CLUSTER_SERVICE, "file:///etc/passwd")
    with pytest.raises(WorkbenchError, match="not an http:// URL"):
        kubernetes_cluster.call("start")
    monkeypatch.setenv(ENV_CLUSTER_SERVICE, "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(WorkbenchError, match="the cluster service did not answer"):
        kubernetes_cluster.call("start", token="t")


def test_a_sweep_deletes_the_clusters_of_workspaces_that_stopped():
    store = AppliedObjects()
    clusters = service(store)
    dave = Workspace("dave", PROJECT)
    run(clusters.start(ALICE, LIMITS, 1))
    run(clusters.start(dave, LIMITS, 1))

    async def running(workspace: Workspace) -> bool:
        if workspace.user == "dave":
            raise ServiceRefused(503, "the hub did not answer")  # unknown: kept
        return False

    assert run(clusters.sweep(running)) == [ALICE]
    assert set(store.of_kind("DaskCluster")) == {"dask-dave"} and set(store.of_kind("Secret")) == {"dask-dave-tls"}


# -- the Kubernetes client


class StandInAPIServer:
    """Where the Kubernetes API server would be, on loopback: answers the version (kr8s asks first) and discovery,
    refuses everything else with a Kubernetes 403 Status, and records each request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append((self.command, self.path))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/version"):
                    code, body = 200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0"}
                else:
                    code, body = 403, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                       "reason": "Forbidden", "code": 403, "message": "forbidden"}  # fmt: skip
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def kubeconfig(self, path: Path) -> str:
        api = FakeKubernetesAPI()
        api.server.server_close()
        api.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return str(api.kubeconfig(path))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


VERBS = {"POST": "create", "GET": "list", "PATCH": "patch", "DELETE": "delete"}
PATH = re.compile(
    r"^/apis?/(?:(?P<group>[a-z.]+)/)?v1/namespaces/(?P<ns>[^/]+)/(?P<resource>[a-z]+)(?:/[^/?]+)?(\?.*)?$"
)


def test_the_kubernetes_client_asks_only_what_the_role_allows(tmp_path):
    """Kr8sAPI (kr8s, in production) against a stand-in API server: every request it makes is one the service's
    Role allows in the project's namespace (besides the version and discovery, which every account may read)."""
    server = StandInAPIServer()
    api = Kr8sAPI(server.kubeconfig(tmp_path / "kubeconfig"))
    namespace = f"enclave-{PROJECT}"
    calls = [
        api.create(tls_secret(PROJECT, "dask-alice", ClusterTLS(ca="a", cert="b", key="c"))),
        api.create(dask_cluster(PROJECT, LIMITS, name="dask-alice")),
        api.read("Service", namespace, "dask-alice-scheduler"),
        api.read("DaskCluster", namespace, "dask-alice"),
        api.scale(namespace, "dask-alice", 2),
        api.delete("Secret", namespace, "dask-alice-tls"),
        api.delete("DaskCluster", namespace, "dask-alice"),
        api.pods(namespace, {"dask.org/cluster-name": "dask-alice"}),
    ]

    async def each() -> None:
        for call in calls:
            with pytest.raises(Exception, match="forbidden"):  # the stand-in refuses: only the requests matter
                await call

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # kr8s warns of each refusal before it retries
            run(each())
    finally:
        server.close()
    (role, _) = cluster_service_access(namespace, "enclave-hub", "enclave-clusters")
    asked = set()
    for method, path in server.requests:
        if path.startswith(("/version", "/api/?", "/apis/?")) or path in ("/api/", "/apis/"):
            continue
        match = PATH.match(path)
        assert match and match["ns"] == namespace, path
        asked.add((VERBS[method], match["resource"]))
        assert any(match["resource"] in r["resources"] and VERBS[method] in r["verbs"] and
                   (match["group"] or "") in r["apiGroups"] for r in role["rules"]), (method, path)  # fmt: skip
    assert asked == {("create", "secrets"), ("create", "daskclusters"), ("list", "services"), ("list", "daskclusters"),
                     ("delete", "secrets"), ("delete", "daskclusters"), ("list", "pods")}  # fmt: skip
