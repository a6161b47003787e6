"""The production KubeSpawner configuration and per-project manifests, validated without a cluster: the config
against KubeSpawner's own traits, the manifests against the Kubernetes client's models, and the pre-spawn hook that
applies the one authorisation rule (hub/authorisation.py) on real KubeSpawner instances over a real registry, their
Kubernetes API a loopback stand-in that refuses everything (tests/kubernetes_harness.py)."""

from __future__ import annotations

import asyncio

import pytest
from jupyterhub.utils import maybe_future
from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner
from tornado import web
from traitlets import HasTraits
from traitlets.config import Config

from hub.authorisation import REFUSED
from hub.kubernetes import configure_kubespawner, hub_connect_url, project_manifests
from tests.kubernetes_harness import (
    OTHER_PROJECT,
    PROJECT,
    REFUSED_SPAWNS,
    FakeKubernetesAPI,
    hub_config,
    kube_spawner,
    member_registry,
)
from tests.kubernetes_models import as_model

pytestmark = pytest.mark.unit


def manifests() -> list[dict]:
    return project_manifests("cardio-risk", hub_namespace="enclave-hub", data_volume="pv", storage_class="nfs")


@pytest.fixture
def registry(tmp_path):
    registry = member_registry(tmp_path)
    yield registry
    registry.close()


@pytest.fixture
def api(tmp_path, monkeypatch):
    with FakeKubernetesAPI().running() as api:
        api.use_as_cluster(monkeypatch, tmp_path)
        yield api


def test_config_is_valid_for_kubespawner(registry):
    c = hub_config(registry)
    traits = KubeSpawner.class_traits()
    probe = HasTraits()
    for name, value in c.KubeSpawner.items():
        assert name in traits, name
        if hasattr(traits[name], "validate"):  # `Any` traits (the pre-spawn hook) take anything
            traits[name].validate(probe, value)  # raises for a value of the wrong type
    assert c.KubeSpawner.user_namespace_template == "enclave-{servername}"
    assert c.KubeSpawner.automount_service_account_token is False
    assert c.KubeSpawner.component_label == "singleuser-server"  # the label the NetworkPolicies select workspaces by
    assert c.KubeSpawner.container_security_context["readOnlyRootFilesystem"] is True
    assert callable(c.KubeSpawner.pre_spawn_hook)
    # nothing of any project's until the hook has authorised a spawn
    assert c.KubeSpawner.volumes == [] and c.KubeSpawner.volume_mounts == [] and c.KubeSpawner.environment == {}


def test_workspaces_reach_the_hub_by_its_cluster_ip():
    """A workspace's NetworkPolicy lets it reach no DNS server, so it is given the hub Service's cluster IP: the one
    named, else the one Kubernetes tells the hub's own pod."""
    assert hub_connect_url("enclave-hub", "10.0.0.9:8081") == "http://10.0.0.9:8081"
    env = {"HUB_SERVICE_HOST": "10.96.4.2", "HUB_SERVICE_PORT": "8081"}
    assert hub_connect_url("enclave-hub", environ=env) == "http://10.96.4.2:8081"
    assert hub_connect_url("enclave-hub", environ={}) == "http://hub.enclave-hub.svc.cluster.local:8081"


def test_images_are_pinned_by_digest(registry):
    with pytest.raises(ValueError, match="digest"):
        configure_kubespawner(
            Config(), image="enclave/workspace:latest", hub_namespace="enclave-hub", registry=registry
        )


@pytest.mark.parametrize(
    "user, project, cpus, memory",
    [("alice", PROJECT, 3, 6 * 2**30), ("bob", OTHER_PROJECT, 1.5, 2 * 2**30)],
)
def test_a_researcher_gets_their_projects_pod(registry, api, user, project, cpus, memory):
    async def granted_pod():
        spawner = kube_spawner(hub_config(registry), api, user, project)
        await maybe_future(spawner.run_pre_spawn_hook())
        async with ApiClient() as client:  # the pod as the cluster would receive it
            return spawner, client.sanitize_for_serialization(await spawner.get_pod_manifest())

    spawner, pod = asyncio.run(granted_pod())
    (container,) = pod["spec"]["containers"]
    assert spawner.namespace == f"enclave-{project}"
    assert (spawner.cpu_limit, spawner.cpu_guarantee, spawner.mem_limit, spawner.mem_guarantee) == (
        cpus,
        cpus,
        memory,
        memory,
    )
    assert container["resources"] == {
        "limits": {"cpu": cpus, "memory": memory},
        "requests": {"cpu": cpus, "memory": memory},
    }
    claims = {v["name"]: v["persistentVolumeClaim"] for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert claims["data"] == {"claimName": "project-data", "readOnly": True}  # the claim of the pod's namespace
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["data"] == {"name": "data", "mountPath": f"/projects/{project}/data", "readOnly": True}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ENCLAVE_PROJECT"] == project
    # the view where the pod mounts it, read-only, as in a sandboxed workspace
    assert env["ENCLAVE_PROJECT_DATA"] == f"/projects/{project}/data"
    assert {"mountPath": env["ENCLAVE_PROJECT_DATA"], "name": "data", "readOnly": True} in container["volumeMounts"]
    assert api.requests == []  # building the pod asks the cluster nothing


@pytest.mark.parametrize("user, server", REFUSED_SPAWNS.values(), ids=REFUSED_SPAWNS)
def test_everyone_else_is_refused_by_the_hook(registry, api, user, server):
    async def refused_spawn():
        spawner = kube_spawner(hub_config(registry), api, user, server)
        with pytest.raises(web.HTTPError) as refused:
            await maybe_future(spawner.run_pre_spawn_hook())
        return spawner, refused.value

    spawner, refused = asyncio.run(refused_spawn())
    assert (refused.status_code, refused.log_message) == (403, REFUSED)  # the sandbox spawner's very answer
    assert spawner.volumes == [] and spawner.environment == {}  # no project's claim given
    assert api.requests == []


def test_project_manifests_deny_egress_except_to_the_hub_and_the_cluster_service():
    kinds = {m["kind"]: m for m in manifests()}
    assert kinds["Namespace"]["metadata"]["name"] == "enclave-cardio-risk"
    policies = {m["metadata"]["name"]: m["spec"] for m in manifests() if m["kind"] == "NetworkPolicy"}
    # every pod of the namespace isolated both ways, with no rule: nothing in or out unless a policy allows it
    assert policies.pop("deny-all-else") == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    (policy,) = policies.values()
    assert policy["podSelector"] == {"matchLabels": {"component": "singleuser-server"}}  # workspaces
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    hub, clusters = policy["egress"]
    assert hub["ports"] == [{"protocol": "TCP", "port": 8081}]
    assert hub["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "enclave-hub"}
    assert hub["to"][0]["podSelector"]["matchLabels"] == {"component": "hub"}
    # the Dask cluster service (clusters/kubernetes_service.py), its port only
    assert clusters["ports"] == [{"protocol": "TCP", "port": 8082}]
    assert clusters["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "enclave-hub"}
    assert clusters["to"][0]["podSelector"]["matchLabels"] == {"component": "enclave-clusters"}
    claims = {
        m["metadata"]["name"]: m["spec"]["accessModes"] for m in manifests() if m["kind"] == "PersistentVolumeClaim"
    }
    assert claims == {"project-data": ["ReadOnlyMany"], "project-outputs": ["ReadWriteMany"]}


@pytest.mark.parametrize("index", range(len(manifests())))
def test_manifests_are_valid_kubernetes_objects(index):
    manifest = manifests()[index]
    assert as_model(manifest) == manifest  # the client's own schema: an unknown or misspelt field is dropped
