"""What the SLURM benchmarks (bench/slurm_benchmarks.py) run on: a one-machine SLURM (clusters/dev_slurm.py), an
Enclave home with one project provisioned through the real steps (registry, spec, Unix account, folders) whose view
is a generated VCF published as a build, the researcher's client in the project's sandbox, and the peak memory of
everything a run starts, SLURM's jobs included.

The client runs the way a workspace's kernel does: the workspace environment's Python (the scheduler and the workers
run it too, and they unpickle what the client sends, so a client on other libraries fails), as the project's
account in its sandbox with the view read-only at /project/data (tests/integration/test_slurm_cluster.py does the
same). The LocalCluster baseline's client is started in the same sandbox and starts its LocalCluster there, as a
workspace does today.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.measure import PYTHON, ROOT, _children, _rss, log

PROJECT = "slurm-bench"
CLIENT_SCRIPT = Path(__file__).with_name("slurm_client.py")


@dataclass(frozen=True)
class JobShape:
    """What both sides get: `jobs` SLURM jobs (LocalCluster workers) of one worker process with `cores` threads
    and `memory` bytes each."""

    jobs: int
    cores: int
    memory: int

    @classmethod
    def for_this_machine(cls) -> JobShape:
        """$ENCLAVE_BENCH_SLURM_SHAPE (JOBSxCORES:MEMORY, e.g. 4x2:4GiB), else up to 4 jobs (a project cluster's
        default maximum) splitting this machine's cores, 3 GiB each."""
        from dask.utils import parse_bytes

        if given := os.environ.get("ENCLAVE_BENCH_SLURM_SHAPE", "").strip():
            found = re.fullmatch(r"(\d+)x(\d+):(\S+)", given)
            if not found:
                raise SystemExit(f"ENCLAVE_BENCH_SLURM_SHAPE={given!r}: write JOBSxCORES:MEMORY, e.g. 4x2:4GiB")
            return cls(int(found[1]), int(found[2]), parse_bytes(found[3]))
        cpus = os.cpu_count() or 1
        cores = max(1, cpus // 4)
        return cls(jobs=max(1, min(4, cpus // cores)), cores=cores, memory=3 * 2**30)

    def spec_compute(self) -> str:
        return (
            f"compute: {{cpus: {self.cores}, memory: {-(-self.memory // 2**20)}MiB, dask_workers: 1, "
            f"threads_per_worker: {self.cores}}}"
        )

    def __str__(self) -> str:
        return f"{self.jobs} x {self.cores} threads x {self.memory / 2**30:.1f} GiB"


def require_root_and_slurm() -> None:
    """SystemExit, saying what is missing, unless root with SLURM, munge and bubblewrap installed."""
    from clusters import dev_slurm

    reason = dev_slurm.unavailable((*dev_slurm.PROGRAMS, "bwrap", "setpriv"))
    if reason:
        raise SystemExit(f"the SLURM benchmarks need a one-machine SLURM, which {reason}; `make system-packages`")


# ------------------------------------------------------------------------------------------------ the bench Enclave


@dataclass(frozen=True)
class BenchEnclave:
    home: Path
    project: str
    shape: JobShape
    workspace_env: Path

    def publish(self, source_view: Path) -> Path:
        """`source_view`'s files copied into a new build of the project, published as the materialiser does (sealed,
        renamed, `data` swapped), with a manifest of its own; the project's folders re-owned. The build's path."""
        from fabric.materialise.builds import BUILD_TIME_FORMAT
        from fabric.materialise.view import _seal, publish
        from kernel.clock import utcnow
        from kernel.config import Paths
        from provisioning.host import ensure_project_account, ensure_project_folders

        paths = Paths(self.home)
        build_id = utcnow(whole_seconds=True).strftime(BUILD_TIME_FORMAT) + "-" + os.urandom(3).hex()
        staging = paths.project_dir(self.project) / "views" / f".staging-{build_id}"
        entries = []
        for source in sorted(p for p in source_view.rglob("*") if p.is_file() and p.name != "MANIFEST.json"):
            relative = source.relative_to(source_view)
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staging / relative)
            entries.append({"path": relative.as_posix(), "bytes": source.stat().st_size})
        limits = {"dask_workers": 1, "threads_per_worker": self.shape.cores, "memory_limit": self.shape.memory}
        manifest = {"project": self.project, "build_id": build_id, "compute": limits, "files": entries}
        (staging / "MANIFEST.json").write_text(json.dumps(manifest))
        _seal(staging)
        build = publish(paths.project_dir(self.project), staging, build_id)
        account, _ = ensure_project_account(self.project)
        ensure_project_folders(paths, self.project, account, [])
        return build


@contextmanager
def bench_enclave(work: Path, shape: JobShape) -> Iterator[BenchEnclave]:
    """A fresh home under `work` with the project (its spec sized by `shape`), its account and folders; all
    removed afterwards, the account too."""
    from kernel.config import Paths
    from provisioning import steps
    from provisioning.host import ensure_project_account, ensure_project_folders, remove_project_account
    from tests.workspace_env import workspace_env

    env = workspace_env().absolute()
    if not (env / "bin" / "python").exists():
        raise SystemExit(f"no workspace environment at {env}: `make workspace-env` (or set ENCLAVE_WORKSPACE_ENV)")
    home = work / "slurm-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    home.chmod(0o711)
    spec = home / f"{PROJECT}.yaml"
    spec.write_text(
        f"name: {PROJECT}\ntitle: SLURM benchmark\npurpose: DS-CVD\ncommercial: false\n"
        f"members: [{{user: bench01, role: researcher}}]\ndatasets: ['*']\n{shape.spec_compute()}\n"
    )
    previous = os.environ.get("ENCLAVE_WORKSPACE_ENV")
    os.environ["ENCLAVE_WORKSPACE_ENV"] = str(env)
    try:
        paths = Paths(home)
        registry, _ = steps.ensure_registry(paths)
        try:
            steps.ensure_project(registry, spec, actor="bench")
        finally:
            registry.close()
        account, _ = ensure_project_account(PROJECT)
        ensure_project_folders(paths, PROJECT, account, [])
        (home / "shape.json").write_text(json.dumps(asdict(shape)))  # for bench/slurm_tasks.py's children
        yield BenchEnclave(home, PROJECT, shape, env)
    finally:
        remove_project_account(PROJECT)
        shutil.rmtree(home, ignore_errors=True)
        if previous is None:
            os.environ.pop("ENCLAVE_WORKSPACE_ENV", None)
        else:
            os.environ["ENCLAVE_WORKSPACE_ENV"] = previous


# ------------------------------------------------------------------------------------------------ the client


def run_client(home: Path, project: str, given: dict) -> dict:
    """bench/slurm_client.py in the project's sandbox as its account (the view pinned and bound read-only at
    /project/data, the network shared so it reaches the scheduler), `given` on its stdin; its JSON answer."""
    from fabric.materialise.builds import pin_current
    from hub import seccomp
    from hub.sandbox import WorkerSandbox
    from kernel.bubblewrap import base_python_home
    from kernel.config import Paths
    from provisioning.host import ensure_project_account

    paths = Paths(home)
    account, _ = ensure_project_account(project)
    env = paths.workspace_env
    pin = pin_current(paths.project_data(project))
    sandbox = WorkerSandbox(
        project=project,
        account=account.name,
        uid=account.uid,
        gid=account.gid,
        env=env,
        data=pin.build,
        etc=home / "client-etc",
        python_home=base_python_home(env),
    )
    sandbox.write_etc()
    fd = seccomp.filter_fd()
    try:
        done = subprocess.run(
            sandbox.argv([str(env / "bin" / "python"), "-c", CLIENT_SCRIPT.read_text()], seccomp_fd=fd),
            input=json.dumps(given),
            env=sandbox.environment(),
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
    finally:
        os.close(fd)
        pin.release()
    if done.returncode != 0:
        raise RuntimeError(f"the sandboxed client failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ memory


def slurm_job_roots(job_ids: set[str], spool: Path) -> list[int]:
    """The processes of `job_ids` that hold the rest (each job's script and the slurmstepd above it), found in
    /proc: the scripts this SLURM's slurmd runs from its own spool (`spool`/jobNNNNN/slurm_script), so another
    SLURM's job of the same number is never counted."""
    wanted = {f"{spool}/job{int(job):05d}/slurm_script" for job in job_ids}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError, ValueError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not wanted.intersection(arg.decode(errors="replace") for arg in argv):
                continue
            found.append(int(entry.name))
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if (Path("/proc") / str(parent) / "comm").read_text().strip() == "slurmstepd":
                found.append(parent)
    return found


def process_tree(roots: list[int]) -> set[int]:
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            stack += _children(pid)
    return seen


def spool_folder() -> Path:
    """SlurmdSpoolDir of the SLURM that SLURM_CONF names (where slurmd keeps each job's script)."""
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    for line in conf.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "SlurmdSpoolDir":
            return Path(value.strip())
    return Path("/var/spool/slurmd")  # SLURM's default


class PeakMemory:
    """The largest resident memory seen, sampled every `every` seconds while in use, of this process's tree and of
    the processes of the SLURM jobs `job_ids()` names (looked up once a second), counting each process once."""

    def __init__(self, job_ids: Callable[[], list[str]] = list, every: float = 0.05) -> None:
        self.job_ids = job_ids
        self.every = every
        self.peak = 0
        self.peak_jobs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._spool = spool_folder()

    def _sample(self) -> None:
        roots: list[int] = []
        looked = 0.0
        while not self._stop.is_set():
            if time.monotonic() - looked > 1:
                roots = slurm_job_roots(set(self.job_ids()), self._spool)
                looked = time.monotonic()
            jobs = process_tree(roots)
            mine = process_tree([os.getpid()])
            in_jobs = sum(_rss(pid) for pid in jobs)
            self.peak_jobs = max(self.peak_jobs, in_jobs)
            self.peak = max(self.peak, in_jobs + sum(_rss(pid) for pid in mine - jobs))
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------------------------------------------ child processes


def child(name: str, *args: object, timeout: float = 3600) -> dict:
    """`python -m bench.slurm_tasks NAME ARGS` (a measured step in a process of its own); its JSON answer."""
    command = [PYTHON, "-m", "bench.slurm_tasks", name, *map(str, args)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.slurm_tasks {name} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def wait_idle(slurm, timeout: float = 120) -> None:
    """Until SLURM lists no job and the node is idle again (untimed: between two measured steps)."""
    slurm.wait_for(lambda: not slurm.jobs() and slurm.idle(), "the node to be idle again", timeout=timeout)


def warm_cache(view: Path) -> None:
    """Read the view's files once, so neither side pays for the first read from disk."""
    for path in view.rglob("*"):
        if path.is_file():
            with path.open("rb") as fh:
                while fh.read(1 << 22):
                    pass


def say(message: str) -> None:
    log(f"slurm: {message}")
