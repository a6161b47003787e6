"""Workspace start-up: Enclave's hub against plain JupyterHub, both started and measured side by side in one run.

Enclave: the real hub (`hub.lifecycle.start`: sandboxed workspaces as a project's account, named servers, password +
TOTP, the airlock service) over a provisioned home with ONE project whose researchers are bench01..benchNN.
Baseline: plain JupyterHub, the same `jupyterhub` and configurable-http-proxy, its default SQLite, the stock
`dummy` authenticator and JupyterHub's own local spawner (`simple`: SimpleLocalProcessSpawner, the hub's user, since
the stock LocalProcessSpawner needs a Unix account per hub user) starting the SAME workspace environment's
`jupyterhub-singleuser` over loopback TCP.

Measured the same way on both, interleaved so that other load on the machine falls on both:

- hub start: from Popen to /hub/health answering (median of 3 starts);
- one spawn at a time: POST /hub/api/users/U/servers/NAME, then poll the user model until `ready` (the project's
  named server for Enclave, the default server for the baseline), stop, repeated;
- N at once: N people spawn in threads released together, rounds repeated; median and p95 over every spawn;
- memory per idle workspace, after the N are up and idle: the resident memory (RSS, and PSS, which shares libraries
  out between processes) of every process of the workspace (Enclave: its control group; baseline: the server's
  process tree), and for Enclave the control group's own charge (which also counts page cache it first touched).

With `--against COMMIT` (repeatable), Enclave as it was at COMMIT runs side by side as well, interleaved the same
way: a `git worktree` of the commit under the work folder, its own workspace environment built from its own
`images/` (once, kept), and its own `bench/workspaces.py` driving its hub in a child process on that tree's code
(`OLD_ENCLAVE`), for a project of its own name. This tree's figures are then also given as ratios to each commit's:
"unchanged" is a ratio to the code before, measured in the same run, not to another day's figures.

p95 is the nearest-rank percentile: with 20 samples or fewer it is the largest. Root only (workspaces run as project
accounts in bubblewrap). Everything it starts is stopped, and the host rules it adds are removed, even on failure.
`python -m bench --only workspaces`, or `python -m bench.workspaces --help` for the knobs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.workspace_hubs import PROJECT, Hub, baseline_config, baseline_hub, enclave_at, enclave_hub, log, spec_text

__all__ = ["PROJECT", "baseline_config", "bench", "main", "parse_args", "ratios", "report", "spec_text", "summary"]

ROOT = Path(__file__).resolve().parent.parent
GOAL_SINGLE_MEDIAN_S = 5.0
GOAL_RATIO = 1.3


def users(count: int) -> list[str]:
    return [f"bench{i:02d}" for i in range(1, count + 1)]


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict | None:
    """Median, p95 and the values themselves; None when there are none (e.g. every spawn failed)."""
    if not values:
        return None
    return {"median": statistics.median(values), "p95": p95(values), "n": len(values), "all": values}


def check_host() -> None:
    from tests.hub_runner import CHP
    from tests.workspace_env import workspace_env

    missing = [
        what
        for what, ok in (
            ("root", os.geteuid() == 0),
            ("bubblewrap (bwrap)", shutil.which("bwrap") is not None),
            (f"the proxy ({CHP.relative_to(ROOT)}: make it)", CHP.exists()),
            (f"the workspace environment ({workspace_env()}: make .workspace)", (workspace_env() / "bin").exists()),
        )
        if not ok
    ]
    if missing:
        raise SystemExit("the workspaces benchmark needs " + ", ".join(missing))


# ------------------------------------------------------------------------------------------------ measurements


def single(hub: Hub) -> float:
    """One spawn request -> ready, then stop: the seconds to ready (tests/workspace_hub.py's Person.spawn)."""
    person = next(iter(hub.people.values()))
    seconds = person.spawn(hub.server)
    person.stop(hub.server)
    return seconds


@dataclass
class Round:
    seconds: list[float]  # to ready, of the spawns that succeeded
    failures: list[str]  # what the hub answered to those that did not
    memory: list[dict[str, int]]  # of each workspace that came up, after the idle time


def concurrent(hub: Hub, idle: float) -> Round:
    """Every person spawns at once (released together); then, after `idle` seconds, each workspace's memory; then
    all stop. A spawn that fails is counted and reported, not timed."""
    people = list(hub.people.values())
    gate = threading.Barrier(len(people))
    seconds: dict[str, float] = {}
    failures: list[str] = []

    def spawn(person) -> None:
        try:
            gate.wait()
            seconds[person.name] = person.spawn(hub.server)
        except Exception as exc:  # a failed spawn is a result: counted, and its message kept
            failures.append(str(exc)[:300])

    def stop(person) -> None:
        with contextlib.suppress(Exception):  # a spawn that failed has nothing to stop
            person.stop(hub.server)

    def each(fn, items) -> None:
        threads = [threading.Thread(target=fn, args=(x,)) for x in items]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    try:
        each(spawn, people)
        time.sleep(idle)
        memory = [m for p in people if p.name in seconds and (m := hub.memory(p.name))]
    finally:
        each(stop, people)
    return Round([seconds[p.name] for p in people if p.name in seconds], failures, memory)


def bench(
    work: Path, concurrency: int, repeats: int, rounds: int = 3, idle: float = 5.0, starts: int = 3,
    against: tuple[str, ...] = (),
) -> dict:  # fmt: skip
    check_host()
    members = users(max(concurrency, 1))
    out: dict = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count()}
    out["load_average_at_start"] = os.getloadavg()  # other work on the machine slows both sides
    out["against"] = list(against)
    with contextlib.ExitStack() as stack:
        enclave = stack.enter_context(enclave_hub(work, members, starts))
        olds = [stack.enter_context(enclave_at(work, commit, members, starts)) for commit in against]
        baseline = stack.enter_context(baseline_hub(work, members, starts))
        hubs = (enclave, *olds, baseline)
        singles: dict[str, list[float]] = {h.label: [] for h in hubs}
        for h in hubs:
            warm = single(h)  # the first start reads the environment from disk; not counted
            out[f"{h.label}_first_spawn_s"] = warm
            log(f"workspaces: {h.label} first spawn (not counted) {warm:.2f} s")
        for i in range(repeats):
            for h in hubs[i % len(hubs) :] + hubs[: i % len(hubs)]:  # each goes first in turn
                singles[h.label].append(single(h))
            last = ", ".join(f"{k} {v[-1]:.2f} s" for k, v in singles.items())
            log(f"workspaces: single spawn {i + 1}/{repeats}: {last}")
        rounds_of: dict[str, list[Round]] = {h.label: [] for h in hubs}
        for r in range(rounds):
            for h in hubs[r % len(hubs) :] + hubs[: r % len(hubs)]:
                done = concurrent(h, idle)
                rounds_of[h.label].append(done)
                timing = f"median {statistics.median(done.seconds):.2f} s, " if done.seconds else ""
                slowest = f"slowest {max(done.seconds):.2f} s" if done.seconds else "none came up"
                failed = f"; {len(done.failures)} FAILED, e.g. {done.failures[0]}" if done.failures else ""
                log(f"workspaces: {h.label} {concurrency} at once, round {r + 1}/{rounds}: {timing}{slowest}{failed}")
        for h in hubs:
            done = rounds_of[h.label]
            seconds = [s for r in done for s in r.seconds]
            memory = [m for r in done for m in r.memory]
            out[h.label] = {
                "hub_start_s": summary(h.starts),
                "single_spawn_s": summary(singles[h.label]),
                "concurrent_spawn_s": summary(seconds),
                "concurrent_round_medians_s": [statistics.median(r.seconds) if r.seconds else None for r in done],
                "concurrent_failed": sum(len(r.failures) for r in done),
                "concurrent_attempted": concurrency * rounds,
                "concurrent_failures": sorted({f for r in done for f in r.failures}),
                "concurrency": concurrency,
                "idle_rss_bytes": summary([m["rss"] for m in memory]),
                "idle_pss_bytes": summary([m["pss"] for m in memory]),
                "idle_cgroup_bytes": summary([m["cgroup"] for m in memory if "cgroup" in m]),
            }
    out["load_average_at_end"] = os.getloadavg()
    out["ratios"] = ratios(out)
    out["ratios_to_commits"] = {commit: ratios(out, f"enclave@{commit}") for commit in against}
    out["baseline_name"] = (
        "plain JupyterHub (same jupyterhub and configurable-http-proxy, SQLite, dummy authenticator, "
        "SimpleLocalProcessSpawner) starting the same jupyterhub-singleuser over loopback TCP"
    )
    return out


FIGURES = (  # (label, path into a system's results, unit)
    ("hub start, median", ("hub_start_s", "median"), "s"),
    ("one spawn: median", ("single_spawn_s", "median"), "s"),
    ("one spawn: p95", ("single_spawn_s", "p95"), "s"),
    ("N at once: median", ("concurrent_spawn_s", "median"), "s"),
    ("N at once: p95", ("concurrent_spawn_s", "p95"), "s"),
    ("idle workspace RSS, median", ("idle_rss_bytes", "median"), "MiB"),
    ("idle workspace PSS, median", ("idle_pss_bytes", "median"), "MiB"),
)


def _figure(system: dict, path: tuple[str, str]) -> float | None:
    part = system.get(path[0])
    return None if part is None else part[path[1]]


def ratios(result: dict, against: str = "baseline") -> dict[str, float]:
    """Enclave / `against` (the baseline, or Enclave at a commit) for every figure both have."""
    out = {}
    for label, path, _unit in FIGURES:
        ours, theirs = _figure(result["enclave"], path), _figure(result[against], path)
        if ours is not None and theirs:
            out[label] = ours / theirs
    return out


def report(result: dict) -> str:
    """The result as a table: each figure for the baseline, Enclave at each commit compared against, and Enclave,
    with Enclave's ratio to the baseline (and the issue's goal) and to each commit."""
    enclave, baseline = result["enclave"], result["baseline"]
    commits = result.get("against", [])
    n = enclave["concurrency"]
    columns = ["baseline", *(f"@{c[:7]}" for c in commits), "enclave", "ratio", *(f"vs @{c[:7]}" for c in commits)]
    lines = [f"\n{'workspaces (N = ' + str(n) + ')':<34} " + " ".join(f"{c:>10}" for c in columns) + "  goal"]
    systems = [baseline, *(result[f"enclave@{c}"] for c in commits), enclave]
    for label, path, unit in FIGURES:
        scale = 2**20 if unit == "MiB" else 1
        cells = [
            f"{v / scale:>10.2f}" if (v := _figure(system, path)) is not None else f"{'-':>10}" for system in systems
        ]
        goal = ""
        if path[0] in ("single_spawn_s", "concurrent_spawn_s"):
            goal = f"<= {GOAL_RATIO}x"
            if path == ("single_spawn_s", "median"):
                goal = f"<= {GOAL_SINGLE_MEDIAN_S:.0f} s, " + goal
        for ratio in (result["ratios"].get(label), *(result["ratios_to_commits"][c].get(label) for c in commits)):
            cells.append(f"{(f'{ratio:.2f}x' if ratio else '-'):>10}")
        lines.append(f"{label + ' (' + unit + ')':<34} {' '.join(cells)}  {goal}")
    failed = [f"{s['concurrent_failed']}/{s['concurrent_attempted']}" for s in systems]
    lines.append(f"{'N at once: failed spawns':<34} " + " ".join(f"{f:>10}" for f in failed))
    if cg := enclave.get("idle_cgroup_bytes"):
        charge = cg["median"] / 2**20
        lines.append(f"enclave idle workspace, its control group's charge (page cache too): {charge:.0f} MiB")
    names = ["baseline", *(f"enclave@{c}" for c in commits), "enclave"]
    for name, system in zip(names, systems, strict=True):
        for message in system["concurrent_failures"][:3]:
            lines.append(f"failed spawn ({name}): {message}")
    lines.append(
        f"spawns: {enclave['single_spawn_s']['n']} one at a time, {enclave['concurrent_attempted']} at once in rounds "
        f"of {n}; load average {result['load_average_at_start'][0]:.1f} at start, "
        f"{result['load_average_at_end'][0]:.1f} at end"
    )
    lines.append(f"baseline: {result['baseline_name']}")
    for commit in commits:
        lines.append(f"@{commit[:7]}: Enclave at commit {commit}, its own code and workspace environment")
    return "\n".join(lines)


def write(result: dict) -> Path:
    target = ROOT / "bench" / "results"
    target.mkdir(exist_ok=True)
    path = target / "workspaces.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.workspaces", description=__doc__.splitlines()[0])

    def positive(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
        return int(text)

    parser.add_argument("--concurrent", type=positive, default=10, help="people spawning at once (default 10)")
    parser.add_argument("--repeats", type=positive, default=15, help="one-at-a-time spawns per hub (default 15)")
    parser.add_argument("--rounds", type=positive, default=3, help="rounds of concurrent spawns (default 3)")
    parser.add_argument("--starts", type=positive, default=3, help="timed starts of each hub (default 3)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before memory is read (default 5)")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench", help="where the cohort is generated")
    parser.add_argument(
        "--against", action="append", default=[], metavar="COMMIT",
        help="also run Enclave as it was at COMMIT side by side (repeatable; e.g. the commit before a change)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.idle < 0:
        parser.error("--idle must not be negative")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    against = tuple(args.against)
    result = bench(args.work, args.concurrent, args.repeats, args.rounds, args.idle, args.starts, against)
    print(report(result))
    log(f"results: {write(result)}")


if __name__ == "__main__":
    main()
