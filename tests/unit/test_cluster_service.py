"""The workspace's cluster service protocol (clusters/service.py) and its client side (workbench/relay.py), with a
real service listening on a real socket and no cluster yet; the project setting that chooses it: `engine` in the
spec, carried into the view's manifest, read by `start_client`; and the service's refusal of distributed's pickle
loading from its start, and its cluster's `scheduler_comm` that refuses every use (clusters/slurm.py).

What needs SLURM (a started cluster, the pipes, the PEMs kept out of the log) is in
tests/integration/test_slurm_workspace.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from clusters.service import MAX_LINE, ClusterService, RequestError, parse_request
from clusters.settings import ClusterError
from clusters.slurm import NoSchedulerComm
from fabric.projects import ProjectSpec
from kernel.config import Paths
from kernel.errors import SpecError
from workbench import cluster, relay
from workbench.errors import WorkbenchError

pytestmark = pytest.mark.unit

SPEC = "name: pro\ntitle: pro\npurpose: HMB\nmembers: []\ndatasets: ['*']\n"


async def _exchange(path: Path, raw: bytes) -> dict:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(raw)
    await writer.drain()
    line = await reader.readline()
    writer.close()
    return json.loads(line)


def _with_service(tmp_path: Path, exchanges: list[bytes]) -> tuple[list[dict], os.stat_result]:
    """Start a real service on a socket under `tmp_path`, send each raw request on its own connection."""
    socket_path = tmp_path / "s.sock"

    async def run() -> tuple[list[dict], os.stat_result]:
        service = ClusterService(Paths(tmp_path), "p", socket_path, os.getuid(), os.getgid())
        server = await service.listen()
        try:
            return [await _exchange(socket_path, raw) for raw in exchanges], socket_path.stat()
        finally:
            server.close()

    return asyncio.run(run())


def test_refuses_malformed_lines_and_unknown_ops_with_an_error_line(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    answers, mode = _with_service(
        tmp_path,
        [
            b"not json\n",
            b"[1, 2]\n",
            b'{"op": "rm -rf"}\n',
            b'{"no": "op"}\n',
            b'{"op": "scale", "jobs": -1}\n',
            b'{"op": "scale", "jobs": true}\n',
            b'{"op": "status"}\n',  # well formed, but no cluster yet
            b'{"op": "connect"}\n',
            b'{"op": "dashboard"}\n',
            b'{"op": "start", "jobs": "' + b"x" * MAX_LINE + b'"}\n',  # past the line's limit
        ],
    )
    assert all(answer["ok"] is False for answer in answers), answers
    errors = [answer["error"] for answer in answers]
    assert errors[0] == errors[1] == "a request is one JSON object on a line"
    assert errors[2].startswith("unknown op 'rm -rf': use one of start, scale, status, close, connect, dashboard")
    assert errors[3].startswith("unknown op 'None'")
    assert errors[4] == errors[5] == "jobs must be a whole number, 0 or more"
    assert errors[6] == errors[7] == errors[8] == "no cluster runs for this workspace: start one first"
    assert "one JSON line of at most" in errors[9]
    # only the owner may connect; nothing the service logged holds the refused lines' contents beyond the op
    assert stat.S_ISSOCK(mode.st_mode) and stat.S_IMODE(mode.st_mode) == 0o600
    assert "xxxx" not in caplog.text


def test_a_close_without_a_cluster_is_answered():
    assert parse_request(b'{"op": "close"}\n') == ("close", {"op": "close"})
    with pytest.raises(RequestError):
        parse_request(b'{"op": "close"}')  # no end of line: cut off


def test_the_service_never_follows_a_link_at_its_socket_path(tmp_path):
    target = tmp_path / "target"
    (tmp_path / "s.sock").symlink_to(target)
    with pytest.raises(OSError):
        _with_service(tmp_path, [])
    assert not target.exists()


def test_the_relay_reports_the_services_refusal_and_a_missing_service(tmp_path):
    socket_path = tmp_path / "s.sock"

    async def run() -> None:
        service = ClusterService(Paths(tmp_path), "p", socket_path, os.getuid(), os.getgid())
        server = await service.listen()
        try:
            with pytest.raises(relay.ServiceRefused, match="no cluster runs for this workspace"):
                await relay.request(socket_path, {"op": "scale", "jobs": 1})
        finally:
            server.close()

    asyncio.run(run())
    with pytest.raises(WorkbenchError, match="this workspace has no cluster service"):
        asyncio.run(relay.request(tmp_path / "missing.sock", {"op": "status"}))
    assert relay.service_socket({"ENCLAVE_RUN_DIR": "/run/enclave"}) == Path("/run/enclave/dask-cluster.sock")
    with pytest.raises(WorkbenchError, match="from a workspace only"):
        relay.service_socket({})


def test_engine_defaults_to_local_and_reaches_the_manifest(tmp_path):
    spec_path = tmp_path / "p.yaml"
    spec_path.write_text(SPEC)
    assert ProjectSpec.load(spec_path).compute.engine == "local"
    assert ProjectSpec.load(spec_path).compute.for_view()["engine"] == "local"
    spec_path.write_text(SPEC + "compute: {engine: slurm}\n")
    assert ProjectSpec.load(spec_path).compute.for_view()["engine"] == "slurm"
    spec_path.write_text(SPEC + "compute: {engine: kubernetes}\n")
    assert ProjectSpec.load(spec_path).compute.for_view()["engine"] == "kubernetes"
    spec_path.write_text(SPEC + "compute: {engine: yarn}\n")
    with pytest.raises(SpecError, match=r"compute\.engine"):
        ProjectSpec.load(spec_path)


def test_a_batch_run_makes_the_engine_local_whatever_the_manifest_says():
    slurm = {"compute": {"engine": "slurm"}}
    assert cluster.engine(slurm, {"ENCLAVE_DASK_ENGINE": "local"}) == "local"  # enclave run, also as a SLURM job
    assert cluster.engine(slurm, {"ENCLAVE_DASK_ENGINE": ""}) == "slurm"
    with pytest.raises(WorkbenchError, match=r"\$ENCLAVE_DASK_ENGINE must be one of local, slurm"):
        cluster.engine({}, {"ENCLAVE_DASK_ENGINE": "yarn"})


def test_start_client_chooses_the_slurm_cluster_from_the_manifest(tmp_path, monkeypatch):
    assert cluster.engine({}) == "local" and cluster.engine({"compute": {"dask_workers": 1}}) == "local"
    assert cluster.engine({"compute": {"engine": "slurm"}}) == "slurm"
    with pytest.raises(WorkbenchError, match=r"compute\.engine must be one of local, slurm, kubernetes"):
        cluster.engine({"compute": {"engine": "yarn"}})
    # slurm: the relay is asked (here there is no service in the runtime folder), never a LocalCluster
    monkeypatch.setenv("ENCLAVE_RUN_DIR", str(tmp_path))
    with pytest.raises(WorkbenchError, match="this workspace has no cluster service"):
        cluster.start_client({"compute": {"engine": "slurm"}})
    with pytest.raises(WorkbenchError, match="threads_per_worker: on the project's SLURM cluster"):
        cluster.start_client({"compute": {"engine": "slurm"}}, threads_per_worker=2)


# Run by the service's own Python: the payload unpickles while distributed's loading is untouched (the control), and
# no longer once the service's main() has begun (argparse's --help ends it right after the guard).
GUARD = """
import os, sys
from distributed.protocol import dumps, loads
from distributed.protocol.serialize import ToPickle

marker = sys.argv[1]

class Plant:
    def __init__(self, which):
        self.which = which

    def __reduce__(self):
        return (exec, (f"open({marker + '.' + self.which!r}, 'w').write('ran')",))

loads(dumps(["add", {"plant": ToPickle(Plant("before"))}]))
from clusters import service
try:
    service.main(["--help"])
except SystemExit:
    pass
try:
    loads(dumps(["add", {"plant": ToPickle(Plant("after"))}]))
except RuntimeError as refused:
    print("refused:", refused)
import distributed.client, distributed.scheduler
print(all(module.loads is service._refused_pickle for module in (distributed.client, distributed.scheduler)))
"""


def test_the_service_refuses_distributeds_pickle_loading_from_its_start(tmp_path):
    marker = tmp_path / "ran"
    done = subprocess.run(
        [sys.executable, "-c", GUARD, str(marker)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ran.before").exists()  # the control: the payload is live
    assert not (tmp_path / "ran.after").exists()
    assert "refused: the cluster service never unpickles" in done.stdout
    assert done.stdout.rstrip().endswith("True")


def test_the_clusters_scheduler_comm_refuses_every_use():
    comm = NoSchedulerComm("tls://127.0.0.1:8786")
    assert comm.address == "tls://127.0.0.1:8786"
    for use in ("live_comm", "retire_workers", "identity", "terminate", "close_rpc", "set_metadata"):
        with pytest.raises(ClusterError, match="never talks Dask to its scheduler"):
            getattr(comm, use)
