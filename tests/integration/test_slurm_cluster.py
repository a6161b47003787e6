"""A project's Dask cluster on a real SLURM (clusters/slurm.py; tests/slurm.py starts slurmctld, slurmd and munged):
real jobs, each a worker in the project's sandbox as the project's account.

- allele frequencies on the project's view through two SLURM workers equal a LocalCluster's, computed by a client
  that runs the way a workspace's kernel will, in the project's sandbox with its view at /project/data and only the
  cluster's client credentials; squeue shows the jobs meanwhile, and none is left once the cluster closes;
- when the process holding the cluster dies (SIGKILL: no scancel), its job ends by itself;
- a job that uses more than its memory is killed by SLURM, and the cluster says so in words; scaling to the same
  size again submits a new job in its place.

The sandbox's and TLS's refusals are in tests/security/test_slurm_workers.py. The SLURM and the projects are shared
by the session; every cluster here is closed by its test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, LocalCluster

from clusters.jobs import WorkerJobsKilled
from clusters.settings import ClusterError
from clusters.slurm import project_cluster
from hub import seccomp
from hub.sandbox import WorkerSandbox
from kernel.bubblewrap import base_python_home
from workbench import ProjectView

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]

# Runs in the project's sandbox as its account, the way a workspace's kernel will: the credentials arrive on stdin.
SANDBOXED_CLIENT = textwrap.dedent("""
    import json, sys
    from distributed import Client
    from distributed.security import Security
    from workbench import ProjectView
    given = json.loads(sys.stdin.read())
    security = Security(require_encryption=True, tls_ca_file=given["ca"], tls_client_cert=given["cert"],
                        tls_client_key=given["key"])
    with Client(given["address"], security=security, timeout=60) as client:
        freqs = ProjectView("/project/data").allele_frequencies().compute()
    freqs = freqs.sort_values(["chrom", "pos", "ref", "alt"], ignore_index=True)
    print(json.dumps({"rows": len(freqs), "ac": freqs["ac"].tolist(), "an": freqs["an"].tolist()}))
""")


def run_sandboxed_client(enclave, project: str, address: str, security) -> dict:
    """SANDBOXED_CLIENT in `project`'s worker sandbox (network shared, view read-only), as the project's account."""
    account = enclave.accounts[project]
    env = enclave.paths.workspace_env
    etc = enclave.paths.home / "client-etc"
    sandbox = WorkerSandbox(
        project=project, account=account.name, uid=account.uid, gid=account.gid, env=env,
        data=enclave.paths.project_data(project).resolve(), etc=etc, python_home=base_python_home(env),
    )  # fmt: skip
    sandbox.write_etc()
    fd = seccomp.filter_fd()
    try:
        done = subprocess.run(
            sandbox.argv([str(env / "bin" / "python"), "-c", SANDBOXED_CLIENT], seccomp_fd=fd),
            input=json.dumps({"address": address, "ca": security.tls_ca_file, "cert": security.tls_client_cert,
                              "key": security.tls_client_key}),
            env=sandbox.environment(), pass_fds=(fd,), capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
    finally:
        os.close(fd)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_allele_frequencies_through_slurm_workers_equal_a_local_clusters(cluster_enclave, slurm):
    project = cluster_enclave.projects[0]
    paths = cluster_enclave.paths
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False) as local, Client(local):
        expected = ProjectView(paths.project_data(project).resolve()).allele_frequencies().compute()
    expected = expected.sort_values(["chrom", "pos", "ref", "alt"], ignore_index=True)
    assert len(expected) > 0

    cluster = project_cluster(paths, project, interface="lo")
    try:
        assert "#SBATCH --mem=512M" in cluster.job_script() and "--export=NONE" in cluster.job_script()
        cluster.scale(jobs=2)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            listed = slurm.jobs()
            mine = {job: state for job, (name, state) in listed.items() if name == f"enclave-{project}"}
            assert set(mine) == set(cluster.job_ids) and len(mine) == 2, listed
            assert set(mine.values()) == {"RUNNING"}
            got = run_sandboxed_client(cluster_enclave, project, cluster.scheduler_address, cluster.client_security())
            # both workers took part
            executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
            assert len(executed) == 2 and all(n > 0 for n in executed.values()), executed
    finally:
        cluster.close()
    assert got["rows"] == len(expected)
    np.testing.assert_array_equal(got["ac"], expected["ac"])
    np.testing.assert_array_equal(got["an"], expected["an"])
    assert not set(cluster.job_ids) & set(slurm.jobs()), "a job outlived cluster.close()"
    assert not cluster.folder.exists()


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from clusters.slurm import project_cluster
    from kernel.config import Paths
    from distributed import Client
    cluster = project_cluster(Paths(Path(sys.argv[1])), sys.argv[2], interface="lo", death_timeout=5)
    cluster.scale(jobs=1)
    client = Client(cluster)
    client.wait_for_workers(1, timeout=120)
    print(cluster.job_ids[0], flush=True)
    time.sleep(600)
""")


def test_a_job_ends_when_the_process_holding_its_cluster_dies(cluster_enclave, slurm):
    project = cluster_enclave.projects[1]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(cluster_enclave.paths.home), project],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        job = holder.stdout.readline().strip()
        assert job.isdigit(), holder.stderr.read() if holder.poll() is not None else job
        assert slurm.jobs()[job][1] == "RUNNING"
    finally:
        holder.send_signal(signal.SIGKILL)  # no scancel, no close: as if the broker were killed
        holder.wait(timeout=30)
    started = time.monotonic()
    slurm.wait_for(lambda: job not in slurm.jobs(), f"job {job} to end after its scheduler died", timeout=60)
    assert time.monotonic() - started < 60


# A task that starts a process holding ~700 MB: the job's processes together pass its 300 MiB, which SLURM counts
# (Dask's nanny watches the worker process alone, so it is SLURM that acts). subprocess.run travels by reference:
# the scheduler (the workspace environment's libraries) cannot unpickle functions made by the tests' interpreter.
HOG = ["/usr/bin/python3", "-c", "import time; x = b'1' * 700_000_000; time.sleep(30)"]


def test_a_job_over_its_memory_is_killed_and_the_researcher_is_told(cluster_enclave, slurm):
    project = cluster_enclave.projects[0]
    cluster = project_cluster(cluster_enclave.paths, project, interface="lo", memory="300MiB")
    try:
        assert "#SBATCH --mem=300M" in cluster.job_script()
        cluster.scale(jobs=1)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=120)
            job = cluster.job_ids[0]
            cluster.check_jobs()  # nothing to say yet
            client.submit(subprocess.run, HOG, check=False, pure=False)
            slurm.wait_for(lambda: job not in slurm.jobs(), f"job {job} to be killed", timeout=60)
            with pytest.raises(WorkerJobsKilled, match=rf"SLURM killed Dask worker job {job}: .* memory of 300M"):
                cluster.check_jobs()
            cluster.scale(jobs=1)  # the same size again: SLURM no longer lists the job, so a new one is submitted
            slurm.wait_for(lambda: len(cluster.job_ids) == 2 and cluster.job_ids[1] in slurm.jobs(), "a new job")
            client.wait_for_workers(1, timeout=120)
            assert client.submit(sum, [1, 2], pure=False).result(timeout=120) == 3  # on the new job's worker
    finally:
        cluster.close()


def test_a_scheduler_that_cannot_listen_where_its_jobs_look_fails_the_cluster(cluster_enclave, slurm):
    """The jobs are queued while the scheduler starts, at the port chosen for it (clusters/sandboxed.py): when
    something else holds that port, waiting for the workers says the scheduler did not start, and closing leaves no
    job behind."""
    project = cluster_enclave.projects[0]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cluster = project_cluster(cluster_enclave.paths, project, interface="lo", scheduler_port=taken.getsockname()[1])
        try:
            cluster.scale(jobs=1)
            with pytest.raises(ClusterError, match="scheduler did not start"):
                cluster.wait_for_workers(1, timeout=120)
        finally:
            cluster.close()
    assert not [job for job in cluster.job_ids if job in slurm.jobs()]
