"""`enclave run --slurm`: a notebook run by papermill as a SLURM batch job, in the same sandbox as `enclave run`, and
what became of it (`enclave run-status`).

The checks and the copy into the user's `runs/` are `enclave run`'s (provisioning/notebook_runs.py). Then root
submits one job, as for a project's Dask workers (clusters/slurm.py, whose docstring says why root and not the
project's account): the job starts as root on its node, builds the workspace's sandbox with bubblewrap (the same
namespaces, no network among them, the same mounts with the view read-only, the same seccomp filter) and drops to
the project's account with setpriv before papermill starts. Its limits are SLURM's: the project's compute limits
become `--cpus-per-task` and `--mem`, and `enclave.slurm`'s placement (partition, account, time limit, extra
directives, per project) the rest. Inside, `$ENCLAVE_DASK_ENGINE=local` makes the notebook's `client()` a
LocalCluster sized by the same limits (the job is the allocation; no cluster service runs in a batch job).

Each job has a folder of its own, root's alone (0700, under the Enclave home's `notebook-jobs/`, on a file system
the nodes mount as they mount the projects' views): the script sbatch was given, the sandbox's /etc files, the
compiled seccomp filter, SLURM's log of the job (papermill's output) and the exit status the script writes when
papermill ends. Nothing in it is the researcher's to write, and the job never reads a path they can write as root:
the view's current build is resolved when the job starts (a shared `flock` on it pins it, as a workspace's pin does,
fabric/materialise/builds.py), and papermill reads and writes the user's home only inside the sandbox. The script
holds paths, the project's name and the run's parameters: nothing secret.

A record of each job (`notebook-jobs/jobs/JOBID.json`) names its project, user and files. `job_state` reads what SLURM
says (squeue while it is queued or running; scontrol and slurmstepd's lines in the log once it ended, as
clusters/jobs.py does for Dask workers) and the exit status, and says in words how the run ended: papermill's
status, killed for memory, stopped at its time limit, cancelled. The end is kept beside the job (`end.json`) the first
time anyone sees it, and audited then (`notebook.job_ended`), as the submission is (`notebook.job_submitted`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shlex
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clusters.jobs import job_end, job_record, queued
from clusters.sandboxed import program
from clusters.settings import ClusterError, job_placement, setting
from fabric.projects import ComputeLimits
from hub import seccomp
from hub.sandbox import SandboxLayout
from hub.workspaces import WorkspaceError, authorised_layout, prepare_folders
from kernel.config import Paths
from kernel.errors import EnclaveError
from provisioning.notebook_runs import (
    BATCH_ENVIRONMENT,
    RUNS,
    Invoker,
    audit_run,
    check_installation,
    invoker,
    papermill_command,
    read_notebook,
    stage_notebook,
)

JOBS = "notebook-jobs"
SECCOMP_FD = 9  # the script opens the filter on this descriptor; bwrap reads it with --seccomp
# The view's build is resolved on the node when the job starts; this stands for it in the sandbox's command line.
BUILD_PLACEHOLDER = "/enclave-view-build-resolved-when-the-job-starts"
NOT_PUBLISHED = 70  # the script's status when the project has no published view on the node
POLL_SECONDS = 2.0
JOB_ID = re.compile(r"^[0-9]{1,12}$")
SYSTEM_PATH = "/usr/bin:/usr/sbin:/bin:/sbin"


@dataclass(frozen=True)
class JobResources:
    """What one notebook job asks SLURM for."""

    cpus: int
    memory_mib: int
    walltime: str | None
    partition: str | None
    account: str | None
    extra: tuple[str, ...] = ()

    @property
    def memory(self) -> str:
        return f"{self.memory_mib}M"


def job_resources(project: str, limits: ComputeLimits) -> JobResources:
    """The project's compute limits (cpus rounded up, memory in whole MiB rounded up) and `enclave.slurm`'s
    placement for `project` (its entry under `projects`, else the top level: partition, account, time limit, extra
    directives). The job is one workspace's worth: the notebook's kernel and its LocalCluster share it."""
    placement = job_placement(project)
    extra = tuple(str(line) for line in placement["job-extra-directives"])
    if any("\n" in line or "\r" in line for line in extra):
        raise ClusterError("enclave.slurm job-extra-directives: a directive cannot span lines")
    return JobResources(
        cpus=max(1, math.ceil(limits.cpus)),
        memory_mib=max(1, math.ceil(limits.memory_bytes() / 2**20)),
        walltime=placement["walltime"],
        partition=placement["queue"],
        account=placement["account"],
        extra=extra,
    )


def directives(resources: JobResources, *, name: str, log: Path) -> list[str]:
    """sbatch's options for the job, as the script's `#SBATCH` lines state them (`--export=NONE` last: nothing of
    the submitter's environment reaches the job, whatever an extra directive says)."""
    lines = [f"--job-name={name}", "--nodes=1", "--ntasks=1", f"--cpus-per-task={resources.cpus}"]
    lines.append(f"--mem={resources.memory}")
    if resources.walltime:
        lines.append(f"--time={resources.walltime}")
    if resources.partition:
        lines.append(f"--partition={resources.partition}")
    if resources.account:
        lines.append(f"--account={resources.account}")
    lines += [f"--output={log}", *resources.extra, "--export=NONE"]
    return lines


def job_name(project: str) -> str:
    return f"enclave-run-{project}"


@dataclass(frozen=True)
class JobFiles:
    """A job's root-only folder and what is in it."""

    folder: Path

    @property
    def script(self) -> Path:
        return self.folder / "job.sh"

    @property
    def log(self) -> Path:
        return self.folder / "slurm.log"

    @property
    def etc(self) -> Path:
        return self.folder / "etc"

    @property
    def seccomp(self) -> Path:
        return self.folder / "seccomp.bpf"

    @property
    def exit_status(self) -> Path:
        return self.folder / "exit-status"

    @property
    def end(self) -> Path:
        return self.folder / "end.json"


def job_script(
    layout: SandboxLayout, command: list[str], *, data_link: Path, files: JobFiles, resources: JobResources, name: str
) -> str:
    """The batch script: `#SBATCH` directives, then, as root on the node: open the seccomp filter, resolve the
    project's current build (refusing to start without one), make the sandbox's runtime folder, and run `command`
    in `layout`'s sandbox as the project's account with the build pinned by a shared flock; then remove the runtime
    folder and write papermill's status where `job_state` reads it. `layout.data` must be BUILD_PLACEHOLDER."""
    if str(layout.data) != BUILD_PLACEHOLDER:
        raise ValueError("the job's layout binds the build resolved on the node: data must be BUILD_PLACEHOLDER")
    variables = [f"{key}={value}" for key, value in layout.environment.items()]
    sandboxed = layout.argv(command, bwrap=program("bwrap"), setpriv=program("setpriv"), seccomp_fd=SECCOMP_FD)
    inner = [program("flock"), "--shared", "--close", BUILD_PLACEHOLDER, program("env"), "-i", *variables, *sandboxed]
    line = " ".join('"$build"' if word == BUILD_PLACEHOLDER else shlex.quote(word) for word in inner)
    q = shlex.quote
    run = str(layout.run)
    lines = ["#!/bin/bash", *(f"#SBATCH {directive}" for directive in directives(resources, name=name, log=files.log))]
    lines += [
        "# enclave run --slurm (provisioning/notebook_jobs.py): papermill in the project's sandbox, as its account",
        "set -u",
        "umask 022",  # as a workspace's and `enclave run`'s files are made (this folder is root's alone, 0700)
        f"exec {SECCOMP_FD}<{q(str(files.seccomp))}",
        f"build=$({q(program('readlink'))} -e {q(str(data_link))}) || "
        f"{{ echo 'enclave: the project has no published view' >&2; exit {NOT_PUBLISHED}; }}",
        f"{q(program('install'))} -d -m 0711 {q(str(layout.run.parent))}",
        f"{q(program('install'))} -d -m 0700 -o {layout.uid} -g {layout.gid} {q(run)}",
        line,
        "status=$?",
        f"exec {SECCOMP_FD}<&-",
        f"{q(program('rm'))} -rf --one-file-system {q(run)}",
        f'echo "$status" > {q(str(files.exit_status))}',
        'exit "$status"',
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class NotebookJob:
    """A submitted notebook job, as its record keeps it."""

    job_id: str
    project: str
    user: str
    actor: str
    folder: Path
    executed: Path  # on the host, in the user's runs/
    inside: str  # the same file inside the sandbox
    submitted: str  # ISO 8601, UTC

    @property
    def files(self) -> JobFiles:
        return JobFiles(self.folder)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "folder": str(self.folder), "executed": str(self.executed)}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> NotebookJob:
        given = json.loads(text)
        return cls(**{**given, "folder": Path(given["folder"]), "executed": Path(given["executed"])})


def jobs_root(paths: Paths) -> Path:
    """Where the jobs' folders and records live: `enclave.slurm.shared-directory`'s `notebook-jobs` when set (a file
    system every node mounts), else the Enclave home's."""
    shared = setting("shared-directory")
    return (Path(shared) if shared else paths.home) / JOBS


def _records(paths: Paths) -> Path:
    return paths.home / JOBS / "jobs"


def _root_folder(path: Path) -> None:
    """`path` and its missing parents made root's, 0700, and refused when it is a link or not root's."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not (os.path.isdir(path) and not os.path.islink(path) and st.st_uid == 0 and not st.st_mode & 0o022):
        raise EnclaveError(f"{path} is not a folder root alone may change; no job was submitted")


def submit_job(
    paths: Paths, notebook: Path, project: str, user: str, parameters: dict[str, str], *, actor: str | None = None
) -> NotebookJob:
    """Check and copy `notebook` as `enclave run` does, then submit it as a SLURM job running papermill in `user`'s
    sandbox of `project`; returns at once with the job's record. Root only (through sudo for researchers)."""
    if os.geteuid() != 0:
        raise EnclaveError("a notebook's SLURM job is submitted by root (its job builds the sandbox): use sudo")
    if not shutil.which("sbatch", path=SYSTEM_PATH):
        raise EnclaveError("SLURM's sbatch is not installed on this host (Debian: slurm-client); nothing was run")
    who = invoker()
    check_installation(paths, who)
    content = read_notebook(notebook, who)
    run_id = secrets.token_hex(6)
    try:
        grant, layout = authorised_layout(
            paths, project, user, environment=BATCH_ENVIRONMENT, hub_socket_root=None, instance=f"job-{run_id}"
        )
        prepare_folders(layout, True, run=False)  # the runtime folder is made on the node
    except WorkspaceError as exc:
        raise EnclaveError(exc.message) from exc
    root = jobs_root(paths)
    _root_folder(root)
    _root_folder(_records(paths))
    files = JobFiles(root / run_id)
    files.folder.mkdir(mode=0o700)
    try:
        layout = replace(layout, etc=files.etc, data=Path(BUILD_PLACEHOLDER))
        layout.write_etc()
        files.seccomp.write_bytes(seccomp.compile_filter())
        source, executed = stage_notebook(layout, notebook.stem, content, True)
        resources = job_resources(project, grant.compute)
        script = job_script(
            layout, papermill_command(layout, source, executed, parameters), data_link=paths.project_data(project),
            files=files, resources=resources, name=job_name(project),
        )  # fmt: skip
        fd = os.open(files.script, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o700)
        with os.fdopen(fd, "w") as out:
            out.write(script)
        job_id = _sbatch(files)
    except BaseException:
        shutil.rmtree(files.folder, ignore_errors=True)
        raise
    job = NotebookJob(
        job_id=job_id, project=project, user=user, actor=actor or user, folder=files.folder,
        executed=layout.home / RUNS / executed, inside=f"{layout.inside_home}/{RUNS}/{executed}",
        submitted=datetime.now(UTC).isoformat(timespec="seconds"),
    )  # fmt: skip
    record = _records(paths) / f"{job_id}.json"
    fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(job.to_json())
    audit_run(paths, project, actor=job.actor, action="notebook.job_submitted", user=user, job=job_id,
              executed=job.inside, cpus=resources.cpus, memory=resources.memory, walltime=resources.walltime,
              partition=resources.partition, account=resources.account)  # fmt: skip
    return job


def _sbatch(files: JobFiles) -> str:
    """Submit the script; its job id. sbatch gets a bare environment (no SBATCH_* variable of the caller's can change
    the job) and the job's folder as its working directory."""
    env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}
    if conf := os.environ.get("SLURM_CONF"):
        env["SLURM_CONF"] = conf
    done = subprocess.run(
        [program("sbatch"), "--parsable", str(files.script)],
        capture_output=True, text=True, env=env, cwd=files.folder, timeout=60, check=False,
    )  # fmt: skip
    job_id = done.stdout.strip().split(";")[0]
    if done.returncode != 0 or not JOB_ID.match(job_id):
        raise ClusterError(f"sbatch refused the notebook's job: {done.stderr.strip()[-300:]}")
    return job_id


def load_job(paths: Paths, job_id: str, who: Invoker | None = None) -> NotebookJob:
    """The record of notebook job `job_id`; through sudo, only the caller's own (another's reads as unknown)."""
    unknown = EnclaveError(f"no notebook job {job_id} of yours")
    if not JOB_ID.match(job_id):
        raise EnclaveError(f"{job_id!r} is not a SLURM job id")
    if os.geteuid() != 0:
        raise EnclaveError("notebook jobs are root's to read: use sudo")
    who = who or invoker()
    check_installation(paths, who)  # through sudo, a record (and the folder it names) root made, nobody else
    try:
        job = NotebookJob.from_json((_records(paths) / f"{job_id}.json").read_text())
    except FileNotFoundError:
        raise unknown from None
    if who.name is not None and job.user != who.name:
        raise unknown
    if not job.folder.is_relative_to(jobs_root(paths)) or ".." in job.folder.parts:
        raise EnclaveError(f"the record of notebook job {job_id} names a folder outside {JOBS}/; not read")
    return job


@dataclass(frozen=True)
class JobState:
    """What became of a notebook job so far."""

    job: NotebookJob
    state: str  # SLURM's state (PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, ...), GONE once SLURM forgot it
    ended: bool
    returncode: int | None = None  # papermill's exit status (or the job's, when it never got that far)
    exceeded_memory: bool = False
    memory: str | None = None
    time_limit: str | None = None

    @property
    def message(self) -> str:
        job = self.job.job_id
        if not self.ended:
            return f"notebook job {job} is {self.state}; the executed notebook will be {self.job.executed}"
        if self.exceeded_memory:
            limit = f" of {self.memory}" if self.memory else ""
            return (
                f"SLURM killed notebook job {job}: it used more than its memory{limit} (--mem, the project's "
                "compute.memory); the executed notebook, if written, stops where it was killed. Compute in smaller "
                "pieces, or ask an admin for more memory"
            )
        if self.state == "TIMEOUT":
            limit = f" ({self.time_limit})" if self.time_limit else ""
            return f"SLURM stopped notebook job {job} at its time limit{limit}; it did not finish"
        if self.state.startswith("CANCELLED"):
            return f"notebook job {job} was cancelled before it finished"
        if self.returncode == NOT_PUBLISHED:
            return f"notebook job {job} did not start: the project has no published view"
        if self.returncode == 0:
            return f"notebook job {job} finished: executed notebook {self.job.executed}"
        if self.state == "GONE" and self.returncode is None:
            return f"notebook job {job} ended; SLURM no longer knows how, and it left no exit status"
        return (
            f"notebook job {job} failed ({self.state}, papermill's exit status {self.returncode}): the executed "
            f"notebook {self.job.executed} shows the cell that failed"
        )

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if key != "job"}


def _exit_status(files: JobFiles) -> int | None:
    try:
        return int(files.exit_status.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _returncode(state: str, written: int | None, record: dict[str, str] | None) -> int:
    """papermill's status when the script wrote it; else SLURM's ExitCode (`status:signal`); else 1 for a job that
    did not complete."""
    if written is not None:
        return written
    code, _, signal = ((record or {}).get("ExitCode") or "0:0").partition(":")
    with contextlib.suppress(ValueError):
        if int(code):
            return int(code)
        if int(signal or 0):
            return 128 + int(signal)
    return 0 if state == "COMPLETED" else 1


def job_state(paths: Paths, job: NotebookJob, *, observer: str | None = None) -> JobState:
    """How `job` stands now. Its end, the first time it is seen, is kept beside the job and audited
    (`notebook.job_ended`, by the person who submitted it; `observer`, who saw it, in the detail)."""
    files = job.files
    with contextlib.suppress(FileNotFoundError, ValueError, TypeError):
        return JobState(job=job, **json.loads(files.end.read_text()))
    listed = queued([job.job_id])
    if job.job_id in listed:
        return JobState(job=job, state=listed[job.job_id], ended=False)
    record = job_record(job.job_id)
    end = job_end(job.job_id, files.log)
    if end is None:  # squeue no longer lists it, scontrol still does: finishing
        return JobState(job=job, state=(record or {}).get("JobState", "COMPLETING"), ended=False)
    state = JobState(
        job=job, state=end.state, ended=True, returncode=_returncode(end.state, _exit_status(files), record),
        exceeded_memory=end.exceeded_memory, memory=end.memory, time_limit=(record or {}).get("TimeLimit"),
    )  # fmt: skip
    _keep_end(paths, state, observer)
    return state


def _keep_end(paths: Paths, state: JobState, observer: str | None) -> None:
    try:
        fd = os.open(state.job.files.end, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return  # seen and audited already
    with os.fdopen(fd, "w") as out:
        json.dump(state.to_json(), out)
    job = state.job
    audit_run(paths, job.project, actor=job.actor, action="notebook.job_ended", user=job.user, job=job.job_id,
              state=state.state, returncode=state.returncode, exceeded_memory=state.exceeded_memory,
              observer=observer or job.actor)  # fmt: skip


def wait_for_job(
    paths: Paths, job: NotebookJob, *, observer: str | None = None, poll: float = POLL_SECONDS
) -> JobState:
    """Block until `job` has ended; its end state."""
    while True:
        state = job_state(paths, job, observer=observer)
        if state.ended:
            return state
        time.sleep(poll)


def log_tail(job: NotebookJob, lines: int = 40) -> str:
    """The last `lines` lines of the job's log (papermill's output and SLURM's own lines)."""
    try:
        text = job.files.log.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
