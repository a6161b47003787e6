"""The federation commands as an admin and a researcher type them: a consortium's authority, a coordinator and its
project, a site joining and installing its policy, a task submitted and followed. Bad input gets one clear line and
changes nothing; only a member submits; nothing printed holds a key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.federation_nodes import COORDINATOR, PROJECT, PURPOSE, RESEARCHER, enclave

pytestmark = pytest.mark.integration
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "federated_risk.ipynb"


def test_a_coordinator_and_a_site_are_set_up_and_a_task_is_submitted_and_followed(tmp_path: Path) -> None:
    authority, coordinator, site = tmp_path / "ca", tmp_path / "coordinator", tmp_path / "site"
    enclave(tmp_path, "consortium", "init", "--folder", str(authority), "--name", "Test consortium")
    enclave(tmp_path, "consortium", "issue", COORDINATOR, "--role", "coordinator", "--out", str(tmp_path / "c-tls"),
            "--folder", str(authority))  # fmt: skip
    enclave(tmp_path, "consortium", "issue", "rbh", "--role", "site", "--out", str(tmp_path / "s-tls"),
            "--folder", str(authority))  # fmt: skip

    key = enclave(coordinator, "federation", "coordinator", "init", "--name", COORDINATOR).stdout
    assert key.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in key
    (tmp_path / "coordinator.pem").write_text(key)
    bad = enclave(coordinator, "federation", "project", "create", PROJECT, "--title", "t", "--purpose", "cardiology",
                  "--site", "rbh", check=False)  # fmt: skip
    assert bad.returncode == 1 and "Data Use Ontology code" in bad.stderr
    made = enclave(coordinator, "federation", "project", "create", PROJECT, "--title", "Federated MACE", "--purpose",
                   PURPOSE, "--site", "rbh", "--site", "bhc", "--member", RESEARCHER)  # fmt: skip
    assert "2 site(s), 1 member(s)" in made.stdout

    wrong = enclave(site, "federation", "join", "--coordinator-url", "https://127.0.0.1:1", "--coordinator",
                    COORDINATOR, "--coordinator-key", str(tmp_path / "coordinator.pem"), "--credentials",
                    str(tmp_path / "c-tls"), check=False)  # fmt: skip
    assert wrong.returncode == 1 and "not a site's" in wrong.stderr
    joined = enclave(site, "federation", "join", "--coordinator-url", "https://127.0.0.1:1", "--coordinator",
                     COORDINATOR, "--coordinator-key", str(tmp_path / "coordinator.pem"), "--credentials",
                     str(tmp_path / "s-tls"))  # fmt: skip
    assert "site rbh joined coordinator coord" in joined.stdout
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"projects:\n  {PROJECT}:\n    purpose: {PURPOSE}\n    coordinator: {COORDINATOR}\n"
                      "    submitters: '*'\n    output_kinds: [estimates, spreadsheets]\n")  # fmt: skip
    refused = enclave(site, "federation", "policy", str(policy), check=False)
    assert refused.returncode == 1 and "output_kinds" in refused.stderr
    installed = (site / "federation" / "site" / "policy.yaml").read_text()
    assert installed == "projects: {}\n"  # the refused policy changed nothing: the site still accepts nothing
    policy.write_text(policy.read_text().replace("spreadsheets", "counts"))
    enclave(site, "federation", "policy", str(policy))
    assert "fed-cvd" in (site / "federation" / "site" / "policy.yaml").read_text()

    stranger = enclave(coordinator, "federate", "submit", str(NOTEBOOK), "--project", PROJECT, "--output",
                       "estimates.csv:estimates", check=False, user="mallory")  # fmt: skip
    assert stranger.returncode == 1 and "not a member" in stranger.stderr
    undeclared = enclave(coordinator, "federate", "submit", str(NOTEBOOK), "--project", PROJECT, "--output",
                         "../escape.csv:estimates", check=False)  # fmt: skip
    assert undeclared.returncode != 0 and "escape" not in undeclared.stdout
    task_id = enclave(coordinator, "federate", "submit", str(NOTEBOOK), "--project", PROJECT, "--output",
                      "estimates.csv:estimates", "-p", "min_count", "10").stdout.strip()  # fmt: skip
    status = enclave(coordinator, "federate", "status", task_id).stdout
    assert "0 of 2 sites released" in status and status.count("queued") == 2
    other = enclave(coordinator, "federate", "status", task_id, check=False, user="mallory")
    assert other.returncode == 1 and "not a member" in other.stderr
    assert enclave(site, "federation", "tasks").stdout.splitlines()[1:] == []  # nothing pulled yet
