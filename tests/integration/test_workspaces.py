"""Workspaces through a real hub: spawn through the REST API, run code in the kernel, stop; two projects at once;
the limits and the sandbox each workspace really gets. Root only (tests/workspace_hub.py)."""

from __future__ import annotations

import json
import time

import pytest

from hub import sandbox
from hub.limits import Ceiling, WorkspaceCgroup
from tests.workspace_hub import DEMO, SECOND_PROJECT, needs_enclave

pytestmark = [pytest.mark.integration, needs_enclave]

WHO_AM_I = """
import json, os
print(json.dumps({
    "uid": os.getuid(), "cwd": os.getcwd(), "project": os.environ["ENCLAVE_PROJECT"],
    "data": sorted(os.listdir("/project/data")), "root": sorted(os.listdir("/")),
    "answer": 5 * 4,
}))
"""


def test_a_researcher_spawns_runs_code_and_stops_a_workspace(running_enclave):
    alice = running_enclave.person("alice")
    home = alice.http.get(f"{running_enclave.url}/hub/home").text
    assert DEMO in home and SECOND_PROJECT in home  # the home page lists alice's projects as workspaces

    alice.spawn(DEMO)
    seen = json.loads(alice.execute(DEMO, WHO_AM_I))
    assert seen["answer"] == 20
    assert seen["project"] == DEMO and seen["cwd"] == "/home/alice"
    assert "MANIFEST.json" in seen["data"]
    assert seen["uid"] != 0
    # nothing of the host's tree but system folders, the project and the workspace environment's root
    system = {"bin", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "proc", "project", "run", "sbin", "tmp"}
    assert set(seen["root"]) <= {*system, "usr", *running_enclave.paths.workspace_env.parts[1:2]}

    workspace = sandbox.workspace_id(running_enclave.paths, DEMO, "alice")
    assert (sandbox.SOCKET_ROOT / workspace / "jupyter.sock").is_socket()
    alice.stop(DEMO)
    assert not (sandbox.SOCKET_ROOT / workspace).exists()
    assert not WorkspaceCgroup(workspace).pids()


def test_workspaces_start_at_once_each_in_its_own_sandbox_and_account(running_enclave):
    alice, bob = running_enclave.person("alice"), running_enclave.person("bob")
    started = [(alice, DEMO), (alice, SECOND_PROJECT), (bob, DEMO)]
    for person, project in started:  # all requested before any is ready: the hub prepares them concurrently
        person.request_spawn(project)
    try:
        deadline = time.monotonic() + 180
        for person, project in started:
            person.wait_ready(project, deadline)
        first = json.loads(alice.execute(DEMO, WHO_AM_I))
        second = json.loads(alice.execute(SECOND_PROJECT, WHO_AM_I))
        bobs = json.loads(bob.execute(DEMO, WHO_AM_I))
        assert (first["project"], second["project"]) == (DEMO, SECOND_PROJECT)
        assert first["uid"] != second["uid"]  # one Unix account per project
        assert bobs["uid"] == first["uid"] and bobs["cwd"] == "/home/bob"  # same project, own home
    finally:
        for person, project in started:
            person.stop(project)


def test_a_workspace_runs_inside_its_project_limits(running_enclave):
    bob = running_enclave.person("bob")
    bob.spawn(DEMO)
    try:
        cgroup = WorkspaceCgroup(sandbox.workspace_id(running_enclave.paths, DEMO, "bob"))
        # the demo spec (compute.memory 8GiB, cpus 2), squeezed under what this host leaves the workspaces
        ceiling = Ceiling.from_env()
        assert int(cgroup.read("memory.limit_in_bytes")) == min(8 * 2**30, ceiling.memory_bytes)
        assert int(cgroup.read("cpu.cfs_quota_us")) == int(min(2, ceiling.cpus) * int(cgroup.read("cpu.cfs_period_us")))
        assert int(cgroup.read("pids.max")) == 512  # compute.max_processes' default
        inside = json.loads(bob.execute(DEMO, "import json, os; print(json.dumps(os.getpid()))"))
        assert inside < 100  # its own PID namespace
        assert len(cgroup.pids()) >= 2  # the server and the kernel, all counted against the limits
    finally:
        bob.stop(DEMO)


def test_the_dask_dashboard_and_the_mlflow_ui_open_through_the_hub(running_enclave):
    alice = running_enclave.person("alice")
    alice.spawn(DEMO)
    try:
        with alice.kernel(DEMO) as run:  # the cluster lives as long as this kernel
            link = run("from workbench import open_project\nclient = open_project().client(n_workers=1)\n"
                       "print(client.dashboard_link)", 180)  # fmt: skip
            assert link.strip() == f"/user/alice/{DEMO}/dask/status"
            dashboard = alice.http.get(f"{alice.server(DEMO)}/dask/status", timeout=60)
            assert dashboard.status_code == 200 and "dask" in dashboard.text.lower()

        ui = alice.http.get(f"{alice.server(DEMO)}/mlflow/", timeout=180)  # started on demand inside the sandbox
        assert ui.status_code == 200 and "mlflow" in ui.text.lower()
    finally:
        alice.stop(DEMO)


def test_the_workspaces_address_leads_to_jupyterlab(running_enclave):
    """The hub sends the browser to /user/NAME/PROJECT/ once a workspace is ready: the route table must let that
    address redirect to JupyterLab (found by the end-to-end browser test)."""
    alice = running_enclave.person("alice")
    alice.spawn(DEMO)
    try:
        alice.open_workspace(DEMO)
        root = alice.http.get(f"{alice.server(DEMO)}/", timeout=60, allow_redirects=False)
        assert root.status_code in (301, 302), root.status_code
        assert root.headers["Location"].rstrip("?").endswith(f"/user/alice/{DEMO}/lab")
        assert alice.http.get(f"{alice.server(DEMO)}/", timeout=60).status_code == 200
    finally:
        alice.stop(DEMO)
