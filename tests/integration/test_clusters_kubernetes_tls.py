"""A Kubernetes cluster's Dask processes, run here as the pods would run them: the scheduler's and a worker's
container commands and environments exactly as the operator's controller would give them (clusters/kubernetes.py,
then dask-kubernetes' own builder functions), with the TLS Secret's files where the pods mount them. Only what a
pod's place changes is changed: the mount folders become temporary folders, the fixed ports free ports on loopback,
and the Service's variable (which Kubernetes would set) names loopback; `$(VAR)` is expanded as the kubelet does.

So the CLI arguments, the DASK_ settings (TLS required, the certificate paths, the scheduler's HTTP routes) and the
Secret's layout are the real ones: a client with the cluster's certificate computes, the operator's HTTP API
answers, and a client with another cluster's certificate, or none, is turned away."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from distributed import Client
from distributed.security import Security

from clusters.kubernetes import LOCAL_DIRECTORY, TLS_MOUNT, ClusterTLS, dask_cluster, tls_secret
from clusters.kubernetes_network import DASHBOARD_PORT, NANNY_PORT, SCHEDULER_PORT, WORKER_PORT
from fabric.projects import ComputeLimits
from tests.hub_runner import free_ports
from tests.kubernetes_harness import IMAGE, PROJECT
from tests.kubernetes_models import operator_deployments

pytestmark = pytest.mark.integration
NAME = "dask-tls1"
DASK = Path(sys.executable).with_name("dask")
VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def kubelet_expand(value: str, known: dict[str, str]) -> str:
    """`$(VAR)` from the variables defined so far; an unknown one stays as written (the kubelet's rule)."""
    return VARIABLE.sub(lambda m: known.get(m.group(1), m.group(0)), value)


class Pods:
    """The cluster's containers as local processes, their places mapped into `folder` and onto free ports."""

    def __init__(self, folder: Path, tls: ClusterTLS) -> None:
        self.folder = folder
        self.ports = dict(zip((SCHEDULER_PORT, DASHBOARD_PORT, WORKER_PORT, NANNY_PORT), free_ports(4), strict=True))
        resource = dask_cluster(PROJECT, ComputeLimits(memory="1GiB"), name=NAME, image=IMAGE, n_workers=1)
        self.made = operator_deployments(resource)
        secret_files = folder / "tls"
        secret_files.mkdir()
        for file, value in tls_secret(PROJECT, NAME, tls)["data"].items():
            (secret_files / file).write_bytes(base64.b64decode(value))
            (secret_files / file).chmod(0o440)
        self.processes: list[subprocess.Popen] = []

    @property
    def scheduler_address(self) -> str:
        return f"tls://127.0.0.1:{self.ports[SCHEDULER_PORT]}"

    def localise(self, value: str) -> str:
        value = value.replace(TLS_MOUNT, str(self.folder / "tls")).replace("0.0.0.0", "127.0.0.1")
        for fixed, free in self.ports.items():
            value = re.sub(rf"(?<![0-9]){fixed}(?![0-9])", str(free), value)
        return str(self.folder / "local") if value == LOCAL_DIRECTORY else value

    def start(self, role: str) -> subprocess.Popen:
        (container,) = self.made[role]["spec"]["template"]["spec"]["containers"]
        service = self.made["service"]["metadata"]["name"].upper().replace("-", "_")
        environment = {"PATH": str(DASK.parent), f"{service}_SERVICE_HOST": "127.0.0.1"}  # what Kubernetes sets
        for item in container["env"]:
            environment[item["name"]] = self.localise(kubelet_expand(item["value"], environment))
        args = [self.localise(kubelet_expand(arg, environment)) for arg in container["args"]]
        assert args[0] == "dask"
        (self.folder / "local").mkdir(exist_ok=True)
        log = (self.folder / f"{role}.log").open("wb")
        process = subprocess.Popen([str(DASK), *args[1:]], env=environment, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(20)
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tls = ClusterTLS.generate()
    pods = Pods(tmp_path_factory.mktemp("pods"), tls)
    try:
        pods.start("scheduler")
        pods.start("worker")
        yield pods, tls
    finally:
        pods.stop()


def test_a_client_with_the_clusters_certificate_computes(cluster):
    pods, tls = cluster
    with Client(pods.scheduler_address, security=tls.client_security(), timeout=60) as client:
        client.wait_for_workers(1, timeout=90)
        ((worker, about),) = client.scheduler_info()["workers"].items()
        # TLS, on the ports the NetworkPolicies open
        assert worker.startswith("tls://") and worker.endswith(f":{pods.ports[WORKER_PORT]}")
        assert about["nanny"].startswith("tls://") and about["nanny"].endswith(f":{pods.ports[NANNY_PORT]}")
        assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
        # the operator's calls: the scheduler's HTTP API answers on the dashboard port, without a certificate
        dashboard = f"http://127.0.0.1:{pods.ports[DASHBOARD_PORT]}"
        with urllib.request.urlopen(f"{dashboard}/api/v1/check_idle", timeout=30) as response:
            assert "idle_since" in json.load(response)
        with pytest.raises(urllib.error.HTTPError):  # the scheduler is no HTTP proxy
            urllib.request.urlopen(f"{dashboard}/proxy/22/127.0.0.1/", timeout=30)


@pytest.mark.parametrize("credentials", ["another cluster's", "none"])
def test_a_client_without_it_is_turned_away(cluster, credentials):
    pods, _ = cluster
    if credentials == "none":
        address, security = pods.scheduler_address.replace("tls://", "tcp://"), Security()
    else:
        address, security = pods.scheduler_address, ClusterTLS.generate().client_security()
    started = time.monotonic()
    with pytest.raises((OSError, TimeoutError)):
        Client(address, security=security, timeout=5)
    assert time.monotonic() - started < 60
