"""A consortium on one machine, as the issue asks: a coordinator and five site nodes, each an Enclave home of its own
provisioned with only its own hospital's export, each run as separate `enclave` processes (the coordinator's
server, each site's agent passes) talking over loopback with mutual TLS under a consortium authority.

The example federated notebook (notebooks/federated_risk.ipynb) runs with papermill in each site's sandbox on that
site's view; its declared outputs go through each site's own airlock and reviewers. One site's policy does not accept
the project (the pooled status reads "4 of 5"), one site holds the run for its custodian. What comes back is sealed:
the coordinator opens it with the project's key, and the pooled estimates are the meta-analysis of what the sites
released. A revoked site certificate is refused at the handshake."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import statsmodels.api as sm

from bench.federation_benchmarks import notebook_rows as bench_rows
from federation import local_consortium, pki
from kernel.config import Paths
from provisioning.host import remove_egress_rules
from provisioning.storage import release_all_under
from synthetic_sites import generate_cohort
from tests.federation_nodes import CHECKERS, COORDINATOR, ENCLAVE, PROJECT, PURPOSE, RESEARCHER, enclave
from tests.workspace_hub import needs_enclave

pytestmark = [pytest.mark.integration, needs_enclave, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "federated_risk.ipynb"
REFUSING, GATED = 4, 1  # the index of the site whose policy does not accept the project; of the one that gates code


@pytest.fixture(scope="module")
def consortium(tmp_path_factory, workspace_env) -> local_consortium.LocalConsortium:
    root = tmp_path_factory.mktemp("consortium")
    exports = root / "exports"
    generate_cohort(exports, patients=200, sites=5, seed=14, progress=False)
    names = sorted(p.name for p in exports.iterdir() if p.is_dir())
    plan = local_consortium.ConsortiumPlan(
        project=PROJECT, purpose=PURPOSE, coordinator=COORDINATOR, researchers=(RESEARCHER,), checkers=CHECKERS,
        refusing=frozenset({names[REFUSING]}), gated=frozenset({names[GATED]}),
    )  # fmt: skip
    previous = os.environ.get("ENCLAVE_WORKSPACE_ENV")
    os.environ["ENCLAVE_WORKSPACE_ENV"] = str(workspace_env)  # what each site's sandboxed run starts from
    table = "enclave_egress_fed"
    made = None
    try:
        made = local_consortium.build(root, exports, plan, egress_table=table)
        local_consortium.serve(made)
        yield made
    finally:
        if made is not None:
            local_consortium.stop(made)
        for home in [root / "coordinator", *(root / name / "home" for name in names)]:
            release_all_under(home)
        remove_egress_rules(table=table)
        if previous is None:
            os.environ.pop("ENCLAVE_WORKSPACE_ENV", None)
        else:
            os.environ["ENCLAVE_WORKSPACE_ENV"] = previous


def agents_pass(consortium: local_consortium.LocalConsortium) -> None:
    local_consortium.agents_pass(consortium)


def status(consortium: local_consortium.LocalConsortium, task_id: str) -> dict[str, tuple[str, str]]:
    found = json.loads(enclave(consortium.coordinator.home, "federate", "status", task_id, "--json").stdout)
    return {s["site"]: (s["state"], s["reason"]) for s in found["sites"]}


def review_and_release(site: Paths, task_id: str) -> None:
    """The site's two output checkers approve every file of the task's request, and one releases it."""
    local_consortium.scripted_review(site, task_id, CHECKERS, note="aggregate: small cells suppressed by the notebook")


def test_a_notebook_runs_at_every_accepting_site_and_only_released_outputs_come_back(consortium, tmp_path):
    names = list(consortium.sites)
    submitted = enclave(consortium.coordinator.home, "federate", "submit", str(NOTEBOOK), "--project", PROJECT,
                        "--output", "estimates.csv:estimates", "--output", "counts.csv:counts", "-p", "min_count",
                        "10", "--count-once")  # fmt: skip
    task_id = submitted.stdout.strip()

    agents_pass(consortium)  # pulled, tokens sent (five agents at once: some ask before all are in)
    agents_pass(consortium)  # every accepting site's tokens are in: they run
    states = status(consortium, task_id)
    assert states[names[REFUSING]] == ("refused", "project-not-approved")
    assert states[names[GATED]] == ("awaiting-approval", "")
    for index, name in enumerate(names):
        if index not in (REFUSING, GATED):
            assert states[name] == ("in-airlock", ""), states

    local_consortium.stop(consortium)  # the coordinator restarts: nothing is lost, the sites carry on
    local_consortium.serve(consortium)
    gated = consortium.sites[names[GATED]]
    enclave(gated.home, "federation", "approve", task_id, "--as", CHECKERS[0])
    agents_pass(consortium)
    assert status(consortium, task_id)[names[GATED]] == ("in-airlock", "")

    for index, name in enumerate(names):
        if index != REFUSING:
            review_and_release(consortium.sites[name], task_id)
    agents_pass(consortium)
    states = status(consortium, task_id)
    released = [name for name, (state, _) in states.items() if state == "released"]
    assert len(released) == 4, states
    text = enclave(consortium.coordinator.home, "federate", "status", task_id).stdout
    assert "4 of 5 sites released" in text

    out = tmp_path / "results"
    enclave(consortium.coordinator.home, "federate", "results", task_id, "--out", str(out))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv")) == sorted(
        f"{name}/{file}" for name in released for file in ("counts.csv", "estimates.csv")
    )
    left_out = 0
    for name in released:
        estimates = pd.read_csv(out / name / "estimates.csv")
        assert list(estimates.columns) == ["term", "estimate", "std_error", "n"] and len(estimates) == 4
        # counted once: the site's run left out the patients a site earlier in the order counts
        excluded = set(json.loads((consortium.sites[name].federation / "site" / "tasks" / task_id /
                                   "excluded.json").read_text()))  # fmt: skip
        rows = bench_rows(consortium.sites[name].project_data(PROJECT))
        assert int(estimates["n"].iloc[0]) == len(rows.index.difference(list(excluded)))
        left_out += len(excluded)
    assert left_out > 0  # the cohort puts some patients at two sites

    pooled_dir = tmp_path / "pooled"
    done = enclave(consortium.coordinator.home, "federate", "pool", task_id, "--out", str(pooled_dir))
    assert done.stdout.startswith("4 of 5 sites contributed; not included: " + names[REFUSING])
    pooled = pd.read_csv(pooled_dir / "pooled_estimates.csv").set_index("term")
    reference = reference_fit([consortium.sites[name] for name in released], task_id)
    for term in ("age_decades", "male", "current_smoker"):
        # one-shot meta-analysis of sites of ~40 patients against one model on their pooled rows: the estimates
        # agree within the pooled model's standard error and their 95% intervals overlap
        difference = abs(pooled.loc[term, "fixed_estimate"] - reference.params[term])
        print(term, pooled.loc[term, "fixed_estimate"], reference.params[term], reference.bse[term])
        assert difference < reference.bse[term], (term, difference, reference.bse[term])
        low, high = reference.conf_int().loc[term]
        assert pooled.loc[term, "fixed_ci_low"] < high and low < pooled.loc[term, "fixed_ci_high"]
    cells = pd.read_csv(pooled_dir / "pooled_counts.csv", keep_default_na=False)
    site_tables = [pd.read_csv(out / name / "counts.csv", keep_default_na=False) for name in released]
    for row in cells.itertuples():
        contributions = [t[(t["sex"] == row.sex) & (t["mace"] == row.mace)]["n"].iloc[0] for t in site_tables]
        if any(c == "" for c in contributions):  # a site suppressed it: the pool never shows the exact total
            assert not str(row.display).isdigit() or int(row.display) == sum(float(c) for c in contributions if c)
    assert (pooled_dir / "forest_estimates_male.png").read_bytes().startswith(b"\x89PNG")


def reference_fit(sites: list[Paths], task_id: str):
    """The notebook's model fitted once on the sites' pooled rows, each patient once (read here, on the host)."""
    frames = []
    for site in sites:
        excluded = json.loads((site.federation / "site" / "tasks" / task_id / "excluded.json").read_text())
        rows = bench_rows(site.project_data(PROJECT))
        frames.append(rows.drop(index=[p for p in excluded if p in rows.index]))
    rows = pd.concat(frames)
    return sm.Logit(rows["mace"], sm.add_constant(rows[["age_decades", "male", "current_smoker"]])).fit(disp=0)


def test_a_revoked_site_certificate_is_refused_at_the_handshake(consortium):
    name = next(iter(consortium.sites))
    site = consortium.sites[name]
    enclave(consortium.root, "consortium", "revoke", name, "--folder", str(consortium.authority))
    crl = consortium.root / "crl.pem"
    enclave(consortium.root, "consortium", "crl", "--out", str(crl), "--folder", str(consortium.authority))
    pki.install_crl(consortium.coordinator_credentials, crl.read_text())
    deadline = time.monotonic() + 60  # the server loads a new CRL within seconds, without a restart
    while True:
        done = subprocess.run([str(ENCLAVE), "--home", str(site.home), "federation", "agent", "--once"],
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        if "could not be reached" in done.stderr or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert "could not be reached" in done.stderr, done.stderr[-2000:]
    other = consortium.sites[list(consortium.sites)[1]]
    served = subprocess.run([str(ENCLAVE), "--home", str(other.home), "federation", "agent", "--once"],
                            capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert served.returncode == 0 and "could not be reached" not in served.stderr  # the others are still served
