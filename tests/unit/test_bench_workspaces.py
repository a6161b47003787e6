"""The workspaces benchmark's parts that need no hub: it is registered with `python -m bench`, its options are
checked, its baseline is JupyterHub's own stock classes, its project spec is valid, and its report shows each
figure with its ratio. (Its figures come from running it; nothing here times anything.)"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from traitlets.config.loader import PyFileConfigLoader

from bench import workspace_hubs, workspaces
from bench.__main__ import BENCHMARKS
from fabric.projects import ProjectRole, ProjectSpec
from provisioning.host import account_name

pytestmark = pytest.mark.unit


def test_it_is_one_of_make_bench_s_benchmarks() -> None:
    _fn, sizes, repeats = BENCHMARKS["workspaces"]
    assert sizes == [10] and repeats == workspaces.parse_args([]).repeats


def test_defaults_and_overrides() -> None:
    args = workspaces.parse_args([])
    assert (args.concurrent, args.repeats, args.rounds, args.starts, args.idle) == (10, 15, 3, 3, 5.0)
    args = workspaces.parse_args(["--concurrent", "4", "--repeats", "2", "--rounds", "1", "--idle", "0"])
    assert (args.concurrent, args.repeats, args.rounds, args.idle) == (4, 2, 1, 0.0)


@pytest.mark.parametrize("argv", [["--concurrent", "0"], ["--repeats", "-1"], ["--rounds", "x"], ["--idle", "-2"]])
def test_nonsense_options_are_refused(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        workspaces.parse_args(argv)
    assert exit_.value.code == 2
    assert "error" in capsys.readouterr().err


def test_p95_is_the_nearest_rank() -> None:
    assert workspaces.p95([3.0, 1.0, 2.0]) == 3.0
    assert workspaces.p95([float(i) for i in range(1, 41)]) == 38.0  # rank ceil(0.95 * 40) = 38
    assert workspaces.p95([float(i) for i in range(1, 11)]) == 10.0  # 20 samples or fewer: the largest
    assert workspaces.summary([]) is None  # e.g. every spawn of a round failed


def test_the_baseline_is_stock_jupyterhub_running_the_same_server(tmp_path: Path) -> None:
    singleuser = tmp_path / "env" / "bin" / "jupyterhub-singleuser"
    text = workspaces.baseline_config(
        public=18000, hub=18001, proxy_api=18002, proxy=tmp_path / "chp", singleuser=singleuser, homes=tmp_path / "h"
    )
    (tmp_path / "jupyterhub_config.py").write_text(text)
    c = PyFileConfigLoader("jupyterhub_config.py", str(tmp_path)).load_config()  # as `jupyterhub -f` loads it
    spawner = entry_points(group="jupyterhub.spawners")[c.JupyterHub.spawner_class].load()
    authenticator = entry_points(group="jupyterhub.authenticators")[c.JupyterHub.authenticator_class].load()
    assert f"{spawner.__module__}.{spawner.__name__}" == "jupyterhub.spawner.SimpleLocalProcessSpawner"
    assert f"{authenticator.__module__}.{authenticator.__name__}" == "jupyterhub.auth.DummyAuthenticator"
    assert c.Spawner.cmd == [str(singleuser)]
    assert "db_url" not in c.JupyterHub  # its default SQLite
    assert c.ConfigurableHTTPProxy.command == [str(tmp_path / "chp")]
    assert all(url.startswith("http://127.0.0.1:") for url in (c.JupyterHub.bind_url, c.JupyterHub.hub_bind_url))


def test_the_project_has_every_bench_user_as_a_researcher(tmp_path: Path) -> None:
    members = workspaces.users(10)
    assert members[0] == "bench01" and members[-1] == "bench10"
    (tmp_path / "spec.yaml").write_text(workspaces.spec_text(members))
    spec = ProjectSpec.load(tmp_path / "spec.yaml")
    assert spec.name == workspaces.PROJECT
    assert {m.user for m in spec.members if m.role == ProjectRole.RESEARCHER} == set(members)
    assert account_name(spec.name) == f"enclave-{workspaces.PROJECT}"  # a valid Unix account name


def _system(scale: float) -> dict:
    def s(median: float) -> dict:
        return {"median": median * scale, "p95": 2 * median * scale, "n": 7, "all": []}

    return {
        "hub_start_s": s(4.0),
        "single_spawn_s": s(3.0),
        "concurrent_spawn_s": s(10.0),
        "idle_rss_bytes": s(100 * 2**20),
        "idle_pss_bytes": s(50 * 2**20),
        "concurrency": 10,
        "concurrent_attempted": 30,
        "concurrent_failed": 0,
        "concurrent_failures": [],
    }


def test_the_report_shows_each_figure_with_its_ratio_and_goal() -> None:
    result = {"enclave": _system(1.5), "baseline": _system(1.0), "baseline_name": "plain JupyterHub"}
    result["enclave"]["idle_cgroup_bytes"] = {"median": 300 * 2**20}
    result |= {"load_average_at_start": (1.0, 1.0, 1.0), "load_average_at_end": (2.0, 2.0, 2.0)}
    result["ratios"] = workspaces.ratios(result)
    assert result["ratios"]["one spawn: median"] == pytest.approx(1.5)
    text = workspaces.report(result)
    assert "one spawn: median (s)" in text and "1.50x" in text and "<= 5 s, <= 1.3x" in text
    assert "idle workspace RSS, median (MiB)" in text and "150.00" in text
    assert "300 MiB" in text and "plain JupyterHub" in text


def test_failed_spawns_are_reported_and_missing_figures_shown_as_dashes() -> None:
    result = {"enclave": _system(1.0), "baseline": _system(1.0), "baseline_name": "plain JupyterHub"}
    result["enclave"] |= {"concurrent_spawn_s": None, "concurrent_failed": 30}
    result["enclave"]["concurrent_failures"] = ["spawn refused: 500 Internal Server Error"]
    result |= {"load_average_at_start": (1.0, 1.0, 1.0), "load_average_at_end": (2.0, 2.0, 2.0)}
    result["ratios"] = workspaces.ratios(result)
    assert "N at once: median" not in result["ratios"]
    text = workspaces.report(result)
    line = next(x for x in text.splitlines() if x.startswith("N at once: median"))
    assert line.split()[-5:-2] == ["10.00", "-", "-"]  # baseline, enclave, ratio
    assert "0/30" in text and "30/30" in text and "spawn refused: 500" in text


def test_enclave_at_a_commit_gets_its_own_column_and_ratio() -> None:
    """`--against COMMIT`: the commit's figures beside the others and this tree's ratio to them ("unchanged" is
    measured against the code before, in the same run)."""
    commit = "57c7665abcdef"
    result = {"enclave": _system(1.5), "baseline": _system(1.0), f"enclave@{commit}": _system(1.2)}
    result |= {"baseline_name": "plain JupyterHub", "against": [commit]}
    result |= {"load_average_at_start": (1.0, 1.0, 1.0), "load_average_at_end": (2.0, 2.0, 2.0)}
    result["ratios"] = workspaces.ratios(result)
    result["ratios_to_commits"] = {commit: workspaces.ratios(result, f"enclave@{commit}")}
    assert result["ratios_to_commits"][commit]["one spawn: median"] == pytest.approx(1.25)
    text = workspaces.report(result)
    header = text.strip().splitlines()[0].split()
    assert header[-6:] == ["@57c7665", "enclave", "ratio", "vs", "@57c7665", "goal"]
    line = next(x for x in text.splitlines() if x.startswith("one spawn: median"))
    assert line.split()[4:9] == ["3.00", "3.60", "4.50", "1.50x", "1.25x"]
    assert f"Enclave at commit {commit}" in text


def test_the_driver_of_enclave_at_a_commit_is_valid_python() -> None:
    compile(workspace_hubs.OLD_ENCLAVE, "OLD_ENCLAVE", "exec")
