"""The SLURM benchmarks' parts that need no SLURM: they are registered with `python -m bench`, their sizes and job
shape parse, the project spec they provision is valid, the model on paper says it is one and follows from its
inputs, and the report shows each figure with its ratio. (Their figures come from running them; nothing here times
anything.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import slurm_benchmarks
from bench.__main__ import BENCHMARKS, _size
from bench.slurm_enclave import PROJECT, JobShape
from bench.slurm_model import Assumptions, cohort_model, model_lines
from fabric.projects import ProjectSpec

pytestmark = pytest.mark.unit


def test_they_are_make_bench_s_benchmarks_at_the_issue_s_sizes() -> None:
    assert BENCHMARKS["slurm_allele_frequencies"][1] == ["5000x50000"]
    assert BENCHMARKS["slurm_startup"][2] == 10
    assert slurm_benchmarks.cohort(BENCHMARKS["slurm_scaling"][1][0]) == (5000, 12500)
    assert slurm_benchmarks.SCALES == (1, 4, 16)
    assert _size("500x5000") == "500x5000" and _size("20") == 20 and _size("1.5") == 1.5


def test_a_cohort_size_is_samples_by_variants() -> None:
    assert slurm_benchmarks.cohort("5,000x50_000") == (5000, 50000)
    with pytest.raises(SystemExit, match="SAMPLESxVARIANTS"):
        slurm_benchmarks.cohort("5000")


def test_nearest_rank_p95() -> None:
    assert slurm_benchmarks.p95([3.0, 1.0, 2.0]) == 3.0
    assert slurm_benchmarks.p95([float(n) for n in range(1, 101)]) == 95.0


def test_the_job_shape_from_the_environment_and_the_spec_it_provisions(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENCLAVE_BENCH_SLURM_SHAPE", "4x2:4GiB")
    shape = JobShape.for_this_machine()
    assert (shape.jobs, shape.cores, shape.memory) == (4, 2, 4 * 2**30)
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: {PROJECT}\ntitle: t\npurpose: DS-CVD\ndatasets: ['*']\n{shape.spec_compute()}\n")
    compute = ProjectSpec.load(spec).compute
    assert (compute.dask_workers, compute.threads_per_worker, compute.memory_bytes()) == (1, 2, 4 * 2**30)
    monkeypatch.setenv("ENCLAVE_BENCH_SLURM_SHAPE", "four")
    with pytest.raises(SystemExit, match="JOBSxCORES:MEMORY"):
        JobShape.for_this_machine()
    monkeypatch.delenv("ENCLAVE_BENCH_SLURM_SHAPE")
    assert 1 <= JobShape.for_this_machine().jobs <= 4


def test_the_model_is_labelled_and_follows_from_its_inputs() -> None:
    assumptions = Assumptions(genomes=10, variant_sites=1000, nodes=2, cores_per_node=5)
    model = cohort_model({"genotypes_per_s_per_thread": 100.0}, 0.5, assumptions)
    assert model["label"] == "MODEL ON PAPER, NOT A MEASUREMENT"
    assert model["compute_hours"] == pytest.approx(10_000 / (100 * 10) / 3600)
    assert model["vcf_terabytes"] == pytest.approx(5000 / 1e12)
    lines = model_lines(model)
    assert lines[0].startswith("MODEL ON PAPER") and any("it assumes" in line for line in lines)


def test_the_report_shows_each_ratio_and_peak() -> None:
    frequencies = {"baseline_s": 10.0, "enclave_s": 11.0, "ratio": 1.1, "ratio_spread": [1.05, 1.2],
                   "baseline_peak_rss_bytes": 2**30, "peak_rss_bytes": 2 * 2**30}  # fmt: skip
    startup = {"starts": 10, "baseline_s": 3.0, "enclave_s": 3.6, "ratio": 1.2, "ratio_spread": [1.1, 1.3],
               "baseline_p95_s": 4.0, "enclave_p95_s": 5.0, "p95_ratio": 1.25, "baseline_peak_rss_bytes": 2**29,
               "peak_rss_bytes": 2**29}  # fmt: skip
    text = slurm_benchmarks.report({"slurm_allele_frequencies": {"5000x50000": frequencies},
                                    "slurm_startup": {"2 jobs": startup}})  # fmt: skip
    assert "1.10x" in text and "1.05-1.20x" in text and "1024Mi" in text and "2048Mi" in text
    assert "1.20x" in text and "1.25x" in text
