"""A project's SLURM cluster as data (clusters/): slurm.yaml registered with dask.config, the precedence of
arguments over configuration over the project's limits (never past them), the job directives dask-jobqueue writes
from them, the one-machine slurm.conf, and the per-cluster certificates. Nothing is started."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import dask
import pytest
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from dask_jobqueue.slurm import SLURMJob

from clusters import certificates, settings, slurm_conf
from clusters.settings import ClusterError, job_options, job_placement, job_size
from fabric.projects import ComputeLimits

pytestmark = pytest.mark.unit

SHIPPED = yaml.safe_load(settings.CONFIG_FILE.read_text(encoding="utf-8"))["enclave"]["slurm"]
LIMITS = ComputeLimits(cpus=1.5, memory="2GiB", dask_workers=2, threads_per_worker=2)


def test_the_yaml_is_registered_as_dask_defaults() -> None:
    assert dask.config.get(settings.CONFIG) == SHIPPED
    fresh: dict = {}
    dask.config.refresh(config=fresh, env={"DASK_ENCLAVE__SLURM__QUEUE": "genomics"})
    assert fresh["enclave"]["slurm"] == {**SHIPPED, "queue": "genomics"}


def test_every_key_of_the_yaml_is_read() -> None:
    """No dead knob: each key is read by clusters/ (settings.py or slurm.py)."""
    code = "".join(p.read_text() for p in Path(settings.__file__).parent.glob("*.py"))
    for key in SHIPPED:
        assert f'"{key}"' in code, key
    for key in SHIPPED["scheduler"]:
        assert f'"{key}"' in code, key


def test_a_job_is_one_workspace_of_the_project_unless_asked_for_less() -> None:
    size = job_size(LIMITS)
    assert (size.cores, size.processes, size.memory, size.cpus) == (4, 2, 2 * 2**30, 2)
    assert (size.threads_per_worker, size.worker_memory) == (2, 2**30)
    with dask.config.set({"enclave.slurm.processes": 1, "enclave.slurm.cores": 2}):
        assert (job_size(LIMITS).cores, job_size(LIMITS).processes) == (2, 1)
        assert job_size(LIMITS, processes=2).processes == 2  # an argument over the configuration
    assert job_size(LIMITS, memory="512MiB").memory == 512 * 2**20


@pytest.mark.parametrize(
    ("asked", "refusal"),
    [
        ({"memory": "3GiB"}, "allows up to 2GiB per job"),
        ({"processes": 3, "cores": 3}, "allows up to 2 workers per job"),
        ({"cores": 6, "processes": 2}, "allows up to 4 threads per job"),
        ({"cores": 3, "processes": 2}, "do not divide"),
        ({"cores": 1, "processes": 2}, "cores >= processes"),
    ],
)
def test_nothing_past_the_projects_limits(asked: dict, refusal: str) -> None:
    with pytest.raises(ClusterError, match=refusal):
        job_size(LIMITS, **asked)
    key, value = next(iter(asked.items()))
    if key == "memory":  # the configuration cannot pass a limit either
        with dask.config.set({"enclave.slurm.memory": value}), pytest.raises(ClusterError, match=refusal):
            job_size(LIMITS)


def test_placement_per_project_then_arguments() -> None:
    assert job_placement("p")["walltime"] == SHIPPED["walltime"]
    entry = {"queue": "genomics", "account": "cardio", "job-extra-directives": ["--qos=low"]}
    with dask.config.set({"enclave.slurm.queue": "general", "enclave.slurm.projects": {"p": entry}}):
        assert job_placement("p")["queue"] == "genomics"
        assert job_placement("other")["queue"] == "general"
        assert job_placement("p", queue="gpu", walltime="00:10:00") == {
            "queue": "gpu", "account": "cardio", "walltime": "00:10:00", "job-extra-directives": ["--qos=low"],
        }  # fmt: skip
    unknown = {"enclave.slurm.projects": {"p": {"memory": "1TiB"}}}
    with dask.config.set(unknown), pytest.raises(ClusterError, match="unknown keys"):
        job_placement("p")


def test_the_job_directives_dask_jobqueue_writes() -> None:
    options = job_options("p", LIMITS, job_size(LIMITS), queue="genomics", account="cardio", walltime="01:00:00")
    options.pop("scheduler_options")
    job = SLURMJob(scheduler="tls://127.0.0.1:1", name="w", python="/env/bin/python", **options)
    header = job.job_header.splitlines()
    for line in ("#SBATCH -p genomics", "#SBATCH -A cardio", "#SBATCH -t 01:00:00", "#SBATCH --cpus-per-task=2",
                 "#SBATCH --mem=2G", "#SBATCH -n 1", "#SBATCH --export=NONE"):  # fmt: skip
        assert line in header
    script = job.job_script()
    assert "--nthreads 2" in script and "--nworkers 2" in script and "--memory-limit 1.00GiB" in script


def test_the_scheduler_listens_where_configured() -> None:
    assert settings.scheduler_options() == {"port": 0, "dashboard_address": "127.0.0.1:0"}
    with dask.config.set({"enclave.slurm.scheduler.host": "10.0.0.5", "enclave.slurm.scheduler.port": 8786}):
        assert settings.scheduler_options() == {"port": 8786, "dashboard_address": "127.0.0.1:0", "host": "10.0.0.5"}
        assert settings.scheduler_options(port=9000)["port"] == 9000


def test_the_site_setting_names_the_slurm_to_use(tmp_path: Path) -> None:
    """ENCLAVE_SLURM_CONF (a site setting: /etc/enclave/enclave.env may set it, not SLURM_CONF) becomes SLURM_CONF,
    winning over one already set; unset, SLURM_CONF stands; a relative path or a missing file is an error."""
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=site\n")
    environ = {"ENCLAVE_SLURM_CONF": str(conf), "SLURM_CONF": "/etc/slurm/slurm.conf"}
    assert settings.use_site_slurm(environ) == str(conf) and environ["SLURM_CONF"] == str(conf)
    assert settings.use_site_slurm({"SLURM_CONF": "/etc/slurm/other.conf"}) == "/etc/slurm/other.conf"
    assert settings.use_site_slurm({}) is None
    for wrong in ("slurm.conf", str(tmp_path / "missing.conf"), str(tmp_path)):
        environ = {"ENCLAVE_SLURM_CONF": wrong}
        with pytest.raises(ClusterError, match="ENCLAVE_SLURM_CONF must be"):
            settings.use_site_slurm(environ)
        assert "SLURM_CONF" not in environ


def test_a_one_machine_slurm_conf(tmp_path: Path) -> None:
    node = slurm_conf.SingleNode(tmp_path, "vm", cpus=2, memory_mib=2048, controller_port=7001, node_port=7002)
    conf = dict(line.split("=", 1) for line in node.slurm_conf().splitlines()[1:-2])
    assert conf["SlurmctldHost"] == "vm(127.0.0.1)"
    assert (conf["SlurmctldPort"], conf["SlurmdPort"]) == ("7001", "7002")
    assert conf["AuthInfo"] == f"socket={tmp_path / 'munge' / 'munge.socket'}"
    assert conf["JobAcctGatherType"] == "jobacct_gather/linux" and conf["JobAcctGatherParams"] == "OverMemoryKill"
    assert conf["ProctrackType"] == "proctrack/linuxproc"  # follows a worker into bubblewrap's new session
    assert conf["SelectTypeParameters"] == "CR_Core_Memory"
    for key in ("StateSaveLocation", "SlurmdSpoolDir", "SlurmctldPidFile", "SlurmdPidFile", "SlurmctldLogFile"):
        assert Path(conf[key]).is_relative_to(tmp_path), key
    assert node.slurm_conf().splitlines()[-2] == "NodeName=vm NodeAddr=127.0.0.1 CPUs=2 RealMemory=2048 State=UNKNOWN"
    commands = slurm_conf.daemon_commands(node)
    assert list(commands) == ["munged", "slurmctld", "slurmd"]
    assert not any("munge.key" in arg and "=" not in arg for arg in commands["munged"])  # a path, never the key


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the munge key goes to the munge account")
def test_the_munge_key_is_the_munge_accounts_alone(tmp_path: Path) -> None:
    pytest.importorskip("pwd").getpwnam(slurm_conf.MUNGE_ACCOUNT)
    node = slurm_conf.SingleNode(tmp_path / "s", "vm", cpus=1, memory_mib=512, controller_port=1, node_port=2)
    slurm_conf.write(node)
    key = node.munge_key.stat()
    assert stat.S_IMODE(key.st_mode) == 0o400 and key.st_size == slurm_conf.KEY_BYTES
    assert stat.S_IMODE(node.munge_private.stat().st_mode) == 0o700
    assert node.munge_key.read_bytes() not in node.conf.read_bytes()


def test_each_cluster_has_its_own_authority(tmp_path: Path) -> None:
    one, other = certificates.issue("one", days=1), certificates.issue("other", days=1)
    authority = x509.load_pem_x509_certificate(one.authority.cert.encode())
    assert authority.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for role in certificates.ROLES:
        cert = x509.load_pem_x509_certificate(one.roles[role].cert.encode())
        cert.verify_directly_issued_by(authority)
        with pytest.raises((ValueError, InvalidSignature)):
            cert.verify_directly_issued_by(x509.load_pem_x509_certificate(other.authority.cert.encode()))
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert not one.authority.key  # the authority's key is not kept
    client = one.client_security()
    assert client.require_encryption and client.tls_client_key == one.roles["client"].key
    assert client.tls_scheduler_key is None and client.tls_worker_key is None
    folder = tmp_path / "tls"
    folder.mkdir()
    files = one.write_role_files(folder, os.getgid())
    for path in (files.authority, files.cert("worker"), files.key("worker"), files.key("scheduler")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o440
    assert not files.key("client").exists()
    security = one.cluster_security(files)
    assert security.get_tls_config_for_role("worker")["key"] == str(files.key("worker"))  # a path, for the job
    assert "\n" in security.get_tls_config_for_role("client")["key"]  # in memory
