"""Red team against a workspace's cluster service (clusters/service.py), which runs as root outside every sandbox:
the project's scheduler runs the researcher's code by design (it unpickles their graphs, and `run_on_scheduler` runs
a function there), so nothing the scheduler says may reach a root process as a Dask message, whose decoder
(distributed/protocol/core.py) unpickles any `__Pickled__` part it holds.

The attack, on a real SLURM (tests/slurm.py) with a real sandboxed workspace and its service started as the spawner
starts it: a kernel in the workspace gets its client the researcher's way (`open_project().client()`, credentials
from the service's `start`) and runs a function on the scheduler that sends, on every batched stream the scheduler
holds but the workers' and the kernel's own client's (the worker-status subscribers, which is how distributed's
cluster managers follow their workers, a displaced one included, and every other client), a message carrying a
pickle whose `__reduce__` runs code that writes its reader's uid into a root-only folder. Nothing may arrive there.
Before the fix (the service's `SLURMCluster` subscribed to the scheduler's worker status as distributed's cluster
managers do) root wrote `unpickled-by-0` there.

The control: the same pickle, returned to the kernel as the function's result, is unpickled by the kernel's own
client (the project's account, where it harms no one), so the payload is live; and the service still answers
`status` afterwards, its workers counted.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from hub import cluster_service
from hub.workspaces import prepare
from workbench import relay

pytestmark = [pytest.mark.security, pytest.mark.timeout(600)]

# The researcher's kernel. `Plant`'s pickle is a call of exec: whoever unpickles it runs CODE, which notes its uid in
# the process (the control reads it back) and, as root only, in the root-only folder.
KERNEL = textwrap.dedent("""
    import builtins, json, os, sys, time
    from workbench import open_project

    folder = sys.argv[1]
    CODE = (
        "import builtins, os\\n"
        "builtins._enclave_unpickled_by = os.getuid()\\n"
        "try:\\n"
        f"    open(os.path.join({folder!r}, 'unpickled-by-' + str(os.getuid())), 'w').write('planted')\\n"
        "except OSError:\\n"
        "    pass\\n"
    )

    class Plant:
        def __reduce__(self):
            return (exec, (CODE,))

    def plant(dask_scheduler, own):
        # every batched stream the scheduler holds but the workers' and this client's own: the worker-status
        # subscribers (a cluster manager's, even one a later subscriber displaced) and other clients
        import gc
        from distributed.batched import BatchedSend
        from distributed.protocol.serialize import ToPickle
        skip = {id(b) for b in dask_scheduler.stream_comms.values()} | {id(dask_scheduler.client_comms.get(own))}
        clients = {id(b) for b in dask_scheduler.client_comms.values()}
        sent = 0
        for bcomm in [o for o in gc.get_objects() if isinstance(o, BatchedSend)]:
            if id(bcomm) in skip or bcomm.comm is None or bcomm.comm.closed():
                continue
            if id(bcomm) in clients:
                bcomm.send({"op": "plant", "plant": ToPickle(Plant())})
            else:
                bcomm.send(["add", {"plant": ToPickle(Plant())}])
            sent += 1
        return sent

    client = open_project().client()
    sent = client.run_on_scheduler(plant, own=client.id)
    returned = client.run_on_scheduler(lambda: Plant())  # the control: the kernel's own client unpickles it
    time.sleep(5)  # for the scheduler's batched sends to go out and be read
    print(json.dumps({"sent": sent, "control_uid": getattr(builtins, "_enclave_unpickled_by", None),
                      "own_uid": os.getuid(), "returned": repr(returned)}), flush=True)
    sys.stdin.readline()
""")


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(autouse=True)
def _cluster_on_loopback(monkeypatch):
    monkeypatch.setenv("DASK_ENCLAVE__SLURM__INTERFACE", "lo")


def _kernel(plan, folder: Path) -> subprocess.Popen:
    python = str(plan.layout.env / "bin" / "python")
    (confine,) = plan.layout.env.glob("lib/python3*/site-packages/enclave_workspace/confine.py")
    argv = [python, "-I", str(confine), "--", python, "-c", KERNEL, str(folder)]
    with plan.launch(argv, environment={"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/p/"}) as how:
        return subprocess.Popen(
            how.argv, env=how.env, pass_fds=how.pass_fds, preexec_fn=how.preexec_fn, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip


def test_a_pickle_from_the_scheduler_is_never_unpickled_by_root(cluster_enclave, slurm, loop, tmp_path):
    project = cluster_enclave.projects[0]
    folder = tmp_path / "root-only"
    folder.mkdir(mode=0o700)
    plan = prepare(cluster_enclave.paths, project, "alice", hub_socket_root=None)
    try:
        service = loop.run_until_complete(cluster_service.start_service(cluster_enclave.paths, plan.layout,
                                                                         tmp_path / "cluster.log"))  # fmt: skip
        kernel = _kernel(plan, folder)
        try:
            loop.run_until_complete(service.watch(kernel.pid))
            line = kernel.stdout.readline()
            if not line:
                kernel.wait(timeout=30)
                pytest.fail(f"the kernel ended ({kernel.returncode}):\n{kernel.stderr.read()[-4000:]}")
            found = json.loads(line)
            assert found["control_uid"] == found["own_uid"] != 0, found  # the payload is live
            time.sleep(2)
            planted = sorted(path.name for path in folder.iterdir())
            assert planted == [], f"a process unpickled the scheduler's pickle: {planted}"
            status = loop.run_until_complete(
                relay.request(cluster_service.service_socket(plan.layout), {"op": "status"})
            )
            assert status["workers"] == 1 and status["threads"] >= 1 and status["memory"] > 0, status
        finally:
            kernel.kill()
            kernel.wait(timeout=30)
            loop.run_until_complete(service.stop())
    finally:
        plan.cleanup()
