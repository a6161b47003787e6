"""Red team against a project's Dask cluster on SLURM (clusters/): its workers are the project's account in the
project's sandbox, and its scheduler lets in only holders of its own cluster's certificates.

- a worker runs as the project's account with no other group, sees its project's view read-only at /project/data
  and neither another project's view, nor its own at the host path, nor the registry;
- a client holding another cluster's client certificate, or none, or speaking plain TCP, is refused; so is a worker
  connection with another cluster's worker certificate; this cluster's own client credentials get in (the control);
- a worker reaches no outside address once the host's egress rule names its project's account (a network namespace
  the test makes is the outside), and its cluster still computes over loopback; before the rule it does reach it
  (the control: a worker shares its node's network, so the rule, not the sandbox, is what closes it).

One SLURM (tests/slurm.py) and one job for the module; the second project's cluster has a scheduler and no job.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys

import pytest
from distributed import Client
from distributed.comm import connect
from distributed.security import Security

from clusters.slurm import project_cluster
from provisioning.host import ensure_egress_rules, remove_egress_rules
from tests.netns import PROBE, SOCKET_TIMEOUT, target_network

pytestmark = [pytest.mark.security, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def clusters(cluster_enclave, slurm):
    """Project A's cluster with one worker job and a client on it, and project B's cluster (no jobs)."""
    a, b = cluster_enclave.projects
    first = project_cluster(cluster_enclave.paths, a, interface="lo")
    try:
        second = project_cluster(cluster_enclave.paths, b, interface="lo")
        try:
            first.scale(jobs=1)
            with Client(first) as client:
                client.wait_for_workers(1, timeout=120)
                yield first, second, client
        finally:
            second.close()
    finally:
        first.close()
    assert not (set(first.job_ids) & set(slurm.jobs()))


def on_worker(client: Client, function, *args):
    """`function(*args)` on the one worker (functions of the standard library travel by reference)."""
    (result,) = client.run(function, *args).values()
    return result


def test_a_worker_is_the_project_account_with_its_own_view_only(clusters, cluster_enclave):
    _, _, client = clusters
    a, b = cluster_enclave.projects
    account = cluster_enclave.accounts[a]
    paths = cluster_enclave.paths
    assert on_worker(client, os.getuid) == account.uid
    assert on_worker(client, os.getgid) == account.gid
    assert on_worker(client, os.getgroups) == []
    assert "MANIFEST.json" in on_worker(client, os.listdir, "/project/data")
    for elsewhere in (paths.project_data(b).resolve(), paths.project_dir(b), paths.project_data(a).resolve(),
                      paths.home / "registry.sqlite", paths.secrets, paths.sites):  # fmt: skip
        with pytest.raises(FileNotFoundError):
            on_worker(client, os.stat, str(elsewhere))
    with pytest.raises(OSError) as refused:
        on_worker(client, os.mkdir, "/project/data/planted")
    assert refused.value.errno == errno.EROFS
    # the one writable place is the sandbox's own /tmp
    assert on_worker(client, os.access, "/tmp", os.W_OK) and not on_worker(client, os.access, "/usr", os.W_OK)


def test_only_this_clusters_certificates_get_in(clusters):
    first, second, _ = clusters
    address = first.scheduler_address
    assert address.startswith("tls://")
    with Client(address, security=first.client_security(), timeout=30) as own:  # the control
        assert len(own.scheduler_info()["workers"]) == 1
    with pytest.raises((OSError, TimeoutError)):
        Client(address, security=second.client_security(), timeout=5)
    assert not _tls_without_certificate(address, first.client_security().tls_ca_file)
    with pytest.raises((OSError, TimeoutError)):
        Client(address.replace("tls://", "tcp://"), timeout=5)
    # a worker of project B's cluster, with its real certificate and key, is refused too
    tls = second.folder / "tls"
    other_worker = Security(
        require_encryption=True, tls_ca_file=str(tls / "ca.pem"), tls_worker_cert=str(tls / "worker.pem"),
        tls_worker_key=str(tls / "worker.key"),
    )  # fmt: skip
    with pytest.raises((OSError, TimeoutError)):
        asyncio.run(_connect(address, other_worker))


def _tls_without_certificate(address: str, authority: str) -> bool:
    """Whether a TLS client that trusts the cluster's authority but shows no certificate is let in (answered, or
    left waiting for the rest of a message) rather than cut off."""
    host, port = address.removeprefix("tls://").rsplit(":", 1)
    context = ssl.create_default_context(cadata=authority)
    context.check_hostname = False
    try:
        with socket.create_connection((host, int(port)), timeout=5) as raw, context.wrap_socket(raw) as tls:
            tls.sendall(b"\0" * 8)  # TLS 1.3: the server's refusal of the handshake arrives with the first read
            return tls.recv(1) != b""
    except TimeoutError:
        return True  # the connection stayed open, waiting for more of a message: it was let in
    except (ssl.SSLError, ConnectionError):
        return False


async def _connect(address: str, security: Security) -> None:
    comm = await connect(address, timeout=5, **security.get_connection_args("worker"))
    await comm.write({"op": "identity"})
    await comm.read()  # a refused handshake fails at the latest here
    await comm.close()


def test_worker_credentials_are_the_project_groups_alone(clusters, cluster_enclave):
    first, _, _ = clusters
    gid = cluster_enclave.accounts[first.project].gid
    folder = first.folder
    assert (folder.stat().st_uid, folder.stat().st_gid, folder.stat().st_mode & 0o777) == (0, gid, 0o750)
    for name in ("ca.pem", "worker.pem", "worker.key", "scheduler.pem", "scheduler.key"):
        st = (folder / "tls" / name).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, gid, 0o440), name
    assert not (folder / "tls" / "client.key").exists()  # the client's key never touches the disk
    assert "PRIVATE KEY" not in first.job_script() and "CERTIFICATE" not in first.job_script()


def _probe_from_worker(client: Client, address: str, tcp: int, udp: int) -> dict[str, dict]:
    python = on_worker(client, getattr, sys, "executable")  # the workspace environment's, inside the sandbox
    argv = [python, "-I", "-c", PROBE, address, str(tcp), str(udp), str(SOCKET_TIMEOUT)]
    (done,) = client.run(subprocess.run, argv, capture_output=True, text=True, timeout=120).values()
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_worker_reaches_no_outside_address_under_the_hosts_egress_rule(clusters, cluster_enclave):
    first, _, client = clusters
    account = cluster_enclave.accounts[first.project]
    table = f"enclave_egress_t{secrets.token_hex(3)}"  # the test's own table: an installation's stays untouched
    with target_network() as target:
        reached = {"tcp": "echo:tcp", "udp": "echo:udp", "dns": "rcode=3"}
        before = _probe_from_worker(client, target.address, target.tcp_port, target.udp_port)
        assert {kind: result.get("reply") for kind, result in before.items()} == reached  # the control
        try:
            ensure_egress_rules([account], table=table)
            refused = _probe_from_worker(client, target.address, target.tcp_port, target.udp_port)
            for kind, result in refused.items():
                assert not result["ok"], kind
                assert result["error"] != "timeout", f"{kind} hung instead of failing at once"
            assert client.submit(sum, [1, 2, 3], pure=False).result(timeout=60) == 6  # the cluster itself: loopback
        finally:
            remove_egress_rules(table=table)
