"""The Dask cluster service on Kubernetes: the platform service, beside the hub, that makes, scales, reports on and
deletes a KubeSpawner workspace's Dask cluster (clusters/kubernetes.py) on the workspace's behalf, since a workspace
has no Kubernetes API access. The SLURM side's per-workspace service (clusters/service.py) is its model; this one is
a single Deployment for every project, running as the ServiceAccount `enclave-clusters` in the hub's namespace, whose
Role in each project's namespace (clusters/kubernetes_network.py) lets it make DaskClusters and their TLS Secrets
there and nothing else.

Who may: the JupyterHub service `dask-clusters` (hub/kubernetes.py `configure_cluster_service`). A workspace calls
it with its own JupyterHub API token (JUPYTERHUB_API_TOKEN, which carries `access:services!service=dask-clusters`
for researchers only); the service asks the hub who the token is (jupyterhub.services.auth.HubAuth) and admits
only a workspace's own token (`workspace_of`): one server's token, of the token's own user, not a browser session's.
The server's name is the project. The server must be running (asked of the hub with the service's own token,
`read:servers` and nothing more), and the user must still be a researcher in the project whose `compute.engine`
is `kubernetes` (the registry, the rule every spawner applies: hub/authorisation.py). Each refusal is one clear
message, never a token, a PEM or another person's name.

What it does, one cluster per (workspace user, project), named `cluster_name(user)` in the project's namespace:

    POST /api/start  {"n_workers": N}   make the cluster unless it exists (its Secret, then its DaskCluster), scale
                                        it to N (default the project's `dask_workers`), wait for the scheduler;
                                        answer its address (the Service's cluster IP: workspaces have no DNS), its
                                        dashboard's, and the client's TLS credentials (PEM text)
    POST /api/scale  {"n_workers": N}   change the worker count (never past `max-workers`)
    POST /api/status                    the DaskCluster's phase and its pods' states
    POST /api/close                     delete the DaskCluster and its Secret

Every minute it also deletes the clusters of workspaces that have stopped (`ProjectClusters.sweep`); the operator's
idle timeout (`enclave.kubernetes.idle-timeout`) ends any it no longer knows of.

The cluster's key exists only in the Secret (mounted by the cluster's pods; this service may create and delete
Secrets, never read one) and in this service's memory, so a cluster made before the service restarted cannot be
handed out again: `start` replaces it. The Kubernetes calls go through `KubernetesAPI`, a small protocol: `Kr8sAPI`
(kr8s, as dask-kubernetes uses) in production, an in-memory store in the tests (no Kubernetes API server runs
there). Every rule is a plain function or a method over that protocol.

    python -m clusters.kubernetes_service serve          # the Deployment's command (JUPYTERHUB_* from its Secret)
    python -m clusters.kubernetes_service manifests --image IMAGE@sha256:...   # its Deployment and the rest
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, Protocol

import yaml
from jupyterhub.services.auth import HubAuth
from tornado import httpclient, web
from tornado.httpserver import HTTPServer

from clusters.kubernetes import (
    CLUSTER_NAME,
    ClusterTLS,
    KubernetesClusterError,
    dask_cluster,
    hardened_container,
    max_workers,
    tls_secret,
    worker_count,
)
from clusters.kubernetes_network import DASHBOARD_PORT, SCHEDULER_PORT
from fabric.projects import ComputeLimits
from hub.authorisation import WorkspaceError, authorise_workspace
from hub.kubernetes import (
    CLUSTER_SERVICE,
    CLUSTER_SERVICE_ACCOUNT,
    CLUSTER_SERVICE_POD,
    CLUSTER_SERVICE_PORT,
    CLUSTER_SERVICE_SCOPE,
    NAMESPACE,
    WORKSPACE_POD,
)
from hub.workspaces import registry_of
from kernel.config import Paths
from kernel.db import Registry

log = logging.getLogger("enclave.kubernetes_clusters")

OPS = ("start", "scale", "status", "close")
MAX_BODY = 4096  # a request is a short JSON object
READY_SECONDS = 300  # for the scheduler's pod: its image may be pulled first
POLL_SECONDS = 1.0
SWEEP_SECONDS = 60  # how often the clusters of stopped workspaces are looked for and deleted
SERVER_SCOPE = re.compile(r"^access:servers!server=([^/]+)/(.+)$")
NOT_A_WORKSPACE = "the cluster service answers a workspace's own token only (JUPYTERHUB_API_TOKEN in the workspace)"
NOT_RUNNING = "this workspace is not running"


class ServiceRefused(Exception):
    """A request refused; `message` goes back to the caller as it is (no token, no PEM, nobody else's name)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Workspace:
    """The caller: one user's workspace for one project (their named server, named after the project)."""

    user: str
    project: str

    @property
    def namespace(self) -> str:
        return NAMESPACE.format(servername=self.project)


# -- who may


def workspace_of(model: dict[str, Any] | None) -> Workspace:
    """The workspace a token identifies, from the hub's answer about it (GET /hub/api/user with that token);
    ServiceRefused(403) unless it is a workspace's own token: a user's token, scoped to exactly one server of that
    user, with the service's access scope, and not a browser session's (a server's API token has no session)."""
    if not model or model.get("kind", "user") != "user" or not isinstance(model.get("name"), str):
        raise ServiceRefused(403, NOT_A_WORKSPACE)
    scopes = model.get("scopes") or []
    if CLUSTER_SERVICE_SCOPE not in scopes or model.get("session_id"):
        raise ServiceRefused(403, NOT_A_WORKSPACE)
    servers = {match.groups() for scope in scopes if (match := SERVER_SCOPE.match(scope))}
    if len(servers) != 1:
        raise ServiceRefused(403, NOT_A_WORKSPACE)
    ((user, project),) = servers
    if user != model["name"] or not project:
        raise ServiceRefused(403, NOT_A_WORKSPACE)
    return Workspace(user=user, project=project)


def server_is_running(user_model: dict[str, Any] | None, project: str) -> bool:
    """Whether the hub's model of the user (GET /hub/api/users/NAME, with `read:servers`) has the server `project`
    up and ready (not starting, not stopping)."""
    server = ((user_model or {}).get("servers") or {}).get(project) or {}
    return bool(server.get("ready")) and not server.get("pending")


def project_limits(registry: Registry, workspace: Workspace) -> ComputeLimits:
    """The project's compute limits, when the user is (still) a researcher in it and its engine is `kubernetes`;
    ServiceRefused otherwise (the registry's own refusal for the first)."""
    try:
        grant = authorise_workspace(registry, workspace.user, workspace.project)
    except WorkspaceError as exc:
        raise ServiceRefused(exc.status, exc.message) from None
    if grant.compute.engine != "kubernetes":
        raise ServiceRefused(
            409, f"project {workspace.project}'s compute.engine is {grant.compute.engine}, not kubernetes"
        )
    return grant.compute


# -- what gets applied


def cluster_name(user: str) -> str:
    """The user's cluster in a project's namespace: `dask-USER` when that is a valid Service name, else a slug of
    the name and a digest of it (names that differ only in characters a Service name cannot hold stay apart)."""
    plain = f"dask-{user}"
    if CLUSTER_NAME.match(plain):
        return plain
    slug = re.sub(r"[^a-z0-9]+", "-", user.lower()).strip("-")[:20].strip("-")
    return "-".join(part for part in ("dask", slug, sha256(user.encode()).hexdigest()[:10]) if part)


def requested_workers(op: str, body: bytes) -> int | None:
    """The `n_workers` of a start or scale request (None: the project's default); ServiceRefused(400) for a body
    that is not one small JSON object or a count that is not a whole number."""
    if len(body) > MAX_BODY:
        raise ServiceRefused(400, f"a request is a JSON object of at most {MAX_BODY} bytes")
    try:
        request = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ServiceRefused(400, "a request is a JSON object") from None
    if not isinstance(request, dict):
        raise ServiceRefused(400, "a request is a JSON object")
    unknown = sorted(set(request) - ({"n_workers"} if op in ("start", "scale") else set()))
    if unknown:
        raise ServiceRefused(400, f"{op} takes {'n_workers only' if op in ('start', 'scale') else 'nothing'}")
    count = request.get("n_workers")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        raise ServiceRefused(400, "n_workers must be a whole number, 0 or more")
    if op == "scale" and count is None:
        raise ServiceRefused(400, "scale needs n_workers")
    return count


def scheduler_service(cluster: str) -> str:
    """The operator's name for a cluster's scheduler Service."""
    return f"{cluster}-scheduler"


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


# -- the Kubernetes calls


class KubernetesAPI(Protocol):
    """The few Kubernetes calls the service makes, in namespaces its Role covers. `kind` is one of Secret,
    DaskCluster, Service; `read` answers None for an object that is not there."""

    async def create(self, manifest: dict[str, Any]) -> None: ...

    async def read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def scale(self, namespace: str, cluster: str, replicas: int) -> None: ...

    async def delete(self, kind: str, namespace: str, name: str) -> None: ...

    async def pods(self, namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]: ...


class ProjectClusters:
    """The workspaces' clusters, over a KubernetesAPI: what `start`, `scale`, `status` and `close` apply."""

    def __init__(
        self, api: KubernetesAPI, *, ready_seconds: float = READY_SECONDS, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self.api = api
        self.ready_seconds = ready_seconds
        self.poll_seconds = poll_seconds
        self._keys: dict[tuple[str, str], ClusterTLS] = {}  # (namespace, cluster) -> its certificate, in memory
        self._owners: dict[tuple[str, str], Workspace] = {}  # (namespace, cluster) -> the workspace it serves
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def start(self, workspace: Workspace, limits: ComputeLimits, n_workers: int | None) -> dict[str, Any]:
        name, namespace = cluster_name(workspace.user), workspace.namespace
        key = (namespace, name)
        count = _limited(worker_count, limits, n_workers)
        async with self._lock(key):
            exists = await self.api.read("DaskCluster", namespace, name) is not None
            if exists and key not in self._keys:
                # made before this service restarted: its key went with it, so no client could join it
                log.info("replacing cluster %s in %s (its key is no longer held)", name, namespace)
                await self._delete(namespace, name)
                exists = False
            if exists:
                await self.api.scale(namespace, name, count)
            else:
                await self._create(workspace, limits, name, count)
            tls = self._keys[key]
        ip, ports = await self._scheduler_service(namespace, name)
        return {
            "address": f"tls://{ip}:{ports.get('tcp-comm', SCHEDULER_PORT)}",
            "dashboard": f"{ip}:{ports.get('http-dashboard', DASHBOARD_PORT)}",
            "security": {"ca": tls.ca, "cert": tls.cert, "key": tls.key},
            "workers": count,
            "max_workers": max_workers(limits),
        }

    async def _create(self, workspace: Workspace, limits: ComputeLimits, name: str, count: int) -> None:
        cluster = _limited(dask_cluster, workspace.project, limits, name=name, n_workers=count)
        tls = ClusterTLS.generate()
        await self.api.create(tls_secret(workspace.project, name, tls))
        try:
            await self.api.create(cluster)
        except BaseException:
            await self.api.delete("Secret", workspace.namespace, f"{name}-tls")
            raise
        self._keys[(workspace.namespace, name)] = tls
        self._owners[(workspace.namespace, name)] = workspace
        log.info("made cluster %s in %s with %d workers", name, workspace.namespace, count)

    async def scale(self, workspace: Workspace, limits: ComputeLimits, n_workers: int | None) -> dict[str, Any]:
        name, namespace = cluster_name(workspace.user), workspace.namespace
        count = _limited(worker_count, limits, n_workers)
        async with self._lock((namespace, name)):
            if await self.api.read("DaskCluster", namespace, name) is None:
                raise ServiceRefused(409, "no cluster runs for this workspace: start one first")
            await self.api.scale(namespace, name, count)
        log.info("scaled cluster %s in %s to %d workers", name, namespace, count)
        return {"workers": count}

    async def status(self, workspace: Workspace) -> dict[str, Any]:
        name, namespace = cluster_name(workspace.user), workspace.namespace
        cluster = await self.api.read("DaskCluster", namespace, name)
        if cluster is None:
            return {"phase": "none", "scheduler": False, "workers": {}}
        pods = await self.api.pods(namespace, {"dask.org/cluster-name": name})
        workers: dict[str, int] = {}
        scheduler = False
        for pod in pods:
            role = ((pod.get("metadata") or {}).get("labels") or {}).get("dask.org/component")
            if role == "scheduler":
                scheduler = scheduler or pod_ready(pod)
            elif role == "worker":
                state = "Ready" if pod_ready(pod) else str((pod.get("status") or {}).get("phase") or "Unknown")
                workers[state] = workers.get(state, 0) + 1
        phase = str((cluster.get("status") or {}).get("phase") or "Pending")
        wanted = ((cluster.get("spec") or {}).get("worker") or {}).get("replicas")
        return {"phase": phase, "scheduler": scheduler, "workers": workers, "wanted": wanted}

    async def close(self, workspace: Workspace) -> dict[str, Any]:
        name, namespace = cluster_name(workspace.user), workspace.namespace
        async with self._lock((namespace, name)):
            await self._delete(namespace, name)
        log.info("deleted cluster %s in %s", name, namespace)
        return {}

    async def sweep(self, running: Callable[[Workspace], Awaitable[bool]]) -> list[Workspace]:
        """Delete the clusters of workspaces that no longer run (a cluster never outlives its workspace by more
        than a sweep's interval); the workspaces whose clusters went. One the hub cannot answer about stays."""
        ended = []
        for key, workspace in list(self._owners.items()):
            try:
                if await running(workspace):
                    continue
            except ServiceRefused:
                continue
            async with self._lock(key):
                if self._owners.get(key) == workspace:
                    await self._delete(*key)
                    ended.append(workspace)
                    log.info("deleted cluster %s in %s: its workspace has stopped", key[1], key[0])
        return ended

    async def _delete(self, namespace: str, name: str) -> None:
        """The DaskCluster (the operator deletes its pods and Service), then its Secret; returns once the cluster
        is gone, so that a new one of the same name can be made."""
        self._keys.pop((namespace, name), None)
        self._owners.pop((namespace, name), None)
        await self.api.delete("DaskCluster", namespace, name)
        await self.api.delete("Secret", namespace, f"{name}-tls")
        deadline = time.monotonic() + self.ready_seconds
        while await self.api.read("DaskCluster", namespace, name) is not None:
            if time.monotonic() > deadline:
                raise ServiceRefused(504, f"cluster {name} is still being deleted: try again in a minute")
            await asyncio.sleep(self.poll_seconds)

    async def _scheduler_service(self, namespace: str, name: str) -> tuple[str, dict[str, int]]:
        """The scheduler Service's cluster IP and its ports by name (the operator's `tcp-comm`, `http-dashboard`),
        once the scheduler's pod is ready; ServiceRefused(504) after `ready_seconds`."""
        deadline = time.monotonic() + self.ready_seconds
        labels = {"dask.org/cluster-name": name, "dask.org/component": "scheduler"}
        while True:
            service = await self.api.read("Service", namespace, scheduler_service(name))
            ip = ((service or {}).get("spec") or {}).get("clusterIP")
            if ip and ip != "None" and any(pod_ready(pod) for pod in await self.api.pods(namespace, labels)):
                ports = {p.get("name"): int(p["port"]) for p in service["spec"].get("ports") or [] if p.get("port")}
                return str(ip), ports
            if time.monotonic() > deadline:
                raise ServiceRefused(
                    504,
                    f"the scheduler was not ready after {self.ready_seconds:.0f} s; the cluster stays until closed "
                    f"(an admin can look at DaskCluster {name} in {namespace})",
                )
            await asyncio.sleep(self.poll_seconds)


def _limited(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`function`'s result; its KubernetesClusterError (a limit or setting, said in words) as a 400."""
    try:
        return function(*args, **kwargs)
    except KubernetesClusterError as exc:
        raise ServiceRefused(400, str(exc)) from None


class Kr8sAPI:
    """KubernetesAPI through kr8s (dask-kubernetes' own client), with the pod's ServiceAccount token."""

    KINDS = {"Secret": "secrets", "Service": "services", "DaskCluster": "daskclusters.kubernetes.dask.org"}

    def __init__(self, kubeconfig: str | None = None) -> None:
        self.kubeconfig = kubeconfig  # None: in the cluster, the pod's ServiceAccount
        self._api: Any = None

    async def _client(self) -> Any:
        if self._api is None:
            import kr8s.asyncio

            self._api = await kr8s.asyncio.api(kubeconfig=self.kubeconfig)
        return self._api

    async def create(self, manifest: dict[str, Any]) -> None:
        from dask_kubernetes.operator._objects import DaskCluster  # noqa: F401  (registers the kind with kr8s)
        from kr8s.asyncio.objects import object_from_spec

        obj = object_from_spec(manifest, api=await self._client())
        await obj.create()

    async def read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        import kr8s

        api = await self._client()
        try:
            found = [o async for o in api.get(self.KINDS[kind], name, namespace=namespace, raw=True)]
        except kr8s.NotFoundError:
            return None
        return found[0] if found else None

    async def scale(self, namespace: str, cluster: str, replicas: int) -> None:
        from dask_kubernetes.operator._objects import DaskCluster

        found = await DaskCluster.get(cluster, namespace=namespace, api=await self._client())
        await found.patch({"spec": {"worker": {"replicas": replicas}}})  # a merge patch

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        import kr8s
        from dask_kubernetes.operator._objects import DaskCluster  # noqa: F401
        from kr8s.asyncio.objects import object_from_spec

        versions = {"Secret": "v1", "Service": "v1", "DaskCluster": "kubernetes.dask.org/v1"}
        spec = {"apiVersion": versions[kind], "kind": kind, "metadata": {"name": name, "namespace": namespace}}
        obj = object_from_spec(spec, api=await self._client())
        with contextlib.suppress(kr8s.NotFoundError):
            await obj.delete()

    async def pods(self, namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        api = await self._client()
        return [o async for o in api.get("pods", namespace=namespace, label_selector=labels, raw=True)]


# -- the HTTP side


class HubServers:
    """The hub's answer to "does this user's server run?", asked with the service's own token."""

    def __init__(self, hub_auth: HubAuth) -> None:
        self.hub_auth = hub_auth

    async def running(self, workspace: Workspace) -> bool:
        request = httpclient.HTTPRequest(
            f"{self.hub_auth.api_url.rstrip('/')}/users/{workspace.user}",
            headers={"Authorization": f"token {self.hub_auth.api_token}"},
            request_timeout=30,
        )
        try:
            response = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError:
            raise ServiceRefused(503, "the hub did not answer: try again") from None
        if response.code == 404:
            return False
        if response.code != 200:
            log.warning("the hub answered %d about a user's servers", response.code)
            raise ServiceRefused(503, "the hub did not say whether this workspace runs: try again")
        return server_is_running(json.loads(response.body), workspace.project)


class ClusterHandler(web.RequestHandler):
    """POST /api/OP: authenticate the caller through the hub, check it is a running workspace of a project it may
    use, then apply OP to its cluster. Every answer is JSON: {"ok": true, ...} or {"ok": false, "error": ...}."""

    def initialize(
        self,
        *,
        clusters: ProjectClusters,
        hub_auth: HubAuth,
        running: Callable[[Workspace], Awaitable[bool]],
        limits: Callable[[Workspace], ComputeLimits],
    ) -> None:
        self.clusters, self.hub_auth, self.running, self.limits = clusters, hub_auth, running, limits

    def check_xsrf_cookie(self) -> None:
        """No cookies are read here (only a token in the Authorization header), so there is no XSRF to check."""

    async def post(self, op: str) -> None:
        try:
            if op not in OPS:
                raise ServiceRefused(404, f"unknown operation: use one of {', '.join(OPS)}")
            workspace = await self.caller()
            n_workers = requested_workers(op, self.request.body)
            limits = await asyncio.to_thread(self.limits, workspace)
            if op == "start":
                answer = await self.clusters.start(workspace, limits, n_workers)
            elif op == "scale":
                answer = await self.clusters.scale(workspace, limits, n_workers)
            elif op == "status":
                answer = await self.clusters.status(workspace)
            else:
                answer = await self.clusters.close(workspace)
        except ServiceRefused as refused:
            log.info("refused %s: %s", op if op in OPS else "a request", refused.message)
            self.set_status(refused.status)
            self.finish({"ok": False, "error": refused.message})
            return
        except Exception:
            log.exception("%s failed", op)
            self.set_status(500)
            self.finish({"ok": False, "error": "the cluster service failed: an admin can see its log"})
            return
        self.set_header("Cache-Control", "no-store")  # the start answer carries the cluster's key
        self.finish({"ok": True, **answer})

    async def caller(self) -> Workspace:
        token = self.hub_auth.get_token(self, in_cookie=False)
        if not token:
            raise ServiceRefused(403, NOT_A_WORKSPACE)
        model = await self.hub_auth.user_for_token(token, sync=False)
        workspace = workspace_of(model)
        if not await self.running(workspace):
            raise ServiceRefused(403, NOT_RUNNING)
        return workspace


def make_app(
    clusters: ProjectClusters,
    hub_auth: HubAuth,
    *,
    limits: Callable[[Workspace], ComputeLimits],
    running: Callable[[Workspace], Awaitable[bool]] | None = None,
) -> web.Application:
    """The service's web application; `running` defaults to asking the hub (`HubServers`)."""
    settings = {
        "clusters": clusters,
        "hub_auth": hub_auth,
        "running": running or HubServers(hub_auth).running,
        "limits": limits,
    }
    return web.Application([(r"/api/([a-z]+)", ClusterHandler, settings)], xsrf_cookies=False)


def hub_auth(cache_seconds: int = 5, **settings: Any) -> HubAuth:
    """HubAuth from the environment the service's Deployment gives (JUPYTERHUB_API_TOKEN, JUPYTERHUB_API_URL) or
    `settings`, tokens in the Authorization header only, answers cached a few seconds (a revoked token is refused
    soon)."""
    # HubAuth caches forever at 0: one second is the least
    return HubAuth(
        access_scopes={CLUSTER_SERVICE_SCOPE}, allow_token_in_url=False, cache_max_age=max(1, cache_seconds), **settings
    )


# -- its Kubernetes objects


def service_manifests(
    *,
    hub_namespace: str,
    image: str,
    workspace_image: str,
    api_server: str,
    database: str,
    secret: str = "enclave-clusters",  # noqa: S107 (a Secret's name)
) -> list[dict[str, Any]]:
    """The cluster service in the hub's namespace: its ServiceAccount (bound to the Role of each project's namespace,
    `clusters.kubernetes_network.cluster_manifests`), its Deployment, its Service (workspaces reach it by the cluster
    IP the hub reads from its own pod's environment) and its NetworkPolicy: in, workspaces on its port only; out, the
    hub's API, the Kubernetes API server (`api_server`: its endpoints' addresses, a CIDR) and the registry's
    database (`database`, a CIDR; PostgreSQL's port) only. `secret` holds JUPYTERHUB_API_TOKEN (the
    one in the hub's service entry) and ENCLAVE_DATABASE_URL (the registry)."""
    if "@sha256:" not in image or "@sha256:" not in workspace_image:
        raise ValueError("the service's and the workspaces' images are pinned by digest (image@sha256:…)")
    labels = {**CLUSTER_SERVICE_POD, "app.kubernetes.io/name": CLUSTER_SERVICE_ACCOUNT}

    def metadata() -> dict[str, Any]:
        return {"name": CLUSTER_SERVICE_ACCOUNT, "namespace": hub_namespace, "labels": dict(labels)}

    env = [
        {"name": "JUPYTERHUB_SERVICE_NAME", "value": CLUSTER_SERVICE},
        {"name": "DASK_ENCLAVE__KUBERNETES__IMAGE", "value": workspace_image},  # the clusters' pods run it
        # the hub's Service `hub` of this namespace by its variables (the policy below allows no DNS)
        {"name": "JUPYTERHUB_API_URL", "value": "http://$(HUB_SERVICE_HOST):$(HUB_SERVICE_PORT)/hub/api"},
        *(
            {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": name}}}
            for name in ("JUPYTERHUB_API_TOKEN", "ENCLAVE_DATABASE_URL")
        ),
    ]
    container = {
        "name": "service",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "clusters.kubernetes_service", "serve", "--port", str(CLUSTER_SERVICE_PORT)],
        "env": env,
        "ports": [{"name": "http", "containerPort": CLUSTER_SERVICE_PORT, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": CLUSTER_SERVICE_PORT}},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "securityContext": hardened_container(),
    }
    workspaces = {
        "namespaceSelector": {"matchLabels": {"enclave.role": "workspace"}},
        "podSelector": {"matchLabels": WORKSPACE_POD},
    }
    hub = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": hub_namespace}},
        "podSelector": {"matchLabels": {"component": "hub"}},
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(), "automountServiceAccountToken": True},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(),
            "spec": {
                "replicas": 1,  # the clusters' keys are in its memory: one process, replaced, never two
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": CLUSTER_SERVICE_POD},
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {
                        "serviceAccountName": CLUSTER_SERVICE_ACCOUNT,
                        "enableServiceLinks": True,  # HUB_SERVICE_HOST, KUBERNETES_SERVICE_HOST: no DNS needed
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 1000,
                            "runAsGroup": 1000,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [container],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(),
            "spec": {
                "type": "ClusterIP",
                "selector": CLUSTER_SERVICE_POD,
                "ports": [{"name": "http", "port": CLUSTER_SERVICE_PORT, "targetPort": CLUSTER_SERVICE_PORT}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": CLUSTER_SERVICE_ACCOUNT, "namespace": hub_namespace},
            "spec": {
                "podSelector": {"matchLabels": CLUSTER_SERVICE_POD},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [workspaces], "ports": [{"protocol": "TCP", "port": CLUSTER_SERVICE_PORT}]}],
                "egress": [
                    {"to": [hub], "ports": [{"protocol": "TCP", "port": 8081}]},
                    {
                        "to": [{"ipBlock": {"cidr": api_server}}],
                        "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}],
                    },
                    {"to": [{"ipBlock": {"cidr": database}}], "ports": [{"protocol": "TCP", "port": 5432}]},
                ],
            },
        },
    ]


# -- running it


async def serve(port: int, registry: Registry) -> None:
    auth = hub_auth(int(os.environ.get("ENCLAVE_AUTH_CACHE_SECONDS", "5")))
    clusters = ProjectClusters(Kr8sAPI())
    app = make_app(clusters, auth, limits=lambda workspace: project_limits(registry, workspace))
    server = HTTPServer(app, max_body_size=MAX_BODY)
    server.listen(port)
    log.info("the Dask cluster service listens on port %d", port)
    running = HubServers(auth).running
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            await clusters.sweep(running)
        except Exception:  # the next sweep tries again; serving goes on
            log.exception("sweeping the clusters of stopped workspaces failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusters.kubernetes_service", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve workspaces (in the service's pod)")
    run.add_argument("--port", type=int, default=CLUSTER_SERVICE_PORT)
    made = commands.add_parser("manifests", help="print its ServiceAccount, Deployment, Service and NetworkPolicy")
    made.add_argument("--image", required=True, help="Enclave's image (the service's), pinned by digest")
    made.add_argument("--workspace-image", required=True, help="the workspace image (the clusters'), by digest")
    made.add_argument("--hub-namespace", default="enclave-hub")
    made.add_argument("--api-server", required=True, help="the Kubernetes API server's endpoints (a CIDR)")
    made.add_argument("--database", required=True, help="the registry's PostgreSQL server (a CIDR)")
    args = parser.parse_args(argv)
    if args.command == "manifests":
        documents = service_manifests(
            hub_namespace=args.hub_namespace,
            image=args.image,
            workspace_image=args.workspace_image,
            api_server=args.api_server,
            database=args.database,
        )
        print(yaml.safe_dump_all(documents, sort_keys=False), end="")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(args.port, registry_of(Paths.from_env())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
