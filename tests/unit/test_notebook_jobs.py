"""A notebook's SLURM job as data (provisioning/notebook_jobs.py): the sbatch directives from the project's compute
limits and `enclave.slurm`'s placement, the batch script that builds the sandbox on the node, and how its end reads
in words. Nothing is submitted here (tests/integration/test_notebook_slurm_job.py submits real jobs)."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import dask
import pytest

from clusters.settings import ClusterError
from fabric.projects import ComputeLimits
from hub import sandbox
from kernel.config import Paths
from provisioning.notebook_jobs import (
    BUILD_PLACEHOLDER,
    NOT_PUBLISHED,
    JobFiles,
    JobResources,
    JobState,
    NotebookJob,
    _returncode,
    directives,
    job_resources,
    job_script,
)
from provisioning.notebook_runs import BATCH_ENVIRONMENT, papermill_command

pytestmark = pytest.mark.unit


def test_the_job_asks_for_the_projects_limits_rounded_up() -> None:
    limits = ComputeLimits(cpus=1.5, memory="1GB", dask_workers=2, threads_per_worker=1)
    resources = job_resources("p", limits)
    assert resources.cpus == 2 and resources.memory_mib == 954 and resources.memory == "954M"  # 10**9 bytes
    assert resources.walltime == "04:00:00" and resources.partition is None and resources.account is None
    assert job_resources("p", ComputeLimits(cpus=0.25, memory="512MiB")).cpus == 1


def test_placement_per_project_from_the_slurm_settings() -> None:
    entry = {"queue": "genomics", "account": "cardio", "walltime": "12:00:00", "job-extra-directives": ["--qos=long"]}
    with dask.config.set({"enclave.slurm.queue": "general", "enclave.slurm.projects": {"p": entry}}):
        mine, other = job_resources("p", ComputeLimits()), job_resources("q", ComputeLimits())
    assert (mine.partition, mine.account, mine.walltime, mine.extra) == (
        "genomics",
        "cardio",
        "12:00:00",
        ("--qos=long",),
    )
    assert (other.partition, other.account, other.walltime, other.extra) == ("general", None, "04:00:00", ())


def test_a_directive_cannot_add_lines_to_the_script() -> None:
    injected = {"enclave.slurm.job-extra-directives": ["--qos=x\nrm -rf /"]}
    with dask.config.set(injected), pytest.raises(ClusterError, match="cannot span lines"):
        job_resources("p", ComputeLimits())


def test_directives_keep_the_submitters_environment_out_whatever_an_extra_says() -> None:
    resources = JobResources(cpus=2, memory_mib=512, walltime="01:00:00", partition="gpu", account="a",
                             extra=("--export=ALL",))  # fmt: skip
    lines = directives(resources, name="enclave-run-p", log=Path("/var/enclave/j/slurm.log"))
    assert lines[:5] == ["--job-name=enclave-run-p", "--nodes=1", "--ntasks=1", "--cpus-per-task=2", "--mem=512M"]
    assert {"--time=01:00:00", "--partition=gpu", "--account=a", "--output=/var/enclave/j/slurm.log"} <= set(lines)
    assert lines[-1] == "--export=NONE"
    bare = directives(
        replace(resources, walltime=None, partition=None, account=None, extra=()), name="n", log=Path("/l")
    )
    assert not any(line.startswith(("--time", "--partition", "--account")) for line in bare)


def layout_for_a_job(tmp_path: Path) -> sandbox.SandboxLayout:
    paths = Paths(tmp_path / "home")
    made = sandbox.layout(paths, "p", "alice", uid=4321, gid=4322, environment=BATCH_ENVIRONMENT,
                          hub_socket_root=None, instance="job-abc")  # fmt: skip
    return replace(made, etc=tmp_path / "job" / "etc", data=Path(BUILD_PLACEHOLDER))


def script_for(tmp_path: Path, parameters: dict[str, str]) -> tuple[str, sandbox.SandboxLayout]:
    layout = layout_for_a_job(tmp_path)
    command = papermill_command(layout, "nb-1.ipynb", "nb-1.out.ipynb", parameters)
    resources = JobResources(cpus=1, memory_mib=512, walltime="00:30:00", partition=None, account=None)
    text = job_script(layout, command, data_link=tmp_path / "home" / "projects" / "p" / "data",
                      files=JobFiles(tmp_path / "job"), resources=resources, name="enclave-run-p")  # fmt: skip
    return text, layout


def sandbox_line(text: str) -> list[str]:
    """The sandbox's command as bash itself parses it from the script (with $build left as written)."""
    start = text.index("\n", text.index("install -d -m 0700")) + 1
    words = text[start : text.index("\nstatus=$?")]
    done = subprocess.run(["bash", "-c", f"build='$build'; set -- {words}; printf '%s\\0' \"$@\""],
                          capture_output=True, check=True)  # fmt: skip
    return done.stdout.decode().split("\0")[:-1]


def test_the_script_builds_the_workspace_sandbox_on_the_node(tmp_path: Path) -> None:
    text, layout = script_for(tmp_path, {"experiment": "batch"})
    assert text.startswith("#!/bin/bash\n#SBATCH --job-name=enclave-run-p\n")
    assert "#SBATCH --mem=512M" in text and "#SBATCH --time=00:30:00" in text and "#SBATCH --export=NONE" in text
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)  # it parses
    argv = sandbox_line(text)
    # the build resolved on the node, pinned by a shared flock while the sandbox binds it
    assert argv[:4] == [argv[0], "--shared", "--close", "$build"] and argv[0].endswith("flock")
    assert BUILD_PLACEHOLDER not in text and '--ro-bind "$build" /project/data' in text
    bwrap = argv.index(next(word for word in argv if word.endswith("/bwrap")))
    assert argv[4].endswith("/env") and argv[5] == "-i"
    variables = dict(word.split("=", 1) for word in argv[6:bwrap])
    assert variables["ENCLAVE_DASK_ENGINE"] == "local" and variables["HOME"] == "/home/alice"
    assert not any("TOKEN" in name or "SECRET" in name or "KEY" in name for name in variables)
    sandboxed = argv[bwrap:]
    for namespace in ("--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent"):
        assert namespace in sandboxed
    assert sandboxed[sandboxed.index("--seccomp") + 1] == "9" and "exec 9<" in text
    assert "/run/hub" not in sandboxed  # no hub in a batch job
    drop = sandboxed.index("--reuid=4321") - 1
    assert sandboxed[drop].endswith("setpriv") and "--no-new-privs" in sandboxed[drop:]
    assert sandboxed[-3:] == ["-p", "experiment", "batch"] and f"{layout.env}/bin/papermill" in sandboxed
    # the runtime folder is made on the node, the project account's, and removed after; the status written after
    assert f"-o 4321 -g 4322 {layout.run}" in text and f"rm -rf --one-file-system {layout.run}" in text
    assert f'echo "$status" > {tmp_path}/job/exit-status' in text and f"exit {NOT_PUBLISHED}" in text


def test_the_researchers_parameters_stay_single_words(tmp_path: Path) -> None:
    hostile = "x'; touch /tmp/owned; echo '\n$(id)`id`\"$HOME"
    text, _ = script_for(tmp_path, {"name": hostile})
    assert sandbox_line(text)[-3:] == ["-p", "name", hostile]


def test_the_script_refuses_a_layout_with_a_fixed_build(tmp_path: Path) -> None:
    layout = replace(layout_for_a_job(tmp_path), data=tmp_path / "build")
    with pytest.raises(ValueError, match="BUILD_PLACEHOLDER"):
        job_script(layout, ["true"], data_link=tmp_path / "data", files=JobFiles(tmp_path / "job"),
                   resources=JobResources(1, 1, None, None, None), name="n")  # fmt: skip


JOB = NotebookJob(job_id="42", project="p", user="alice", actor="alice", folder=Path("/var/j"),
                  executed=Path("/h/runs/nb.out.ipynb"), inside="/home/alice/runs/nb.out.ipynb",
                  submitted="t")  # fmt: skip


@pytest.mark.parametrize(
    ("state", "said"),
    [
        (JobState(JOB, "RUNNING", ended=False), "notebook job 42 is RUNNING; the executed notebook will be /h/runs"),
        (JobState(JOB, "COMPLETED", True, 0), "notebook job 42 finished: executed notebook /h/runs/nb.out.ipynb"),
        (JobState(JOB, "FAILED", True, 1), "failed (FAILED, papermill's exit status 1)"),
        (JobState(JOB, "FAILED", True, 137, exceeded_memory=True, memory="512M"), "more than its memory of 512M"),
        (JobState(JOB, "OUT_OF_MEMORY", True, 137, exceeded_memory=True), "SLURM killed notebook job 42"),
        (JobState(JOB, "TIMEOUT", True, 1, time_limit="00:30:00"), "at its time limit (00:30:00)"),
        (JobState(JOB, "CANCELLED by 0", True, 1), "was cancelled"),
        (JobState(JOB, "FAILED", True, NOT_PUBLISHED), "the project has no published view"),
        (JobState(JOB, "GONE", True, None), "no longer knows how"),
    ],
)
def test_how_a_job_stands_in_words(state: JobState, said: str) -> None:
    assert said in state.message


def test_papermills_status_first_then_slurms() -> None:
    assert _returncode("FAILED", 3, {"ExitCode": "1:0"}) == 3
    assert _returncode("FAILED", None, {"ExitCode": "2:0"}) == 2
    assert _returncode("FAILED", None, {"ExitCode": "0:9"}) == 137
    assert _returncode("TIMEOUT", None, {"ExitCode": "0:0"}) == 1
    assert _returncode("COMPLETED", None, None) == 0


def test_a_record_reads_back_as_written() -> None:
    assert NotebookJob.from_json(JOB.to_json()) == JOB
