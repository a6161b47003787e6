"""`make bench`'s data-fabric benchmarks: materialising a cohort's project view, allele frequencies over a view's
VCF with Dask, and the DICOM header index; each against its named baseline (bench/__main__.py lists them)."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import numpy as np

from bench.measure import ROOT, log, median_run, run, task


def write_view_manifest(view: Path, workers: int = 2) -> None:
    files = sorted(p for p in view.rglob("*") if p.is_file() and p.name != "MANIFEST.json")
    manifest = {
        "project": "bench",
        "compute": {"dask_workers": workers, "threads_per_worker": 1, "memory_limit": 4 * 2**30},
        "files": [{"path": p.relative_to(view).as_posix(), "bytes": p.stat().st_size} for p in files],
    }
    (view / "MANIFEST.json").write_text(json.dumps(manifest))


# ------------------------------------------------------------------------------------------------ materialise


def provisioned_cohort(work: Path, patients: int) -> Path:
    from kernel.config import Paths
    from provisioning import steps

    home = work / f"cohort-{patients}"
    paths = Paths(home)
    if not (home / ".ready").exists():
        shutil.rmtree(home, ignore_errors=True)
        log(f"generating a {patients}-patient, 5-site cohort in {home} …")
        steps.ensure_cohort(paths, patients=patients, sites=5, seed=42, progress=True)
        registry, _ = steps.ensure_registry(paths)
        steps.ensure_sites(registry, paths, actor="bench")
        steps.ensure_consent(registry, paths, actor="bench")
        steps.ensure_project(registry, steps.DEMO_SPEC, actor="bench")
        registry.close()
        (home / ".ready").touch()
    return home


def _remove_views(project: Path) -> None:
    for path in (project / "views", project / "data"):
        if path.is_symlink():
            path.unlink()
        elif path.exists():
            for folder in [path, *(p for p in path.rglob("*") if p.is_dir())]:
                folder.chmod(0o700)
            shutil.rmtree(path)


def bench_materialise(work: Path, sizes: list[int], repeats: int) -> dict:
    out = {}
    for patients in sizes:
        home = provisioned_cohort(work, patients)
        sites = home / "sites"
        source_bytes = sum(p.stat().st_size for p in sites.rglob("*") if p.is_file())
        copy = work / "cp-target"
        cp_runs, ours_runs = [], []
        for _ in range(repeats):
            shutil.rmtree(copy, ignore_errors=True)
            cp_runs.append(run(["cp", "-r", str(sites), str(copy)]))
            shutil.rmtree(copy, ignore_errors=True)
            _remove_views(home / "projects" / "cardio-risk")  # a first build, as cp makes a fresh copy
            ours_runs.append(run(task("materialise", str(home), "cardio-risk"), cwd=ROOT))
        cp = statistics.median(r.seconds for r in cp_runs)
        ours = statistics.median(json.loads(r.stdout)["compute"] for r in ours_runs)
        detail = json.loads(ours_runs[-1].stdout)
        out[patients] = {
            "baseline": "cp -r of the site exports",
            "baseline_s": cp,
            "enclave_s": ours,
            "ratio": ours / cp,
            "source_bytes": source_bytes,
            "view_bytes": detail["bytes"],
            "patients_in_view": detail["patients"],
            "peak_rss_bytes": max(r.peak_rss for r in ours_runs),
        }
        log(f"materialise {patients}: cp {cp:.1f}s, enclave {ours:.1f}s, ratio {ours / cp:.1f}x")
    return out


# ------------------------------------------------------------------------------------------------ allele frequency


def af_view(work: Path, variants: int, samples: int = 500, *, block_rows: int | None = None) -> Path:
    """A view holding one bgzipped VCF of `samples` x `variants` (generated once under `work`, then reused).
    `block_rows`: draw and write the genotypes that many variants at a time, so that a large cohort never holds its
    whole matrix in memory (a different random stream from the one-matrix default, hence its own folder)."""
    from synthetic_sites.genomics import VcfWriter, background_genotypes, synthetic_panel, write_vcf

    view = work / (f"af-{samples}x{variants}" + (f"-b{block_rows}" if block_rows else ""))
    vcf = view / "genomics" / "bench.vcf.gz"
    if not (view / "MANIFEST.json").exists():
        shutil.rmtree(view, ignore_errors=True)
        vcf.parent.mkdir(parents=True)
        rng = np.random.default_rng(7)
        panel = synthetic_panel(variants, seed=7)
        af = rng.beta(0.4, 2.0, size=len(panel))
        names = [f"P-{i:016d}" for i in range(samples)]
        if block_rows is None:
            write_vcf(vcf, names, panel, background_genotypes(rng, af, samples))
        else:
            with VcfWriter(vcf, names) as writer:  # synthetic_panel's rows are already sorted
                for start in range(0, len(panel), block_rows):
                    rows = slice(start, start + block_rows)
                    writer.write(panel.iloc[rows], background_genotypes(rng, af[rows], samples))
        write_view_manifest(view)
    return view


def bench_allele_frequencies(work: Path, sizes: list[int], repeats: int) -> dict:
    bcftools = shutil.which("bcftools")
    if bcftools is None:
        raise SystemExit("bcftools is not installed (make system-packages, as root)")
    out = {}
    for variants in sizes:
        view = af_view(work, variants)
        vcf = str(view / "genomics" / "bench.vcf.gz")
        base, _ = median_run([bcftools, "+fill-tags", vcf, "-Ou", "-o", "/dev/null", "--", "-t", "AF"], repeats)
        base_oz, _ = median_run(
            [bcftools, "+fill-tags", vcf, "-Oz", "-o", str(view / "af.vcf.gz"), "--", "-t", "AF"], repeats
        )
        ours_runs = [run(task("allele_frequencies", str(view), "2"), cwd=ROOT) for _ in range(repeats)]
        compute = statistics.median(json.loads(r.stdout)["compute"] for r in ours_runs)
        start = statistics.median(json.loads(r.stdout)["cluster_start"] for r in ours_runs)
        whole = statistics.median(r.seconds for r in ours_runs)
        out[variants] = {
            "baseline": "bcftools +fill-tags -t AF, one core, BCF to /dev/null",
            "baseline_s": base.seconds,
            "enclave_s": compute,
            "ratio": compute / base.seconds,
            "baseline_bgzip_output_s": base_oz.seconds,
            "ratio_vs_bgzip_output": compute / base_oz.seconds,
            "second_compute_s": statistics.median(json.loads(r.stdout)["again"] for r in ours_runs),
            "cluster_start_s": start,
            "enclave_whole_process_s": whole,
            "whole_process_ratio": whole / base.seconds,
            "peak_rss_bytes": max(r.peak_rss for r in ours_runs),
            "baseline_peak_rss_bytes": base.peak_rss,
        }
        log(f"allele frequencies {variants}: bcftools {base.seconds:.2f}s, enclave {compute:.2f}s")
    return out


# ------------------------------------------------------------------------------------------------ DICOM index


def dicom_view(work: Path, files: int) -> Path:
    view = work / f"dicom-{files}"
    if (view / "MANIFEST.json").exists():
        return view
    home = provisioned_cohort(work, 2000)
    source = home / "projects" / "cardio-risk" / "data"
    if not source.exists():
        run(task("materialise", str(home), "cardio-risk"), cwd=ROOT)
    chosen = sorted((source.resolve() / "imaging").rglob("*.dcm"))[:files]
    if len(chosen) < files:
        raise SystemExit(f"the 2,000-patient view holds only {len(chosen)} DICOM files")
    shutil.rmtree(view, ignore_errors=True)
    for src in chosen:
        dst = view / src.relative_to(source.resolve())
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    write_view_manifest(view)
    return view


def bench_dicom_index(work: Path, sizes: list[int], repeats: int) -> dict:
    out = {}
    for files in sizes:
        view = dicom_view(work, files)
        listing = work / f"dicom-{files}.list"
        listing.write_text("\n".join(str(p) for p in sorted((view / "imaging").rglob("*.dcm"))) + "\n")
        base, _ = median_run(["sh", "-c", f"xargs cat < {listing} > /dev/null"], repeats)
        ours_runs = [run(task("dicom_index", str(view), "2"), cwd=ROOT) for _ in range(repeats)]
        compute = statistics.median(json.loads(r.stdout)["compute"] for r in ours_runs)
        out[files] = {
            "baseline": "cat of the same files (xargs cat > /dev/null)",
            "baseline_s": base.seconds,
            "enclave_s": compute,
            "ratio": compute / base.seconds,
            "second_compute_s": statistics.median(json.loads(r.stdout)["again"] for r in ours_runs),
            "enclave_whole_process_s": statistics.median(r.seconds for r in ours_runs),
            "peak_rss_bytes": max(r.peak_rss for r in ours_runs),
        }
        log(f"dicom index {files}: cat {base.seconds:.3f}s, enclave {compute:.3f}s")
    return out
