"""The airlock checker against its own previous generation: the whole output bundle (bench/airlock_bundle.py, ~100
MB at scale 1) checked by the checks engine of this tree and of a named baseline commit, checked out beside it with
`git worktree`, alternating, same interpreter, same machine, default policy, in-process on every core (the checker
sandbox around them costs the same on both sides and is measured by airlock_sandbox). Reports the median
ratio (this tree / baseline) with its spread over the repeats, the throughput (MB/s) and the peak memory (whole
process tree) of each side, and how the verdicts moved between generations.

The baseline is the last commit before issue 11's structural checks; pass another with ENCLAVE_BENCH_BASELINE.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench import airlock_bundle
from bench.measure import Run, run

ROOT = Path(__file__).resolve().parent.parent
BASELINE_COMMIT = "01f906e"  # issue 10's last commit: the first-generation checks (markers, not structure)
GOAL = 1.3  # the new checks may cost at most 1.3x of the first generation's bundle time (issue 11)


def _worktree(work: Path, commit: str) -> Path:
    """A read-only checkout of `commit` under `work`, reused when it is already there."""
    target = work / f"checker-{commit}"
    if (target / "output_checks").is_dir():
        return target
    if target.exists():
        shutil.rmtree(target)
    subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=True)
    done = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(target), commit],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"cannot check out the baseline checker {commit}: {done.stderr.strip()}")
    return target


# The checks engine of one tree, in this process (its packages first on sys.path, ahead of the editable install),
# on every core, default policy: the checks themselves, without the checker sandbox (its cost is airlock_sandbox's).
ENGINE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from output_checks.engine import check_paths
report = check_paths([Path(p) for p in sys.argv[2:]])
print(json.dumps({"files": [{"path": f.path, "verdict": f.verdict.value} for f in report.files]}))
"""


def _check(tree: Path, paths: list[Path]) -> list[str]:
    return [sys.executable, "-c", ENGINE, str(tree), *map(str, paths)]


def _verdicts(stdout: str) -> dict[str, str]:
    return {f["path"]: f["verdict"] for f in json.loads(stdout)["files"]}


def bench(work: Path, scale: float, repeats: int) -> dict:
    commit = os.environ.get("ENCLAVE_BENCH_BASELINE", BASELINE_COMMIT)
    flat_mb = (10, 100) if scale >= 1 else (max(1, round(10 * scale)), max(2, round(100 * scale)))
    bundle = airlock_bundle.prepare(work, scale, flat_mb) / "bundle"
    size = airlock_bundle.tree_bytes(bundle)
    sides = {"baseline": _worktree(work, commit), "enclave": ROOT}
    runs: dict[str, list[Run]] = {side: [] for side in sides}
    for i in range(repeats):
        order = list(sides) if i % 2 == 0 else list(reversed(sides))  # neither side always runs warm
        for side in order:
            runs[side].append(run(_check(sides[side], [bundle]), cwd=sides[side]))
    seconds = {side: [r.seconds for r in rs] for side, rs in runs.items()}
    ratios = [e / b for e, b in zip(seconds["enclave"], seconds["baseline"], strict=True)]
    before, after = _verdicts(runs["baseline"][0].stdout), _verdicts(runs["enclave"][0].stdout)
    moved = Counter(f"{before.get(p, 'absent')}->{v}" for p, v in after.items() if before.get(p) != v)
    return {
        "baseline": f"the checks engine at commit {commit} (first generation), in-process, same bundle, alternating",
        "bytes": size,
        "files": len(after),
        "repeats": repeats,
        "baseline_s": statistics.median(seconds["baseline"]),
        "enclave_s": statistics.median(seconds["enclave"]),
        "ratio": statistics.median(ratios),
        "ratio_spread": [min(ratios), max(ratios)],
        "goal": GOAL,
        "baseline_mb_per_s": size / 1e6 / statistics.median(seconds["baseline"]),
        "enclave_mb_per_s": size / 1e6 / statistics.median(seconds["enclave"]),
        "baseline_peak_rss_bytes": max(r.peak_rss for r in runs["baseline"]),
        "peak_rss_bytes": max(r.peak_rss for r in runs["enclave"]),
        "verdicts": {side: dict(Counter(_verdicts(rs[0].stdout).values())) for side, rs in runs.items()},
        "verdicts_moved": dict(moved),
        "load_average_at_end": os.getloadavg(),
    }


def report(r: dict) -> str:
    lo, hi = r["ratio_spread"]
    return "\n".join(
        [
            f"\nairlock checker generations: the {r['bytes'] / 1e6:.0f} MB bundle ({r['files']} files), "
            f"{r['repeats']} alternating runs each",
            f"  baseline: {r['baseline']}",
            f"  baseline {r['baseline_s']:.1f}s ({r['baseline_mb_per_s']:.2f} MB/s, peak "
            f"{r['baseline_peak_rss_bytes'] / 2**20:.0f} MiB); this tree {r['enclave_s']:.1f}s "
            f"({r['enclave_mb_per_s']:.2f} MB/s, peak {r['peak_rss_bytes'] / 2**20:.0f} MiB)",
            f"  ratio {r['ratio']:.2f}x (spread {lo:.2f}-{hi:.2f}x; goal <= {r['goal']}x: "
            f"{'met' if r['ratio'] <= r['goal'] else 'NOT met'})",
            f"  verdicts: baseline {r['verdicts']['baseline']}, this tree {r['verdicts']['enclave']}; "
            f"moved {r['verdicts_moved']}",
        ]
    )
