"""What a project's namespace allows its Dask clusters on Kubernetes: the NetworkPolicies that let a cluster's pods
talk to each other and the project's workspaces reach their schedulers, and nothing else; and the Role that lets
the platform's cluster service (not a workspace) make clusters there. Applied once per project, beside
`hub.kubernetes.project_manifests`, whose namespace-wide policy denies whatever no policy allows.

The flows, all inside the project's namespace `enclave-P` but one:

    workspace -> scheduler   8786 (Dask, TLS), 8787 (dashboard)
    worker    -> scheduler   8786
    scheduler -> worker      8788 (worker), 8789 (nanny)
    worker    -> worker      8788 (transfers between workers)
    operator  -> scheduler   8787 (its HTTP API: retire workers, idle checks), from the operator's namespace

Nothing else in or out: no DNS (workers find their scheduler by the Service's variable), no internet, no hub, no
other namespace; a client talks to the scheduler only (distributed's default), never to workers. The selectors are
labels, which hold because only the hub (workspaces) and the operator (Dask pods) create pods in a project's
namespace: a researcher has no Kubernetes API access. Probes come from the node's kubelet, which NetworkPolicy
implementations admit by themselves.
"""

from __future__ import annotations

from typing import Any

from hub.kubernetes import NAMESPACE, WORKSPACE_POD

SCHEDULER_PORT, DASHBOARD_PORT, WORKER_PORT, NANNY_PORT = 8786, 8787, 8788, 8789  # a worker's default is random
SCHEDULER_POD = {"dask.org/component": "scheduler"}  # the operator's labels of a cluster's pods
WORKER_POD = {"dask.org/component": "worker"}
OPERATOR_POD = {"app.kubernetes.io/name": "dask-kubernetes-operator"}  # the operator's Helm chart's pod label
SERVICE_ROLE = "enclave-dask-clusters"


def cluster_manifests(
    project: str, *, hub_namespace: str, operator_namespace: str, service_account: str = "enclave-clusters"
) -> list[dict[str, Any]]:
    """The NetworkPolicies for `project`'s Dask clusters, and the Role (with its binding) that lets the cluster
    service, `service_account` in `hub_namespace`, make and end them in the project's namespace."""
    namespace = NAMESPACE.format(servername=project)
    workspaces, schedulers, workers = _pods(WORKSPACE_POD), _pods(SCHEDULER_POD), _pods(WORKER_POD)
    operator = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": operator_namespace}},
        "podSelector": {"matchLabels": OPERATOR_POD},
    }
    return [
        _policy(
            "dask-schedulers",
            namespace,
            SCHEDULER_POD,
            ingress=[
                {"from": [workspaces], "ports": _tcp(SCHEDULER_PORT, DASHBOARD_PORT)},
                {"from": [workers], "ports": _tcp(SCHEDULER_PORT)},
                {"from": [operator], "ports": _tcp(DASHBOARD_PORT)},
            ],
            egress=[{"to": [workers], "ports": _tcp(WORKER_PORT, NANNY_PORT)}],
        ),
        _policy(
            "dask-workers",
            namespace,
            WORKER_POD,
            ingress=[
                {"from": [schedulers], "ports": _tcp(WORKER_PORT, NANNY_PORT)},
                {"from": [workers], "ports": _tcp(WORKER_PORT)},
            ],
            egress=[
                {"to": [schedulers], "ports": _tcp(SCHEDULER_PORT)},
                {"to": [workers], "ports": _tcp(WORKER_PORT)},
            ],
        ),
        _policy(
            "workspaces-reach-dask-schedulers",
            namespace,
            WORKSPACE_POD,
            egress=[{"to": [schedulers], "ports": _tcp(SCHEDULER_PORT, DASHBOARD_PORT)}],
        ),
        *cluster_service_access(namespace, hub_namespace, service_account),
    ]


def cluster_service_access(namespace: str, hub_namespace: str, service_account: str) -> list[dict[str, Any]]:
    """The cluster service's rights in one project's namespace: make, scale and delete DaskClusters, create and
    delete their TLS Secrets (never read one), read the scheduler's Service for its address and the pods' state."""
    rules = [
        {
            "apiGroups": ["kubernetes.dask.org"],
            "resources": ["daskclusters"],
            "verbs": ["create", "get", "list", "watch", "patch", "delete"],
        },
        {"apiGroups": ["kubernetes.dask.org"], "resources": ["daskclusters/scale"], "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "delete"]},
        {"apiGroups": [""], "resources": ["services", "pods"], "verbs": ["get", "list", "watch"]},
    ]
    metadata = {"name": SERVICE_ROLE, "namespace": namespace}
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": metadata, "rules": rules},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata,
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": hub_namespace}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SERVICE_ROLE},
        },
    ]


def _policy(
    name: str,
    namespace: str,
    pods: dict[str, str],
    *,
    ingress: list[dict[str, Any]] | None = None,
    egress: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": {"matchLabels": pods}, "policyTypes": []}
    if ingress is not None:
        spec["policyTypes"].append("Ingress")
        spec["ingress"] = ingress
    if egress is not None:
        spec["policyTypes"].append("Egress")
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _pods(labels: dict[str, str]) -> dict[str, Any]:
    """Pods of the policy's own namespace with these labels (a podSelector alone never reaches another)."""
    return {"podSelector": {"matchLabels": labels}}


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]
