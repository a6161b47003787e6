"""What SLURM says about a cluster's worker jobs: which are still queued or running, and why one that ended did,
in words a researcher can act on (above all: killed for using more memory than its `--mem`).

SLURM reports a job killed for memory in one of two ways. With task/cgroup its state is OUT_OF_MEMORY. With
jobacct_gather's OverMemoryKill (the one-machine cluster of clusters/slurm_conf.py, and any site without cgroup
enforcement) slurmctld only sees the job end on SIGKILL (state FAILED), and the reason is in the job's error file,
where slurmstepd writes "exceeded memory limit"; so both are read. Only slurmstepd's own lines count, though a worker
could print a look-alike into its own error file and mislead no one but its own researcher.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from clusters.settings import ClusterError

# States of a job that has not ended (squeue's and scontrol's names).
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "RESIZING", "REQUEUED", "STAGE_OUT"}
STEPD_MEMORY = re.compile(r"^slurmstepd\S*: error: .*(exceeded (job )?memory limit)", re.IGNORECASE | re.MULTILINE)
FIELD = re.compile(r"(\S+?)=(.*?)(?=\s+\S+?=|\s*$)")


@dataclass(frozen=True)
class JobEnd:
    """One worker job that is no longer running."""

    job_id: str
    state: str  # SLURM's JobState, or GONE once slurmctld has forgotten the job (after MinJobAge)
    memory: str | None  # the job's memory (--mem) as SLURM states it
    exceeded_memory: bool

    @property
    def message(self) -> str:
        if self.exceeded_memory:
            limit = f" of {self.memory}" if self.memory else ""
            return (
                f"SLURM killed Dask worker job {self.job_id}: its processes used more than the job's memory{limit} "
                "(--mem), and the tasks it held were lost. Compute in smaller pieces (more, smaller partitions) or "
                "run fewer worker processes per job; the project's compute.memory caps each job."
            )
        return f"Dask worker job {self.job_id} ended: {self.state}"


class WorkerJobsKilled(ClusterError):
    """Worker jobs of a cluster were killed by SLURM for exceeding their memory."""

    def __init__(self, ends: list[JobEnd]) -> None:
        self.ends = ends
        super().__init__("\n".join(end.message for end in ends))


def job_record(job_id: str) -> dict[str, str] | None:
    """`scontrol show job` as a dict, or None once SLURM no longer knows the job."""
    done = subprocess.run(
        ["scontrol", "--oneliner", "show", "job", job_id], capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        if "invalid job id" in done.stderr.lower():
            return None
        raise ClusterError(f"scontrol could not describe job {job_id}: {done.stderr.strip()[-300:]}")
    return dict(FIELD.findall(done.stdout.strip()))


def queued(job_ids: list[str]) -> dict[str, str]:
    """The jobs among `job_ids` that squeue still lists (queued, running or finishing), with their states."""
    if not job_ids:
        return {}
    done = subprocess.run(
        ["squeue", "--noheader", "--format=%i %T", "--jobs", ",".join(job_ids)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    if done.returncode != 0 and "invalid job id" not in done.stderr.lower():
        raise ClusterError(f"squeue failed: {done.stderr.strip()[-300:]}")
    pairs = (line.split() for line in done.stdout.splitlines() if line.strip())
    return {job: state for job, state in pairs if job in job_ids}


def job_end(job_id: str, error_file: Path | None) -> JobEnd | None:
    """How `job_id` ended, or None while it has not."""
    record = job_record(job_id)
    state = (record or {}).get("JobState", "GONE")
    if state in ACTIVE:
        return None
    stepd_says = False
    if error_file is not None and error_file.is_file():
        stepd_says = bool(STEPD_MEMORY.search(error_file.read_text(errors="replace")[-65536:]))
    memory = (record or {}).get("MinMemoryNode")
    return JobEnd(job_id, state, memory, exceeded_memory=state == "OUT_OF_MEMORY" or stepd_says)
