"""The airlock web app while one person submits a large file (issue 17, finding 4): a checker's review list, one
keep-alive client asking for it back to back, its p95 latency while alice submits a 1 GiB output through the web app,
against the same page with no submission running (the named baseline), and against the airlock of a named earlier
commit (before the copy left the request thread) doing the same, checked out beside it with `git worktree`.

Each repeat measures, in alternating order, the quiet page, this tree's app during a submission and the old app
during one (each app is its own server process over the same home; the file's pages are dropped from the cache before
each submission so every copy reads from disk). A submission lasts until its copy is done: when the POST answers on
the old code, when the request leaves `preparing` on this tree's. Both submit as a draft: what is measured is the
copy, not the checks (those already ran in the background, in the checker sandbox, on both sides). Goal: p95 under
200 ms during the submission.

The old commit is 4826bbe (the last before issue 17); pass another with ENCLAVE_BENCH_AIRLOCK_BASELINE.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from bench import airlock_web
from bench.airlock_generations import _worktree

BASELINE_COMMIT = "4826bbe"
GOAL_MS = 200.0
PROJECT, AUTHOR, CHECKER = "cardio-risk", "alice", "carol"
NAME = "responsiveness/one-gib.bin"
XSRF = re.compile(r'name="_xsrf" value="([^"]+)"')
LOCATION = re.compile(r"/requests/(r-[0-9]{8}-[0-9a-f]{8})\?")
QUIET_S = 8.0


def _output(home: Path, size: int) -> Path:
    """`size` bytes of incompressible data in the project's outputs folder (written once, reused)."""
    from kernel.config import Paths

    path = Paths(home).project_outputs(PROJECT) / NAME
    if not (path.exists() and path.stat().st_size == size):
        path.parent.mkdir(parents=True, exist_ok=True)
        block = os.urandom(2**20)
        with path.open("wb") as fh:
            for _ in range(size // 2**20):
                fh.write(block)
    return path


# The old side gets a home of its own, provisioned by its own code (this tree's registry and project specs have
# moved on since), and its own hard link to the same file, where its code keeps the outputs folder.
OLD_HOME = """
import sys
from pathlib import Path
try:
    from bench.fabric_benchmarks import provisioned_cohort
except ImportError:  # a tree from before make bench's benchmarks had modules of their own
    from bench.__main__ import provisioned_cohort
from bench import airlock_web
home = provisioned_cohort(Path(sys.argv[1]), 300)
airlock_web.populate(home, 50)
"""


def _old_home(work: Path, tree: Path, path: Path) -> Path:
    subprocess.run([sys.executable, "-c", OLD_HOME, str(work / "responsiveness-old")], cwd=tree, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    home = work / "responsiveness-old" / "cohort-300"
    old = home / "projects" / PROJECT / "outputs" / NAME  # the outputs folder before issue 17
    if not old.exists():
        old.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, old)
    return home


def _cold(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _session(port: int, user: str) -> requests.Session:
    http = requests.Session()
    r = http.get(f"http://127.0.0.1:{port}/dev/login", params={"user": user}, timeout=30)
    r.raise_for_status()
    return http


class _States:
    """Reads a request's state from the registry (one connection pool for the whole run: polling stays cheap)."""

    def __init__(self, home: Path) -> None:
        from kernel.config import Paths
        from kernel.db import Registry

        self.registry = Registry.of(Paths(home))

    def __call__(self, request_id: str) -> str:
        from output_checks.release.models import ReleaseRequest

        with self.registry.session() as session:
            return session.get(ReleaseRequest, request_id).state

    def close(self) -> None:
        self.registry.close()


def _tidy(home: Path, request_id: str) -> None:
    """Withdraw the bench's request and remove its snapshot (1 GiB a run)."""
    from kernel.config import Paths
    from kernel.db import Registry
    from output_checks.release import workflow
    from output_checks.release.service import Airlock

    paths = Paths(home)
    app = Airlock(Registry.of(paths), paths)
    try:
        for _ in range(600):
            if app.tx(lambda s: workflow.get_request(s, request_id, AUTHOR).state) != "preparing":
                break
            time.sleep(0.1)
        app.tx(lambda s: workflow.withdraw(s, request_id, AUTHOR))
        app.store.remove_request(request_id)
    finally:
        app.registry.close()


def _poll(port: int, http: requests.Session, until: threading.Event, seconds: float | None = None) -> list[float]:
    """Review-list latencies, one request after another, until `until` is set (or `seconds` passed)."""
    latencies: list[float] = []
    stop = time.perf_counter() + seconds if seconds else None
    while not until.is_set() and (stop is None or time.perf_counter() < stop):
        started = time.perf_counter()
        r = http.get(f"http://127.0.0.1:{port}/review", timeout=120)
        latencies.append(time.perf_counter() - started)
        if r.status_code != 200:
            raise SystemExit(f"the review list answered {r.status_code}")
        time.sleep(0.01)
    return latencies


def _during(home: Path, port: int, path: Path, *, old: bool = False) -> dict:
    """The review list's latencies while alice submits the file; the submission's answer time and copy time."""
    checker, author = _session(port, CHECKER), _session(port, AUTHOR)
    form = author.get(f"http://127.0.0.1:{port}/new", params={"project": PROJECT}, timeout=30)
    token = XSRF.search(form.text).group(1)
    _poll(port, checker, threading.Event(), 1.0)  # warm: templates compiled, connection open
    _cold(path)
    copied = threading.Event()
    out: dict = {}

    def submit() -> None:
        started = time.perf_counter()
        r = author.post(f"http://127.0.0.1:{port}/new", allow_redirects=False, timeout=600,
                        data={"project": PROJECT, "title": "bench: one large output", "file": NAME,
                              "then": "draft", "_xsrf": token})  # fmt: skip
        out["answer_s"] = time.perf_counter() - started
        found = LOCATION.search(r.headers.get("Location", ""))
        if r.status_code != 303 or not found:
            out["error"] = f"the submission answered {r.status_code}"
            copied.set()
            return
        out["request"] = found.group(1)
        if not old:  # the old code copied before answering
            states = _States(home)
            while states(out["request"]) == "preparing":
                time.sleep(0.1)
            states.close()
        out["copy_s"] = time.perf_counter() - started
        copied.set()

    thread = threading.Thread(target=submit)
    thread.start()
    latencies = _poll(port, checker, copied)
    thread.join()
    if "error" in out:
        raise SystemExit(out["error"])
    if old:  # its draft stays; its 1 GiB copy goes (never read with this tree's code: another schema)
        _remove_tree(home / "airlock" / "snapshots" / out["request"])
    else:
        _tidy(home, out["request"])
    return {"latencies": latencies, "answer_s": out["answer_s"], "copy_s": out["copy_s"]}


def _remove_tree(folder: Path) -> None:
    import shutil

    if folder.exists():
        for p in folder.rglob("*"):
            p.chmod(0o700)
        shutil.rmtree(folder)


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) >= 2 else values[0]


def _summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "spread": [min(values), max(values)]}


def bench(work: Path, home: Path, root: Path, size: int, repeats: int) -> dict:
    commit = os.environ.get("ENCLAVE_BENCH_AIRLOCK_BASELINE", BASELINE_COMMIT)
    airlock_web.populate(home, 50)  # something on carol's list
    path = _output(home, size)
    sides = {"enclave": (root, home)}
    try:
        tree = _worktree(work, commit)
        sides["old"] = (tree, _old_home(work, tree, path))
    except (SystemExit, OSError, subprocess.CalledProcessError) as exc:  # no git history: against the quiet page only
        print(f"airlock responsiveness: no old side ({exc})")
    servers = {side: airlock_web.start(where, tree) for side, (tree, where) in sides.items()}
    runs: dict[str, list[dict]] = {"quiet": [], **{side: [] for side in sides}}
    try:
        for i in range(repeats):
            order = ["quiet", *sides] if i % 2 == 0 else [*reversed(list(sides)), "quiet"]
            for side in order:
                if side == "quiet":
                    port = servers["enclave"][1]
                    http = _session(port, CHECKER)
                    _poll(port, http, threading.Event(), 1.0)
                    latencies = _poll(port, http, threading.Event(), QUIET_S)
                    runs["quiet"].append({"latencies": latencies})
                else:
                    runs[side].append(_during(sides[side][1], servers[side][1], path, old=side == "old"))
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=60)
    p95 = {side: [1000 * _p95(r["latencies"]) for r in rs] for side, rs in runs.items()}
    result: dict = {
        "baseline": "the same review list with no submission running (and the airlock at commit "
        f"{commit}, before issue 17, submitting the same file)",
        "bytes": size,
        "repeats": repeats,
        "goal_p95_ms": GOAL_MS,
        "quiet_p95_ms": _summary(p95["quiet"]),
        "enclave_p95_ms": _summary(p95["enclave"]),
        "enclave_answer_s": _summary([r["answer_s"] for r in runs["enclave"]]),
        "enclave_copy_s": _summary([r["copy_s"] for r in runs["enclave"]]),
        "ratio_to_quiet": _summary([e / q for e, q in zip(p95["enclave"], p95["quiet"], strict=True)]),
        "samples": {side: [len(r["latencies"]) for r in rs] for side, rs in runs.items()},
        "load_average_at_end": os.getloadavg(),
    }
    if "old" in runs:
        result |= {
            "old_commit": commit,
            "old_p95_ms": _summary(p95["old"]),
            "old_max_ms": _summary([1000 * max(r["latencies"]) for r in runs["old"]]),
            "old_answer_s": _summary([r["answer_s"] for r in runs["old"]]),
            "ratio_to_old": _summary([e / o for e, o in zip(p95["enclave"], p95["old"], strict=True)]),
        }
    result["baseline_s"] = result["quiet_p95_ms"]["median"] / 1000
    result["enclave_s"] = result["enclave_p95_ms"]["median"] / 1000
    result["ratio"] = result["ratio_to_quiet"]["median"]
    result["peak_rss_bytes"] = 0
    return result


def _ms(s: dict) -> str:
    lo, hi = s["spread"]
    return f"{s['median']:.0f} ms (spread {lo:.0f}-{hi:.0f})"


def report(r: dict) -> str:
    lines = [
        f"\nairlock responsiveness: carol's review list while alice submits {r['bytes'] / 2**30:.1f} GiB through the "
        f"web app, {r['repeats']} alternating repeats (samples per run {r['samples']})",
        f"  quiet (baseline) p95 {_ms(r['quiet_p95_ms'])}; during the submission p95 {_ms(r['enclave_p95_ms'])} "
        f"= {r['ratio_to_quiet']['median']:.2f}x the quiet page (spread {r['ratio_to_quiet']['spread'][0]:.2f}-"
        f"{r['ratio_to_quiet']['spread'][1]:.2f}x); goal p95 < {r['goal_p95_ms']:.0f} ms: "
        f"{'met' if r['enclave_p95_ms']['median'] < r['goal_p95_ms'] else 'NOT met'}",
        f"  the submission answered in {r['enclave_answer_s']['median'] * 1000:.0f} ms; its copy took "
        f"{r['enclave_copy_s']['median']:.1f} s in the background",
    ]
    if "old_p95_ms" in r:
        lines.append(
            f"  the airlock at {r['old_commit']}: p95 {_ms(r['old_p95_ms'])}, worst {_ms(r['old_max_ms'])}, the "
            f"submission answered in {r['old_answer_s']['median']:.1f} s; this tree's p95 is "
            f"{r['ratio_to_old']['median']:.3f}x the old one's"
        )
    return "\n".join(lines)
