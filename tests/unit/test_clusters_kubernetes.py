"""A project's Dask cluster on Kubernetes (clusters/kubernetes.py), validated without a cluster: the DaskCluster
against the operator's own CRD schema and its pod and Service specs against the Kubernetes client's typed models;
the Deployments the operator would make from it (its own builder functions) likewise; then the hardening of every
container, the project's data read-only and nothing of another project's, the sizes from the project's compute
limits and the `enclave.kubernetes` config, and TLS everywhere with the certificate only in the Secret."""

from __future__ import annotations

import base64

import dask
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from distributed import Scheduler

from clusters.kubernetes import (
    SCHEDULER_HTTP_ROUTES,
    TLS_MOUNT,
    ClusterTLS,
    KubernetesClusterError,
    dask_cluster,
    tls_secret,
)
from fabric.projects import ComputeLimits, ProjectSpec
from tests.kubernetes_harness import IMAGE, OTHER_PROJECT, PROJECT, SPECS
from tests.kubernetes_models import as_model, check_custom_resource, dask_crd_schema, operator_deployments

pytestmark = pytest.mark.unit
LIMITS = {spec["name"]: ProjectSpec.model_validate(spec).compute for spec in SPECS}
TLS = ClusterTLS.generate()


def cluster(project: str = PROJECT, name: str = "dask-a1", **kwargs) -> dict:
    return dask_cluster(project, LIMITS[project], name=name, image=IMAGE, **kwargs)


def pods(resource: dict) -> dict[str, dict]:
    return {"scheduler": resource["spec"]["scheduler"]["spec"], "worker": resource["spec"]["worker"]["spec"]}


def containers(pod: dict) -> list[dict]:
    return [*pod["containers"], *pod.get("initContainers", []), *pod.get("ephemeralContainers", [])]


def env(container: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


@pytest.mark.parametrize("project", [PROJECT, OTHER_PROJECT])
def test_the_resource_is_valid_for_the_operator_and_kubernetes(project):
    resource = cluster(project)
    assert (resource["apiVersion"], resource["kind"]) == ("kubernetes.dask.org/v1", "DaskCluster")
    body = {key: value for key, value in resource.items() if key not in ("apiVersion", "kind", "metadata")}
    assert check_custom_resource(body, dask_crd_schema()) == []  # nothing the operator's CRD would drop or refuse
    assert as_model(resource["metadata"], "V1ObjectMeta") == resource["metadata"]
    for pod in pods(resource).values():
        assert as_model(pod, "V1PodSpec") == pod  # an unknown or misspelt field does not survive the trip
    service = resource["spec"]["scheduler"]["service"]
    assert as_model(service, "V1ServiceSpec") == service
    for made in operator_deployments(resource).values():
        assert as_model(made) == made
    secret = tls_secret(project, "dask-a1", TLS)
    assert as_model(secret) == secret


def test_the_schema_check_can_fail():
    resource = cluster()
    resource["spec"]["worker"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True
    resource["spec"]["scheduler"]["spec"]["automountServiceAccountToken"] = "false"
    body = {"spec": resource["spec"]}
    assert len(check_custom_resource(body, dask_crd_schema())) == 2
    worker = pods(resource)["worker"]
    assert as_model(worker, "V1PodSpec") != worker


@pytest.mark.parametrize("role", ["scheduler", "worker"])
def test_every_container_is_hardened(role):
    resource = cluster()
    made = operator_deployments(resource)[role]["spec"]["template"]["spec"]
    for pod in (pods(resource)[role], made):
        assert pod["automountServiceAccountToken"] is False
        assert not any(pod.get(key) for key in ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"))
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert all(set(volume) & {"secret", "emptyDir", "persistentVolumeClaim"} for volume in pod["volumes"])
        assert containers(pod)
        for container in containers(pod):
            security = container["securityContext"]
            assert container["image"] == IMAGE and "@sha256:" in container["image"]
            assert security["runAsNonRoot"] is True and security["privileged"] is False
            assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]} and "add" not in security["capabilities"]
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}
            mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
            assert "/tmp" in mounts  # the only writable place
            assert all(mount.get("readOnly") for path, mount in mounts.items() if path != "/tmp")


@pytest.mark.parametrize("project", [PROJECT, OTHER_PROJECT])
def test_workers_mount_their_projects_data_read_only_and_nothing_else(project):
    resource = cluster(project)
    assert resource["metadata"]["namespace"] == f"enclave-{project}"  # claims are the namespace's own
    assert resource["metadata"]["labels"] == {"enclave.project": project}
    worker, scheduler = pods(resource)["worker"], pods(resource)["scheduler"]
    claims = [volume for volume in worker["volumes"] if "persistentVolumeClaim" in volume]
    assert claims == [{"name": "data", "persistentVolumeClaim": {"claimName": "project-data", "readOnly": True}}]
    (container,) = worker["containers"]
    (data,) = [mount for mount in container["volumeMounts"] if mount["name"] == "data"]
    assert data == {"name": "data", "mountPath": f"/projects/{project}/data", "readOnly": True}
    assert env(container)["ENCLAVE_PROJECT"] == project
    assert not [volume for volume in scheduler["volumes"] if "persistentVolumeClaim" in volume]  # no data at all
    other = OTHER_PROJECT if project == PROJECT else PROJECT
    assert other not in repr(resource)


@pytest.mark.parametrize(
    "project, replicas, cpu, memory", [(PROJECT, 2, "1", 3 * 2**30), (OTHER_PROJECT, 2, "1", 2**30)]
)
def test_workers_are_sized_from_the_projects_limits(project, replicas, cpu, memory):
    resource = cluster(project)
    worker = resource["spec"]["worker"]
    (container,) = worker["spec"]["containers"]
    assert worker["replicas"] == replicas == LIMITS[project].dask_workers
    assert container["resources"] == {
        "requests": {"cpu": cpu, "memory": str(memory)},
        "limits": {"cpu": cpu, "memory": str(memory)},
    }
    args = container["args"]
    assert args[args.index("--nthreads") + 1] == cpu and args[args.index("--memory-limit") + 1] == str(memory)


def test_bigger_limits_make_bigger_workers():
    limits = ComputeLimits(cpus=8, memory="24GiB", dask_workers=3, threads_per_worker=4)
    (container,) = dask_cluster(PROJECT, limits, name="dask-b", image=IMAGE)["spec"]["worker"]["spec"]["containers"]
    assert container["resources"]["limits"] == {"cpu": "4", "memory": str(8 * 2**30)}


def test_the_admin_config_overrides_the_defaults():
    settings = {
        "enclave.kubernetes.scheduler": {"cpu": 2, "memory": "4GiB"},
        "enclave.kubernetes.idle-timeout": 600,
        "enclave.kubernetes.max-workers": 10,
        "enclave.kubernetes.memory-per-worker": "1GiB",
        "enclave.kubernetes.image": "registry.invalid/other@sha256:" + "1" * 64,
    }
    with dask.config.set(settings):
        resource = dask_cluster(PROJECT, LIMITS[PROJECT], name="dask-c", n_workers=10)
    assert resource["spec"]["idleTimeout"] == 600 and resource["spec"]["worker"]["replicas"] == 10
    (scheduler,) = pods(resource)["scheduler"]["containers"]
    (worker,) = pods(resource)["worker"]["containers"]
    assert scheduler["resources"]["limits"] == {"cpu": "2", "memory": str(4 * 2**30)}
    assert worker["resources"]["limits"]["memory"] == str(2**30)
    assert scheduler["image"] == worker["image"] == settings["enclave.kubernetes.image"]
    assert cluster()["spec"]["idleTimeout"] == 3600  # outside the `with`, the shipped defaults again


@pytest.mark.parametrize(
    "kwargs, settings, message",
    [
        ({"n_workers": 3}, {}, "0 to 2 workers"),  # max-workers defaults to the project's dask_workers
        ({"n_workers": 11}, {"enclave.kubernetes.max-workers": 10}, "0 to 10 workers"),
        ({"threads": 2}, {}, "allows 1 per worker"),
        ({}, {"enclave.kubernetes.memory-per-worker": "4GiB"}, "memory="),  # over compute.memory / dask_workers
        ({"image": "registry.invalid/enclave/workspace:latest"}, {}, "pinned by digest"),
        ({"name": "Dask_1"}, {}, "cluster name"),
        ({"name": "1dask"}, {}, "cluster name"),  # a Service's name starts with a letter
    ],
)
def test_what_exceeds_the_limits_is_refused(kwargs, settings, message):
    kwargs = {"name": "dask-d", "image": IMAGE, **kwargs}
    with dask.config.set(settings), pytest.raises(KubernetesClusterError, match=message):
        dask_cluster(PROJECT, LIMITS[PROJECT], **kwargs)


def test_no_image_no_cluster():
    with pytest.raises(KubernetesClusterError, match="digest"):
        dask_cluster(PROJECT, LIMITS[PROJECT], name="dask-e")


@pytest.mark.parametrize("role", ["scheduler", "worker"])
def test_tls_is_required_in_every_container_and_the_key_is_only_in_the_secret(role):
    resource, secret = cluster(), tls_secret(PROJECT, "dask-a1", TLS)
    files = {name: base64.b64decode(value).decode() for name, value in secret["data"].items()}
    pod = operator_deployments(resource)[role]["spec"]["template"]["spec"]
    (volume,) = [volume for volume in pod["volumes"] if "secret" in volume]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    for container in containers(pod):
        settings = env(container)
        assert settings["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"
        assert settings["DASK_DISTRIBUTED__COMM__DEFAULT_SCHEME"] == "tls"
        assert (
            "--protocol" in container["args"] and container["args"][container["args"].index("--protocol") + 1] == "tls"
        )
        paths = {key: value for key, value in settings.items() if key.startswith("DASK_DISTRIBUTED__COMM__TLS__")}
        assert set(paths) == {
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
            f"DASK_DISTRIBUTED__COMM__TLS__{role.upper()}__CERT",
            f"DASK_DISTRIBUTED__COMM__TLS__{role.upper()}__KEY",
        }
        (mount,) = [mount for mount in container["volumeMounts"] if mount["name"] == volume["name"]]
        assert mount == {"name": volume["name"], "mountPath": TLS_MOUNT, "readOnly": True}
        for path in paths.values():
            assert path.startswith(f"{TLS_MOUNT}/") and path.removeprefix(f"{TLS_MOUNT}/") in files
        everything = repr(container)
        assert "PRIVATE KEY" not in everything and "CERTIFICATE" not in everything
    assert "PRIVATE KEY" not in repr(resource)
    if role == "worker":
        assert settings["DASK_SCHEDULER_ADDRESS"].startswith("tls://")


def test_each_cluster_has_its_own_certificate_and_the_secret_holds_a_matching_pair():
    files = {name: base64.b64decode(value) for name, value in tls_secret(PROJECT, "dask-a1", TLS)["data"].items()}
    cert = x509.load_pem_x509_certificate(files["tls.pem"])
    key = serialization.load_pem_private_key(files["tls.key"], password=None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    assert files["ca.pem"] == files["tls.pem"]  # self-signed: the cluster's own authority
    other = ClusterTLS.generate()
    assert other.cert != TLS.cert and other.key != TLS.key


def test_workers_find_the_scheduler_without_dns():
    resource = cluster(name="dask-a1")
    made = operator_deployments(resource)
    (container,) = made["worker"]["spec"]["template"]["spec"]["containers"]
    # Kubernetes names a Service's variable after it: upper case, '-' as '_'
    variable = made["service"]["metadata"]["name"].upper().replace("-", "_") + "_SERVICE_HOST"
    addresses = [item["value"] for item in container["env"] if item["name"] == "DASK_SCHEDULER_ADDRESS"]
    assert addresses == [f"tls://$({variable}):8786"]  # the operator's own (a DNS name) was not added
    assert made["worker"]["spec"]["template"]["spec"]["enableServiceLinks"] is True
    assert "svc.cluster.local" not in repr(made["worker"])


def test_the_scheduler_serves_what_the_operator_asks_and_no_proxy():
    (container,) = pods(cluster())["scheduler"]["containers"]
    routes = dask.config.collect_env(env(container))["distributed"]["scheduler"]["http"]["routes"]
    assert routes == SCHEDULER_HTTP_ROUTES
    assert "distributed.http.scheduler.api" in routes and "distributed.http.proxy" not in routes
    for route in routes:
        __import__(route)  # a misspelt module would stop the scheduler's HTTP server
    assert not any(name.startswith("DASK_DISTRIBUTED__SCHEDULER__PICKLE") for name in env(container))


def test_distributed_no_longer_lets_pickle_be_turned_off():
    """Why the scheduler is hardened like a worker rather than trusted: a scheduler with pickle off does not start.
    When distributed allows it again, this fails, and the scheduler should get DASK_DISTRIBUTED__SCHEDULER__PICKLE."""
    with dask.config.set({"distributed.scheduler.pickle": False}), pytest.raises(RuntimeError, match="no longer"):
        Scheduler()
