"""`python -m bench --against COMMIT`: this tree's benchmarks against the same benchmarks of Enclave at an earlier
commit, side by side in one run. Each round runs every named benchmark once in each tree, as a child process of its
own tree's `python -m bench` (the earlier commit from a git worktree under the work folder, with inputs of its own),
in alternating order, so a slow minute of a noisy machine falls on both sides. Reported per measurement: this tree's
median Enclave time over the earlier commit's, the spread of the per-round ratios, and the same for each tree's ratio
to its in-run baseline (which also cancels the machine's drift). A structural change promises at most 1.05x.

Only benchmarks whose figures are Enclave-vs-baseline times per size compare this way (materialise,
allele_frequencies, dicom_index, airlock_release, airlock_sandbox, airlock_web); the others carry their own
earlier-commit comparisons (airlock_generations, airlock_responsiveness, workspaces).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.airlock_generations import _worktree
from bench.measure import ROOT, log

COMPARABLE = ("materialise", "allele_frequencies", "dicom_index", "airlock_release", "airlock_sandbox", "airlock_web")
GOAL = 1.05


def run_tree(tree: Path, work: Path, names: list[str], repeats: int, sizes: list | None = None) -> dict:
    """One `python -m bench` of `tree` (its own code first on the path), its results as written; `sizes` instead of
    each benchmark's own (the earlier tree's bench must take `--size` too)."""
    work.mkdir(parents=True, exist_ok=True)
    only = [arg for name in names for arg in ("--only", name)]
    only += [arg for size in sizes or [] for arg in ("--size", str(size))]
    env = {**os.environ, "PYTHONPATH": str(tree), "ENCLAVE_HOME": str(work / "home")}
    command = [sys.executable, "-m", "bench", *only, "--work", str(work), "--repeats", str(repeats)]
    done = subprocess.run(command, cwd=tree, env=env, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench at {tree} failed ({done.returncode}); its log is above")
    return json.loads((tree / "bench" / "results" / "latest.json").read_text())


def figures(results: dict, names: list[str]) -> dict[str, tuple[float, float]]:
    """'name size' -> (Enclave seconds, ratio to its baseline)."""
    found = {}
    for name in names:
        for size, r in (results.get(name) or {}).items():
            if isinstance(r, dict) and "enclave_s" in r:
                found[f"{name} {size}"] = (r["enclave_s"], r["ratio"])
    return found


def bench(work: Path, commit: str, names: list[str], rounds: int, repeats: int, sizes: list | None = None) -> dict:
    unknown = sorted(set(names) - set(COMPARABLE))
    if unknown:
        raise SystemExit(f"--against compares {', '.join(COMPARABLE)}; not {', '.join(unknown)}")
    earlier = _worktree(work, commit)
    sides = {"this tree": (ROOT, work / "against-this"), commit: (earlier, work / f"against-{commit}")}
    seen: dict[str, list[dict]] = {side: [] for side in sides}
    for n in range(rounds):
        order = list(sides) if n % 2 == 0 else list(reversed(sides))
        for side in order:
            log(f"round {n + 1}/{rounds}: {side}")
            tree, folder = sides[side]
            seen[side].append(figures(run_tree(tree, folder, names, repeats, sizes), names))
        partial = {"commit": commit, "rounds": n + 1, "repeats": repeats, "figures": seen}
        (work / f"against-{commit}.partial.json").write_text(json.dumps(partial, indent=2))  # a later failure keeps it
    return {"commit": commit, "rounds": rounds, "repeats": repeats, "figures": seen}


def report(result: dict) -> str:
    commit = result["commit"]
    now, then = result["figures"]["this tree"], result["figures"][commit]
    title = f"\nthis tree against Enclave at {commit}: {result['rounds']} alternating rounds (goal <= {GOAL}x)"
    header = f"{'measurement':<26} {'this s':>8} {'then s':>8} {'time':>7} {'spread':>13} {'vs baseline':>12}"
    lines = [title, header]
    for key in sorted(set().union(*now) & set().union(*then)):
        a = [r[key] for r in now if key in r]
        b = [r[key] for r in then if key in r]
        per_round = sorted(x[0] / y[0] for x, y in zip(a, b, strict=False))
        time_ratio = statistics.median(x[0] for x in a) / statistics.median(y[0] for y in b)
        base_ratio = statistics.median(x[1] for x in a) / statistics.median(y[1] for y in b)
        spread = f"{per_round[0]:.2f}-{per_round[-1]:.2f}x"
        lines.append(f"{key:<26} {statistics.median(x[0] for x in a):>8.2f} {statistics.median(y[0] for y in b):>8.2f} "
                     f"{time_ratio:>6.2f}x {spread:>13} {base_ratio:>11.2f}x")  # fmt: skip
    return "\n".join(lines)
