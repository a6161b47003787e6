"""A model on paper, not a measurement: what a 16-node SLURM cluster would take to compute allele frequencies over a
100,000-genome cohort, extrapolated from the per-thread throughput `slurm_scaling` measured (bench/slurm_benchmarks.py).
Every assumption is a named field of `Assumptions` and is printed with the figures (docs/developers.md repeats them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Assumptions:
    genomes: int = 100_000
    # Variant sites of a jointly called whole-genome cohort of that size: UK Biobank's 150,119 genomes held about
    # 585 million SNVs and 59 million indels (Halldorsson et al., Nature 2022); 600 million is the order for 100,000.
    variant_sites: int = 600_000_000
    nodes: int = 16
    cores_per_node: int = 32  # one Dask thread per core, each as fast as one thread measured here
    per_task_overhead_s: float = 0.001  # the distributed scheduler's cost per task, the order Dask documents
    chunk_bytes: int = 512 * 2**10  # workbench's compressed VCF bytes per task (ProjectView.chunk_bytes default)


def cohort_model(largest: dict, bytes_per_genotype: float, assumptions: Assumptions | None = None) -> dict:
    """The model from the scaling benchmark's largest point (its genotypes per second per thread) and the measured
    bgzipped bytes per genotype of the synthetic VCF."""
    a = assumptions or Assumptions()
    per_thread = largest["genotypes_per_s_per_thread"]
    genotypes = a.genomes * a.variant_sites
    threads = a.nodes * a.cores_per_node
    compute_s = genotypes / (per_thread * threads)
    total_bytes = genotypes * bytes_per_genotype
    tasks = total_bytes / a.chunk_bytes
    scheduler_s = tasks * a.per_task_overhead_s
    # the chunk size at which the scheduler's serial work is 5% of the compute
    chunk_for_5_percent = a.chunk_bytes * scheduler_s / (0.05 * compute_s)
    return {
        "label": "MODEL ON PAPER, NOT A MEASUREMENT",
        "assumptions": asdict(a),
        "measured_genotypes_per_s_per_thread": per_thread,
        "measured_bytes_per_genotype": bytes_per_genotype,
        "genotypes": genotypes,
        "threads": threads,
        "compute_hours": compute_s / 3600,
        "core_hours": compute_s * threads / 3600,
        "vcf_terabytes": total_bytes / 1e12,
        "read_gb_per_s_needed": total_bytes / compute_s / 1e9,
        "tasks": tasks,
        "scheduler_hours_at_chunk_bytes": scheduler_s / 3600,
        "chunk_bytes_for_5_percent_scheduler": chunk_for_5_percent,
        "caveats": [
            "the per-genotype cost stays what 16x measured (slurm_scaling checks it is flat from 1x to 16x on one "
            "machine, nothing beyond)",
            "the cluster's cores are as fast as this machine's, and the work splits into independent chunks (allele "
            "frequencies need no shuffle: per-variant counts are gathered, not exchanged)",
            "the VCFs carry GT only, like the synthetic one: real ones also carry AD, DP, GQ, PL..., which cost parse "
            "time and bytes per genotype; rare variants compress better than these",
            "the file system delivers `read_gb_per_s_needed` to the nodes together; the scheduler's serial cost "
            "is counted apart (it overlaps the compute only while it is the smaller of the two)",
            "worker start-up, queueing behind other jobs and writing the result are not counted",
        ],
    }


def model_lines(model: dict) -> list[str]:
    a = model["assumptions"]
    return [
        f"{model['label']}: a {a['nodes']}-node SLURM cluster ({a['nodes']} x {a['cores_per_node']} cores) over "
        f"{a['genomes']:,} genomes x {a['variant_sites']:,} variant sites ({model['genotypes']:.1e} genotypes)",
        f"  from the measured {model['measured_genotypes_per_s_per_thread'] / 1e6:.2f} M genotypes/s per thread and "
        f"{model['measured_bytes_per_genotype']:.3f} bgzipped bytes per genotype:",
        f"  compute {model['compute_hours']:.1f} h wall ({model['core_hours']:,.0f} core-hours), reading "
        f"{model['vcf_terabytes']:.1f} TB at {model['read_gb_per_s_needed']:.2f} GB/s across the nodes",
        f"  {model['tasks']:.2e} tasks at {a['chunk_bytes'] / 2**20:.1f} MiB each: "
        f"{model['scheduler_hours_at_chunk_bytes']:.1f} h of scheduler time at {a['per_task_overhead_s'] * 1e3:.0f} ms "
        f"per task; chunks of {model['chunk_bytes_for_5_percent_scheduler'] / 2**20:.0f} MiB would keep it to 5%",
        "  it assumes:",
        *(f"  - {caveat}" for caveat in model["caveats"]),
    ]
