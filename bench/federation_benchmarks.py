"""Federated analysis (issue 14), each against a named baseline in the same run:

  federation_estimates  the example notebook's logistic model of MACE fitted federated (each site's fit, pooled by
                        one-shot meta-analysis)  vs  the same model fitted once on the sites' pooled rows: per term,
                        the difference in units of the pooled fit's standard error and the overlap of the 95%
                        intervals (statistical agreement, not time)
  federation_overhead   a federated run across five local sites, end to end (submit -> every site's pass: pull,
                        verify, papermill in the sandbox, the airlock's checks, the site's reviewers scripted to
                        approve at once, seal, upload -> pooled)  vs  the same notebook run directly at each site
                        (`enclave run`, all five at once, as the federated runs are): goal <= 1.5x of the slowest
                        site's own run (root: each site's sandbox)

Both build their consortium under var/bench/ with federation/local_consortium.py.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import pandas as pd

from bench.measure import ROOT, log
from federation import local_consortium
from federation.coordinator import Coordinator
from federation.local_consortium import ConsortiumPlan
from federation.pooling import SiteEstimate, meta_analyse
from federation.tasks import DeclaredOutput
from kernel.config import Paths
from kernel.db import Registry
from synthetic_sites import generate_cohort

NOTEBOOK = ROOT / "notebooks" / "federated_risk.ipynb"
TERMS = ("age_decades", "male", "current_smoker")
OUTPUTS = (DeclaredOutput("estimates.csv", "estimates"), DeclaredOutput("counts.csv", "counts"))
REFERENCE_YEAR = 2024  # the notebook's


def notebook_rows(view_root: Path) -> pd.DataFrame:
    """The example federated notebook's model inputs at one site (its cells' arithmetic, read on the host)."""
    from workbench import open_project

    view = open_project(path=view_root)
    patients = (view.clinical("patients", ["pseudonym", "sex", "year_of_birth", "smoking"]).compute()
                .drop_duplicates("pseudonym").set_index("pseudonym"))  # fmt: skip
    events = set(view.clinical("outcomes", ["pseudonym"])["pseudonym"].unique().compute())
    return pd.DataFrame({
        "age_decades": (REFERENCE_YEAR - patients["year_of_birth"].astype(float)) / 10,
        "male": (patients["sex"] == "M").astype(float),
        "current_smoker": (patients["smoking"] == "current").astype(float),
        "mace": patients.index.isin(events).astype(int),
    })  # fmt: skip


def logit(rows: pd.DataFrame):
    import statsmodels.api as sm

    return sm.Logit(rows["mace"], sm.add_constant(rows[list(TERMS)])).fit(disp=0)


def cohort(work: Path, patients: int) -> Path:
    exports = work / f"federation-cohort-{patients}"
    if not (exports / ".complete").exists():
        shutil.rmtree(exports, ignore_errors=True)
        generate_cohort(exports, patients=patients, sites=5, seed=21, progress=False)
        (exports / ".complete").write_text("")
    return exports


def bench_estimates(work: Path, sizes: list[int], repeats: int) -> dict:
    """Agreement of the federated estimates with the pooled-data fit, at each cohort size (patients)."""
    out = {}
    for patients in sizes:
        exports = cohort(work, patients)
        root = work / f"federation-estimates-{patients}"
        plan = ConsortiumPlan()
        rows = {}
        for site in sorted(p.name for p in exports.iterdir() if p.is_dir()):
            paths = local_consortium.provision_site(root / site, exports / site, plan, actor="bench")
            rows[site] = notebook_rows(paths.project_data(plan.project))
        fits = {site: logit(frame) for site, frame in rows.items()}
        estimates = {site: SiteEstimate(coef=dict(fit.params), se=dict(fit.bse), n=int(fit.nobs))
                     for site, fit in fits.items()}  # fmt: skip
        pooled = meta_analyse(estimates).terms
        reference = logit(pd.concat(rows.values()))
        low, high = reference.conf_int()[0], reference.conf_int()[1]
        terms = {}
        for term in TERMS:
            fixed, random = pooled[term].fixed, pooled[term].random
            overlap = _overlap((fixed.ci_low, fixed.ci_high), (low[term], high[term]))
            terms[term] = {
                "pooled_data_estimate": float(reference.params[term]),
                "pooled_data_se": float(reference.bse[term]),
                "fixed_estimate": fixed.estimate,
                "random_estimate": random.estimate if random else None,
                "difference_in_se": abs(fixed.estimate - reference.params[term]) / reference.bse[term],
                "ci_overlap": overlap,
                "i2": pooled[term].i2,
            }
            log(f"federation estimates {patients}: {term} fixed {fixed.estimate:.3f} vs pooled data "
                f"{reference.params[term]:.3f} (se {reference.bse[term]:.3f}), CI overlap {overlap:.0%}")  # fmt: skip
        out[patients] = {
            "baseline": "statsmodels Logit on the five sites' pooled rows",
            "sites": {site: len(frame) for site, frame in rows.items()},
            "terms": terms,
            "max_difference_in_se": max(t["difference_in_se"] for t in terms.values()),
            "min_ci_overlap": min(t["ci_overlap"] for t in terms.values()),
        }
    return out


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The share of the narrower interval that the two intervals have in common."""
    common = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return common / min(a[1] - a[0], b[1] - b[0])


def bench_overhead(work: Path, sizes: list[int], repeats: int) -> dict:
    """End to end, federated across five local sites vs each site's own direct run, all five at once (root)."""
    if os.geteuid() != 0:
        raise SystemExit("federation_overhead needs root: each site runs the notebook in its sandbox")
    from provisioning.host import remove_egress_rules
    from provisioning.storage import release_all_under

    out = {}
    for patients in sizes:
        exports = cohort(work, patients)
        root = work / f"federation-overhead-{patients}"
        table = "enclave_egress_fedbench"
        env = {"ENCLAVE_WORKSPACE_ENV": str(Paths.from_env().workspace_env)}
        os.environ.update(env)
        consortium = local_consortium.build(root, exports, ConsortiumPlan(), egress_table=table)
        server = local_consortium.serve(consortium)
        try:
            direct, federated = [], []
            for attempt in range(repeats):
                direct.append(_direct(consortium, attempt))
                federated.append(_federated(consortium))
                log(f"federation overhead {patients}: direct {direct[-1]:.1f}s, federated {federated[-1]:.1f}s")
        finally:
            server.terminate()
            server.wait(timeout=30)
            for home in [consortium.coordinator.home, *(p.home for p in consortium.sites.values())]:
                release_all_under(home)
            remove_egress_rules(table=table)
        ratios = [f / d for f, d in zip(federated, direct, strict=True)]
        out[patients] = {
            "baseline": "enclave run of the same notebook at each of the five sites, all at once (the slowest)",
            "baseline_s": statistics.median(direct),
            "enclave_s": statistics.median(federated),
            "ratio": statistics.median(ratios),
            "ratio_spread": [min(ratios), max(ratios)],
            "repeats": repeats,
            "goal": "<= 1.5x",
        }
    return out


def _direct(consortium: local_consortium.LocalConsortium, attempt: int) -> float:
    """Each site's own `enclave run` of the notebook, all five at once: seconds until the slowest finished."""
    enclave = str(local_consortium.ENCLAVE)
    started = time.monotonic()
    running = []
    for paths in consortium.sites.values():
        outputs = f"/project/outputs/bench-direct-{attempt}"
        command = [enclave, "--home", str(paths.home), "run", str(NOTEBOOK), "--project", consortium.plan.project,
                   "--user", local_consortium.RUN_USER, "-p", "outputs", outputs]  # fmt: skip
        running.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for process in running:
        _, err = process.communicate(timeout=3600)
        if process.returncode != 0:
            raise RuntimeError(f"enclave run failed: {err.decode()[-2000:]}")
    return time.monotonic() - started


def _federated(consortium: local_consortium.LocalConsortium) -> float:
    """Submit, let every site pass, the sites' reviewers approve at once, pass again, pool: seconds."""
    plan = consortium.plan
    started = time.monotonic()
    registry = Registry.of(consortium.coordinator)
    try:
        coordinator = Coordinator(registry, consortium.coordinator, plan.coordinator)
        task_id = coordinator.submit(project=plan.project, submitter=plan.researchers[0],
                                     notebook=NOTEBOOK.read_bytes(), parameters={}, outputs=OUTPUTS)  # fmt: skip
        local_consortium.agents_pass(consortium)
        for paths in consortium.sites.values():  # the automatic-approval case: the reviewers scripted
            local_consortium.scripted_review(paths, task_id, plan.checkers, note="scripted benchmark review")
        local_consortium.agents_pass(consortium)
        status = coordinator.status(task_id, plan.researchers[0])
        if len(status.released) != len(consortium.sites):
            raise RuntimeError(f"not every site released: {[(s.site, s.state, s.reason) for s in status.sites]}")
        from federation.pooled_results import pool_task

        opened = coordinator.results(task_id, plan.researchers[0])
        pool_task(opened, list(OUTPUTS), {s.site: (s.state, s.reason) for s in status.sites})
    finally:
        registry.close()
    return time.monotonic() - started


def report(results: dict) -> str:
    lines = []
    for patients, r in results.get("federation_estimates", {}).items():
        lines.append(f"\nfederation_estimates ({patients} patients, 5 sites): federated one-shot meta-analysis vs "
                     "one fit on the pooled rows")  # fmt: skip
        for term, t in r["terms"].items():
            lines.append(
                f"  {term:<16} fixed {t['fixed_estimate']:>7.3f}  pooled data {t['pooled_data_estimate']:>7.3f}  "
                f"|diff| {t['difference_in_se']:.2f} se  CI overlap {t['ci_overlap']:.0%}  I2 {t['i2']:.2f}"
            )
    for patients, r in results.get("federation_overhead", {}).items():
        lines.append(f"\nfederation_overhead ({patients} patients, 5 sites): federated end to end {r['enclave_s']:.1f}s"
                     f" vs direct runs {r['baseline_s']:.1f}s: {r['ratio']:.2f}x (spread {r['ratio_spread'][0]:.2f}-"
                     f"{r['ratio_spread'][1]:.2f}x over {r['repeats']}; goal {r['goal']})")  # fmt: skip
    return "\n".join(lines)
