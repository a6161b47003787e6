"""`make bench`: Enclave against named baselines, side by side in one run, reported as ratios.

  materialise        a 10,000-patient, 5-site cohort's project view   vs  cp -r of the site exports
  allele_frequencies 500 samples x 50,000 variants, 2 Dask workers    vs  bcftools +fill-tags -t AF, one core
  dicom_index        DICOM header index over 2,000 files, 2 workers   vs  cat of the same files
  airlock            `enclave airlock check` on a ~100 MB output bundle  vs  Presidio's BatchAnalyzerEngine, defaults
  airlock_generations  the same bundle, this checker  vs  the checker at a named earlier commit (git worktree)
  airlock_release    submit -> checks done, a 20-file request            vs  the checks engine alone, same files
  airlock_sandbox    the checks of a 20-file request in checker sandboxes  vs  the same checks in-process
  airlock_web        the review list with 1,000 requests, 4 clients      vs  a static file from the same server
  airlock_responsiveness  the review list's p95 while 1 GiB is submitted  vs  the same page with no submission
                     (and vs the airlock at a named earlier commit submitting the same file: git worktree)
  workspaces         hub start, spawn -> ready (1 and 10 at once), idle memory  vs  plain JupyterHub, stock spawner
                     (and vs Enclave at named earlier commits: $ENCLAVE_BENCH_WORKSPACES_AGAINST, git worktrees)
  sandbox_filters    a syscall-heavy loop with the seccomp filter; a kernel start confined  vs  the same without
  slurm_allele_frequencies  5,000 x 50,000 on SLURM workers (sandboxed, TLS)  vs  a LocalCluster of the same shape
  slurm_startup      project_cluster() -> all workers ready, median and p95 of 10  vs  dask-jobqueue's SLURMCluster
  slurm_scaling      allele frequencies at 1x, 4x, 16x bytes on SLURM workers: s/GB vs 1x; a 16-node model on paper
                     (the three: bench/slurm_benchmarks.py; root, on a one-machine SLURM started for the run)
  federation_estimates  the federated notebook's model pooled by meta-analysis  vs  one fit on the pooled rows:
                     per term, |difference| in standard errors and CI overlap (bench/federation_benchmarks.py)
  federation_overhead   a federated run across five local sites, end to end  vs  the notebook run directly at each
                     site, all at once: goal <= 1.5x of the slowest (root)

`python -m bench --only NAME --size SIZE` runs one at a size of your choosing (e.g. `--only slurm_allele_frequencies
--size 500x5000`; the SLURM ones read SAMPLESxVARIANTS, the others their numbers as in BENCHMARKS below).
`python -m bench --against COMMIT [--only NAME ...]` runs them beside Enclave at an earlier commit (bench/against.py).

Each candidate also runs at a smaller size, and its peak memory (whole process tree) is reported at both sizes.
Inputs are generated (deterministically) under var/bench/ and reused; results go to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from bench.airlock_benchmarks import (
    bench_airlock,
    bench_airlock_release,
    bench_airlock_responsiveness,
    bench_airlock_sandbox,
    bench_airlock_web,
    report_airlock,
)
from bench.fabric_benchmarks import bench_allele_frequencies, bench_dicom_index, bench_materialise
from bench.measure import ROOT, log


def bench_federation(name: str):
    """A federation benchmark, imported when it runs (bench/federation_benchmarks.py)."""

    def run_it(work: Path, sizes: list, repeats: int) -> dict:
        from bench import federation_benchmarks

        return getattr(federation_benchmarks, name)(work, sizes, repeats)

    return run_it


def bench_workspaces(work: Path, sizes: list[int], repeats: int) -> dict:
    """Enclave's hub against plain JupyterHub: size is the number of people spawning at once, repeats the
    one-at-a-time spawns (bench/workspaces.py; root only). $ENCLAVE_BENCH_WORKSPACES_AGAINST: commits (separated by
    spaces or commas) whose Enclave runs side by side too."""
    from bench import workspaces

    against = tuple(os.environ.get("ENCLAVE_BENCH_WORKSPACES_AGAINST", "").replace(",", " ").split())
    result = workspaces.bench(work, sizes[0], repeats, against=against)
    workspaces.write(result)
    return result


def bench_airlock_generations(work: Path, sizes: list[float], repeats: int) -> dict:
    """This tree's checker against the first generation's on the whole bundle (bench/airlock_generations.py)."""
    from bench import airlock_generations

    result = airlock_generations.bench(work, sizes[0], repeats)
    log(airlock_generations.report(result))
    return result


def bench_sandbox_filters(work: Path, sizes: list[int], repeats: int) -> dict:
    """The seccomp filter and the kernels' Landlock confinement, each against the same sandboxed command without
    it (bench/sandbox_filters.py; root only)."""
    from bench import sandbox_filters
    from kernel.config import Paths

    result = sandbox_filters.bench(Paths.from_env().workspace_env, repeats)
    log(sandbox_filters.report(result))
    return result


def bench_slurm(name: str):
    """One of bench/slurm_benchmarks.py's, imported when it runs (it needs root and SLURM)."""

    def run(work: Path, sizes: list, repeats: int) -> dict:
        from bench import slurm_benchmarks

        return getattr(slurm_benchmarks, f"bench_{name}")(work, sizes, repeats)

    return run


BENCHMARKS = {
    "materialise": (bench_materialise, [2000, 10000], 2),
    "allele_frequencies": (bench_allele_frequencies, [25000, 50000], 3),
    "dicom_index": (bench_dicom_index, [1000, 2000], 5),
    "airlock": (bench_airlock, [1.0], 3),  # size: the bundle's scale (1.0 is ~100 MB)
    "airlock_generations": (bench_airlock_generations, [1.0], 3),  # size: the bundle's scale
    "airlock_release": (bench_airlock_release, [20], 3),  # size: files in the request
    "airlock_sandbox": (bench_airlock_sandbox, [20], 5),  # size: files in the request
    "airlock_web": (bench_airlock_web, [1000], 1),  # size: requests in the database
    "airlock_responsiveness": (bench_airlock_responsiveness, [2**30], 3),  # size: bytes submitted
    "workspaces": (bench_workspaces, [10], 15),  # size: people spawning at once; repeats: one-at-a-time spawns
    "sandbox_filters": (bench_sandbox_filters, [], 15),  # repeats: interleaved runs of each side
    "slurm_allele_frequencies": (bench_slurm("slurm_allele_frequencies"), ["5000x50000"], 3),  # SAMPLESxVARIANTS
    "slurm_startup": (bench_slurm("slurm_startup"), [], 10),  # size: jobs (default: the shape's); repeats: starts
    "slurm_scaling": (bench_slurm("slurm_scaling"), ["5000x12500"], 2),  # size: the 1x cohort (4x, 16x follow)
    "federation_estimates": (bench_federation("bench_estimates"), [2000], 1),  # size: patients over five sites
    "federation_overhead": (bench_federation("bench_overhead"), [200], 3),  # size: patients; repeats: runs
}
FEDERATION = ("federation_estimates", "federation_overhead")
SLURM = ("slurm_allele_frequencies", "slurm_startup", "slurm_scaling")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(BENCHMARKS), action="append", help="run only these (repeatable)")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench", help="where inputs are generated")
    parser.add_argument("--repeats", type=int, help="override the repeats per measurement")
    parser.add_argument("--size", action="append", type=_size, help="override the sizes of those run (repeatable)")
    parser.add_argument("--against", metavar="COMMIT", help="this tree against the same benchmarks at COMMIT")
    parser.add_argument("--rounds", type=int, default=3, help="with --against: alternating rounds (default 3)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.against:
        from bench import against

        names = args.only or list(against.COMPARABLE)
        result = against.bench(args.work, args.against, names, args.rounds, args.repeats or 1, args.size)
        print(against.report(result))
        target = ROOT / "bench" / "results"
        target.mkdir(exist_ok=True)
        (target / f"against-{args.against}.json").write_text(json.dumps(result, indent=2, default=str))
        return
    os.environ.setdefault("ENCLAVE_HOME", str(args.work / "home"))
    results: dict = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count()}
    for name in args.only or list(BENCHMARKS):
        fn, sizes, repeats = BENCHMARKS[name]
        results[name] = fn(args.work, args.size or sizes, args.repeats or repeats)
    report(results)
    target = ROOT / "bench" / "results"
    target.mkdir(exist_ok=True)
    (target / "latest.json").write_text(json.dumps(results, indent=2, default=str))


def _size(text: str) -> int | float | str:
    """A size as given: a number where it reads as one (files, bytes, scale), else as written (SAMPLESxVARIANTS)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def report(results: dict) -> None:
    classic = [
        name
        for name in BENCHMARKS
        if name not in ("airlock", "workspaces", "airlock_generations", "airlock_responsiveness", *SLURM, *FEDERATION)
        and name in results
    ]
    if classic:
        print(f"\n{'benchmark':<20} {'size':>8} {'baseline s':>11} {'enclave s':>10} {'ratio':>7} {'peak RSS':>10}")
        for name in classic:
            for size, r in results[name].items():
                print(
                    f"{name:<20} {size:>8} {r['baseline_s']:>11.3f} {r['enclave_s']:>10.3f} {r['ratio']:>6.2f}x "
                    f"{r['peak_rss_bytes'] / 2**20:>8.0f}Mi"
                )
        print("\nbaselines: " + "; ".join(sorted({r["baseline"] for n in classic for r in results[n].values()})))
    if "airlock" in results:
        report_airlock(results["airlock"])
    if "airlock_generations" in results:
        from bench import airlock_generations

        print(airlock_generations.report(results["airlock_generations"]))
    if "airlock_responsiveness" in results:
        from bench import airlock_responsiveness

        print(airlock_responsiveness.report(results["airlock_responsiveness"]))
    if "workspaces" in results:
        from bench import workspaces

        print(workspaces.report(results["workspaces"]))
    if any(name in results for name in FEDERATION):
        from bench import federation_benchmarks

        print(federation_benchmarks.report(results))
    if any(name in results for name in SLURM):
        from bench import slurm_benchmarks

        print(slurm_benchmarks.report(results))


if __name__ == "__main__":
    main()
