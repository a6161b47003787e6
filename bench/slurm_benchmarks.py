"""`make bench`'s SLURM benchmarks (issue 13): a project's Dask cluster on SLURM (clusters/slurm.py), each against
a named baseline measured side by side in the same run, on a one-machine SLURM this module starts and stops
(clusters/dev_slurm.py). Root only, with Debian's slurmctld, slurmd, slurm-client, munge and bubblewrap.

  slurm_allele_frequencies  allele frequencies over SAMPLESxVARIANTS (default 5000x50000: ten times the bytes of
                            `allele_frequencies`) on J SLURM workers  vs  a LocalCluster of J workers of the same
                            threads and memory, on this machine. Goal <= 1.15x.
  slurm_startup             from project_cluster() to all J workers connected, median and p95 over the starts  vs
                            dask-jobqueue's own SLURMCluster, no sandbox and no TLS, same jobs. Goal <= 1.3x.
  slurm_scaling             allele frequencies at 1x, 4x and 16x the bytes (more variants, same samples; default 1x
                            is 5000x12500) on SLURM workers: seconds per GB at each size (flat is the goal), ratio to
                            1x; and a model on paper of a 16-node cluster over a 100,000-genome cohort.

The job shape (J jobs of one worker with C threads and M bytes) is $ENCLAVE_BENCH_SLURM_SHAPE (JOBSxCORES:MEMORY),
else up to 4 jobs splitting this machine's cores, 3 GiB each (bench/slurm_enclave.py `JobShape`).

What is timed. Allele frequencies: the researcher's client, run by the workspace environment's Python as the
project's account in its sandbox (as a kernel will be), once every worker is connected and has imported the readers:
`open_project().allele_frequencies().compute()` over the view at /project/data, the first compute (the second is
reported too). The scheduler has imported the readers as well: a SLURM cluster's scheduler is a process of its own
that imports them when it first unpickles a graph (about 1 s on two busy cores, once per cluster, reported as
`scheduler_warm_s`), where a LocalCluster's is the client's process, which has them already. The view's file is read
once beforehand, so both sides start from a warm page cache; the two sides alternate within each repeat. Start-up:
from the call that makes the cluster to `wait_for_workers(J)` returning, in the process that holds the cluster (the
broker, which learns its workers from the scheduler's dashboard JSON, polled as often as distributed's own wait asks
its scheduler: clusters/slurm.py), including sbatch, SLURM's scheduling, each job building its sandbox, the workers'
start and their TLS handshakes; the node is idle again before each start, and the close is reported apart
(Enclave's waits until SLURM lists none of its jobs, dask-jobqueue's returns after scancel).

What is left out: the relay that carries the workspace kernel's connection to the scheduler (being built
separately: here the client reaches the scheduler over loopback directly, so its added latency is not in these
figures); `open_project().client()` choosing SLURM from the project's spec (not built yet: the broker's
`project_cluster` is timed instead); the hub and the dashboard; a multi-node file system (one machine's page cache).

Peak memory: the largest resident memory seen, sampled every 50 ms, of the measured process's tree (the sandboxed
scheduler, the sandboxed client and a LocalCluster's workers) together with the processes of its SLURM jobs
(slurmstepd and the sandboxed worker under it), each process counted once.
"""

from __future__ import annotations

import statistics
from contextlib import contextmanager
from pathlib import Path

from bench.fabric_benchmarks import af_view
from bench.slurm_enclave import JobShape, bench_enclave, child, require_root_and_slurm, say, wait_idle, warm_cache
from bench.slurm_model import cohort_model, model_lines

GOAL_FREQUENCIES = 1.15
GOAL_STARTUP = 1.3
SCALES = (1, 4, 16)
BLOCK_ROWS = 10_000  # variants drawn and written at a time: a large cohort is never one matrix in memory


def cohort(size: str | int) -> tuple[int, int]:
    """'SAMPLESxVARIANTS' -> (samples, variants)."""
    try:
        samples, variants = (int(part.replace("_", "").replace(",", "")) for part in str(size).lower().split("x"))
    except ValueError:
        raise SystemExit(f"{size!r}: a SLURM benchmark's size is SAMPLESxVARIANTS, e.g. 5000x50000") from None
    return samples, variants


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile (with 20 values or fewer, the largest)."""
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


@contextmanager
def slurm_and_enclave(work: Path):
    from clusters.dev_slurm import running_slurm

    require_root_and_slurm()
    shape = JobShape.for_this_machine()
    say(f"starting a one-machine SLURM; jobs of {shape}")
    with running_slurm() as slurm, bench_enclave(work, shape) as enclave:
        yield slurm, enclave


def cohort_view(work: Path, size: str | int) -> tuple[Path, int, int]:
    samples, variants = cohort(size)
    say(f"the {samples} x {variants} cohort (generated once under {work}) …")
    return af_view(work, variants, samples, block_rows=BLOCK_ROWS), samples, variants


def vcf_bytes(view: Path) -> int:
    return sum(p.stat().st_size for p in view.rglob("*.vcf.gz"))


# ------------------------------------------------------------------------------------------------ allele frequencies


def frequencies_pair(slurm, enclave, repeat: int) -> dict[str, dict]:
    """One run of each side, alternating which goes first."""
    jobs = enclave.shape.jobs
    sides = ["local", "slurm"] if repeat % 2 == 0 else ["slurm", "local"]
    out = {}
    for side in sides:
        say(f"  allele frequencies, {side}, repeat {repeat + 1} …")
        wait_idle(slurm)
        out[side] = child(f"frequencies-{side}", enclave.home, enclave.project, jobs)
        say(f"    compute {out[side]['compute_s']:.2f} s, peak {out[side]['peak_rss_bytes'] / 2**20:.0f} MiB")
    return out


def bench_slurm_allele_frequencies(work: Path, sizes: list, repeats: int) -> dict:
    results = {}
    with slurm_and_enclave(work) as (slurm, enclave):
        for size in sizes:
            view, samples, variants = cohort_view(work, size)
            enclave.publish(view)
            warm_cache(view)
            pairs = [frequencies_pair(slurm, enclave, n) for n in range(repeats)]
            ours = [p["slurm"]["compute_s"] for p in pairs]
            base = [p["local"]["compute_s"] for p in pairs]
            per_pair = sorted(p["slurm"]["compute_s"] / p["local"]["compute_s"] for p in pairs)
            ratio = statistics.median(ours) / statistics.median(base)
            results[f"{samples}x{variants}"] = {
                "baseline": f"LocalCluster of {enclave.shape} in the project's sandbox, same client",
                "shape": str(enclave.shape),
                "baseline_s": statistics.median(base),
                "enclave_s": statistics.median(ours),
                "ratio": ratio,
                "ratio_spread": [per_pair[0], per_pair[-1]],
                "goal": GOAL_FREQUENCIES,
                "scheduler_warm_s": _median(pairs, "slurm", "scheduler_warm_s"),  # once per cluster, not in the ratio
                "second_compute": {
                    "slurm": _median(pairs, "slurm", "again_s"),
                    "local": _median(pairs, "local", "again_s"),
                },
                "vcf_bytes": vcf_bytes(view),
                "rows": pairs[0]["slurm"]["rows"],
                "threads": pairs[0]["slurm"]["threads"],
                "peak_rss_bytes": max(p["slurm"]["peak_rss_bytes"] for p in pairs),
                "baseline_peak_rss_bytes": max(p["local"]["peak_rss_bytes"] for p in pairs),
                "workers_peak_rss_bytes": max(p["slurm"]["jobs_peak_rss_bytes"] for p in pairs),
                "runs": pairs,
            }
            say(
                f"allele frequencies {samples}x{variants}: SLURM {statistics.median(ours):.2f} s, LocalCluster "
                f"{statistics.median(base):.2f} s, {ratio:.2f}x (goal <= {GOAL_FREQUENCIES}x)"
            )
    return results


def _median(pairs: list[dict], side: str, key: str) -> float:
    return statistics.median(p[side][key] for p in pairs)


# ------------------------------------------------------------------------------------------------ start-up


def bench_slurm_startup(work: Path, sizes: list, repeats: int) -> dict:
    """`repeats` starts of each side, alternating; sizes: the number of jobs (default: the shape's)."""
    with slurm_and_enclave(work) as (slurm, enclave):
        cohort_size = "50x100"  # a cluster needs a published view to pin; its size does not matter here
        view, _, _ = cohort_view(work, cohort_size)
        enclave.publish(view)
        logs = work / "slurm-plain-logs"
        logs.mkdir(parents=True, exist_ok=True)
        results = {}
        for jobs in [int(s) for s in sizes] or [enclave.shape.jobs]:
            runs: dict[str, list[dict]] = {"enclave": [], "plain": []}
            for n in range(repeats):
                for side in ("enclave", "plain") if n % 2 == 0 else ("plain", "enclave"):
                    wait_idle(slurm)
                    if side == "enclave":
                        run = child("startup-enclave", enclave.home, enclave.project, jobs)
                    else:
                        shape = enclave.shape
                        run = child("startup-plain", enclave.workspace_env, jobs, shape.cores, shape.memory, logs)
                    runs[side].append(run)
                    say(f"  start {n + 1}/{repeats}, {side}: {jobs} workers ready in {run['ready_s']:.2f} s")
            results[f"{jobs} jobs"] = startup_summary(runs, enclave.shape)
    return results


def startup_summary(runs: dict[str, list[dict]], shape: JobShape) -> dict:
    ours = [r["ready_s"] for r in runs["enclave"]]
    base = [r["ready_s"] for r in runs["plain"]]
    per_pair = sorted(a / b for a, b in zip(ours, base, strict=True))
    return {
        "baseline": "dask-jobqueue's SLURMCluster, no sandbox, no TLS, same jobs and workspace Python",
        "shape": str(shape),
        "starts": len(ours),
        "baseline_s": statistics.median(base),
        "enclave_s": statistics.median(ours),
        "ratio": statistics.median(ours) / statistics.median(base),
        "ratio_spread": [per_pair[0], per_pair[-1]],
        "baseline_p95_s": p95(base),
        "enclave_p95_s": p95(ours),
        "p95_ratio": p95(ours) / p95(base),
        "goal": GOAL_STARTUP,
        "cluster_made_s": {  # of ready_s: the call that makes the cluster (Enclave's: certificates, its folder,
            # the seccomp filter, the sandboxed scheduler started), before any job is submitted
            "enclave": statistics.median(r["cluster_made_s"] for r in runs["enclave"]),
            "plain": statistics.median(r["cluster_made_s"] for r in runs["plain"]),
        },
        "close_s": {
            "enclave": statistics.median(r["close_s"] for r in runs["enclave"]),
            "plain": statistics.median(r["close_s"] for r in runs["plain"]),
        },
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs["enclave"]),
        "baseline_peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs["plain"]),
        "runs": runs,
    }


# ------------------------------------------------------------------------------------------------ scaling


def bench_slurm_scaling(work: Path, sizes: list, repeats: int) -> dict:
    """sizes[0] is the 1x cohort; 4x and 16x have that many times its variants (and bytes)."""
    samples, variants = cohort(sizes[0])
    points = {}
    with slurm_and_enclave(work) as (slurm, enclave):
        for scale in SCALES:
            view, _, _ = cohort_view(work, f"{samples}x{variants * scale}")
            enclave.publish(view)
            warm_cache(view)
            runs = []
            for n in range(repeats):
                say(f"  scaling {scale}x, repeat {n + 1}/{repeats} …")
                wait_idle(slurm)
                runs.append(child("frequencies-slurm", enclave.home, enclave.project, enclave.shape.jobs))
            seconds = statistics.median(r["compute_s"] for r in runs)
            size = vcf_bytes(view)
            genotypes = samples * variants * scale
            points[f"{scale}x"] = {
                "cohort": f"{samples}x{variants * scale}",
                "vcf_bytes": size,
                "enclave_s": seconds,
                "spread_s": [min(r["compute_s"] for r in runs), max(r["compute_s"] for r in runs)],
                "s_per_gb": seconds / (size / 1e9),
                "genotypes_per_s_per_thread": genotypes / seconds / runs[0]["threads"],
                "threads": runs[0]["threads"],
                "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
                "workers_peak_rss_bytes": max(r["jobs_peak_rss_bytes"] for r in runs),
            }
            say(f"scaling {scale}x: {seconds:.2f} s, {points[f'{scale}x']['s_per_gb']:.1f} s/GB")
    first = points["1x"]["s_per_gb"]
    for point in points.values():
        point["ratio"] = point["s_per_gb"] / first  # time per GB against 1x, same run: flat is 1.0
    model = cohort_model(points[f"{SCALES[-1]}x"], points["1x"]["vcf_bytes"] / (samples * variants))
    return {"baseline": "seconds per GB at 1x, same run", "shape": str(enclave.shape), "points": points, "model": model}


# ------------------------------------------------------------------------------------------------ report


def report(results: dict) -> str:
    lines = []
    if "slurm_allele_frequencies" in results:
        lines += ["", "SLURM allele frequencies (vs a LocalCluster of the same shape, same run; goal <= 1.15x)"]
        lines.append(
            f"{'cohort':<14} {'local s':>8} {'slurm s':>8} {'ratio':>7} {'spread':>12} "
            f"{'peak local':>11} {'peak slurm':>11}"
        )
        for size, r in results["slurm_allele_frequencies"].items():
            lines.append(
                f"{size:<14} {r['baseline_s']:>8.2f} {r['enclave_s']:>8.2f} {r['ratio']:>6.2f}x "
                f"{_spread(r):>12} {_mib(r['baseline_peak_rss_bytes']):>11} {_mib(r['peak_rss_bytes']):>11}"
            )
    if "slurm_startup" in results:
        lines += [
            "",
            "SLURM start-up, request -> all workers ready (vs dask-jobqueue's SLURMCluster, no sandbox; goal <= 1.3x)",
        ]
        lines.append(
            f"{'jobs':<8} {'starts':>6} {'plain med':>9} {'ours med':>9} {'ratio':>7} {'spread':>12} "
            f"{'plain p95':>9} {'ours p95':>9} {'p95 ratio':>9} {'peak plain':>11} {'peak ours':>10}"
        )
        for jobs, r in results["slurm_startup"].items():
            lines.append(
                f"{jobs:<8} {r['starts']:>6} {r['baseline_s']:>9.2f} {r['enclave_s']:>9.2f} "
                f"{r['ratio']:>6.2f}x {_spread(r):>12} {r['baseline_p95_s']:>9.2f} {r['enclave_p95_s']:>9.2f} "
                f"{r['p95_ratio']:>8.2f}x {_mib(r['baseline_peak_rss_bytes']):>11} "
                f"{_mib(r['peak_rss_bytes']):>10}"
            )
    if "slurm_scaling" in results:
        r = results["slurm_scaling"]
        lines += ["", f"SLURM scaling ({r['shape']}; time per GB of bgzipped VCF against 1x, same run: flat is 1.0)"]
        lines.append(
            f"{'scale':<6} {'cohort':<16} {'MB':>8} {'s':>8} {'s/GB':>8} {'vs 1x':>7} {'Mgt/s/thread':>13} {'peak':>9}"
        )
        for scale, p in r["points"].items():
            lines.append(
                f"{scale:<6} {p['cohort']:<16} {p['vcf_bytes'] / 1e6:>8.1f} {p['enclave_s']:>8.2f} "
                f"{p['s_per_gb']:>8.1f} {p['ratio']:>6.2f}x {p['genotypes_per_s_per_thread'] / 1e6:>13.2f} "
                f"{_mib(p['peak_rss_bytes']):>9}"
            )
        lines += ["", *model_lines(r["model"])]
    return "\n".join(lines)


def _spread(r: dict) -> str:
    low, high = r["ratio_spread"]
    return f"{low:.2f}-{high:.2f}x"


def _mib(value: int) -> str:
    return f"{value / 2**20:.0f}Mi"
