"""Production workspaces: KubeSpawner with a namespace per project, egress denied by a NetworkPolicy, and the
project's data mounted read-only. (The embedded default is the bubblewrap spawner; this is its scale-out path.)

A researcher's workspace for project P is their named server P, in namespace `enclave-P`: projects share nothing,
and a namespace's NetworkPolicy lets its workspaces talk to the hub only (no DNS, no internet, no other namespace);
any other pod there gets nothing but what a policy of its own allows (clusters/kubernetes_network.py). Who may
start it is the rule every spawner applies (hub/authorisation.py), asked by a pre-spawn hook before KubeSpawner makes
any Kubernetes call; the hook then gives the pod P's CPU and memory, and P's namespace and claims, from the grant.

    from hub.kubernetes import configure_kubespawner
    configure_kubespawner(c, image="registry.example.org/enclave/workspace@sha256:…", hub_namespace="enclave-hub",
                          registry=registry_of(Paths.from_env()))

`project_manifests(P, ...)` gives the per-project objects the platform applies when a project is created.

Dask clusters (`compute.engine: kubernetes`): with `cluster_service_url`, the hub knows the cluster service
(clusters/kubernetes_service.py, its own Deployment in the hub's namespace) as the JupyterHub service `dask-clusters`
with no proxy route (browsers never reach it), gives it the one hub scope it needs (`read:servers`: is the caller's
workspace running?), lets researchers' workspace tokens (never their browser's) carry
`access:services!service=dask-clusters`, and puts the service's URL in every workspace's environment. The workspace
reaches it directly: `project_manifests` lets workspace pods reach the service's pods on its port, besides the hub.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

from tornado import web

from hub.authorisation import WorkspaceError, WorkspaceGrant, authorise_workspace
from kernel.db import Registry
from workbench import view_contract

NAMESPACE = "enclave-{servername}"
DATA_MOUNT = "/projects/{servername}/data"
OUTPUTS_MOUNT = "/projects/{servername}/outputs"
WORKSPACE_POD = {"component": "singleuser-server"}  # KubeSpawner's label of the pods it starts (its component_label)
# The Dask cluster service (clusters/kubernetes_service.py): its JupyterHub service name, Kubernetes identity and port
CLUSTER_SERVICE = "dask-clusters"
CLUSTER_SERVICE_ACCOUNT = "enclave-clusters"  # its ServiceAccount in the hub's namespace, and its pods' label
CLUSTER_SERVICE_POD = {"component": CLUSTER_SERVICE_ACCOUNT}
CLUSTER_SERVICE_PORT = 8082
CLUSTER_SERVICE_SCOPE = f"access:services!service={CLUSTER_SERVICE}"
# What the service may ask the hub: whether the caller's server runs (its own token's only scope)
CLUSTER_SERVICE_HUB_SCOPES = ["read:servers"]
# A workspace's own token (JUPYTERHUB_API_TOKEN): JupyterHub's `server` role, and the cluster service
WORKSPACE_TOKEN_SCOPES = ["users:activity!user", "access:servers!server", CLUSTER_SERVICE_SCOPE]


def configure_kubespawner(
    c: Any,
    *,
    image: str,
    hub_namespace: str,
    registry: Registry,
    uid: int = 1000,
    cluster_service_url: str | None = None,
    cluster_service_token: str | None = None,
    hub_address: str | None = None,
) -> None:
    """KubeSpawner for workspaces; `registry` holds the projects and their members, asked before every spawn. With
    `cluster_service_url` (and the service's hub API token), the Dask cluster service (`configure_cluster_service`);
    apply after `hub.config.apply_config`, whose roles and services this extends."""
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
    k.component_label = WORKSPACE_POD["component"]  # what the NetworkPolicies select workspaces by
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
    # Deny by default: no claim, no project and the least CPU and memory until the hook has authorised the spawn
    # and set the project's own (a hook that never ran leaves a pod with nothing of any project's).
    k.cpu_limit = k.cpu_guarantee = 0.1
    k.mem_limit = k.mem_guarantee = "128M"
    k.volumes = []
    k.volume_mounts = []
    k.environment = {}
    k.hub_connect_url = hub_connect_url(hub_namespace, hub_address)
    environment = {}
    if cluster_service_url is not None:
        if not cluster_service_token:
            raise ValueError("the cluster service needs its hub API token (cluster_service_token)")
        configure_cluster_service(c, url=cluster_service_url, api_token=cluster_service_token)
        environment[view_contract.ENV_CLUSTER_SERVICE] = cluster_service_url
    k.pre_spawn_hook = authorise_spawn(registry, environment)


def hub_connect_url(hub_namespace: str, address: str | None = None, environ: Any = None) -> str:
    """Where workspaces reach the hub: its Service's cluster IP (`address`, else the `HUB_SERVICE_HOST`/`_PORT`
    variables Kubernetes gives the hub's own pod for the Service `hub`), since a workspace's NetworkPolicy lets it
    reach no DNS server; the Service's DNS name only where neither is known, which works only if the site's policies
    let workspaces resolve names."""
    environ = os.environ if environ is None else environ
    if address is None and environ.get("HUB_SERVICE_HOST"):
        address = f"{environ['HUB_SERVICE_HOST']}:{environ.get('HUB_SERVICE_PORT') or 8081}"
    return f"http://{address}" if address else f"http://hub.{hub_namespace}.svc.cluster.local:8081"


def configure_cluster_service(c: Any, *, url: str, api_token: str) -> None:
    """The Dask cluster service as a JupyterHub service: known by its token, with no `url` (so no proxy route: only
    workspaces call it, at `url`, over the project network), given `read:servers` only; researchers' workspace tokens
    carry its access scope, their browser tokens never (a browser's OAuth token is scoped to the server it is for)."""
    if not url.startswith("http://") or not api_token:
        raise ValueError("the cluster service is http://ADDRESS:PORT inside the cluster, with a hub API token")
    c.JupyterHub.services = [*c.JupyterHub.get("services", []), {"name": CLUSTER_SERVICE, "api_token": api_token}]
    c.JupyterHub.load_roles = [
        *c.JupyterHub.get("load_roles", []),
        {
            "name": "enclave-dask-clusters-service",
            "description": "The Dask cluster service: whether a caller's workspace runs",
            "scopes": CLUSTER_SERVICE_HUB_SCOPES,
            "services": [CLUSTER_SERVICE],
        },
        {
            "name": "enclave-dask-clusters-users",
            "description": "Researchers' workspaces may ask the Dask cluster service for their project's cluster",
            "scopes": [CLUSTER_SERVICE_SCOPE],
            "groups": ["researchers"],
        },
    ]
    # A workspace's JUPYTERHUB_API_TOKEN: JupyterHub's `server` role and the service's access scope (the subset of
    # these its owner holds: researchers only).
    c.KubeSpawner.server_token_scopes = WORKSPACE_TOKEN_SCOPES


def cluster_service_url(environ: dict[str, str] | Any) -> str | None:
    """The cluster service's URL from the variables Kubernetes gives the hub's pods for the Service
    `enclave-clusters` of their own namespace (its cluster IP: workspaces have no DNS); None when there is none."""
    prefix = CLUSTER_SERVICE_ACCOUNT.upper().replace("-", "_")
    host, port = environ.get(f"{prefix}_SERVICE_HOST"), environ.get(f"{prefix}_SERVICE_PORT")
    return f"http://{host}:{port}" if host and port else None


def authorise_spawn(registry: Registry, environment: dict[str, str] | None = None) -> Callable[[Any], Awaitable[None]]:
    """KubeSpawner's pre-spawn hook: refuse (HTTP 403) unless the user is a researcher in the project the server is
    named after, then give the pod that project's limits, namespace and claims (and `environment`)."""

    async def pre_spawn_hook(spawner: Any) -> None:
        try:
            grant = await asyncio.to_thread(authorise_workspace, registry, spawner.user.name, spawner.name)
        except WorkspaceError as exc:
            raise web.HTTPError(exc.status, exc.message) from exc
        apply_grant(spawner, grant)
        spawner.environment = {**spawner.environment, **(environment or {})}

    return pre_spawn_hook


def apply_grant(spawner: Any, grant: WorkspaceGrant) -> None:
    """The pod's resources, namespace, claims and environment, from the grant only (never from the server's name)."""
    project, limits = grant.project, grant.limits
    # limits equal to guarantees: the scheduler reserves what the project may use (Kubernetes' Guaranteed class)
    spawner.cpu_limit = spawner.cpu_guarantee = limits.cpus
    spawner.mem_limit = spawner.mem_guarantee = limits.memory_bytes
    spawner.namespace = NAMESPACE.format(servername=project)
    spawner.extra_labels = {"enclave.project": project}
    spawner.volumes = [
        {"name": "data", "persistentVolumeClaim": {"claimName": "project-data", "readOnly": True}},
        {"name": "outputs", "persistentVolumeClaim": {"claimName": "project-outputs"}},
        {"name": "home", "persistentVolumeClaim": {"claimName": "home-{username}"}},
        {"name": "tmp", "emptyDir": {}},
    ]
    spawner.volume_mounts = [
        {"name": "data", "mountPath": DATA_MOUNT.format(servername=project), "readOnly": True},
        {"name": "outputs", "mountPath": OUTPUTS_MOUNT.format(servername=project)},
        {"name": "home", "mountPath": "/home/jovyan"},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108  (an emptyDir: the root filesystem is read-only)
    ]
    # what the sandboxed workspace's environment says too: open_project() finds the view without being told
    spawner.environment = {
        "ENCLAVE_PROJECT": project,
        view_contract.ENV_VIEW: DATA_MOUNT.format(servername=project),
        "ENCLAVE_OUTPUTS": OUTPUTS_MOUNT.format(servername=project),
    }


def project_manifests(project: str, *, hub_namespace: str, data_volume: str, storage_class: str) -> list[dict]:
    """The namespace, its NetworkPolicies (workspaces reach the hub only; every other pod nothing unless a policy of
    its own allows it), and the read-only data / writable outputs claims."""
    namespace = NAMESPACE.format(servername=project)
    labels = {"enclave.project": project}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}},
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "workspaces-reach-the-hub-only", "namespace": namespace},
            "spec": {
                "podSelector": {"matchLabels": WORKSPACE_POD},
                "policyTypes": ["Ingress", "Egress"],
                # In: the hub and its proxy only. Out: the hub's API and the Dask cluster service only; no DNS, no
                # internet, no other project.
                "ingress": [{"from": [_hub_peer(hub_namespace)]}],
                "egress": [
                    {"to": [_hub_peer(hub_namespace)], "ports": [{"protocol": "TCP", "port": 8081}]},
                    {
                        "to": [_hub_peer(hub_namespace, CLUSTER_SERVICE_POD)],
                        "ports": [{"protocol": "TCP", "port": CLUSTER_SERVICE_PORT}],
                    },
                ],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny-all-else", "namespace": namespace},
            # Every pod isolated both ways: what a pod may do is only what a policy selecting it allows.
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
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


def _hub_peer(hub_namespace: str, pods: dict[str, str] | None = None) -> dict:
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": hub_namespace}},
        "podSelector": {"matchLabels": pods or {"component": "hub"}},
    }
