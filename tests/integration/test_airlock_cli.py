"""`enclave airlock check` end to end: the JSON contract of DESIGN.md exactly, exit codes, directory walking, and
known-identifier screening against a provisioned project (real registry, real site exports, real pseudonyms)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from fabric.clinical.formats import open_site_clinical
from fabric.models import Dataset
from fabric.pseudonyms import pseudonym

pytestmark = pytest.mark.integration

ENCLAVE = shutil.which("enclave", path=str(Path(sys.executable).parent)) or "enclave"
FILE_KEYS = {"path", "sha256", "type", "verdict", "findings"}
FINDING_KEYS = {"check", "verdict", "message", "location"}


def airlock(*args: str, home: Path | None = None) -> subprocess.CompletedProcess:
    prefix = [ENCLAVE, "--home", str(home)] if home else [ENCLAVE]
    return subprocess.run(
        [*prefix, "airlock", "check", *args], capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("outputs")
    (root / "tables").mkdir()
    (root / "tables" / "counts.csv").write_text("site,n\nA,120\nB,45\n")
    (root / "tables" / "small.csv").write_text("site,n\nA,120\nB,4\n")
    (root / "report.md").write_text("# Results\n\nLDL fell by 1.2 mmol/L on atorvastatin (p < 0.001).\n")
    (root / "letter.txt").write_text("Re: Mrs Margaret Thompson, NHS number 943 476 5919, seen today.\n")
    (root / "data.bin").write_bytes(bytes(range(256)) * 8)
    return root


def test_json_follows_the_contract(outputs):
    result = airlock("--json", str(outputs))
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)  # stdout is one JSON document and nothing else
    assert set(document) == {"files", "summary"}
    paths = [f["path"] for f in document["files"]]
    assert sorted(paths) == ["data.bin", "letter.txt", "report.md", "tables/counts.csv", "tables/small.csv"]
    by_path = {f["path"]: f for f in document["files"]}
    for path, entry in by_path.items():
        assert set(entry) == FILE_KEYS
        assert entry["sha256"] == hashlib.sha256((outputs / path).read_bytes()).hexdigest()
        assert entry["verdict"] in ("pass", "review", "block")
        for finding in entry["findings"]:
            assert set(finding) == FINDING_KEYS and finding["verdict"] in ("review", "block")
        worst = max((f["verdict"] for f in entry["findings"]), key=["review", "block"].index, default="pass")
        assert entry["verdict"] == worst
    assert {p: by_path[p]["verdict"] for p in by_path} == {
        "data.bin": "review",
        "letter.txt": "block",
        "report.md": "pass",
        "tables/counts.csv": "pass",
        "tables/small.csv": "block",
    }
    assert document["summary"] == {"pass": 2, "review": 1, "block": 2}
    assert "943 476 5919" not in result.stdout and "Margaret Thompson" not in result.stdout


def test_exit_status(outputs):
    assert airlock(str(outputs / "report.md"), str(outputs / "tables" / "counts.csv")).returncode == 0
    single = airlock("--json", str(outputs / "report.md"))
    assert json.loads(single.stdout)["files"][0]["path"] == str(outputs / "report.md")
    assert airlock(str(outputs / "letter.txt")).returncode == 1
    assert airlock(str(outputs / "missing.csv")).returncode == 2
    assert airlock("--bogus", str(outputs)).returncode == 2
    assert airlock().returncode == 2


def test_bad_policy_is_a_usage_error(outputs, tmp_path):
    bad = tmp_path / "policy.yaml"
    bad.write_text("min_cel_count: 5\n")
    result = airlock("--policy", str(bad), str(outputs))
    assert result.returncode == 2 and "unknown policy setting" in result.stderr


def test_policy_file_changes_the_threshold(outputs, tmp_path):
    lenient = tmp_path / "policy.yaml"
    lenient.write_text("min_cell_count: 3\n")
    assert airlock("--policy", str(lenient), str(outputs / "tables" / "small.csv")).returncode == 0


def test_readable_output_names_files_and_findings(outputs):
    out = airlock(str(outputs)).stdout
    assert "BLOCK   tables/small.csv  (csv)" in out
    assert "5 file(s): 2 pass, 1 review, 2 block" in out


# ------------------------------------------------------------------------------------------------ known identifiers


@pytest.fixture(scope="module")
def source_patient(enclave) -> dict[str, str]:
    """A real patient of the cohort as the site holds them (csv-local export), with their pseudonym in cvd-risk."""
    with enclave.registry.session() as session:
        clinical = session.scalars(
            select(Dataset).where(Dataset.modality == "clinical", Dataset.format == "csv-local")
        ).first()
        location, site = clinical.location, clinical.site_id
    frame = next(open_site_clinical(Path(location), "csv-local", site).iter_table("patients"))
    view = pd.read_parquet(enclave.view("cvd-risk") / "clinical" / "patients.parquet")
    from fabric.models import Patient, PatientRecord

    key = enclave.paths.project_key("cvd-risk").read_bytes()
    with enclave.registry.session() as session:
        ids = dict(session.execute(select(PatientRecord.local_id, Patient.id).join(Patient)).all())
    for row in frame.itertuples():
        pseudo = pseudonym(key, ids[row.mrn])
        if pseudo in set(view["patient"]) if "patient" in view else set(view.iloc[:, 0]):
            return {
                "name": f"{row.forename} {row.surname}",
                "nhs": row.nhs_number,
                "mrn": row.mrn,
                "dob": row.birth_date.strftime("%d/%m/%Y"),
                "postcode": row.postcode,
                "pseudonym": pseudo,
            }
    raise AssertionError("no patient of the csv-local site is in cvd-risk")


def known_findings(result: subprocess.CompletedProcess) -> dict[str, list[dict]]:
    document = json.loads(result.stdout)
    return {f["path"]: [x for x in f["findings"] if x["check"] == "known_identifiers"] for f in document["files"]}


def test_known_identifiers_of_the_project_are_found(enclave, source_patient, tmp_path):
    p = source_patient
    out = tmp_path / "out"
    out.mkdir()
    # Written so that generic recognisers could not see them: lower case, no labels, no context.
    (out / "name.txt").write_text(f"follow up {p['name'].lower()} next week\n")
    (out / "mrn.txt").write_text(f"ref {p['mrn']}\n")
    (out / "nhs.csv").write_text(f"code,n\n{p['nhs']},12\n")
    (out / "pseudonym.txt").write_text(f"see {p['pseudonym']}\n")
    (out / "postcode.txt").write_text(f"area {p['postcode'].lower()}\n")
    (out / "dob.txt").write_text(f"event on {p['dob']}\n")
    (out / "stranger.txt").write_text("follow up zebedee quarterpound next week\n")
    result = airlock("--json", "--project", "cvd-risk", str(out), home=enclave.paths.home)
    assert result.returncode == 1, result.stderr
    found = known_findings(result)
    for path in ("name.txt", "mrn.txt", "nhs.csv", "pseudonym.txt", "postcode.txt"):
        assert found[path] and all(f["verdict"] == "block" for f in found[path]), (path, found[path])
    assert [f["verdict"] for f in found["dob.txt"]] == ["review"]  # many people share a birthday
    assert found["stranger.txt"] == []
    for secret in p.values():
        assert secret.lower() not in result.stdout.lower()


def test_another_projects_pseudonyms_are_not_this_projects(enclave, source_patient, tmp_path):
    key = enclave.paths.project_key("biomed").read_bytes()
    from fabric.models import PatientRecord

    with enclave.registry.session() as session:
        patient_id = session.scalars(
            select(PatientRecord.patient_id).where(PatientRecord.local_id == source_patient["mrn"])
        ).first()
    other = pseudonym(key, patient_id)
    (tmp_path / "x.txt").write_text(f"row {other}\n")
    result = airlock("--json", "--project", "cvd-risk", str(tmp_path / "x.txt"), home=enclave.paths.home)
    document = json.loads(result.stdout)
    findings = document["files"][0]["findings"]
    assert not [f for f in findings if f["check"] == "known_identifiers"]
    assert [f for f in findings if "pseudonym-shaped" in f["message"]]  # still individual-level by its shape


def test_unknown_project_is_a_usage_error(enclave, outputs):
    result = airlock("--project", "no-such-project", str(outputs), home=enclave.paths.home)
    assert result.returncode == 2 and "no project" in result.stderr
