"""Dask's defaults for a workspace come from workbench/cluster.yaml through `dask.config`: loaded at import,
changed by `dask.config.set`, and below the project's limits in MANIFEST.json and the arguments of `view.client()`.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import dask
import pytest
import yaml

from provisioning.workspace_env import REPO, stamp_inputs
from workbench import cluster
from workbench.errors import WorkbenchError

pytestmark = pytest.mark.unit

SHIPPED = yaml.safe_load(cluster.CONFIG_FILE.read_text(encoding="utf-8"))["enclave"]["local"]
LIMITS = {"compute": {"dask_workers": 4, "threads_per_worker": 2, "memory_limit": "1GiB"}}


@pytest.fixture(autouse=True)
def _no_workspace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cluster.ENV_DASHBOARD, raising=False)
    monkeypatch.delenv(cluster.ENV_SERVICE_PREFIX, raising=False)


def test_the_yaml_is_registered_as_dask_defaults() -> None:
    assert dask.config.get(cluster.CONFIG) == SHIPPED
    assert SHIPPED == {
        "n-workers": 2,
        "threads-per-worker": 1,
        "memory-limit": "4GiB",
        "processes": True,
        "dashboard-address": ":0",
    }
    # A default, not a one-off setting: Dask re-reading its files and environment (here into a config of the test's
    # own, leaving the process's alone) keeps it, below a DASK_ variable.
    fresh: dict = {}
    dask.config.refresh(config=fresh, env={"DASK_ENCLAVE__LOCAL__N_WORKERS": "1"})
    assert fresh["enclave"]["local"] == {**SHIPPED, "n-workers": 1}


def test_every_key_of_the_yaml_is_read() -> None:
    """No dead knob: each key is a limit's default or a LocalCluster argument that cluster_options sets."""
    assert set(SHIPPED) == set(cluster.LIMIT_KEYS.values()) | {"processes", "dashboard-address"}


def test_a_view_without_limits_gets_the_shipped_defaults() -> None:
    assert cluster.compute_limits({}) == {"dask_workers": 2, "threads_per_worker": 1, "memory_limit": "4GiB"}
    assert cluster.cluster_options({}) == {
        "n_workers": 2,
        "threads_per_worker": 1,
        "memory_limit": "4GiB",
        "processes": True,
        "dashboard_address": ":0",
    }


def test_the_manifest_and_explicit_arguments_override_the_defaults() -> None:
    options = cluster.cluster_options(LIMITS)
    assert (options["n_workers"], options["threads_per_worker"], options["memory_limit"]) == (4, 2, "1GiB")
    options = cluster.cluster_options(
        LIMITS, n_workers=1, threads_per_worker=1, memory_limit="512MiB", processes=False, dashboard_address="x:1"
    )
    assert options == {
        "n_workers": 1,
        "threads_per_worker": 1,
        "memory_limit": "512MiB",
        "processes": False,
        "dashboard_address": "x:1",
    }
    with pytest.raises(WorkbenchError, match="allows 1 to 4"):
        cluster.cluster_options(LIMITS, n_workers=5)


def test_in_process_workers_share_the_workers_total_memory() -> None:
    """Threads of one process are measured against the whole process: each gets the total, or a notebook holding
    80 % of one worker's share pauses them all (a suite run once hung so in .compute())."""
    options = cluster.cluster_options(LIMITS, processes=False)
    assert (options["n_workers"], options["memory_limit"]) == (4, 4 * 2**30)
    assert cluster.cluster_options(LIMITS, processes=True)["memory_limit"] == "1GiB"
    assert cluster.cluster_options(LIMITS, n_workers=1, processes=False)["memory_limit"] == "1GiB"
    for dask_form in ("auto", 0, 0.5):
        assert cluster.shared_process_memory_limit(dask_form, 4) == dask_form
    assert cluster.shared_process_memory_limit(10**9, 3) == 3 * 10**9


def test_a_dask_config_set_override_is_honoured() -> None:
    override = {
        "enclave.local.n-workers": 3,
        "enclave.local.memory-limit": "2GiB",
        "enclave.local.processes": False,
        "enclave.local.dashboard-address": "127.0.0.1:0",
    }
    with dask.config.set(override):
        assert cluster.compute_limits({}) == {"dask_workers": 3, "threads_per_worker": 1, "memory_limit": "2GiB"}
        options = cluster.cluster_options({})
        assert (options["n_workers"], options["processes"], options["dashboard_address"]) == (3, False, "127.0.0.1:0")
        # The project's limits and the caller's arguments still come first.
        assert cluster.cluster_options(LIMITS)["n_workers"] == 4
        assert cluster.cluster_options({}, n_workers=1, processes=True)["processes"] is True
    assert cluster.cluster_options({})["n_workers"] == 2  # the override ends with its block


def test_the_workspace_dashboard_comes_before_the_configured_address(monkeypatch: pytest.MonkeyPatch) -> None:
    with dask.config.set({"enclave.local.dashboard-address": "127.0.0.1:0"}):
        assert cluster.dashboard_address({}) == "127.0.0.1:0"
        assert cluster.dashboard_address({cluster.ENV_DASHBOARD: "127.0.0.1:8787"}) == "127.0.0.1:8787"


@pytest.mark.timeout(120)
def test_a_started_client_follows_the_config(tmp_path: Path) -> None:
    config = {"enclave.local.processes": False, "temporary-directory": str(tmp_path)}
    limits = {"compute": {"dask_workers": 1, "threads_per_worker": 1}}
    with dask.config.set(config), cluster.start_client(limits) as client:
        assert client.cluster.processes is False  # the config's choice: workers as threads of this process
        assert list(client.nthreads().values()) == [1]


def test_the_yaml_ships_with_the_package_and_rebuilds_the_workspace_environment() -> None:
    """A wheel without it could not import workbench (the workspace build's own check catches that), and a
    change to it must reach the workspaces: it is one of the environment's stamped inputs."""
    inside = cluster.CONFIG_FILE.relative_to(REPO / "workbench").as_posix()
    for project in (REPO, REPO / "workbench"):  # the admin's install and the workspace's wheel
        package_data = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
        assert any(fnmatch.fnmatch(inside, pattern) for pattern in package_data["workbench"])
    assert cluster.CONFIG_FILE in stamp_inputs(REPO)
