"""The installed `enclave` command end to end: registration, consent, projects (created, replaced from a changed spec,
members removed and roles changed), materialisation and its errors. Runs the console entry point in subprocesses, as
an admin would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.enclave_cli import enclave

pytestmark = pytest.mark.integration


CHECKERS = "members: [{user: carol, role: output_checker}, {user: dave, role: output_checker}]\n"


@pytest.fixture(scope="module")
def home(tmp_path_factory, cohort) -> Path:
    home = tmp_path_factory.mktemp("cli-home")
    for site in sorted(p for p in cohort.iterdir() if (p / "site.yaml").exists()):
        out = enclave(home, "site", "add", str(site)).stdout
        assert f"site {site.name}:" in out
        enclave(home, "consent", "import", str(site / "consent.ndjson"), "--site", site.name)
    return home


def test_registration_lists_sites_and_datasets(home):
    assert len(enclave(home, "site", "list").stdout.splitlines()) == 3
    datasets = enclave(home, "dataset", "list").stdout
    for modality in ("clinical", "imaging", "genomics"):
        assert modality in datasets


def test_reimport_is_a_no_op(home, cohort):
    site = sorted(p for p in cohort.iterdir() if (p / "site.yaml").exists())[0]
    out = enclave(home, "consent", "import", str(site / "consent.ndjson"), "--site", site.name).stdout
    assert out.startswith("0 consent events recorded")


def test_project_lifecycle_and_withdrawal(home, tmp_path, cohort):
    spec = tmp_path / "p.yaml"
    spec.write_text("name: cli-proj\ntitle: t\npurpose: DS-CVD\ndatasets: ['*']\n" + CHECKERS)
    enclave(home, "project", "create", "-f", str(spec))
    again = enclave(home, "project", "create", "-f", str(spec), ok=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    enclave(home, "project", "add-member", "cli-proj", "erin", "researcher")
    out = enclave(home, "project", "materialise", "cli-proj", "--quiet").stdout
    assert "build" in out and "published" in out
    assert "every file matches" in enclave(home, "project", "verify", "cli-proj").stdout
    shown = enclave(home, "project", "show", "cli-proj").stdout
    assert "erin (researcher)" in shown

    nhs = json.loads((next(cohort.glob("*/consent.ndjson"))).read_text().splitlines()[0])["nhs_number"]
    consent = enclave(home, "consent", "show", nhs).stdout
    assert nhs not in consent and "patient EP-" in consent
    out = enclave(home, "consent", "withdraw", nhs, "--rematerialise", "--quiet").stdout
    assert nhs not in out and "cli-proj" in out
    assert "not covered" in enclave(home, "consent", "show", nhs).stdout
    assert "audit log intact" in enclave(home, "audit", "verify").stdout


def test_a_project_changes_by_a_plan_shown_first_and_every_change_is_audited(home, tmp_path):
    spec = tmp_path / "c.yaml"
    first = (
        "name: cli-change\ntitle: t\npurpose: DS-CVD\ndatasets: ['*']\nmembers:\n  - {user: alice, role: researcher}\n"
    )
    spec.write_text(first + "  - {user: carol, role: output_checker}\n")
    refused = enclave(home, "project", "create", "-f", str(spec), ok=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "1 output checker(s), but each release needs 2 independent reviews" in refused.stderr
    spec.write_text(first + "  - {user: carol, role: output_checker}\n  - {user: dave, role: output_checker}\n")
    enclave(home, "project", "create", "-f", str(spec))

    # alice stays (this failed with IntegrityError), changes role; erin joins; the purpose changes
    changed = spec.read_text().replace("alice, role: researcher", "alice, role: output_checker")
    spec.write_text(changed.replace("DS-CVD", "HMB") + "  - {user: erin, role: researcher}\n")
    declined = enclave(home, "project", "create", "-f", str(spec), "--replace", stdin="n\n", ok=False)
    plan = ["+ member erin (researcher)", "~ member alice: researcher -> output_checker", "~ purpose: DS-CVD -> HMB"]
    assert all(line in declined.stdout for line in plan) and "nothing changed" in declined.stderr
    unanswered = enclave(home, "project", "create", "-f", str(spec), "--replace", stdin="", ok=False)
    assert "nothing changed" in unanswered.stderr and "internal error" not in unanswered.stderr
    assert "alice (researcher)" in enclave(home, "project", "show", "cli-change").stdout
    applied = enclave(home, "project", "create", "-f", str(spec), "--replace", "--yes").stdout
    assert "project cli-change updated" in applied and "hub, erin: the hub is not running" in applied
    shown = enclave(home, "project", "show", "cli-change").stdout
    assert "alice (output_checker)" in shown and "erin (researcher)" in shown and "purpose HMB" in shown
    assert "no changes" in enclave(home, "project", "create", "-f", str(spec), "--replace").stdout

    assert "(was researcher)" in enclave(home, "project", "remove-member", "cli-change", "erin").stdout
    assert "(was output_checker)" in enclave(home, "project", "set-role", "cli-change", "alice", "researcher").stdout
    short = enclave(home, "project", "remove-member", "cli-change", "carol", ok=False)
    assert short.returncode == 1 and "would have 1 output checker(s), but each release needs 2" in short.stderr
    missing = enclave(home, "project", "remove-member", "cli-change", "erin", ok=False)
    assert "erin is not a member of project cli-change" in missing.stderr
    shown = enclave(home, "project", "show", "cli-change").stdout
    assert "erin" not in shown and "alice (researcher)" in shown and "carol (output_checker)" in shown

    log = enclave(home, "audit", "show", "--project", "cli-change").stdout
    for action in ("project.create", "project.update", "project.remove_member", "project.set_role"):
        assert action in log
    assert "audit log intact" in enclave(home, "audit", "verify").stdout


def test_errors_are_one_clear_line_without_identifiers(home, tmp_path):
    result = enclave(home, "consent", "show", "9999999999", ok=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "enclave: error: no patient in the index matches that identifier"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntitle: t\npurpose: NOPE\ndatasets: [nope]\n")
    result = enclave(home, "project", "create", "-f", str(bad), ok=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "unknown purpose 'NOPE'" in result.stderr and "name:" in result.stderr
    result = enclave(home, "project", "materialise", "no-such-project", ok=False)
    assert result.returncode == 1 and "no project 'no-such-project'" in result.stderr
    result = enclave(home, "site", "add", str(tmp_path), ok=False)
    assert result.returncode == 1 and "site manifest not found" in result.stderr


def test_tampering_with_a_view_is_detected(home, tmp_path):
    spec = tmp_path / "t.yaml"
    spec.write_text("name: tamper\ntitle: t\npurpose: HMB\ndatasets: ['*']\n" + CHECKERS)
    enclave(home, "project", "create", "-f", str(spec))
    enclave(home, "project", "materialise", "tamper", "--quiet")
    view = (home / "projects" / "tamper" / "data").resolve()
    target = view / "clinical" / "patients.parquet"
    target.chmod(0o600)
    target.write_bytes(target.read_bytes() + b"x")
    result = enclave(home, "project", "verify", "tamper", ok=False)
    assert result.returncode == 1 and "clinical/patients.parquet: content differs" in result.stdout


def test_a_closed_project_loses_its_researchers_and_its_view_and_changes_no_more(home, tmp_path):
    spec = tmp_path / "closing.yaml"
    members = CHECKERS.replace("}]", "}, {user: erin, role: researcher}]").strip()
    spec.write_text(f"name: cli-close\ntitle: t\npurpose: DS-CVD\ndatasets: ['*']\n{members}\n")
    enclave(home, "project", "create", "-f", str(spec))
    enclave(home, "project", "materialise", "cli-close", "--quiet")
    project = home / "projects" / "cli-close"
    assert (project / "data").is_symlink()
    unanswered = enclave(home, "project", "close", "cli-close", stdin="", ok=False)
    assert unanswered.returncode == 1 and "nothing changed" in unanswered.stderr and (project / "data").is_symlink()

    closed = enclave(home, "project", "close", "cli-close", "--yes").stdout
    assert "access ends for 1 researcher(s) (erin)" in closed and "project cli-close closed; view removed" in closed
    assert not (project / "data").exists() and not [p for p in (project / "views").iterdir() if p.is_dir()]
    shown = enclave(home, "project", "show", "cli-close").stdout
    assert "closed " in shown and "erin" not in shown and "carol (output_checker)" in shown
    listed = enclave(home, "project", "list").stdout.splitlines()
    assert "closed " in next(line for line in listed if line.startswith("cli-close"))
    for refused in (("project", "materialise", "cli-close", "--quiet"),
                    ("project", "add-member", "cli-close", "erin", "researcher"),
                    ("project", "close", "cli-close", "--yes"),
                    ("project", "create", "-f", str(spec), "--replace", "--yes")):  # fmt: skip
        result = enclave(home, *refused, ok=False)
        assert result.returncode == 1 and "cli-close is closed" in result.stderr, refused
    assert "audit log intact" in enclave(home, "audit", "verify").stdout
    events = enclave(home, "audit", "show", "--project", "cli-close").stdout
    assert "project.close" in events and "project.view_removed" in events


def test_a_users_email_is_set_at_creation_changed_and_cleared(tmp_path):
    home = tmp_path / "home"
    enclave(home, "user", "add", "nora", "--password-stdin", "--email", "nora@hospital.example.org",
            stdin="a long enough password\n")  # fmt: skip
    changed = enclave(home, "user", "set-email", "nora", "norah@x.example.org").stdout
    assert "notices go to norah@x.example.org" in changed
    assert "off" in enclave(home, "user", "set-email", "nora", "").stdout
    refused = enclave(home, "user", "set-email", "nora", "not an address", ok=False)
    assert refused.returncode != 0 and "e-mail address" in refused.stderr
    assert enclave(home, "user", "set-email", "nobody", "x@example.org", ok=False).returncode != 0
