"""The site's policy file reaches every path that checks a project's outputs: `enclave airlock submit` (the
submit-time checks), `enclave airlock check --project`, and the service's check runner the web app uses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kernel.config import Paths
from kernel.db import Registry
from output_checks.release import workflow
from output_checks.release.service import Airlock
from output_checks.release.site_policy import SITE_POLICY
from tests.airlock_factories import ensure_people
from tests.provisioned import provision

pytestmark = pytest.mark.integration
ENCLAVE = shutil.which("enclave", path=str(Path(sys.executable).parent)) or "enclave"
RECOGNISERS = (
    "recognizers:\n"
    "  - name: TrialIdRecognizer\n    supported_language: en\n    supported_entity: TRIAL_ID\n"
    "    patterns:\n      - {name: trial id, regex: 'CARD-\\d{6}', score: 0.9}\n"
)


@pytest.fixture(scope="module")
def home(tmp_path_factory, cohort) -> Path:
    env = provision(tmp_path_factory.mktemp("policy-resolution"), cohort, {"cvd-risk": "DS-CVD"})
    ensure_people(Airlock(env.registry, env.paths))
    outputs = env.paths.project_outputs("cvd-risk")
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "by_site.csv").write_text("site,n\nA,120\nB,45\nC,33\n")
    (outputs / "notes.txt").write_text("Follow-up was complete except for participant CARD-123456, who withdrew.\n")
    env.registry.close()
    return env.paths.home


@pytest.fixture
def site_policy(home):
    """A stricter site: counts under 50 are small, and the trial's participant numbers are identifiers."""
    folder = home / "airlock"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trial-ids.yaml").write_text(RECOGNISERS)
    (folder / SITE_POLICY).write_text("min_cell_count: 50\nrecognizers_file: trial-ids.yaml\n")
    yield folder / SITE_POLICY
    (folder / SITE_POLICY).unlink()
    (folder / "trial-ids.yaml").unlink()


def run(home: Path, user: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ENCLAVE_USER": user}
    return subprocess.run([ENCLAVE, "--home", str(home), *args], capture_output=True, text=True, env=env,
                          timeout=600, check=False)  # fmt: skip


def submitted_verdicts(home: Path) -> dict[str, str]:
    done = run(home, "alice", "airlock", "submit", "--project", "cvd-risk", "--title", "by site", "--wait",
               "by_site.csv", "notes.txt")  # fmt: skip
    assert done.returncode == 0, done.stderr
    view = run(home, "alice", "airlock", "show", "--json", done.stdout.strip())
    return {f["path"]: f["verdict"] for f in json.loads(view.stdout)["files"]}


def test_without_a_site_policy_the_defaults_apply(home):
    assert submitted_verdicts(home) == {"by_site.csv": "pass", "notes.txt": "pass"}


def test_the_site_policy_changes_the_submit_time_verdict(home, site_policy):
    verdicts = submitted_verdicts(home)
    assert verdicts["by_site.csv"] == "block"  # 45 and 33 are under the site's threshold of 50
    assert verdicts["notes.txt"] == "block"  # the site's extra recogniser found a trial participant number


def test_check_with_a_project_uses_the_site_policy(home, site_policy):
    outputs = Paths(home).project_outputs("cvd-risk")
    result = run(home, "alice", "airlock", "check", "--json", "--project", "cvd-risk", str(outputs / "by_site.csv"))
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["files"][0]["verdict"] == "block"


def test_the_web_apps_check_runner_uses_the_site_policy(home, site_policy):
    paths = Paths(home)
    app = Airlock(Registry(paths.database_url), paths)
    try:
        request_id = app.tx(
            lambda s: workflow.request_release(s, paths, app.store, project="cvd-risk", author="alice",
                                               title="by site", files=[("by_site.csv", "")])
        )  # fmt: skip
        app.check_request(request_id)  # what CheckRunner does for a request submitted in the web app
        verdict = app.tx(lambda s: workflow.current_files(workflow.get_request(s, request_id, "alice"))[0].verdict)
    finally:
        app.registry.close()
    assert verdict == "block"


def test_an_invalid_site_policy_stops_the_checks_instead_of_passing(home, site_policy):
    site_policy.write_text("min_cell_count: zero\n")
    result = run(home, "alice", "airlock", "check", "--json", "--project", "cvd-risk",
                 str(Paths(home).project_outputs("cvd-risk") / "by_site.csv"))  # fmt: skip
    assert result.returncode == 2 and "min_cell_count" in result.stderr
