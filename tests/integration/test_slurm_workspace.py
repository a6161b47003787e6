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
  death timeout;
- JupyterLab's Dask panel, on the workspace's real server in the sandbox (reached on its Unix socket as the proxy
  reaches it): its cluster routes list no cluster, start the project's (one SLURM job, its state in the cluster's
  name, its workers, cores and memory as they come up), show its dashboard through the `dask/` route, refuse a second
  start, adaptive scaling and a malformed scale, scale it, and close it (no job left); methods the route table does
  not allow are refused.

A client with another cluster's credentials is refused by the scheduler itself: tests/security/test_slurm_workers.py
(the relay only passes bytes, so it changes nothing there).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
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

# A notebook joining the cluster the Dask panel started: its client, and the cluster's summary with SLURM's jobs.
JOINING_KERNEL = textwrap.dedent("""
    import json, sys
    from workbench import open_project
    client = open_project().client()
    print(json.dumps({"workers": len(client.scheduler_info()["workers"]), "link": client.dashboard_link,
                      "html": client.cluster._repr_html_()}), flush=True)
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


class _UnixConnection(http.client.HTTPConnection):
    """HTTP to the workspace server's Unix socket, as the hub's proxy reaches it."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=300)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.path))


def _panel_request(socket_path: Path, prefix: str, token: str, method: str, route: str, body: object = None):
    connection = _UnixConnection(socket_path)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
        connection.request(method, prefix + route, body=data, headers=headers)
        answer = connection.getresponse()
        raw = answer.read()
        return answer.status, (json.loads(raw) if raw and "json" in answer.getheader("Content-Type", "") else raw)
    finally:
        connection.close()


def _wait_for(what: str, check, seconds: float = 240):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(2)
    pytest.fail(f"no {what} after {seconds:.0f} s")


def test_the_dask_panel_manages_the_projects_cluster(cluster_enclave, slurm, loop, tmp_path):
    project = cluster_enclave.projects[0]
    prefix = PREFIX.format(project=project)
    token = os.urandom(16).hex()
    with workspace(cluster_enclave, project) as plan:
        service = loop.run_until_complete(
            cluster_service.start_service(cluster_enclave.paths, plan.layout, tmp_path / "c.log")
        )
        env = plan.layout.env
        command = [
            str(env / "bin" / "jupyter-server"),
            "--sock=/run/enclave/jupyter.sock",
            f"--ServerApp.base_url={prefix}",
        ]
        server_log = (tmp_path / "server.log").open("w")
        with plan.launch(command, environment={"JUPYTER_TOKEN": token}) as how:
            server = subprocess.Popen(how.argv, env=how.env, pass_fds=how.pass_fds, preexec_fn=how.preexec_fn,
                                      stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        socket_path = plan.layout.run / "jupyter.sock"
        kernel = None

        def panel(method: str, route: str, body: object = None):
            return _panel_request(socket_path, prefix, token, method, route, body)

        try:
            loop.run_until_complete(service.watch(server.pid))
            _wait_for("server socket", lambda: socket_path.is_socket() and panel("GET", "api/status")[0] == 200, 120)
            assert panel("GET", "dask/clusters") == (200, [])
            status, started = panel("PUT", "dask/clusters")
            assert status == 200, started
            assert started["scheduler_address"] == "enclave://project-cluster"
            assert started["dashboard_link"] == f"{prefix}dask/status"
            cluster = f"dask/clusters/{started['id']}"

            def running():
                listed = panel("GET", "dask/clusters")[1]
                return listed if listed and listed[0]["workers"] >= 1 and "1 RUNNING" in listed[0]["name"] else None

            (model,) = _wait_for("running worker in the panel", running)
            assert model["id"] == started["id"] and model["cores"] >= 1 and model["memory"] != "0 B"
            assert set(project_jobs(slurm, project).values()) == {"RUNNING"}
            # a notebook's client() gets the same cluster (the server relays its dashboard already), and its HTML
            # summary shows SLURM's jobs
            kernel = launch(plan, confined(plan, JOINING_KERNEL), {"JUPYTERHUB_SERVICE_PREFIX": prefix})
            joined = read_json(kernel)
            assert joined["workers"] == 1 and joined["link"] == f"{prefix}dask/status"
            assert "SLURM&#x27;s jobs" in joined["html"] or "SLURM's jobs" in joined["html"]
            assert "RUNNING" in joined["html"]
            assert set(project_jobs(slurm, project).values()) == {"RUNNING"} and len(project_jobs(slurm, project)) == 1
            status, page = panel("GET", "dask/status")  # the dashboard the server relays, through the dask/ route
            assert status == 200 and b"Dask" in page
            assert panel("PUT", "dask/clusters")[0] == 403  # one cluster per workspace, already running
            assert panel("PATCH", cluster, {"adapt": {"minimum": 0, "maximum": 2}})[0] == 400
            assert panel("PATCH", cluster, {"workers": "many"})[0] == 400
            assert panel("POST", "dask/clusters", {})[0] == 403  # not in the route table
            assert panel("PUT", cluster, {})[0] == 403
            status, scaled = panel("PATCH", cluster, {"workers": 0})
            assert status == 200, scaled
            _wait_for("job gone after scaling to 0", lambda: not project_jobs(slurm, project))
            status, _ = panel("DELETE", cluster)  # the project's cluster: the notebook's client loses it too
            assert status == 204
            assert panel("GET", "dask/clusters") == (200, [])
            assert not project_jobs(slurm, project)
        finally:
            if kernel is not None:
                kernel.kill()
                kernel.wait(timeout=30)
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            server_log.close()
            loop.run_until_complete(service.stop())
    assert not project_jobs(slurm, project), "a job outlived its workspace"
    text = (tmp_path / "server.log").read_text()
    assert "PRIVATE KEY" not in text and "CERTIFICATE" not in text  # the server kept none of the start's answer
