"""Test helper: the cluster service's Kubernetes API in memory (`AppliedObjects`, a
clusters.kubernetes_service.KubernetesAPI). No Kubernetes API server runs in the tests; this stands where it would,
and is strict where it would be:

- every call must be allowed by the Role the service holds in the project's namespace
  (clusters.kubernetes_network.cluster_service_access), so reading a Secret, or touching any namespace but a
  project's, fails the test;
- every object created is read into the Kubernetes client's typed model (tests/kubernetes_models.py `as_model`) and
  must come back unchanged, and a DaskCluster must pass the operator's CRD schema; creating an object that exists
  is a conflict, as it is there;
- a DaskCluster's creation makes what the operator's controller would (its own functions,
  `operator_deployments`): the scheduler's Service, given a cluster IP, and pods labelled as the operator labels
  them, the scheduler's ready unless `scheduler_ready` is False; deleting the DaskCluster deletes them. A test that
  runs the cluster's processes itself passes `on_cluster`, called with the DaskCluster and its Secret, which starts
  them and answers where they listen (`{"ip": ..., "ports": {"tcp-comm": ..., "http-dashboard": ...}}`).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Callable
from typing import Any

from clusters.kubernetes_network import cluster_service_access
from tests.kubernetes_models import as_model, check_custom_resource, dask_crd_schema, operator_deployments

RESOURCES = {"Secret": "secrets", "DaskCluster": "daskclusters", "Service": "services", "Pod": "pods"}


class Forbidden(Exception):
    """What the API server answers 403 for: a call the service's Role does not allow."""


class Conflict(Exception):
    """What the API server answers 409 for: creating an object that exists."""


class AppliedObjects:
    def __init__(
        self, *, scheduler_ready: bool = True, on_cluster: Callable[[dict, dict], dict[str, Any]] | None = None
    ) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str, str]] = []  # (verb, kind, namespace, name)
        self.scheduler_ready = scheduler_ready
        self.on_cluster = on_cluster
        self._ips = (f"10.96.{i // 250}.{i % 250 + 2}" for i in itertools.count(1))

    def _allow(self, verb: str, kind: str, namespace: str, name: str = "") -> None:
        self.calls.append((verb, kind, namespace, name))
        if not namespace.startswith("enclave-") or namespace == "enclave-hub":
            raise Forbidden(f"{verb} {kind} in {namespace}: not a project's namespace")
        (role, _) = cluster_service_access(namespace, "enclave-hub", "enclave-clusters")
        resource = RESOURCES[kind]
        if not any(resource in rule["resources"] and verb in rule["verbs"] for rule in role["rules"]):
            raise Forbidden(f"{verb} {resource}: not in the service's Role")

    async def create(self, manifest: dict[str, Any]) -> None:
        kind, meta = manifest["kind"], manifest["metadata"]
        self._allow("create", kind, meta["namespace"], meta["name"])
        if kind == "DaskCluster":
            body = {key: value for key, value in manifest.items() if key not in ("apiVersion", "kind", "metadata")}
            problems = check_custom_resource(body, dask_crd_schema())
            assert not problems, problems
            metadata = await asyncio.to_thread(as_model, meta, "V1ObjectMeta")
            assert metadata == meta, f"DaskCluster {meta['name']}'s metadata does not survive the Kubernetes model"
        else:
            typed = await asyncio.to_thread(as_model, manifest)  # as_model runs its own event loop
            assert typed == manifest, f"{kind} {meta['name']} does not survive the Kubernetes model"
        key = (kind, meta["namespace"], meta["name"])
        if key in self.objects:
            raise Conflict(f"{kind} {meta['name']} exists")
        self.objects[key] = copy.deepcopy(manifest)
        if kind == "DaskCluster":
            await asyncio.to_thread(self._operate, manifest)

    def _operate(self, cluster: dict[str, Any]) -> None:
        """What the operator's controller makes of a new DaskCluster (the parts the service reads)."""
        made = operator_deployments(cluster)
        name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
        service = as_model(made["service"], "V1Service")
        service["spec"]["clusterIP"] = next(self._ips)
        if self.on_cluster is not None:  # a test that runs the cluster's processes says where they listen
            secret = self.objects[("Secret", namespace, f"{name}-tls")]
            place = self.on_cluster(cluster, secret)
            service["spec"]["clusterIP"] = place["ip"]
            for port in service["spec"]["ports"]:
                port["port"] = place["ports"].get(port["name"], port["port"])
        self.objects[("Service", namespace, service["metadata"]["name"])] = service
        scheduler = made["scheduler"]["spec"]["template"]["metadata"]["labels"]
        ready = "True" if self.scheduler_ready else "False"
        self.objects[("Pod", namespace, f"{name}-scheduler-0")] = {
            "metadata": {"name": f"{name}-scheduler-0", "namespace": namespace, "labels": scheduler},
            "status": {"phase": "Running" if self.scheduler_ready else "Pending",
                       "conditions": [{"type": "Ready", "status": ready}]},
        }  # fmt: skip
        self._workers(cluster)

    def _workers(self, cluster: dict[str, Any]) -> None:
        name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
        for key in [k for k in self.objects if k[0] == "Pod" and k[1] == namespace and "-worker-" in k[2]]:
            if self.objects[key]["metadata"]["labels"].get("dask.org/cluster-name") == name:
                del self.objects[key]
        labels = operator_deployments(cluster)["worker"]["spec"]["template"]["metadata"]["labels"]
        for index in range(cluster["spec"]["worker"]["replicas"]):
            pod = f"{name}-worker-{index}"
            self.objects[("Pod", namespace, pod)] = {
                "metadata": {"name": pod, "namespace": namespace, "labels": labels},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            }

    async def read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._allow("get", kind, namespace, name)
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def scale(self, namespace: str, cluster: str, replicas: int) -> None:
        self._allow("patch", "DaskCluster", namespace, cluster)
        resource = self.objects[("DaskCluster", namespace, cluster)]
        resource["spec"]["worker"]["replicas"] = replicas
        self._workers(resource)

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        self._allow("delete", kind, namespace, name)
        self.objects.pop((kind, namespace, name), None)
        if kind == "DaskCluster":
            for key in list(self.objects):
                labels = self.objects[key].get("metadata", {}).get("labels") or {}
                if key[1] == namespace and key[0] in ("Service", "Pod") and labels.get("dask.org/cluster-name") == name:
                    del self.objects[key]

    async def pods(self, namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        self._allow("list", "Pod", namespace)
        return [
            copy.deepcopy(pod)
            for (kind, ns, _), pod in self.objects.items()
            if kind == "Pod" and ns == namespace and labels.items() <= pod["metadata"]["labels"].items()
        ]

    def of_kind(self, kind: str, namespace: str | None = None) -> dict[str, dict[str, Any]]:
        """The objects of one kind (in one namespace), by name."""
        return {k[2]: v for k, v in self.objects.items() if k[0] == kind and namespace in (None, k[1])}
