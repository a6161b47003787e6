"""Test helper: Kubernetes manifests checked the way the API server would read them, without a cluster.

`as_model` reads a manifest into the Kubernetes client's typed model of its kind and writes it back: a misspelt or
unknown field does not survive the trip, so comparing the result with the manifest catches it (the API server
would drop it silently). `check_custom_resource` walks a custom resource against its CustomResourceDefinition's
schema, as the API server's pruning does, and lists every field the schema does not know, every value of the wrong
type and every required field missing. `dask_crd_schema` is the Dask operator's DaskCluster schema as released
with the installed dask-kubernetes (its Helm chart's CRD, the one the operator installs); `operator_deployments`
what the operator's controller makes of a DaskCluster, by the controller's own functions.
"""

from __future__ import annotations

import asyncio
from functools import cache
from pathlib import Path
from typing import Any

import dask_kubernetes
import yaml
from dask_kubernetes.operator.controller.controller import (
    build_scheduler_deployment_spec,
    build_scheduler_service_spec,
    build_worker_deployment_spec,
)
from kubernetes_asyncio.client import ApiClient

MODELS = {
    "Namespace": "V1Namespace",
    "NetworkPolicy": "V1NetworkPolicy",
    "PersistentVolumeClaim": "V1PersistentVolumeClaim",
    "Secret": "V1Secret",
    "Role": "V1Role",
    "RoleBinding": "V1RoleBinding",
    "Deployment": "V1Deployment",
    "Service": "V1Service",
}
CRDS = Path(dask_kubernetes.__file__).parent / "operator/deployment/helm/dask-kubernetes-operator/crds"
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float)}


def as_model(manifest: dict[str, Any], model: str | None = None) -> dict[str, Any]:
    """`manifest` read into its typed model (by kind, or `model`) and written back as the client would send it."""

    async def roundtrip() -> dict[str, Any]:
        async with ApiClient() as client:
            obj = client._ApiClient__deserialize(manifest, model or MODELS[manifest["kind"]])
            return client.sanitize_for_serialization(obj)

    return asyncio.run(roundtrip())


@cache
def dask_crd_schema(kind: str = "daskcluster") -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / f"{kind}.yaml").read_text(encoding="utf-8"))
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def check_custom_resource(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """What the API server would drop or refuse in `value` under `schema` (empty: nothing)."""
    problems: list[str] = []
    if schema.get("x-kubernetes-int-or-string"):
        return [] if isinstance(value, int | str) else [f"{path}: int or string, not {value!r}"]
    kind = schema.get("type")
    if kind and not (isinstance(value, TYPES[kind]) and not (kind in ("integer", "number") and value is True)):
        return [f"{path}: {kind}, not {type(value).__name__}"]
    if isinstance(value, dict):
        properties = schema.get("properties")
        problems += [f"{path}.{key}: required" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if properties is not None and key in properties:
                problems += check_custom_resource(item, properties[key], f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                problems += check_custom_resource(item, schema["additionalProperties"], f"{path}.{key}")
            elif properties is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                problems.append(f"{path}.{key}: unknown field")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += check_custom_resource(item, schema["items"], f"{path}[{index}]")
    return problems


def operator_deployments(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The scheduler's Deployment and Service and the default worker group's Deployment that the operator's
    controller makes of a DaskCluster (annotations aside)."""
    name, namespace, labels = (resource["metadata"][key] for key in ("name", "namespace", "labels"))
    scheduler, worker = resource["spec"]["scheduler"], resource["spec"]["worker"]
    return {
        "scheduler": build_scheduler_deployment_spec(name, scheduler["spec"], {}, labels),
        "service": build_scheduler_service_spec(name, scheduler["service"], {}, labels),
        "worker": build_worker_deployment_spec(f"{name}-default", namespace, name, "0a1b", worker["spec"], {}, labels),
    }
