"""Red team against `enclave run --slurm` and `enclave run-status` (provisioning/notebook_jobs.py), which run as root
and are offered to researchers through sudo, on a real one-machine SLURM (tests/slurm.py):

- the job's script, its log, its sandbox files and its record are root's alone: the project's account can neither
  write nor read them, and the script holds nothing secret (not the project's pseudonym key, no token);
- through sudo a person submits in their own home only (`--user` another: refused, nothing submitted) and reads
  their own jobs only (another's job reads as unknown);
- a record naming a folder outside the jobs' folder is not followed.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

pytestmark = [pytest.mark.security, pytest.mark.timeout(600)]

ENCLAVE = Path(sys.executable).with_name("enclave")
NOBODY = pwd.getpwnam("nobody")


def enclave(paths, *args: str, sudo_user: str | None = None) -> subprocess.CompletedProcess:
    """The real command line; `sudo_user`: as sudo leaves it when that person (mapped to `nobody`) calls it."""
    env = {**os.environ, "ENCLAVE_HOME": str(paths.home)}
    if sudo_user:
        env.update(SUDO_USER=sudo_user, SUDO_UID=str(NOBODY.pw_uid), SUDO_GID=str(NOBODY.pw_gid))
    return subprocess.run([str(ENCLAVE), *args], capture_output=True, text=True, env=env, timeout=400, check=False)


@pytest.fixture(scope="module")
def finished_job(cluster_enclave, slurm, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """One short notebook job of alice's in the first project, run to its end: (job id, its folder)."""
    folder = tmp_path_factory.mktemp("notebook")
    folder.chmod(0o755)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "short.ipynb"
    nbformat.write(notebook, path)
    path.chmod(0o644)
    project = cluster_enclave.projects[0]
    ran = enclave(cluster_enclave.paths, "run", str(path), "--project", project, "--user", "alice", "--slurm", "--wait")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    job = ran.stdout.split("submitted notebook job ")[1].split()[0]
    record = json.loads((cluster_enclave.paths.home / "notebook-jobs" / "jobs" / f"{job}.json").read_text())
    yield job, Path(record["folder"])


def as_account(account, *command: str) -> int:
    """`command`'s exit status run as the project's account (no groups of root's)."""
    drop = ["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--clear-groups", "--"]
    return subprocess.run([*drop, *command], capture_output=True, check=False, timeout=30).returncode


def test_the_jobs_files_are_roots_alone(cluster_enclave, finished_job):
    job, folder = finished_job
    account = cluster_enclave.accounts[cluster_enclave.projects[0]]
    record = cluster_enclave.paths.home / "notebook-jobs" / "jobs" / f"{job}.json"
    files = [folder, record, *folder.rglob("*")]
    assert {"job.sh", "slurm.log", "seccomp.bpf", "exit-status", "end.json"} <= {p.name for p in files}
    for path in files:
        st = path.lstat()
        assert st.st_uid == 0 and not st.st_mode & 0o022, path
    for path in (folder, folder / "job.sh", folder / "slurm.log", record.parent):
        assert as_account(account, "test", "-w", str(path)) != 0, path
        assert as_account(account, "test", "-r", str(path)) != 0, path
    assert folder.stat().st_mode & 0o777 == 0o700 and record.parent.stat().st_mode & 0o777 == 0o700


def test_the_script_holds_nothing_secret(cluster_enclave, finished_job):
    _, folder = finished_job
    script = (folder / "job.sh").read_bytes()
    key = cluster_enclave.paths.project_key(cluster_enclave.projects[0])
    assert key.is_file() and key.read_bytes().strip() not in script
    for word in (b"TOKEN", b"SECRET", b"PASSWORD", b"BEGIN "):
        assert word not in script.upper()


def test_through_sudo_a_person_submits_in_their_own_home_only(cluster_enclave, slurm, finished_job):
    before = set(slurm.jobs())
    ran = enclave(cluster_enclave.paths, "run", "/nonexistent.ipynb", "--project", cluster_enclave.projects[0],
                  "--user", "bob", "--slurm", sudo_user="alice")  # fmt: skip
    assert ran.returncode == 1 and "runs in your own project home" in ran.stderr
    assert set(slurm.jobs()) == before


def test_through_sudo_a_person_reads_their_own_jobs_only(cluster_enclave, finished_job):
    job, _ = finished_job
    theirs = enclave(cluster_enclave.paths, "run-status", job, sudo_user="alice")
    assert theirs.returncode == 0 and f"notebook job {job} finished" in theirs.stdout, theirs.stderr
    other = enclave(cluster_enclave.paths, "run-status", job, "--log", sudo_user="bob")
    assert other.returncode == 1 and f"no notebook job {job} of yours" in other.stderr
    assert "42" not in other.stdout + other.stderr
    refused = enclave(cluster_enclave.paths, "run-status", "../jobs/1", sudo_user="alice")
    assert refused.returncode == 1 and "is not a SLURM job id" in refused.stderr


def test_a_record_naming_a_folder_elsewhere_is_not_followed(cluster_enclave, finished_job, tmp_path):
    records = cluster_enclave.paths.home / "notebook-jobs" / "jobs"
    job, _ = finished_job
    planted = json.loads((records / f"{job}.json").read_text())
    elsewhere = tmp_path / "planted"
    elsewhere.mkdir()
    (elsewhere / "slurm.log").write_text("not the job's log\n")
    forged = records / "999999.json"
    forged.write_text(json.dumps({**planted, "job_id": "999999", "folder": str(elsewhere)}))
    try:
        ran = enclave(cluster_enclave.paths, "run-status", "999999", "--log")
        assert ran.returncode == 1 and "names a folder outside notebook-jobs/" in ran.stderr
        assert "not the job's log" not in ran.stdout
    finally:
        forged.unlink()
