"""Which tests `make test` may run at the same time (pytest-xdist, two workers; tests/conftest.py's scheduler).

Three kinds of scope:

- each unit test is a scope of its own: unit tests touch nothing outside their temporary folders;
- `host`: every test that changes the host (Unix accounts of fixed names, nftables tables, control groups, mounts,
  systemd units, the SLURM and munge daemons, hubs with sandboxed workspaces), run in order on one worker;
- `data`: the files listed in DATA_LANE, run in order on the other worker beside `host`. They work on Enclave homes
  in their own temporary folders through the registry, the airlock's checker sandbox (bubblewrap as its own account,
  or `nobody`, with prlimit limits: no account is made and no control group), the `enclave` command, the airlock
  web app, a PostgreSQL of the worker's own and Chromium; they start no hub, make no account and mount nothing.

Deny by default: a file not listed is `host`. `tests/unit/test_lanes.py` fails when a listed file imports a helper
that changes the host (HOST_HELPERS)."""

from __future__ import annotations

UNIT = "tests/unit/"

DATA_LANE = (
    "tests/robustness/",
    "tests/functional/test_airlock_browser.py",
    "tests/functional/test_airlock_corpus.py",
    "tests/functional/test_airlock_findings_view.py",
    "tests/integration/test_acro_agreement.py",
    "tests/integration/test_airlock_business.py",
    "tests/integration/test_airlock_cli.py",
    "tests/integration/test_airlock_differencing.py",
    "tests/integration/test_airlock_new_request.py",
    "tests/integration/test_airlock_policy_resolution.py",
    "tests/integration/test_airlock_release_cli.py",
    "tests/integration/test_airlock_responsive.py",
    "tests/integration/test_airlock_web.py",
    "tests/integration/test_airlock_workflow.py",
    "tests/integration/test_cli.py",
    "tests/integration/test_cli_local_mrn.py",
    "tests/integration/test_cli_site_changes.py",
    "tests/integration/test_dutch_site.py",
    "tests/integration/test_example_notebook.py",
    "tests/integration/test_federation_agent.py",
    "tests/integration/test_federation_cli.py",
    "tests/integration/test_federation_dummy_view.py",
    "tests/integration/test_materialise.py",
    "tests/integration/test_readers_cluster.py",
    "tests/integration/test_synthetic_cohort.py",
    "tests/security/test_airlock_new_request_security.py",
    "tests/security/test_airlock_release_security.py",
    "tests/security/test_airlock_snapshot_links.py",
    "tests/security/test_federation_coordinator_server.py",
    "tests/security/test_federation_mtls.py",
    "tests/security/test_federation_out_folders.py",
    "tests/security/test_modality_identifiers.py",
    "tests/security/test_view_identifiers.py",
)

# What a test in the data lane may not use: helpers and modules that make accounts, rules, mounts or daemons.
HOST_HELPERS = (
    "tests.host_accounts",
    "tests.hub_runner",
    "tests.workspace_hub",
    "tests.workspace_server",
    "tests.slurm",
    "tests.netns",
    "provisioning.host",
    "provisioning.storage",
    "provisioning.install",
    "hub.lifecycle",
    "hub.limits",
    "clusters",
)


def scope(nodeid: str) -> str:
    """The scope xdist schedules `nodeid` in: the test itself (unit), `data` or `host`."""
    if nodeid.startswith(UNIT):
        return nodeid
    if nodeid.startswith(DATA_LANE):
        return "data"
    return "host"
