"""The example notebook runs unchanged on SLURM once an admin changes one project setting, end to end in a real
headless Chromium (tests/browser.py) through a real Enclave (tests/workspace_hub.py: hub, proxy, sandboxed
workspaces) whose hub is pointed at a real one-machine SLURM (tests/slurm.py) the way a site points it at its own:
the site setting `ENCLAVE_SLURM_CONF` and `DASK_ENCLAVE__SLURM__INTERFACE` in the hub's environment
(docs/how-to/admin.md).

- the demo project starts with the default engine; its example notebook run with papermill here, on a LocalCluster,
  gives the expected table;
- the admin replaces the project's spec with the same spec plus `compute.engine: slurm` (`enclave project create
  --replace`, whose plan shows that one change) and rematerialises its view;
- alice logs in with her password and TOTP, starts the workspace from the hub's home page (the spawner starts its
  cluster service first), runs the notebook unchanged from JupyterLab's Run menu: squeue shows the project's job running
  meanwhile, the table it writes is the LocalCluster's, and the service's log says it scaled and closed the cluster;
- with a cluster up again in her workspace, the hub's `dask/` route shows that cluster's dashboard: its workers are
  the SLURM job's, over TLS (a LocalCluster in the workspace has plain TCP workers and no job);
- she stops the workspace from the hub's home page while the job runs: no job is left in squeue and the cluster
  service's process is gone.

Enclave does not shut workspaces down at logout (JupyterHub's `shutdown_on_logout` is off), so there is no logout
case: a workspace and its SLURM job end when it is stopped, culled or the hub stops, as a LocalCluster does.
Root only, with Debian's SLURM, munge, bubblewrap and chromium; skipped with the reason otherwise (failed under CI).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from provisioning import steps
from tests.browser import chromium
from tests.functional.test_enclave_browser import (
    enclaves_own_problems,
    log_in,
    menu,
    wait_for_kernel,
    wait_for_notebook_run,
)
from tests.workspace_env import run_workspace_python
from tests.workspace_hub import DEMO, RunningEnclave, hub_log, needs_enclave, running_enclave

pytestmark = [pytest.mark.functional, needs_enclave, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = "cardiac_risk.ipynb"
TABLE = "cardiac_risk/risk_groups.csv"
JOB = f"enclave-{DEMO}"  # clusters/slurm.py names each job enclave-PROJECT
SPAWN_TIMEOUT_MS = 300_000
NOTEBOOK_TIMEOUT_S = 900  # the workers start as a SLURM job first
ENCLAVE = Path(sys.executable).with_name("enclave")

# In the workspace, after the notebook: a cluster of the project again, and what its scheduler says of its workers.
CLUSTER_UP = """
import json
from workbench import open_project
client = open_project().client()
info = client.scheduler_info()
print(json.dumps({"workers": sorted(info["workers"]), "link": client.dashboard_link,
                  "jobs": client.cluster.jobs_status()["jobs"]}))
"""


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def slurm_enclave(tmp_path_factory, cohort, workspace_env, slurm) -> Iterator[RunningEnclave]:
    """A real Enclave whose hub reaches the session's SLURM as a site's reaches its own: the site setting
    ENCLAVE_SLURM_CONF (no SLURM_CONF), and the one-machine cluster's network, loopback, in the environment the hub
    starts with and passes to each cluster service."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SLURM_CONF")  # set by the `slurm` fixture; its commands here pass it themselves
        patch.setenv("ENCLAVE_SLURM_CONF", str(slurm.node.conf))
        patch.setenv("DASK_ENCLAVE__SLURM__INTERFACE", "lo")
        with running_enclave(tmp_path_factory.mktemp("slurm-hub") / "home", cohort) as running:
            yield running


class JobWatch:
    """squeue, polled in a thread for as long as the `with` block: every state the project's jobs were seen in."""

    def __init__(self, slurm) -> None:
        self.slurm = slurm
        self.seen: dict[str, set[str]] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._done.is_set():
            for job, (name, state) in self.slurm.jobs().items():
                if name == JOB:
                    self.seen.setdefault(job, set()).add(state)
            self._done.wait(0.5)

    def __enter__(self) -> JobWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(timeout=90)


def project_jobs(slurm) -> dict[str, str]:
    return {job: state for job, (name, state) in slurm.jobs().items() if name == JOB}


def command_lines() -> dict[int, list[bytes]]:
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                found[int(proc.name)] = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
    return found


def cluster_services(home: Path) -> list[int]:
    """The pids of the cluster services this Enclave's hub runs (`python -m clusters.service --home HOME ...`)."""
    return [pid for pid, argv in command_lines().items() if b"clusters.service" in argv and str(home).encode() in argv]


def workspace_started(home: Path) -> int:
    """When this Enclave's one workspace started (`started`): its sandbox, bwrap running jupyterhub-singleuser over
    HOME's folders (two processes: bwrap forks the namespace's first one)."""
    sandboxes = [
        pid for pid, argv in command_lines().items()
        if argv[0].endswith(b"bwrap") and any(a.endswith(b"/jupyterhub-singleuser") for a in argv)
        and any(a.startswith(str(home).encode() + b"/") for a in argv)
    ]  # fmt: skip
    assert sandboxes, "no workspace sandbox runs"
    return min(started(pid) for pid in sandboxes)


def started(pid: int) -> int:
    """When a process started, in clock ticks since boot (/proc/PID/stat's 22nd field)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def expected_table(enclave: RunningEnclave, tmp_path: Path) -> str:
    """The notebook's table with the default engine: papermill over the project's view here, on a LocalCluster."""
    places = {name: tmp_path / name for name in ("home", "outputs", "mlflow")}
    for place in places.values():
        place.mkdir()
    env = {
        "ENCLAVE_PROJECT_DATA": str(enclave.paths.project_data(DEMO).resolve()),
        "ENCLAVE_OUTPUTS": str(places["outputs"]),
        "MLFLOW_TRACKING_URI": f"sqlite:///{places['mlflow'] / 'mlflow.db'}",
        "ENCLAVE_MLFLOW_ARTIFACTS": str(places["mlflow"] / "artifacts"),
        "JUPYTERHUB_SERVICE_PREFIX": "",
        "ENCLAVE_DASK_DASHBOARD": "",
    }
    notebook = REPO / "notebooks" / NOTEBOOK
    done = run_workspace_python(
        ["-m", "papermill", str(notebook), "executed.ipynb", "--no-progress-bar"], cwd=places["home"], env=env
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return (places["outputs"] / TABLE).read_text()


def enclave_command(enclave: RunningEnclave, *args: str) -> str:
    """`enclave --home HOME ARGS` as the admin runs it; its output."""
    done = subprocess.run([str(ENCLAVE), "--home", str(enclave.paths.home), *args], capture_output=True, text=True,
                          timeout=900, check=False)  # fmt: skip
    assert done.returncode == 0, f"enclave {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def turn_to_slurm(enclave: RunningEnclave, tmp_path: Path) -> None:
    """The admin's one change: the demo spec with `engine: slurm` under `compute`, then a new view."""
    spec = steps.DEMO_SPEC.read_text()
    changed = spec.replace("compute:\n", "compute:\n  engine: slurm\n", 1)
    assert changed != spec
    path = tmp_path / "cardio-risk.yaml"
    path.write_text(changed)
    shown = enclave_command(enclave, "project", "create", "-f", str(path), "--replace", "--yes")
    changes = [line.strip() for line in shown.splitlines() if line.startswith("  ")]
    # one change, shown as the whole compute section before and after
    assert len(changes) == 1 and changes[0].startswith("~ compute: {'engine': 'local'"), shown
    assert changes[0].split(" -> ")[1].startswith("{'engine': 'slurm'"), shown
    enclave_command(enclave, "project", "materialise", DEMO, "--quiet")


def test_the_example_notebook_runs_on_slurm_after_one_setting(browser, slurm_enclave, slurm, tmp_path):
    enclave = slurm_enclave
    expected = expected_table(enclave, tmp_path)
    turn_to_slurm(enclave, tmp_path)
    steps.ensure_example_notebooks(enclave.paths, DEMO, ["alice"])
    table = enclave.paths.project_outputs(DEMO) / TABLE
    assert not table.exists() and not project_jobs(slurm)
    workspace = f"{enclave.origin('alice')}/user/alice/{DEMO}"
    problems: list[str] = []
    try:
        # 1. alice logs in and starts her workspace from the hub's home page: its cluster service starts with it
        alice = log_in(browser, enclave, "alice", problems)
        alice.locator(f"#start-{DEMO}").click()
        alice.wait_for_url(f"{workspace}/lab**", timeout=SPAWN_TIMEOUT_MS)
        alice.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
        (service,) = cluster_services(enclave.paths.home)
        assert started(service) <= workspace_started(enclave.paths.home)  # the service first
        notebook = alice.locator(f".jp-DirListing-item[title*='{NOTEBOOK}']")
        notebook.wait_for(timeout=60_000)

        # 2. she runs the example notebook, unchanged: its workers are a SLURM job of the project meanwhile
        notebook.dblclick()
        wait_for_kernel(alice, 120)
        with JobWatch(slurm) as watch:
            menu(alice, "Run", "Run All Cells")
            wait_for_notebook_run(alice, NOTEBOOK_TIMEOUT_S)
        assert any("RUNNING" in states for states in watch.seen.values()), watch.seen
        assert table.read_text() == expected  # the same table as on a LocalCluster
        # text_content: JupyterLab leaves cells outside the viewport unrendered (content-visibility: hidden)
        shown = alice.locator(".jp-NotebookPanel .jp-CodeCell").nth(2).locator(".jp-OutputArea").text_content()
        assert f"/user/alice/{DEMO}/dask/status" in shown, shown  # the link the notebook printed: the hub's route
        # the notebook's client.close() closed the cluster: its job is gone, the service stays for the next one
        slurm.wait_for(lambda: not project_jobs(slurm), "the notebook's job to end")
        (log,) = (enclave.paths.hub / "workspace-logs").glob("*.cluster.log")
        text = log.read_text()
        assert "scaled to 1 jobs" in text and "cluster closed" in text, text[-2000:]
        assert alive(service)

        # 3. a cluster again, and its dashboard through the hub's dask/ route: the SLURM job's workers, over TLS
        # (the kernel's client runs an event loop of its own: in a thread, not in Playwright's)
        with ThreadPoolExecutor(1) as pool, enclave.person("alice").kernel(DEMO) as run:
            up = pool.submit(run, CLUSTER_UP, 300).result()
            answer = json.loads(up.strip().splitlines()[-1])
            assert answer["workers"] and all(w.startswith("tls://") for w in answer["workers"]), answer
            assert set(answer["jobs"].values()) == {"RUNNING"} and set(answer["jobs"]) == set(project_jobs(slurm))
            assert answer["link"] == f"/user/alice/{DEMO}/dask/status"
            dashboard = alice.context.new_page()
            # what the dashboard says of its scheduler, as her browser gets it through the route: the same workers
            identity = dashboard.goto(f"{workspace}/dask/json/identity.json")
            assert identity.status == 200 and sorted(identity.json()["workers"]) == answer["workers"]
            dashboard.goto(f"{workspace}/dask/status")
            dashboard.locator("canvas").first.wait_for(timeout=120_000)  # Bokeh drew the live plots
            assert "Dask" in dashboard.title()
            dashboard.close()

            # 4. she stops the workspace from the hub's home page while the job runs
            alice.goto(f"{enclave.url}/hub/home")
            alice.locator(f"#stop-{DEMO}").click()
            alice.locator(f"#start-{DEMO}").wait_for(timeout=180_000)  # the home page shows it stopped
        deadline = time.monotonic() + 180
        while enclave.person("alice").api("GET", "/users/alice").json().get("servers", {}).get(DEMO):
            assert time.monotonic() < deadline, "the workspace did not stop"
            time.sleep(0.5)
        assert not project_jobs(slurm), f"a job outlived its workspace: {slurm.jobs()}"
        assert not alive(service) and not cluster_services(enclave.paths.home)
        assert log.read_text().count("cluster closed") == 2  # the notebook's cluster, then this one
        unexpected = enclaves_own_problems(problems, enclave)
        assert unexpected == [], "\n".join(unexpected)
    except BaseException:
        for i, page in enumerate(p for c in browser.contexts for p in c.pages):
            page.screenshot(path=str(tmp_path / f"failure-{i}.png"))
        print(f"screenshots of every open page: {tmp_path}/failure-*.png\n{hub_log(enclave)}")
        raise
    finally:
        person = enclave.person("alice")
        if person.api("GET", "/users/alice").json().get("servers", {}).get(DEMO):
            person.stop(DEMO)
