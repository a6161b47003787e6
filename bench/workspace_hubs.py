"""The systems the workspaces benchmark starts side by side (bench/workspaces.py measures them): Enclave from this
checkout, Enclave as it was at a commit, and plain JupyterHub; each a context manager that provisions, starts, logs
its people in and removes everything after, and reads one idle workspace's memory."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kernel.config import Paths

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "bench-spawn"  # its Unix account enclave-bench-spawn exists only while the benchmark runs
EGRESS_TABLE = "enclave_egress_bench"
COHORT = {"patients": 120, "sites": 2, "seed": 5}
POLL_S = 0.25  # lifecycle.start's own poll interval, used for both hubs


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ memory


def _status_kib(pid: int, path: str, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def process_memory(pids: set[int]) -> dict[str, int]:
    """Summed RSS and PSS (bytes) of `pids`."""
    return {
        "rss": sum(_status_kib(p, "status", "VmRSS:") for p in pids) * 1024,
        "pss": sum(_status_kib(p, "smaps_rollup", "Pss:") for p in pids) * 1024,
    }


def descendants(root: int) -> set[int]:
    found, stack = set(), [root]
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        found.add(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                stack += [int(c) for c in (task / "children").read_text().split()]
    return found


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


# ------------------------------------------------------------------------------------------------ the two hubs


@dataclass
class Hub:
    """One of the two systems: where it answers, its people (logged in), the server name they spawn, and how to
    read one workspace's memory."""

    label: str
    url: str
    server: str  # the project (Enclave's named server) or "" (the baseline's default server)
    people: dict = field(default_factory=dict)  # name -> tests.workspace_hub.Person
    memory: Callable[[str], dict[str, int]] | None = None  # user -> {rss, pss[, cgroup]} of their workspace
    starts: list[float] = field(default_factory=list)


def healthy_after(process: subprocess.Popen, url: str, log_file: Path, started: float, timeout: float = 120) -> float:
    """Seconds from `started` until the hub at `url` answers /hub/health (lifecycle.start's own loop)."""
    from hub import lifecycle

    while not lifecycle.healthy(url):
        if process.poll() is not None:
            raise SystemExit(f"the hub exited ({process.returncode}):\n{lifecycle.tail(log_file)}")
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"the hub at {url} did not answer within {timeout:.0f} s:\n{lifecycle.tail(log_file)}")
        time.sleep(POLL_S)
    return time.perf_counter() - started


def keep_logs(source: Path, target: Path) -> None:
    """The hub's and the workspaces' logs of this run, kept under `work` for reading after (the state goes)."""
    shutil.rmtree(target, ignore_errors=True)
    for log_file in source.rglob("*.log"):
        destination = target / log_file.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_file, destination)


def spec_text(members: list[str]) -> str:
    """The benchmark's project: like the demo's, every bench user a researcher."""
    lines = [
        f"name: {PROJECT}",
        "title: Workspace start-up benchmark",
        "purpose: DS-CVD",
        "commercial: false",
        "members:",
        *(f"  - {{user: {u}, role: researcher}}" for u in members),
        "datasets: ['*']",
        "compute: {cpus: 2, memory: 8GiB, dask_workers: 2, threads_per_worker: 1}",
    ]
    return "\n".join(lines) + "\n"


def provision(work: Path, home: Path, members: list[str]) -> tuple[Paths, dict[str, str]]:
    """A fresh home over a small cohort (generated once under `work`, reused), the project materialised, an account
    (password + TOTP) per member."""
    from kernel.config import Paths
    from provisioning import steps

    cohort = Paths(work / "workspaces-cohort")
    steps.ensure_cohort(cohort, **COHORT, progress=False)
    paths = Paths(home)
    paths.home.mkdir(parents=True)
    paths.home.chmod(0o711)
    paths.sites.symlink_to(cohort.sites, target_is_directory=True)
    spec = home / f"{PROJECT}.yaml"
    spec.write_text(spec_text(members))
    registry, _ = steps.ensure_registry(paths)
    try:
        steps.ensure_sites(registry, paths, actor="bench")
        steps.ensure_consent(registry, paths, actor="bench")
        steps.ensure_project(registry, spec, actor="bench")
        steps.ensure_materialised(registry, paths, PROJECT, actor="bench", progress=False)
        created, _ = steps.ensure_demo_users(registry, paths, members, actor="bench")
    finally:
        registry.close()
    return paths, {user: password for user, (password, _uri) in created.items()}


@contextlib.contextmanager
def enclave_hub(work: Path, members: list[str], starts: int) -> Iterator[Hub]:
    """Enclave provisioned in a fresh home, its hub started `starts` times (timed; the last stays up); everything
    stopped and removed after."""
    from hub import lifecycle, sandbox
    from hub.config import HubSettings
    from hub.limits import WorkspaceCgroup
    from provisioning.host import HostError, ensure_host, remove_egress_rules, remove_project_account
    from provisioning.storage import release_all_under
    from tests.hub_runner import free_ports
    from tests.workspace_env import workspace_env
    from tests.workspace_hub import RunningEnclave

    home = work / "workspaces-home"
    if home.exists():
        release_all_under(home)  # the project's file system, should an earlier run have left it mounted
    shutil.rmtree(home, ignore_errors=True)
    previous = os.environ.get("ENCLAVE_WORKSPACE_ENV")
    os.environ["ENCLAVE_WORKSPACE_ENV"] = str(workspace_env())
    process = paths = None
    try:
        log(f"workspaces: provisioning {PROJECT} with {len(members)} researchers …")
        paths, passwords = provision(work, home, members)
        ensure_host(paths, {PROJECT: members}, egress_table=EGRESS_TABLE)
        public, proxy_api, airlock = free_ports(3)
        settings = HubSettings(home=paths.home, port=public, proxy_api_port=proxy_api, airlock_port=airlock)
        hub = Hub("enclave", settings.url, PROJECT)
        for i in range(starts):
            began = time.perf_counter()
            process = lifecycle.start(settings)
            hub.starts.append(time.perf_counter() - began)
            if i < starts - 1:
                lifecycle.stop_process(process.pid)
                process = None
        log(f"workspaces: enclave hub started in {', '.join(f'{s:.2f}' for s in hub.starts)} s")

        def memory(user: str) -> dict[str, int]:
            cgroup = WorkspaceCgroup(sandbox.workspace_id(paths, PROJECT, user))
            out = process_memory(cgroup.pids())
            for name in ("memory.usage_in_bytes", "memory.current"):  # cgroup v1, v2
                with contextlib.suppress(FileNotFoundError):
                    out["cgroup"] = int(cgroup.read(name))
                    break
            return out

        hub.memory = memory
        running = RunningEnclave(paths, settings, passwords, EGRESS_TABLE)
        hub.people = {user: running.person(user) for user in members}  # one login (and TOTP code) each
        yield hub
    finally:
        if process is not None:
            lifecycle.stop_process(process.pid)  # it stops every workspace first (cleanup_servers)
        if paths is not None:
            lifecycle.remove_runtime(paths)
        with contextlib.suppress(HostError):
            remove_egress_rules(table=EGRESS_TABLE)
        release_all_under(home)  # ensure_host mounted the project's file system (its quota) in the home
        keep_logs(home / "hub", work / "workspaces-logs" / "enclave")
        shutil.rmtree(home, ignore_errors=True)
        with contextlib.suppress(HostError):
            remove_project_account(PROJECT)
        if previous is None:
            os.environ.pop("ENCLAVE_WORKSPACE_ENV", None)
        else:
            os.environ["ENCLAVE_WORKSPACE_ENV"] = previous


def baseline_config(*, public: int, hub: int, proxy_api: int, proxy: Path, singleuser: Path, homes: Path) -> str:
    """Plain JupyterHub: loopback ports and the same proxy binary; everything else stock (SQLite in its working
    folder, the dummy authenticator, JupyterHub's own local spawner) but the command, the same server as Enclave's."""
    return f"""# bench/workspace_hubs.py's baseline: plain JupyterHub
c = get_config()  # noqa: F821
c.JupyterHub.bind_url = "http://127.0.0.1:{public}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub}"
c.ConfigurableHTTPProxy.command = [{str(proxy)!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(homes / "{username}")!r}
c.Spawner.cmd = [{str(singleuser)!r}]
c.Spawner.args = ["--allow-root"]  # the hub's user is root here; Enclave's servers run as the project account
c.Spawner.default_url = "/lab"
# the shared environment stays as built (in Enclave it is mounted read-only)
c.Spawner.environment = {{"PYTHONDONTWRITEBYTECODE": "1"}}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 60
"""


def log_in_dummy(url: str, name: str):
    """A requests session logged in to the baseline hub through its login form, as a browser does."""
    import requests

    from tests.hub_runner import XSRF

    http = requests.Session()
    page = http.get(f"{url}/hub/login", timeout=30)
    xsrf = XSRF.search(page.text).group(1)
    response = http.post(
        f"{url}/hub/login", data={"username": name, "password": "bench", "_xsrf": xsrf}, timeout=30,
        allow_redirects=False,
    )  # fmt: skip
    if response.status_code != 302:
        raise SystemExit(f"the baseline hub refused {name}'s login: {response.status_code}")
    return http


@contextlib.contextmanager
def baseline_hub(work: Path, members: list[str], starts: int) -> Iterator[Hub]:
    from hub import lifecycle
    from tests.hub_runner import CHP, JUPYTERHUB, free_ports
    from tests.workspace_env import workspace_env
    from tests.workspace_hub import Person

    state = work / "workspaces-baseline"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    public, hub_port, proxy_api = free_ports(3)
    config = state / "jupyterhub_config.py"
    config.write_text(
        baseline_config(
            public=public, hub=hub_port, proxy_api=proxy_api, proxy=CHP,
            singleuser=workspace_env() / "bin" / "jupyterhub-singleuser", homes=state / "homes",
        )
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "CONFIGPROXY_"))}
    log_file = state / "jupyterhub.log"
    hub = Hub("baseline", f"http://127.0.0.1:{public}", "")
    process = None
    seen: set[int] = set()  # every server it started, killed after in case the hub left one behind
    try:
        for i in range(starts):
            with log_file.open("ab") as out:
                began = time.perf_counter()
                process = subprocess.Popen(
                    [str(JUPYTERHUB), "-f", str(config)], cwd=state, env=env, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            hub.starts.append(healthy_after(process, hub.url, log_file, began))
            if i < starts - 1:
                lifecycle.stop_process(process.pid)
                process = None
        log(f"workspaces: baseline hub started in {', '.join(f'{s:.2f}' for s in hub.starts)} s")
        hub_pid = process.pid

        def memory(user: str) -> dict[str, int]:
            for pid in descendants(hub_pid) - {hub_pid}:
                if _environ(pid).get("JUPYTERHUB_USER") == user:
                    tree = descendants(pid)
                    seen.update(tree)
                    return process_memory(tree)
            return {}

        hub.memory = memory
        hub.people = {user: Person(hub, user, log_in_dummy(hub.url, user)) for user in members}
        yield hub
    finally:
        if process is not None:
            seen |= descendants(process.pid) - {process.pid}
            lifecycle.stop_process(process.pid)
        for pid in seen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        keep_logs(state, work / "workspaces-logs" / "baseline")
        shutil.rmtree(state, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ Enclave at a commit

# The child that runs Enclave as it was at a commit: that tree's packages first on sys.path (ahead of this
# checkout's editable install; PYTHONPATH carries them to the hub it starts), that tree's bench code
# provisioning, starting and logging people in. It speaks JSON lines on stdout prefixed "@@ " (anything else there is
# the old code's own output) and takes commands on stdin: "memory USER", then "stop" (or end of input).
OLD_ENCLAVE = """
import json, sys
tree, work, members, starts, project, table = sys.argv[1:7]
sys.path.insert(0, tree)
from pathlib import Path
try:
    import bench.workspace_hubs as old
except ImportError:  # before the hubs had a module of their own
    import bench.workspaces as old
old.PROJECT, old.EGRESS_TABLE = project, table
with old.enclave_hub(Path(work), json.loads(members), int(starts)) as hub:
    cookies = {
        name: [{"name": c.name, "value": c.value, "domain": c.domain, "path": c.path, "secure": c.secure}
               for c in person.http.cookies]
        for name, person in hub.people.items()
    }
    print("@@ " + json.dumps({"url": hub.url, "server": hub.server, "starts": hub.starts, "cookies": cookies}),
          flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "memory":
            print("@@ " + json.dumps(hub.memory(argument)), flush=True)
        elif command == "stop":
            break
"""


def old_workspace_env(tree: Path) -> Path:
    """The commit's own workspace environment (its images/ and lock), built once in its worktree."""
    env = tree / ".workspace"
    if not (env / "bin" / "python").exists():
        log(f"workspaces: building the workspace environment of {tree.name} (once) …")
        build = f"import sys; sys.path.insert(0, {str(tree)!r}); from provisioning.cli import main; main()"
        done = subprocess.run(
            [sys.executable, "-c", build, "workspace", "build", "--dest", str(env)], cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree)}, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"cannot build the workspace environment of {tree.name}")
    return env


@contextlib.contextmanager
def enclave_at(work: Path, commit: str, members: list[str], starts: int) -> Iterator[Hub]:
    """Enclave as it was at `commit`, provisioned, started and its people logged in by that tree's own bench code in
    a child process; stopped and removed (by that code) after."""
    import requests

    from bench.airlock_generations import _worktree
    from tests.workspace_hub import Person

    tree = _worktree(work, commit)
    proxy = tree / "hub" / "node_modules"
    if not proxy.exists():  # the proxy is npm's, built by this checkout's make; the same lock at every commit so far
        proxy.symlink_to(ROOT / "hub" / "node_modules", target_is_directory=True)
    env = {**os.environ, "PYTHONPATH": str(tree), "ENCLAVE_WORKSPACE_ENV": str(old_workspace_env(tree))}
    project, table = f"bench-at-{commit[:7]}", f"enclave_egress_at{commit[:7]}"
    arguments = [str(tree), str(work / f"at-{commit}"), json.dumps(members), str(starts), project, table]
    (work / f"at-{commit}").mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen(
        [sys.executable, "-c", OLD_ENCLAVE, *arguments], cwd=tree, env=env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip

    def answer() -> dict:
        for line in child.stdout:
            if line.startswith("@@ "):
                return json.loads(line[3:])
        raise SystemExit(f"Enclave at {commit} exited ({child.wait()}); its output is above")

    try:
        ready = answer()
        hub = Hub(f"enclave@{commit}", ready["url"], ready["server"], starts=ready["starts"])
        for name, cookies in ready["cookies"].items():
            http = requests.Session()
            for c in cookies:
                http.cookies.set_cookie(requests.cookies.create_cookie(**c))
            hub.people[name] = Person(hub, name, http)

        def memory(user: str) -> dict[str, int]:
            child.stdin.write(f"memory {user}\n")
            child.stdin.flush()
            return answer()

        hub.memory = memory
        log(f"workspaces: enclave at {commit} started in {', '.join(f'{s:.2f}' for s in hub.starts)} s")
        yield hub
    finally:
        with contextlib.suppress(OSError, ValueError):
            child.stdin.write("stop\n")
            child.stdin.close()
        try:
            child.wait(timeout=300)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
