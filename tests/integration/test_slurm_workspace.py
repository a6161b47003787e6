"""A workspace reaches its project's SLURM cluster through its cluster service (clusters/service.py, started the way
the SandboxSpawner starts it: hub/cluster_service.py), on a real SLURM (tests/slurm.py) with real sandboxed
workspaces made by hub/workspaces.py's `prepare` (no hub: the spawner's own calls, in its order).

- a kernel (the workspace environment's Python, confined as the server confines kernels) in the sandboxed workspace
  of a project with `compute.engine: slurm` opens its view, calls `client()` and computes allele frequencies on
  SLURM workers: the same as computed here without a cluster; squeue shows the job meanwhile; the client's dashboard
  link goes through the hub and the SLURM cluster's dashboard answers /status on the workspace's own
  127.0.0.1:8787; the workspace still has no network and its runtime folder holds only its own service's socket;
- another project's workspace sees no such socket, and that project's account cannot connect to it from the host;
  nobody reaches the scheduler's dashboard directly (it asks for the cluster's client certificate), and nothing the
  service logged holds a PEM;
- stopping the workspace (the spawner's order: its processes, then the service) leaves no job and no service;
- a service whose workspace exits stops by itself, and one killed with SIGKILL leaves no job past the workers'
  death timeout.

A client with another cluster's credentials is refused by the scheduler itself: tests/security/test_slurm_workers.py
(the relay only passes bytes, so it changes nothing there).
"""

from __future__ import annotations

import asyncio
import json
import pwd
import signal
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import dask
import numpy as np
import pytest

from hub import cluster_service
from hub.workspaces import prepare
from workbench import ProjectView, relay

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PREFIX = "/user/alice/{project}/"

# The kernel: waits on stdin between its stages, so the test can look at SLURM and the host meanwhile.
KERNEL = textwrap.dedent("""
    import json, os, socket, sys, urllib.request
    from workbench import open_project
    view = open_project()
    client = view.client()
    info = client.scheduler_info()
    print(json.dumps({"workers": len(info["workers"]), "address": client.scheduler.address,
                      "dashboard_port": info["services"]["dashboard"], "link": client.dashboard_link}), flush=True)
    sys.stdin.readline()
    freqs = view.allele_frequencies().compute()
    freqs = freqs.sort_values(["chrom", "pos", "ref", "alt"], ignore_index=True)
    executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    found = {"rows": len(freqs), "ac": freqs["ac"].tolist(), "an": freqs["an"].tolist(),
             "executed": sum(executed.values())}
    with urllib.request.urlopen(f"http://{os.environ['ENCLAVE_DASK_DASHBOARD']}/status", timeout=60) as page:
        found["dashboard"] = [page.status, b"Dask" in page.read()]
    outside = socket.socket()
    outside.settimeout(5)
    try:
        outside.connect(("198.18.0.1", 80))
        found["outside"] = "connected"
    except OSError as exc:
        found["outside"] = exc.errno
    found["run"] = sorted(os.listdir("/run/enclave"))
    found["hub"] = os.path.exists("/run/hub")
    print(json.dumps(found), flush=True)
    sys.stdin.readline()
""")

# Run as another account: the scheduler's dashboard without a client certificate, plainly and over TLS.
DASHBOARD_DIRECTLY = textwrap.dedent("""
    import json, socket, ssl, sys, urllib.request
    port = int(sys.argv[1])
    tried = {}
    for scheme in ("http", "https"):
        context = ssl._create_unverified_context()
        try:
            with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/status", timeout=10, context=context) as page:
                tried[scheme] = page.status
        except Exception as exc:
            tried[scheme] = type(exc).__name__ + ": " + str(exc)[:200]
    print(json.dumps(tried))
""")


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(autouse=True)
def _cluster_on_loopback(monkeypatch):
    # the service takes the hub's environment: a one-machine cluster's network is loopback
    monkeypatch.setenv("DASK_ENCLAVE__SLURM__INTERFACE", "lo")


@contextmanager
def workspace(cluster_enclave, project: str):
    """A workspace of `project` for alice, prepared as the spawner prepares one (no hub socket: none runs)."""
    plan = prepare(cluster_enclave.paths, project, "alice", hub_socket_root=None)
    try:
        yield plan
    finally:
        plan.cleanup()


def confined(plan, code: str) -> list[str]:
    """The workspace environment's Python running `code`, confined as the server confines a kernel."""
    python = str(plan.layout.env / "bin" / "python")
    (confine,) = plan.layout.env.glob("lib/python3*/site-packages/enclave_workspace/confine.py")
    return [python, "-I", str(confine), "--", python, "-c", code]


def launch(plan, command: list[str], environment: dict[str, str] | None = None) -> subprocess.Popen:
    with plan.launch(command, environment=environment) as how:
        return subprocess.Popen(
            how.argv, env=how.env, pass_fds=how.pass_fds, preexec_fn=how.preexec_fn, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip


def read_json(process: subprocess.Popen) -> dict:
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=30)
        pytest.fail(f"the kernel ended ({process.returncode}):\n{process.stderr.read()[-4000:]}")
    return json.loads(line)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def project_jobs(slurm, project: str) -> dict[str, str]:
    return {job: state for job, (name, state) in slurm.jobs().items() if name == f"enclave-{project}"}


def test_a_workspace_computes_on_its_projects_slurm_cluster(cluster_enclave, slurm, loop, tmp_path):
    project, other = cluster_enclave.projects
    paths = cluster_enclave.paths
    with dask.config.set(scheduler="synchronous"):
        expected = ProjectView(paths.project_data(project).resolve()).allele_frequencies().compute()
    expected = expected.sort_values(["chrom", "pos", "ref", "alt"], ignore_index=True)
    log = tmp_path / "cluster.log"
    with workspace(cluster_enclave, project) as plan:
        assert plan.engine == "slurm"
        service = loop.run_until_complete(cluster_service.start_service(paths, plan.layout, log))
        prefix = PREFIX.format(project=project)
        kernel = launch(plan, confined(plan, KERNEL), {"JUPYTERHUB_SERVICE_PREFIX": prefix})
        try:
            loop.run_until_complete(service.watch(kernel.pid))
            up = read_json(kernel)
            assert up["workers"] == 1 and up["address"].startswith("tls://127.0.0.1:")
            assert up["link"] == f"{prefix}dask/status"
            assert set(project_jobs(slurm, project).values()) == {"RUNNING"}, slurm.jobs()
            kernel.stdin.write("\n")
            kernel.stdin.flush()
            found = read_json(kernel)
            assert found["rows"] == len(expected) > 0 and found["executed"] > 0
            np.testing.assert_array_equal(found["ac"], expected["ac"])
            np.testing.assert_array_equal(found["an"], expected["an"])
            assert found["dashboard"] == [200, True]
            assert found["outside"] == 101  # ENETUNREACH: no route out of the workspace
            assert found["run"] == ["dask-cluster.sock"] and found["hub"] is False

            socket_path = cluster_service.service_socket(plan.layout)
            assert (socket_path.stat().st_uid, socket_path.stat().st_mode & 0o777) == (plan.layout.uid, 0o600)
            _another_project_cannot_reach(cluster_enclave, other, socket_path)
            _nobody_reaches_the_dashboard_directly(up["dashboard_port"])
        finally:
            kernel.kill()  # the spawner's stop: the workspace's processes, then its service
            kernel.wait(timeout=30)
            loop.run_until_complete(service.stop())
    assert not project_jobs(slurm, project), "a job outlived its workspace"
    assert not alive(service.pid)
    text = log.read_text()
    assert "scaled to 1 jobs" in text and "cluster closed" in text  # the log is the service's
    assert "BEGIN" not in text and "PRIVATE KEY" not in text and "CERTIFICATE" not in text


def _another_project_cannot_reach(cluster_enclave, other: str, socket_path: Path) -> None:
    with workspace(cluster_enclave, other) as plan:
        assert plan.engine == "local"
        probe = f"import os; print(os.path.exists({str(socket_path)!r}), os.listdir('/run/enclave'))"
        done = launch(plan, [str(plan.layout.env / "bin" / "python"), "-c", probe])
        out, err = done.communicate(timeout=60)
        assert done.returncode == 0, err
        assert out.split() == ["False", "[]"]  # not mounted there, and no service of its own
    account = cluster_enclave.accounts[other]
    connect = f"import socket; socket.socket(socket.AF_UNIX).connect({str(socket_path)!r})"
    as_other = ["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--clear-groups", sys.executable]
    done = subprocess.run([*as_other, "-c", connect], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "PermissionError" in done.stderr, done.stderr


def _nobody_reaches_the_dashboard_directly(port: int) -> None:
    nobody = pwd.getpwnam("nobody")
    as_nobody = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
    for prefix in (as_nobody, []):  # and root, without the certificate
        done = subprocess.run([*prefix, sys.executable, "-c", DASHBOARD_DIRECTLY, str(port)], capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        tried = json.loads(done.stdout)
        assert not any(isinstance(answer, int) for answer in tried.values()), tried
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # the control: it does listen there, for holders of the cluster's certificate only


def _start_cluster(loop, paths, plan, log: Path, slurm, watched: int | None = None):
    service = loop.run_until_complete(cluster_service.start_service(paths, plan.layout, log))
    if watched is not None:
        loop.run_until_complete(service.watch(watched))
    answer = loop.run_until_complete(
        relay.request(cluster_service.service_socket(plan.layout), {"op": "start", "jobs": 1})
    )
    assert "PRIVATE KEY" in answer["security"]["key"]  # root may connect: the credentials came back
    slurm.wait_for(lambda: set(project_jobs(slurm, plan.layout.project).values()) == {"RUNNING"}, "a running job")
    return service


def test_the_service_stops_when_its_workspace_ends(cluster_enclave, slurm, loop, tmp_path):
    project = cluster_enclave.projects[0]
    workspace_process = subprocess.Popen(["sleep", "600"])
    with workspace(cluster_enclave, project) as plan:
        service = _start_cluster(loop, cluster_enclave.paths, plan, tmp_path / "c.log", slurm, workspace_process.pid)
        workspace_process.kill()
        workspace_process.wait()
        loop.run_until_complete(asyncio.wait_for(service.process.wait(), 120))  # by itself, no signal
    assert not project_jobs(slurm, project)


def test_a_killed_service_leaves_no_job_past_the_death_timeout(cluster_enclave, slurm, loop, tmp_path, monkeypatch):
    project = cluster_enclave.projects[0]
    monkeypatch.setenv("DASK_ENCLAVE__SLURM__DEATH_TIMEOUT", "10")
    with workspace(cluster_enclave, project) as plan:
        service = _start_cluster(loop, cluster_enclave.paths, plan, tmp_path / "c.log", slurm)
        service.process.send_signal(signal.SIGKILL)  # no scancel, no close
        loop.run_until_complete(service.process.wait())
        started = time.monotonic()
        slurm.wait_for(lambda: not project_jobs(slurm, project), "the job to end after its service died", timeout=60)
        assert time.monotonic() - started < 10 + 30
