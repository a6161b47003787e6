"""The production KubeSpawner configuration and per-project manifests, validated without a cluster: the config
against KubeSpawner's own traits, the manifests against the Kubernetes client's models."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner
from traitlets import HasTraits
from traitlets.config import Config

from hub.kubernetes import configure_kubespawner, project_manifests

pytestmark = pytest.mark.unit
IMAGE = "registry.invalid/enclave/workspace@sha256:" + "0" * 64
MODELS = {
    "Namespace": "V1Namespace",
    "NetworkPolicy": "V1NetworkPolicy",
    "PersistentVolumeClaim": "V1PersistentVolumeClaim",
}


def manifests() -> list[dict]:
    return project_manifests("cardio-risk", hub_namespace="enclave-hub", data_volume="pv", storage_class="nfs")


def test_config_is_valid_for_kubespawner():
    c = Config()
    configure_kubespawner(c, image=IMAGE, hub_namespace="enclave-hub")
    traits = KubeSpawner.class_traits()
    probe = HasTraits()
    for name, value in c.KubeSpawner.items():
        assert name in traits, name
        traits[name].validate(probe, value)  # raises for a value of the wrong type
    assert c.KubeSpawner.user_namespace_template == "enclave-{servername}"
    assert c.KubeSpawner.automount_service_account_token is False
    data = next(m for m in c.KubeSpawner.volume_mounts if m["name"] == "data")
    assert data["readOnly"] is True
    assert c.KubeSpawner.container_security_context["readOnlyRootFilesystem"] is True


def test_images_are_pinned_by_digest():
    with pytest.raises(ValueError, match="digest"):
        configure_kubespawner(Config(), image="enclave/workspace:latest", hub_namespace="enclave-hub")


def test_project_manifests_deny_egress_except_to_the_hub():
    kinds = {m["kind"]: m for m in manifests()}
    assert kinds["Namespace"]["metadata"]["name"] == "enclave-cardio-risk"
    policy = kinds["NetworkPolicy"]["spec"]
    assert policy["podSelector"] == {} and set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (egress,) = policy["egress"]
    assert egress["ports"] == [{"protocol": "TCP", "port": 8081}]
    assert egress["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "enclave-hub"}
    claims = {
        m["metadata"]["name"]: m["spec"]["accessModes"] for m in manifests() if m["kind"] == "PersistentVolumeClaim"
    }
    assert claims == {"project-data": ["ReadOnlyMany"], "project-outputs": ["ReadWriteMany"]}


@pytest.mark.parametrize("index", range(4))
def test_manifests_are_valid_kubernetes_objects(index):
    manifest = manifests()[index]

    async def roundtrip() -> dict:
        async with ApiClient() as client:
            obj = client._ApiClient__deserialize(manifest, MODELS[manifest["kind"]])  # the client's own schema
            return client.sanitize_for_serialization(obj)

    assert asyncio.run(roundtrip()) == manifest
