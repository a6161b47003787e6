"""Production workspaces: KubeSpawner with a namespace per project, egress denied by a NetworkPolicy, and the
project's data mounted read-only. (The embedded default is the bubblewrap spawner; this is its scale-out path.)

A researcher's workspace for project P is their named server P, in namespace `enclave-P`: projects share nothing,
and a namespace's NetworkPolicy lets its pods talk to the hub only (no DNS, no internet, no other namespace).

    from hub.kubernetes import configure_kubespawner
    configure_kubespawner(c, image="registry.example.org/enclave/workspace@sha256:…", hub_namespace="enclave-hub")

`project_manifests(P, ...)` gives the per-project objects the platform applies when a project is created.
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "enclave-{servername}"
DATA_MOUNT = "/projects/{servername}/data"
OUTPUTS_MOUNT = "/projects/{servername}/outputs"


def configure_kubespawner(
    c: Any, *, image: str, hub_namespace: str, cpu_limit: float = 4, mem_limit: str = "16G", uid: int = 1000
) -> None:
    if "@sha256:" not in image:
        raise ValueError("a workspace image is pinned by digest (image@sha256:…), never by a moving tag")
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    c.JupyterHub.allow_named_servers = True  # one server per project
    k = c.KubeSpawner
    k.image = image
    k.image_pull_policy = "IfNotPresent"
    k.enable_user_namespaces = True
    k.user_namespace_template = NAMESPACE
    k.user_namespace_labels = {"enclave.project": "{servername}", "enclave.role": "workspace"}
    k.extra_labels = {"enclave.project": "{servername}"}
    k.uid = uid
    k.fs_gid = uid
    k.allow_privilege_escalation = False
    k.automount_service_account_token = False  # a workspace never talks to the Kubernetes API
    k.container_security_context = {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    k.cpu_limit = cpu_limit
    k.mem_limit = mem_limit
    k.volumes = [
        {"name": "data", "persistentVolumeClaim": {"claimName": "project-data", "readOnly": True}},
        {"name": "outputs", "persistentVolumeClaim": {"claimName": "project-outputs"}},
        {"name": "home", "persistentVolumeClaim": {"claimName": "home-{username}"}},
        {"name": "tmp", "emptyDir": {}},
    ]
    k.volume_mounts = [
        {"name": "data", "mountPath": DATA_MOUNT, "readOnly": True},
        {"name": "outputs", "mountPath": OUTPUTS_MOUNT},
        {"name": "home", "mountPath": "/home/jovyan"},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108  (an emptyDir: the root filesystem is read-only)
    ]
    k.environment = {"ENCLAVE_PROJECT": "{servername}"}
    k.hub_connect_url = f"http://hub.{hub_namespace}.svc.cluster.local:8081"


def project_manifests(project: str, *, hub_namespace: str, data_volume: str, storage_class: str) -> list[dict]:
    """The namespace, its deny-all-but-the-hub NetworkPolicy, and the read-only data / writable outputs claims."""
    namespace = NAMESPACE.format(servername=project)
    labels = {"enclave.project": project}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}},
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "workspaces-reach-the-hub-only", "namespace": namespace},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                # In: the hub and its proxy only. Out: the hub's API only; no DNS, no internet, no other project.
                "ingress": [{"from": [_hub_peer(hub_namespace)]}],
                "egress": [{"to": [_hub_peer(hub_namespace)], "ports": [{"protocol": "TCP", "port": 8081}]}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "project-data", "namespace": namespace, "labels": labels},
            "spec": {
                "accessModes": ["ReadOnlyMany"],
                "volumeName": data_volume,
                "storageClassName": storage_class,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "project-outputs", "namespace": namespace, "labels": labels},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": storage_class,
                "resources": {"requests": {"storage": "10Gi"}},
            },
        },
    ]


def _hub_peer(hub_namespace: str) -> dict:
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": hub_namespace}},
        "podSelector": {"matchLabels": {"component": "hub"}},
    }
