"""A site's agent against the coordinator's business layer, in one process: the real registries, the real site
airlock (its checks and its reviewers' verbs), the real signing and sealing. Swapped in (tests/federation_nodes.py):
the transport (`InProcessLink` calls the coordinator directly, or fails as an unreachable one would) and the notebook
run (`write_outputs`, which writes what a notebook would, so each case takes seconds). The separate processes over
mutual TLS and papermill in the sandbox are tests/integration/test_federation_sites.py's.

Each case: what the coordinator ends up recording for the site, what the site recorded and audited, and what left."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from federation import tasks
from federation.agent import SiteAgent, SiteConfig, SiteFiles
from federation.coordinator import Coordinator, FederationError
from federation.local_consortium import provision_site
from federation.models import SiteTask
from kernel.config import Paths
from kernel.db import Registry
from kernel.models import AuditEvent
from kernel.secret_files import write_secret
from output_checks.release.service import Airlock
from tests.federation_nodes import CHECKERS, COORDINATOR, PLAN, PROJECT, PURPOSE, RESEARCHER, InProcessLink
from workbench import open_project

pytestmark = pytest.mark.integration

OUTPUTS = (tasks.DeclaredOutput("estimates.csv", "estimates"), tasks.DeclaredOutput("counts.csv", "counts"))
ESTIMATES = "term,estimate,std_error,n\nconst,-2.1,0.4,120\nage_decades,0.31,0.09,120\n"
COUNTS = "sex,mace,no_mace\nF,25,40\nM,30,25\n"
SMALL_COUNTS = "sex,mace,no_mace\nF,3,62\nM,30,25\n"  # 3: under the site's threshold
UNDECLARED = "pseudonym,age\nP-0001,64\n"  # the notebook wrote it; it was never declared


@pytest.fixture(scope="module")
def site_export(cohort: Path) -> Path:
    return sorted(p for p in cohort.iterdir() if p.is_dir())[0]


@pytest.fixture
def consortium(tmp_path: Path, site_export: Path):
    """A coordinator home with the federated project, and a site home that joined it with `policy`."""
    coordinator_paths = Paths(tmp_path / "coordinator")
    coordinator_paths.home.mkdir()
    coordinator_registry = Registry.of(coordinator_paths)
    coordinator = Coordinator(coordinator_registry, coordinator_paths, COORDINATOR)
    site = site_export.name
    coordinator.create_project(name=PROJECT, title="Federated MACE", purpose=PURPOSE, sites=[site],
                               members=[RESEARCHER], actor="coordinator-admin")  # fmt: skip
    site_paths = provision_site(tmp_path / site, site_export, PLAN, actor="site-admin")
    files = SiteFiles.of(site_paths)
    config = SiteConfig(coordinator_url="https://127.0.0.1:1", coordinator=COORDINATOR,
                        coordinator_key=coordinator.signing_public_pem())  # fmt: skip
    write_secret(files.config, yaml.safe_dump(config.model_dump()))
    site_registry = Registry.of(site_paths)
    yield Consortium(coordinator, site_paths, site_registry, site)
    site_registry.close()
    coordinator_registry.close()


class Consortium:
    def __init__(self, coordinator: Coordinator, site_paths: Paths, site_registry: Registry, site: str) -> None:
        self.coordinator, self.site_paths, self.site_registry, self.site = (
            coordinator, site_paths, site_registry, site)  # fmt: skip
        self.link = InProcessLink(coordinator, site)
        self.written: dict[str, str] = {"estimates.csv": ESTIMATES, "counts.csv": COUNTS, "extra.csv": UNDECLARED}
        self.runs: list[dict[str, str]] = []
        self.returncode = 0

    def policy(self, *, approve_code: bool = False, **project: object) -> None:
        entry = {"purpose": PURPOSE, "coordinator": COORDINATOR, "submitters": "*",
                 "output_kinds": ["estimates", "counts"], **project}  # fmt: skip
        write_secret(SiteFiles.of(self.site_paths).policy,
                     yaml.safe_dump({"approve_code": approve_code, "projects": {PROJECT: entry}}))  # fmt: skip

    def write_outputs(self, notebook: Path, project: str, parameters: dict[str, str], log_file, inputs) -> int:
        """In place of papermill: what the notebook would write into the task's folder."""
        self.runs.append({**parameters, **{f"input:{k}": v.decode() for k, v in inputs.items()}})
        folder = self.site_paths.project_outputs(project) / parameters["outputs"].removeprefix("/project/outputs/")
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in self.written.items():
            (folder / name).write_text(content)
        log_file.write(b"Traceback: a row P-0001 printed by the notebook\n")  # stays at the site
        return self.returncode

    def agent(self, **kwargs) -> SiteAgent:
        return SiteAgent(self.site_paths, self.site_registry, self.link, site=self.site, run=self.write_outputs,
                         **kwargs)  # fmt: skip

    def submit(self, **kwargs) -> str:
        notebook = Path(__file__).resolve().parents[2] / "notebooks" / "federated_risk.ipynb"
        return self.coordinator.submit(project=PROJECT, submitter=RESEARCHER, notebook=notebook.read_bytes(),
                                       parameters={"min_count": 10}, outputs=OUTPUTS, **kwargs)  # fmt: skip

    def coordinator_state(self, task_id: str) -> tuple[str, str]:
        status = self.coordinator.status(task_id, RESEARCHER)
        return status.sites[0].state, status.sites[0].reason

    def site_task(self, task_id: str) -> SiteTask:
        with self.site_registry.session() as session:
            task = session.get(SiteTask, task_id)
            session.expunge(task)
            return task

    def review(self, task_id: str, decisions: dict[str, str]) -> None:
        """The site's two output checkers vote on each file (by its name in the task's folder), then release."""
        airlock = Airlock(self.site_registry, self.site_paths)
        request_id = self.site_task(task_id).request_id
        for checker in CHECKERS:
            for f in airlock.request(request_id, checker)["files"]:
                decision = decisions[Path(f["path"]).name]
                reason = "aggregate, checked by hand" if f["blocked"] and decision == "approve" else ""
                airlock.vote(request_id, checker, f["path"], decision, "checked", reason)
            airlock.submit_review(request_id, checker)
        if airlock.state(request_id, CHECKERS[0]) == "approved":
            airlock.release(request_id, CHECKERS[0])

    def site_audit(self, action: str) -> list[tuple[str, dict]]:
        """(actor, detail) of each of the site's audit events of `action`, in order."""
        with self.site_registry.session() as session:
            rows = session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq))
            return [(r.actor, dict(r.detail)) for r in rows]


def test_a_task_runs_and_only_the_released_declared_outputs_come_back_sealed(consortium: Consortium) -> None:
    consortium.policy()
    task_id = consortium.submit()
    consortium.agent().run_once()
    assert consortium.coordinator_state(task_id) == ("in-airlock", "")
    assert consortium.runs[0]["outputs"] == f"/project/outputs/federation/{task_id}"
    assert consortium.runs[0]["min_count"] == "10"
    request = Airlock(consortium.site_registry, consortium.site_paths).request(
        consortium.site_task(task_id).request_id, CHECKERS[0]
    )
    assert sorted(Path(f["path"]).name for f in request["files"]) == ["counts.csv", "estimates.csv"]  # extra.csv not

    consortium.review(task_id, {"estimates.csv": "approve", "counts.csv": "approve"})
    consortium.agent().run_once()
    assert consortium.coordinator_state(task_id) == ("released", "")
    opened = consortium.coordinator.results(task_id, RESEARCHER)
    assert opened == {consortium.site: {"estimates.csv": ESTIMATES.encode(), "counts.csv": COUNTS.encode()}}
    # what the coordinator keeps on disk is sealed: no released byte, no undeclared byte, no log line
    kept = b"".join(p.read_bytes() for p in consortium.coordinator.folder.rglob("*") if p.is_file())
    for text in (b"0.31,0.09,120", b"F,25,40", b"P-0001", b"Traceback"):
        assert text not in kept
    with pytest.raises(FederationError, match="not a member"):
        consortium.coordinator.results(task_id, "mallory")


def test_a_small_cell_is_blocked_at_the_site_and_never_reaches_the_coordinator(consortium: Consortium) -> None:
    consortium.policy()
    consortium.written["counts.csv"] = SMALL_COUNTS
    task_id = consortium.submit()
    consortium.agent().run_once()
    request = Airlock(consortium.site_registry, consortium.site_paths).request(
        consortium.site_task(task_id).request_id, CHECKERS[0]
    )
    verdicts = {Path(f["path"]).name: f["verdict"] for f in request["files"]}
    assert verdicts["counts.csv"] == "block", verdicts  # the site's own checks
    consortium.review(task_id, {"estimates.csv": "approve", "counts.csv": "reject"})
    consortium.agent().run_once()
    assert consortium.coordinator_state(task_id) == ("released", "")
    assert set(consortium.coordinator.results(task_id, RESEARCHER)[consortium.site]) == {"estimates.csv"}


def test_a_task_whose_table_differs_from_an_earlier_release_by_a_small_group_goes_to_review(
    consortium: Consortium,
) -> None:
    """Differencing across tasks, at the site: the second task's counts differ from the first's released ones by
    three people in one cell, so the site's airlock names the earlier release and sends the file to review."""
    consortium.policy()
    first = consortium.submit()
    consortium.agent().run_once()
    consortium.review(first, {"estimates.csv": "approve", "counts.csv": "approve"})
    consortium.agent().run_once()
    assert consortium.coordinator_state(first) == ("released", "")

    consortium.written["counts.csv"] = COUNTS.replace("F,25,40", "F,22,40")  # the same table less three people
    second = consortium.submit()
    consortium.agent().run_once()
    request = Airlock(consortium.site_registry, consortium.site_paths).request(
        consortium.site_task(second).request_id, CHECKERS[0]
    )
    counts = next(f for f in request["files"] if f["path"].endswith("counts.csv"))
    assert counts["verdict"] in ("review", "block")
    assert any(finding["check"] == "differencing" for finding in counts["findings"]), counts["findings"]


def test_a_site_whose_policy_does_not_accept_the_project_refuses_it(consortium: Consortium) -> None:
    write_secret(SiteFiles.of(consortium.site_paths).policy, "projects: {}\n")
    task_id = consortium.submit()
    consortium.agent().run_once()
    assert consortium.coordinator_state(task_id) == ("refused", "project-not-approved")
    assert consortium.runs == []


def test_the_human_gate_holds_the_run_until_a_site_checker_approves(consortium: Consortium) -> None:
    consortium.policy(approve_code=True)
    first, second = consortium.submit(), consortium.submit()
    for _ in range(2):
        consortium.agent().run_once()
    assert consortium.coordinator_state(first) == ("awaiting-approval", "")
    assert consortium.runs == []
    agent = consortium.agent()
    with pytest.raises(Exception, match="not an output checker"):
        agent.approve(first, "federation", run=True)  # the run user is a researcher, not a custodian
    agent.approve(first, CHECKERS[0], run=True)
    agent.approve(second, CHECKERS[1], run=False)
    agent.run_once()
    assert consortium.coordinator_state(first) == ("in-airlock", "")
    assert consortium.coordinator_state(second) == ("refused", "custodian-refused")
    assert len(consortium.runs) == 1
    assert [actor for actor, _ in consortium.site_audit("federation.task_approved")] == [CHECKERS[0]]


def test_a_tampered_manifest_is_refused_and_audited_at_the_site(consortium: Consortium) -> None:
    consortium.policy()
    task_id = consortium.submit()
    database = consortium.coordinator.paths.home / "registry.sqlite"
    with sqlite3.connect(database) as db:  # a compromised coordinator store (or relay) widens the outputs
        (signed,) = db.execute("SELECT signed FROM federated_tasks WHERE id = ?", (task_id,)).fetchone()
        outer = json.loads(signed)
        outer["manifest"] = outer["manifest"].replace('"counts.csv"', '"patients.csv"')
        db.execute("UPDATE federated_tasks SET signed = ? WHERE id = ?", (json.dumps(outer), task_id))
    consortium.agent().run_once()
    assert consortium.coordinator_state(task_id) == ("refused", "bad-signature")
    assert consortium.runs == []
    [(_, detail)] = consortium.site_audit("federation.task_refused")
    assert detail["reason"] == "bad-signature"


def test_a_notebook_changed_after_it_was_signed_is_never_run(consortium: Consortium) -> None:
    consortium.policy()
    task_id = consortium.submit()
    stored = consortium.coordinator.folder / "tasks" / task_id / "notebook.ipynb"
    stored.write_bytes(stored.read_bytes().replace(b"min_count", b"max_count"))  # the coordinator's disk tampered
    consortium.agent().run_once()
    assert consortium.coordinator_state(task_id) == ("refused", "notebook-mismatch")
    assert consortium.runs == []


def test_a_replayed_manifest_is_refused_and_not_run_again(consortium: Consortium) -> None:
    consortium.policy()
    task_id = consortium.submit()
    consortium.agent().run_once()
    assert len(consortium.runs) == 1
    database = consortium.coordinator.paths.home / "registry.sqlite"
    with sqlite3.connect(database) as db:  # offered again as if new
        db.execute("UPDATE federated_task_sites SET state = 'queued' WHERE task_id = ?", (task_id,))
    consortium.agent().run_once()
    assert len(consortium.runs) == 1
    assert [detail["reason"] for _, detail in consortium.site_audit("federation.task_refused")] == ["replayed"]
    assert consortium.coordinator_state(task_id) == ("in-airlock", "")  # the site's own record, reported again


def test_an_expired_manifest_is_refused_and_the_coordinator_expires_what_never_ended(consortium: Consortium) -> None:
    consortium.policy()
    late, never = consortium.submit(valid_for=timedelta(hours=1)), consortium.submit(valid_for=timedelta(hours=1))
    later = datetime.now(UTC) + timedelta(hours=2)
    consortium.link.only = {late}
    consortium.agent(now=lambda: later).run_once()  # the site's clock says the manifest has expired
    assert consortium.coordinator_state(late) == ("refused", "expired")
    assert consortium.runs == []
    moved = consortium.coordinator.expire(now=later.replace(tzinfo=None))
    assert moved == [(never, consortium.site)]
    assert consortium.coordinator_state(never) == ("expired", "")


def test_a_coordinator_offline_loses_nothing_the_site_reports_every_step_when_it_is_back(
    consortium: Consortium,
) -> None:
    consortium.policy()
    task_id = consortium.submit()
    consortium.link.offline_after_offers = True
    consortium.agent().run_once()  # pulled, ran, in the airlock: none of it reported
    assert consortium.coordinator_state(task_id) == ("queued", "")
    assert consortium.site_task(task_id).state == "in-airlock"
    consortium.review(task_id, {"estimates.csv": "approve", "counts.csv": "approve"})
    consortium.agent().run_once()
    assert consortium.site_task(task_id).state == "released"
    consortium.link.offline_after_offers = False
    consortium.agent().run_once()
    assert consortium.coordinator_state(task_id) == ("released", "")
    with consortium.coordinator.registry.session() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.target == task_id).order_by(AuditEvent.seq))
        steps = [e.detail["state"] for e in events if e.action == "federation.site_state"]
    assert steps == ["fetched", "running", "in-airlock"]  # then the bundle (federation.result_received)


def test_a_failed_run_returns_a_category_never_its_output(consortium: Consortium) -> None:
    consortium.policy()
    consortium.returncode = 1
    task_id = consortium.submit()
    consortium.agent().run_once()
    state, reason = consortium.coordinator_state(task_id)
    assert (state, reason) == ("failed", "notebook-error")
    status = consortium.coordinator.status(task_id, RESEARCHER)
    assert status.sites[0].reference.startswith("fed-")  # the site's staff look it up; the log stays there
    log = SiteFiles.of(consortium.site_paths).task(task_id) / "run.log"
    assert b"P-0001" in log.read_bytes()


def test_a_patient_at_two_sites_is_counted_once_and_the_coordinator_sees_only_tokens(
    tmp_path: Path, cohort: Path
) -> None:
    """Two sites of the cohort share patients (the generator puts some at a second site). Each sends the tokens of
    its view's patients; the later site in the consortium's order leaves out those the earlier one counts, and runs
    only once every site that may run has sent its tokens."""
    from federation import linkage, site_linkage

    first, second = sorted(p for p in cohort.iterdir() if p.is_dir())[:2]
    coordinator_paths = Paths(tmp_path / "coordinator")
    coordinator_paths.home.mkdir()
    coordinator_registry = Registry.of(coordinator_paths)
    coordinator = Coordinator(coordinator_registry, coordinator_paths, COORDINATOR)
    coordinator.create_project(name=PROJECT, title="Federated MACE", purpose=PURPOSE,
                               sites=[first.name, second.name], members=[RESEARCHER], actor="admin")  # fmt: skip
    key_file = tmp_path / "linkage.key"
    linkage.LinkageKey.generate().write(key_file)  # the consortium's, handed to the sites, never the coordinator's
    runs: dict[str, list[dict]] = {first.name: [], second.name: []}
    agents, registries = {}, []
    for export in (first, second):
        paths = provision_site(tmp_path / export.name, export, PLAN, actor="site-admin")
        config = SiteConfig(coordinator_url="https://127.0.0.1:1", coordinator=COORDINATOR,
                            coordinator_key=coordinator.signing_public_pem())  # fmt: skip
        write_secret(SiteFiles.of(paths).config, yaml.safe_dump(config.model_dump()))
        accepted = {"purpose": PURPOSE, "coordinator": COORDINATOR, "submitters": "*", "output_kinds": ["estimates"]}
        write_secret(
            SiteFiles.of(paths).policy, yaml.safe_dump({"approve_code": False, "projects": {PROJECT: accepted}})
        )
        site_linkage.install_key(paths, key_file)
        registry = Registry.of(paths)
        registries.append(registry)

        def run(notebook, project, parameters, log_file, inputs, name=export.name, paths=paths) -> int:
            runs[name].append({"parameters": parameters, "excluded": json.loads(inputs["excluded"])})
            folder = paths.project_outputs(project) / parameters["outputs"].removeprefix("/project/outputs/")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "estimates.csv").write_text(ESTIMATES)
            return 0

        agents[export.name] = SiteAgent(paths, registry, InProcessLink(coordinator, export.name), site=export.name,
                                        run=run)  # fmt: skip
    try:
        task_id = coordinator.submit(project=PROJECT, submitter=RESEARCHER, notebook=b"{}", parameters={},
                                     outputs=OUTPUTS[:1], count_once=True)  # fmt: skip
        agents[second.name].run_once()  # its tokens are in; the first site's are not: it waits
        assert runs[second.name] == []
        assert coordinator.status(task_id, RESEARCHER).sites[1].state == "fetched"
        agents[first.name].run_once()  # the first site's tokens complete the set: it runs, leaving no one out
        agents[second.name].run_once()
        assert runs[first.name][0]["excluded"] == []
        left_out = runs[second.name][0]["excluded"]
        assert left_out, "the cohort puts some patients at two sites"

        folder = coordinator.folder / "tasks" / task_id / "linkage"
        tokens = {site: (folder / f"{site}.tokens").read_text().split() for site in (first.name, second.name)}
        assert linkage.overlap_size(tokens) == len(left_out)  # each shared patient left out once, at the later site
        view = set(open_project(path=agents[second.name].paths.project_data(PROJECT)).pseudonyms)
        assert set(left_out) <= view
        kept = b"".join(p.read_bytes() for p in coordinator.folder.rglob("*") if p.is_file())
        assert b"P-" not in kept.replace(b"-----", b"")  # no pseudonym reaches the coordinator, only tokens
        with coordinator_registry.session() as session:
            events = session.scalars(select(AuditEvent).where(AuditEvent.action == "federation.linkage_exclusions"))
            assert {e.detail["left_out"] for e in events} == {0, len(left_out)}
    finally:
        for registry in registries:
            registry.close()
        coordinator_registry.close()
