"""Every release step from the command line, as the people involved (root may act as ENCLAVE_USER on the host)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel.config import Paths
from kernel.db import Registry
from output_checks.release.service import Airlock
from output_checks.release.states import RequestState
from tests.airlock_factories import ensure_people, request_at
from tests.provisioned import provision

pytestmark = pytest.mark.integration
ENCLAVE = shutil.which("enclave", path=str(Path(sys.executable).parent)) or "enclave"


@pytest.fixture(scope="module")
def home(tmp_path_factory, cohort) -> Path:
    env = provision(tmp_path_factory.mktemp("release-cli"), cohort, {"cvd-risk": "DS-CVD"})
    ensure_people(Airlock(env.registry, env.paths))
    outputs = env.paths.project_outputs("cvd-risk")
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "counts.csv").write_text("site,n\nA,120\nB,45\n")
    (outputs / "small.csv").write_text("site,n\nA,120\nB,4\n")
    env.registry.close()
    return env.paths.home


def run(home: Path, user: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "ENCLAVE_USER": user}
    result = subprocess.run([ENCLAVE, "--home", str(home), *args], capture_output=True, text=True, env=env,
                            timeout=600, check=False)  # fmt: skip
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def show(home: Path, user: str, request_id: str) -> dict:
    return json.loads(run(home, user, "airlock", "show", "--json", request_id).stdout)


def test_submit_review_release_download(home, tmp_path):
    request_id = run(
        home, "alice", "airlock", "submit", "--project", "cvd-risk", "--title", "LDL by site",
        "--justify", "counts.csv=aggregate counts", "--wait", "counts.csv", "small.csv",
    ).stdout.strip()  # fmt: skip
    view = show(home, "alice", request_id)
    assert view["state"] == "in_review"
    verdicts = {f["path"]: f["verdict"] for f in view["files"]}
    assert verdicts == {"counts.csv": "pass", "small.csv": "block"}
    assert request_id in run(home, "carol", "airlock", "list", "--to-review").stdout
    refused = run(home, "alice", "airlock", "review", request_id, "--file", "counts.csv", "--decision", "approve",
                  ok=False)  # fmt: skip
    assert refused.returncode == 1 and "never review" in refused.stderr
    for checker in ("carol", "dave"):
        run(home, checker, "airlock", "review", request_id, "--file", "counts.csv", "--decision", "approve")
        run(home, checker, "airlock", "review", request_id, "--file", "small.csv", "--decision", "reject",
            "--comment", "count of 4")  # fmt: skip
        run(home, checker, "airlock", "review", request_id, "--submit")
    assert show(home, "alice", request_id)["state"] == "approved"
    assert "released counts.csv" in run(home, "carol", "airlock", "release", request_id).stdout
    target = run(home, "alice", "airlock", "download", request_id, "counts.csv", "--to", str(tmp_path)).stdout.strip()
    original = Paths(home).project_outputs("cvd-risk") / "counts.csv"
    assert Path(target).read_bytes() == original.read_bytes()
    assert run(home, "carol", "airlock", "download", request_id, "counts.csv", ok=False).returncode == 1
    history = run(home, "root", "audit", "show", "--request", request_id).stdout
    for action in ("airlock.submit", "airlock.checks_done", "airlock.vote", "airlock.release", "airlock.download"):
        assert action in history
    assert run(home, "root", "audit", "verify").returncode == 0


def test_submit_returns_before_the_checks_finish(home):
    request_id = run(home, "alice", "airlock", "submit", "--project", "cvd-risk", "--title", "background",
                     "counts.csv").stdout.strip()  # fmt: skip
    assert show(home, "alice", request_id)["state"] in ("checking", "in_review")
    for _ in range(120):
        if show(home, "alice", request_id)["state"] == "in_review":
            break
        time.sleep(1)
    assert show(home, "alice", request_id)["state"] == "in_review"


def test_withdraw(home):
    request_id = run(home, "alice", "airlock", "submit", "--project", "cvd-risk", "--title", "oops", "--wait",
                     "counts.csv").stdout.strip()  # fmt: skip
    assert run(home, "carol", "airlock", "withdraw", request_id, ok=False).returncode == 1
    run(home, "alice", "airlock", "withdraw", request_id)
    assert show(home, "alice", request_id)["state"] == "withdrawn"


def test_a_projects_release_history_from_the_command_line(home):
    paths = Paths(home)
    registry = Registry(paths.database_url)
    try:
        app = Airlock(registry, paths)
        released, open_one = request_at(app, RequestState.RELEASED), request_at(app, RequestState.IN_REVIEW)
        mine = request_at(app, RequestState.RELEASED, author="erin")  # erin is a researcher and a checker
    finally:
        registry.close()
    listed = run(home, "dave", "airlock", "list", "--project", "cvd-risk", "--all").stdout
    states = {line.split()[0]: line.split()[2] for line in listed.splitlines()}
    assert states[released] == "released" and states[open_one] == "in_review" and states[mine] == "released"
    assert set(states.values()) <= {"in_review", "approved", "released", "rejected"}
    assert released not in run(home, "dave", "airlock", "list", "--to-review").stdout, "history in the queue"
    refused = run(home, "alice", "airlock", "list", "--project", "cvd-risk", "--all", ok=False)
    assert refused.returncode == 1 and "not an output checker on project 'cvd-risk'" in refused.stderr
    usage = run(home, "dave", "airlock", "list", "--all", ok=False)
    assert usage.returncode == 2 and "--all needs --project" in usage.stderr
    assert released in run(home, "alice", "airlock", "list", "--project", "cvd-risk").stdout  # her own, filtered


def test_a_project_does_not_close_while_a_release_request_is_under_way(home):
    paths = Paths(home)
    registry = Registry(paths.database_url)
    try:
        under_way = request_at(Airlock(registry, paths), RequestState.IN_REVIEW)
    finally:
        registry.close()
    refused = subprocess.run([ENCLAVE, "--home", str(home), "project", "close", "cvd-risk", "--yes"],
                             capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert refused.returncode == 1 and "under way" in refused.stderr and under_way in refused.stderr
    assert "closed" not in subprocess.run([ENCLAVE, "--home", str(home), "project", "show", "cvd-risk"],
                                          capture_output=True, text=True, timeout=300, check=True).stdout  # fmt: skip
    assert (paths.project_data("cvd-risk")).is_symlink(), "the view went though the project stayed open"
