"""The network of a project's Dask clusters on Kubernetes (clusters/kubernetes_network.py with hub/kubernetes.py's
project policies), checked by evaluating NetworkPolicy semantics (tests/networkpolicy.py) over the pods as they would
be labelled: the workspaces as a real KubeSpawner labels them after the pre-spawn hook, the scheduler and workers as
the operator's own controller labels them from the DaskCluster, the hub, the operator, the cluster's DNS server and
addresses outside. Each flow the design allows is let through; every other one asked is refused. The RBAC objects
are validated against the client's models."""

from __future__ import annotations

import asyncio

import pytest
from jupyterhub.utils import maybe_future
from kubernetes_asyncio.client import ApiClient

from clusters.kubernetes import dask_cluster
from clusters.kubernetes_network import cluster_manifests
from fabric.projects import ProjectSpec
from hub.kubernetes import project_manifests
from tests.kubernetes_harness import (
    IMAGE,
    OTHER_PROJECT,
    PROJECT,
    SPECS,
    FakeKubernetesAPI,
    hub_config,
    kube_spawner,
    member_registry,
)
from tests.kubernetes_models import as_model, operator_deployments
from tests.networkpolicy import Address, Network, Pod

pytestmark = pytest.mark.unit
RESEARCHERS = {PROJECT: "alice", OTHER_PROJECT: "bob"}
LIMITS = {spec["name"]: ProjectSpec.model_validate(spec).compute for spec in SPECS}
INTERNET, API_SERVER = Address("93.184.216.34"), Address("10.96.0.1")


def manifests(project: str) -> list[dict]:
    return [
        *project_manifests(project, hub_namespace="enclave-hub", data_volume=f"pv-{project}", storage_class="nfs"),
        *cluster_manifests(project, hub_namespace="enclave-hub", operator_namespace="dask-operator"),
    ]


def dask_pods(project: str, cluster: str) -> dict[str, Pod]:
    made = operator_deployments(dask_cluster(project, LIMITS[project], name=cluster, image=IMAGE))
    pods = {}
    for role in ("scheduler", "worker"):
        template = made[role]["spec"]["template"]
        (container,) = template["spec"]["containers"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        pods[role] = Pod(f"{cluster}-{role}", f"enclave-{project}", template["metadata"]["labels"], ports)
    return pods


@pytest.fixture(scope="module")
def pods(tmp_path_factory) -> dict[str, Pod]:
    folder = tmp_path_factory.mktemp("registry")
    registry = member_registry(folder)
    monkeypatch = pytest.MonkeyPatch()
    try:
        with FakeKubernetesAPI().running() as api:
            api.use_as_cluster(monkeypatch, folder)

            async def workspace(project: str) -> Pod:
                spawner = kube_spawner(hub_config(registry), api, RESEARCHERS[project], project)
                await maybe_future(spawner.run_pre_spawn_hook())
                async with ApiClient() as client:
                    pod = client.sanitize_for_serialization(await spawner.get_pod_manifest())
                return Pod("workspace", spawner.namespace, pod["metadata"]["labels"])

            workspaces = {project: asyncio.run(workspace(project)) for project in RESEARCHERS}
    finally:
        monkeypatch.undo()
        registry.close()
    ours, second, theirs = (
        dask_pods(PROJECT, "dask-a1"),
        dask_pods(PROJECT, "dask-a2"),
        dask_pods(OTHER_PROJECT, "dask-b1"),
    )
    return {
        "workspace": workspaces[PROJECT],
        "scheduler": ours["scheduler"],
        "worker": ours["worker"],
        "worker2": Pod("dask-a1-worker-2", ours["worker"].namespace, ours["worker"].labels),
        "second cluster's worker": second["worker"],
        "other workspace": workspaces[OTHER_PROJECT],
        "other scheduler": theirs["scheduler"],
        "other worker": theirs["worker"],
        "hub": Pod("hub", "enclave-hub", {"component": "hub", "app": "jupyterhub"}),
        "operator": Pod(
            "operator",
            "dask-operator",
            {"app.kubernetes.io/name": "dask-kubernetes-operator", "app.kubernetes.io/instance": "dask-operator"},
        ),
        "operator elsewhere": Pod("operator", "enclave-hub", {"app.kubernetes.io/name": "dask-kubernetes-operator"}),
        "dns": Pod("coredns", "kube-system", {"k8s-app": "kube-dns"}),
        "stray pod": Pod("debug", f"enclave-{PROJECT}", {"app": "debug"}),
        "internet": INTERNET,
        "api server": API_SERVER,
    }


def network(*, without: str | None = None) -> Network:
    policies = [m for m in manifests(PROJECT) + manifests(OTHER_PROJECT) if m["metadata"]["name"] != without]
    namespaces = {m["metadata"]["name"]: m["metadata"]["labels"] for m in policies if m["kind"] == "Namespace"}
    return Network(policies, {**namespaces, "enclave-hub": {}, "dask-operator": {}, "kube-system": {}})


ALLOWED = {
    "workspace to its project's scheduler": ("workspace", "scheduler", 8786),
    "workspace to the scheduler's dashboard": ("workspace", "scheduler", 8787),
    "worker to its scheduler": ("worker", "scheduler", 8786),
    "scheduler to a worker": ("scheduler", "worker", 8788),
    "scheduler to a worker's nanny": ("scheduler", "worker", 8789),
    "worker to worker": ("worker", "worker2", 8788),
    "the operator to the scheduler's HTTP API": ("operator", "scheduler", 8787),
    "workspace to the hub's API": ("workspace", "hub", 8081),
    "the hub to a workspace": ("hub", "workspace", 8888),
    "the other project's workspace to its own scheduler": ("other workspace", "other scheduler", 8786),
}
REFUSED = {
    "another project's workspace to the scheduler": ("other workspace", "scheduler", 8786),
    "another project's workspace to the dashboard": ("other workspace", "scheduler", 8787),
    "another project's worker to the scheduler": ("other worker", "scheduler", 8786),
    "worker to another project's worker": ("worker", "other worker", 8788),
    "worker to another project's scheduler": ("worker", "other scheduler", 8786),
    "worker to the internet": ("worker", "internet", 443),
    "scheduler to the internet": ("scheduler", "internet", 443),
    "workspace to the internet": ("workspace", "internet", 443),
    "worker to DNS over UDP": ("worker", "dns", 53, "UDP"),
    "worker to DNS over TCP": ("worker", "dns", 53),
    "scheduler to DNS": ("scheduler", "dns", 53, "UDP"),
    "workspace to DNS": ("workspace", "dns", 53, "UDP"),
    "worker to the Kubernetes API": ("worker", "api server", 443),
    "scheduler to the Kubernetes API": ("scheduler", "api server", 443),
    "worker to the hub": ("worker", "hub", 8081),
    "scheduler to the hub": ("scheduler", "hub", 8081),
    "worker to the workspace": ("worker", "workspace", 8888),
    "scheduler to the workspace": ("scheduler", "workspace", 8888),
    "workspace straight to a worker": ("workspace", "worker", 8788),
    "workspace to another port of the scheduler": ("workspace", "scheduler", 22),
    "worker to the scheduler's dashboard": ("worker", "scheduler", 8787),
    "worker to another worker's nanny": ("worker", "worker2", 8789),
    "the operator to the scheduler's Dask port": ("operator", "scheduler", 8786),
    "the operator's label in another namespace": ("operator elsewhere", "scheduler", 8787),
    "the hub to the scheduler": ("hub", "scheduler", 8786),
    "the internet to the scheduler": ("internet", "scheduler", 8786),
    "a stray pod to the scheduler": ("stray pod", "scheduler", 8786),
    "a stray pod to the internet": ("stray pod", "internet", 443),
    "the scheduler to a stray pod": ("scheduler", "stray pod", 8788),
}


@pytest.mark.parametrize("flow", ALLOWED.values(), ids=ALLOWED)
def test_the_designed_flows_are_allowed(pods, flow):
    source, destination, port, *protocol = flow
    assert network().allows(pods[source], pods[destination], port, *protocol)


@pytest.mark.parametrize("flow", REFUSED.values(), ids=REFUSED)
def test_every_other_flow_is_refused(pods, flow):
    source, destination, port, *protocol = flow
    assert not network().allows(pods[source], pods[destination], port, *protocol)


def test_clusters_of_one_project_share_its_network_and_tls_keeps_them_apart(pods):
    """The policies are per project, not per cluster: a second cluster's worker of the same project can reach the
    scheduler's port, and only the certificate of the cluster (tests/integration/test_clusters_kubernetes_tls.py)
    turns it away."""
    assert network().allows(pods["second cluster's worker"], pods["scheduler"], 8786)


def test_the_evaluator_and_the_namespace_wide_denial_each_matter(pods):
    assert Network([], {}).allows(pods["worker"], pods["internet"], 443)  # no policy: Kubernetes allows everything
    # without the namespace-wide denial a pod no policy selects could reach anything
    assert network(without="deny-all-else").allows(pods["stray pod"], pods["internet"], 443)
    assert not network(without="deny-all-else").allows(pods["stray pod"], pods["scheduler"], 8786)
    # without the workspaces' own egress rule the workspace would not reach its scheduler
    assert not network(without="workspaces-reach-dask-schedulers").allows(pods["workspace"], pods["scheduler"], 8786)


@pytest.mark.parametrize("project", [PROJECT, OTHER_PROJECT])
def test_the_manifests_are_valid_kubernetes_objects_in_the_projects_namespace(project):
    made = cluster_manifests(project, hub_namespace="enclave-hub", operator_namespace="dask-operator")
    assert {m["kind"] for m in made} == {"NetworkPolicy", "Role", "RoleBinding"}
    for manifest in made:
        assert as_model(manifest) == manifest
        assert manifest["metadata"]["namespace"] == f"enclave-{project}"


def test_the_cluster_service_may_make_clusters_but_not_read_secrets_or_start_pods():
    role, binding = (m for m in cluster_manifests(PROJECT, hub_namespace="enclave-hub", operator_namespace="x")[-2:])
    granted = {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}
    assert {("daskclusters", "create"), ("daskclusters", "delete"), ("secrets", "create")} <= granted
    assert not {verb for resource, verb in granted if resource == "secrets"} & {"get", "list", "watch"}
    assert not {verb for resource, verb in granted if resource == "pods"} & {"create", "update", "patch", "delete"}
    assert not any(resource.startswith("pods/") for resource, _ in granted)  # no exec, attach or port-forward
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "enclave-clusters", "namespace": "enclave-hub"}]
