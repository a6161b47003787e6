"""Differencing across releases, through the command line: a released table joins the project's ledger (audited,
labels only as keyed hashes); a later table that differs from it by a small group is review, naming the earlier
release; an unrelated table is not."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from output_checks.release.service import Airlock
from tests.airlock_factories import ensure_people
from tests.provisioned import provision

pytestmark = pytest.mark.integration
ENCLAVE = shutil.which("enclave", path=str(Path(sys.executable).parent)) or "enclave"
RELEASED = "practice,sex,n\nHillside,F,132\nHillside,M,118\nRiverside,F,87\nRiverside,M,91\n"


@pytest.fixture(scope="module")
def home(tmp_path_factory, cohort) -> Path:
    env = provision(tmp_path_factory.mktemp("differencing"), cohort, {"cvd-risk": "DS-CVD"})
    ensure_people(Airlock(env.registry, env.paths))
    outputs = env.paths.project_outputs("cvd-risk")
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "statins_by_practice.csv").write_text(RELEASED)
    # The same table after excluding three people of one group: 91 - 88 = 3 people, under the threshold.
    (outputs / "statins_by_practice_v2.csv").write_text(RELEASED.replace("Riverside,M,91", "Riverside,M,88"))
    (outputs / "smokers_by_region.csv").write_text("region,n\nNorth,410\nSouth,385\n")
    env.registry.close()
    return env.paths.home


def run(home: Path, user: str, *args: str) -> str:
    env = {**os.environ, "ENCLAVE_USER": user}
    result = subprocess.run([ENCLAVE, "--home", str(home), *args], capture_output=True, text=True, env=env,
                            timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def submit(home: Path, *files: str) -> str:
    return run(home, "alice", "airlock", "submit", "--project", "cvd-risk", "--title", "statins", "--wait",
               *files).strip()  # fmt: skip


def files_of(home: Path, request_id: str) -> dict[str, dict]:
    return {f["path"]: f for f in json.loads(run(home, "alice", "airlock", "show", "--json", request_id))["files"]}


@pytest.fixture(scope="module")
def released(home) -> str:
    request_id = submit(home, "statins_by_practice.csv")
    assert not files_of(home, request_id)["statins_by_practice.csv"]["findings"]  # nothing released yet to compare
    for checker in ("carol", "dave"):
        run(home, checker, "airlock", "review", request_id, "--file", "statins_by_practice.csv", "--decision",
            "approve", "--submit")  # fmt: skip
    assert "released statins_by_practice.csv" in run(home, "carol", "airlock", "release", request_id)
    return request_id


def test_a_release_joins_the_ledger_with_its_audit_event_and_no_label_in_clear(home, released):
    history = run(home, "root", "audit", "show", "--request", released)
    assert "airlock.ledger" in history
    with sqlite3.connect(home / "registry.sqlite") as db:
        rows = db.execute("SELECT row_key, column_key, value FROM release_ledger WHERE request_id = ?",
                          (released,)).fetchall()  # fmt: skip
    assert sorted(v for *_, v in rows) == [87, 91, 118, 132, 428]  # four cells and their sum
    stored = " ".join(k for r in rows for k in r[:2])
    assert "Hillside" not in stored and "hillside" not in stored and "practice" not in stored
    assert run(home, "root", "audit", "verify") is not None


def test_a_table_that_differs_by_a_small_group_is_review_naming_the_earlier_release(home, released):
    request_id = submit(home, "statins_by_practice_v2.csv")
    f = files_of(home, request_id)["statins_by_practice_v2.csv"]
    assert f["verdict"] == "review"
    found = [x for x in f["findings"] if x["check"] == "differencing"]
    assert len(found) == 1
    assert released in found[0]["message"] and "statins_by_practice.csv" in found[0]["message"]
    assert "column 'n', row 4" in found[0]["location"]
    assert "Riverside" not in found[0]["message"] + found[0]["location"]


def test_an_unrelated_table_gets_no_differencing_finding(home, released):
    request_id = submit(home, "smokers_by_region.csv")
    f = files_of(home, request_id)["smokers_by_region.csv"]
    assert not [x for x in f["findings"] if x["check"] == "differencing"]
