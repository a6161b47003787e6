"""Dask clusters for a KubeSpawner workspace on Kubernetes: the DaskCluster resource (the Dask operator's custom
resource, `kubernetes.dask.org/v1`) a project's cluster is made from, and the Secret holding its TLS certificate.

The resource starts from dask-kubernetes' own `make_cluster_spec` and is then hardened: it lives in the project's
namespace `enclave-P` beside its workspaces; scheduler and workers run the workspace image pinned by digest, as the
image's unprivileged user, with a read-only root filesystem, no privilege escalation, no capabilities, seccomp
RuntimeDefault and no service-account token; workers mount the project's data claim read-only at the workspace's
own path (so a graph's paths mean the same there) and an emptyDir at /tmp, and nothing else; each worker is the
size of one of the workspace's LocalCluster workers (the project's compute limits), `enclave.kubernetes` in
kubernetes.yaml holding what an admin may change.

Who makes clusters: not the workspace. A workspace pod has no Kubernetes API access (no service-account token,
and its NetworkPolicy reaches the hub only), so, as the SLURM design's cluster service does, a platform service
beside the hub applies the Secret and then the DaskCluster in the project's namespace on the workspace's behalf,
with the Role that `clusters.kubernetes_network.cluster_manifests` grants it there, and hands the workspace the
scheduler's address (its Service's cluster IP: workspaces have no DNS) and the client's credentials. The
operator's own Python `KubeCluster` cannot be that service's client: it connects to the scheduler over plain
`tcp://`, which a cluster that requires TLS refuses; the operator itself (its controller) manages the resource.
That service is clusters/kubernetes_service.py.

TLS: the operator has no TLS setting of its own, so it is done with Dask's. Each cluster gets its own certificate
(`distributed.security.Security.temporary()`: a key and self-signed certificate that is also the cluster's
authority), held in a Secret mounted read-only into scheduler and workers, never in an environment variable or an
argument; `DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION` and the certificate paths are set through DASK_ variables, and
every connection (client, scheduler, worker, nanny) is `tls://` and must present that cluster's certificate. One
key for the cluster's parties is enough: the scheduler runs clients' code as the workers do (below), so the roles
of one cluster trust each other anyway; what the certificate separates is one cluster from every other.

Pickle: distributed no longer lets `distributed.scheduler.pickle` be turned off (a scheduler so configured refuses
to start: it unpickles every graph it is sent). So the scheduler is treated as the workers are, as running the
researcher's code: hardened the same way, with no project data, and its network limited by the NetworkPolicies to
its workers and the project's workspaces.

DNS: none. Workers find their scheduler through the Service's environment variable that Kubernetes gives pods of
the namespace created after the Service (the operator creates the scheduler's Service before any worker), so no
pod of a cluster needs the cluster's DNS server, which would otherwise forward any name it is asked (a way out).

    python -m clusters.kubernetes PROJECT                     # its NetworkPolicies and Role, to apply once
    python -m clusters.kubernetes PROJECT --example NAME --image IMAGE@sha256:...   # one cluster's, to read
"""

from __future__ import annotations

import argparse
import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import yaml
from dask.utils import parse_bytes
from dask_kubernetes.constants import MAX_CLUSTER_NAME_LEN
from dask_kubernetes.operator import make_cluster_spec
from distributed.security import Security

from clusters.kubernetes_network import DASHBOARD_PORT, NANNY_PORT, SCHEDULER_PORT, WORKER_PORT, cluster_manifests
from clusters.settings import ClusterError, register_defaults
from fabric.projects import ComputeLimits
from hub.kubernetes import DATA_MOUNT, NAMESPACE

CONFIG_FILE = Path(__file__).with_name("kubernetes.yaml")
CONFIG = "enclave.kubernetes"
TLS_MOUNT = "/etc/dask/tls"
TLS_FILES = {"ca": "ca.pem", "cert": "tls.pem", "key": "tls.key"}  # the Secret's keys, files under TLS_MOUNT
LOCAL_DIRECTORY = "/tmp"  # noqa: S108  (an emptyDir: the root filesystem is read-only)
DATA_CLAIM = "project-data"  # hub.kubernetes.project_manifests' claim, in each project's namespace
# The scheduler's HTTP routes: distributed's defaults without `proxy` (the scheduler as an HTTP proxy to any host),
# with `api`, which the operator calls to retire workers gracefully and to see whether the cluster is idle.
SCHEDULER_HTTP_ROUTES = [
    "distributed.http.scheduler.prometheus",
    "distributed.http.scheduler.info",
    "distributed.http.scheduler.json",
    "distributed.http.scheduler.api",
    "distributed.http.health",
    "distributed.http.statics",
]
CLUSTER_NAME = re.compile(rf"^(?=.{{1,{MAX_CLUSTER_NAME_LEN}}}$)[a-z]([-a-z0-9]*[a-z0-9])?$")  # a Service's name too


class KubernetesClusterError(ClusterError):
    """A project's Kubernetes cluster cannot be made as asked; the message says which setting or limit stops it."""


register_defaults(CONFIG_FILE)


def hardened_container() -> dict[str, Any]:
    """A container's securityContext in every pod Enclave makes for a cluster: not root, no privilege or escalation,
    no capability, a read-only root file system, the runtime's default seccomp profile."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def setting(key: str) -> Any:
    """`enclave.kubernetes.KEY` from the Dask configuration now."""
    return dask.config.get(f"{CONFIG}.{key}")


@dataclass(frozen=True)
class ClusterTLS:
    """One cluster's certificate: its authority, the certificate every party presents and its key (PEM, in
    memory until they go into the cluster's Secret and to the client)."""

    ca: str
    cert: str
    key: str

    @classmethod
    def generate(cls) -> ClusterTLS:
        made = Security.temporary()
        return cls(ca=made.tls_ca_file, cert=made.tls_client_cert, key=made.tls_client_key)

    def client_security(self) -> Security:
        """What the workspace's client needs, in memory (the service hands it over; nothing is written)."""
        return Security(
            require_encryption=True, tls_ca_file=self.ca, tls_client_cert=self.cert, tls_client_key=self.key
        )

    def files(self) -> dict[str, str]:
        """The Secret's files: name under TLS_MOUNT -> PEM."""
        return {TLS_FILES["ca"]: self.ca, TLS_FILES["cert"]: self.cert, TLS_FILES["key"]: self.key}


@dataclass(frozen=True)
class WorkerSize:
    threads: int
    memory: int  # bytes: the pod's memory and Dask's memory limit


def worker_size(limits: ComputeLimits, *, threads: int | None = None, memory: str | int | None = None) -> WorkerSize:
    """One worker: the arguments, else `enclave.kubernetes.{threads,memory}-per-worker`, else one LocalCluster
    worker of the project's; KubernetesClusterError when that exceeds the project's limits."""
    most_memory = limits.memory_bytes() // limits.dask_workers
    threads = _first(threads, setting("threads-per-worker"), limits.threads_per_worker)
    memory = _first(memory, setting("memory-per-worker"), most_memory)
    size = parse_bytes(memory) if isinstance(memory, str) else memory
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise KubernetesClusterError(f"a worker needs a whole number of threads >= 1, not {threads!r}")
    if threads > limits.threads_per_worker:
        raise KubernetesClusterError(f"threads={threads}: this project allows {limits.threads_per_worker} per worker")
    if not isinstance(size, int) or size < 2**26 or size > most_memory:
        raise KubernetesClusterError(f"memory={memory!r}: a worker of this project has 64MiB to {most_memory} bytes")
    return WorkerSize(threads=threads, memory=size)


def max_workers(limits: ComputeLimits) -> int:
    """The most workers a cluster of the project may have: `max-workers`, else the project's `dask_workers`."""
    return _first(setting("max-workers"), limits.dask_workers)


def worker_count(limits: ComputeLimits, n_workers: int | None = None) -> int:
    """The cluster's workers: the argument, else the project's `dask_workers`; never past `max-workers`."""
    most = max_workers(limits)
    count = _first(n_workers, limits.dask_workers)
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= most:
        raise KubernetesClusterError(f"n_workers={count!r}: this project's clusters have 0 to {most} workers")
    return count


def dask_cluster(
    project: str,
    limits: ComputeLimits,
    *,
    name: str,
    image: str | None = None,
    n_workers: int | None = None,
    threads: int | None = None,
    memory: str | int | None = None,
) -> dict[str, Any]:
    """The DaskCluster resource for one cluster of `project` (its TLS Secret: `tls_secret(project, name, ...)`)."""
    if not CLUSTER_NAME.match(name):
        raise KubernetesClusterError(f"cluster name {name!r}: lower case letters, digits and '-', a letter first")
    image = _first(image, setting("image"))
    if not isinstance(image, str) or "@sha256:" not in image:
        raise KubernetesClusterError(f"{CONFIG}.image: the workspace image pinned by digest (image@sha256:…)")
    size = worker_size(limits, threads=threads, memory=memory)
    spec = make_cluster_spec(
        name=name,
        image=image,
        n_workers=worker_count(limits, n_workers),
        worker_command="dask worker",
        scheduler_service_type="ClusterIP",  # inside the cluster only
        idle_timeout=int(setting("idle-timeout")),
    )
    labels = {"enclave.project": project}  # the operator copies the resource's labels onto its pods
    spec["metadata"] = {"name": name, "namespace": NAMESPACE.format(servername=project), "labels": labels}
    scheduler, worker = spec["spec"]["scheduler"], spec["spec"]["worker"]
    _harden(scheduler["spec"], "scheduler", name, image)
    _harden(worker["spec"], "worker", name, image)
    (container,) = scheduler["spec"]["containers"]
    container["args"] = [
        *("dask", "scheduler", "--protocol", "tls", "--host", "0.0.0.0", "--port", str(SCHEDULER_PORT)),  # noqa: S104
        *("--dashboard-address", f":{DASHBOARD_PORT}"),
    ]
    container["env"] += [{"name": "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES", "value": repr(SCHEDULER_HTTP_ROUTES)}]
    container["resources"] = _guaranteed(setting("scheduler.cpu"), parse_bytes(setting("scheduler.memory")))
    (container,) = worker["spec"]["containers"]
    container["args"] = [
        *("dask", "worker", "--name", "$(DASK_WORKER_NAME)", "--protocol", "tls"),
        *("--nthreads", str(size.threads), "--memory-limit", str(size.memory)),
        *("--worker-port", str(WORKER_PORT), "--nanny-port", str(NANNY_PORT)),
        *("--no-dashboard", "--dashboard-address", "127.0.0.1:0"),  # its HTTP server (health, metrics) stays inside
        *("--local-directory", LOCAL_DIRECTORY, "--death-timeout", str(setting("death-timeout"))),
    ]
    container["ports"] = [_port("tcp-worker", WORKER_PORT), _port("tcp-nanny", NANNY_PORT)]
    container["resources"] = _guaranteed(size.threads, size.memory)
    # The Service's variable, not the operator's default DNS name: workers have no DNS (see the module docstring).
    service_host = f"$({name.upper().replace('-', '_')}_SCHEDULER_SERVICE_HOST)"
    container["env"].insert(0, {"name": "DASK_SCHEDULER_ADDRESS", "value": f"tls://{service_host}:{SCHEDULER_PORT}"})
    worker["spec"]["enableServiceLinks"] = True  # what puts that variable in the workers' environment
    worker["spec"]["volumes"].append(
        {"name": "data", "persistentVolumeClaim": {"claimName": DATA_CLAIM, "readOnly": True}}
    )
    container["volumeMounts"].append(
        {"name": "data", "mountPath": DATA_MOUNT.format(servername=project), "readOnly": True}
    )
    container["env"].append({"name": "ENCLAVE_PROJECT", "value": project})
    return spec


def tls_secret(project: str, name: str, tls: ClusterTLS) -> dict[str, Any]:
    """The Secret the cluster's pods mount at TLS_MOUNT; apply it before the DaskCluster."""
    data = {file: base64.b64encode(pem.encode()).decode() for file, pem in tls.files().items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": _secret_name(name),
            "namespace": NAMESPACE.format(servername=project),
            "labels": {"enclave.project": project, "dask.org/cluster-name": name},
        },
        "type": "Opaque",
        "immutable": True,
        "data": data,
    }


def _harden(pod: dict[str, Any], role: str, name: str, image: str) -> None:
    """What every pod of a cluster gets, scheduler or worker: the security contexts, no token, the TLS Secret and a
    writable /tmp, the TLS settings for `role`."""
    uid = int(setting("uid"))
    pod["automountServiceAccountToken"] = False
    pod["enableServiceLinks"] = False
    pod["securityContext"] = {
        **{"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod["volumes"] = [
        {"name": "tls", "secret": {"secretName": _secret_name(name), "defaultMode": 0o440}},
        {"name": "tmp", "emptyDir": {"sizeLimit": _quantity(parse_bytes(setting("local-storage")))}},
    ]
    for container in pod["containers"]:
        container["image"] = image
        container["imagePullPolicy"] = "IfNotPresent"
        container["securityContext"] = hardened_container()
        container["volumeMounts"] = [
            {"name": "tls", "mountPath": TLS_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": LOCAL_DIRECTORY},
        ]
        container["env"] = [*tls_environment(role), {"name": "DASK_TEMPORARY_DIRECTORY", "value": LOCAL_DIRECTORY}]
        container["env"].append({"name": "HOME", "value": LOCAL_DIRECTORY})  # the image's home is read-only


def tls_environment(role: str) -> list[dict[str, str]]:
    """Dask's TLS settings for a `role` ("scheduler" or "worker") container: paths only, never a key."""
    prefix = "DASK_DISTRIBUTED__COMM__"
    return [
        {"name": f"{prefix}REQUIRE_ENCRYPTION", "value": "True"},
        {"name": f"{prefix}DEFAULT_SCHEME", "value": "tls"},
        {"name": f"{prefix}TLS__CA_FILE", "value": f"{TLS_MOUNT}/{TLS_FILES['ca']}"},
        {"name": f"{prefix}TLS__{role.upper()}__CERT", "value": f"{TLS_MOUNT}/{TLS_FILES['cert']}"},
        {"name": f"{prefix}TLS__{role.upper()}__KEY", "value": f"{TLS_MOUNT}/{TLS_FILES['key']}"},
    ]


def _secret_name(cluster: str) -> str:
    return f"{cluster}-tls"


def _guaranteed(cpu: float, memory: int) -> dict[str, dict[str, str]]:
    """Requests equal to limits: Kubernetes reserves what the pod may use (the Guaranteed class)."""
    amount = {"cpu": str(cpu), "memory": _quantity(memory)}
    return {"requests": amount, "limits": dict(amount)}


def _quantity(size: int) -> str:
    return str(int(size))  # bytes: a Kubernetes quantity without a suffix to misread (GiB is not Gi)


def _port(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "containerPort": port, "protocol": "TCP"}


def _first(*values: Any) -> Any:
    """The first value that is not None (the last one otherwise)."""
    for value in values[:-1]:
        if value is not None:
            return value
    return values[-1]


def main(argv: list[str] | None = None) -> None:
    """Print a project's manifests for its Dask clusters as YAML. Without --example: the NetworkPolicies and the
    cluster service's Role, which an admin applies once per project. With --example NAME: what the cluster service
    would apply for one cluster, to read: its Secret (the certificate left out) and its DaskCluster."""
    parser = argparse.ArgumentParser(prog="python -m clusters.kubernetes", description=main.__doc__)
    parser.add_argument("project")
    parser.add_argument("--hub-namespace", default="enclave-hub")
    parser.add_argument("--operator-namespace", default="dask-operator")
    parser.add_argument("--example", metavar="NAME", help="an example cluster of this name")
    parser.add_argument("--image", help=f"the workspace image, pinned by digest (default: {CONFIG}.image)")
    parser.add_argument("--spec", type=Path, help="the project's spec (YAML), for its compute limits")
    args = parser.parse_args(argv)
    if not args.example:
        documents = cluster_manifests(
            args.project, hub_namespace=args.hub_namespace, operator_namespace=args.operator_namespace
        )
    else:
        compute = yaml.safe_load(args.spec.read_text(encoding="utf-8")).get("compute", {}) if args.spec else {}
        secret = tls_secret(args.project, args.example, ClusterTLS(ca="", cert="", key=""))
        secret["data"] = dict.fromkeys(secret["data"], "<made for each cluster; never printed>")
        limits = ComputeLimits.model_validate(compute)
        documents = [secret, dask_cluster(args.project, limits, name=args.example, image=args.image)]
    print(yaml.safe_dump_all(documents, sort_keys=False), end="")


if __name__ == "__main__":
    try:
        main()
    except KubernetesClusterError as exc:
        raise SystemExit(f"error: {exc}") from None
