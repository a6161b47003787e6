"""Red team on egress from the host's network namespace: with Enclave's nftables rule in place a project account's
TCP, UDP and DNS attempts fail at once (an error, not a timeout), while the same attempts by the same account
before the rule, and by root with it, reach the target. Root only.

The target is a network namespace this test creates, joined to the host by a veth pair with addresses from the
benchmarking range 198.18.0.0/15 (RFC 2544) that no other route uses; nothing outside it is ever contacted. The
rule goes into a table of the test's own name so that a real installation's table on the same host is untouched."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator

import pytest

from provisioning.host import ProjectAccount, ensure_egress_rules, remove_egress_rules
from tests.host_accounts import SYSTEM_PYTHON, as_account, needs_root, throwaway_account
from tests.netns import PROBE, SOCKET_TIMEOUT, Target, target_network

pytestmark = [pytest.mark.integration, pytest.mark.security, needs_root("nft", "ip", "useradd", "setpriv")]


@pytest.fixture
def target() -> Iterator[Target]:
    with target_network() as made:
        yield made


@pytest.fixture
def account() -> Iterator[ProjectAccount]:
    with throwaway_account("egress") as made:
        yield made


@pytest.fixture
def table() -> Iterator[str]:
    name = f"enclave_egress_t{secrets.token_hex(3)}"
    try:
        yield name
    finally:
        remove_egress_rules(table=name)


def probe(target: Target, account: ProjectAccount | None) -> dict[str, dict]:
    argv = [SYSTEM_PYTHON, "-I", "-c", PROBE, target.address, str(target.tcp_port), str(target.udp_port)]
    argv.append(str(SOCKET_TIMEOUT))
    if account is None:
        done = subprocess.run(argv, capture_output=True, text=True, cwd="/", check=False, timeout=120)
    else:
        done = as_account(account, argv, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_project_account_gets_an_immediate_error_for_tcp_udp_and_dns_out_of_the_host(target, account, table):
    # control: the target answers, and answers the project account itself while no rule is in place
    reached = {"tcp": "echo:tcp", "udp": "echo:udp", "dns": "rcode=3"}
    for who in (None, account):
        assert {k: v.get("reply") for k, v in probe(target, who).items()} == reached

    ensure_egress_rules([account], table=table)

    # root is not a project account: the rule is what refuses, and only the accounts it names
    assert {k: v.get("reply") for k, v in probe(target, None).items()} == reached
    refused = probe(target, account)
    print("errors seen by the project account:", {k: (v["type"], v["error"]) for k, v in refused.items()})
    for kind, result in refused.items():
        assert not result["ok"], kind
        assert result["error"] != "timeout", f"{kind} hung until its {SOCKET_TIMEOUT} s timeout instead of failing"
        assert result["error"] in {"EPERM", "EHOSTUNREACH", "ECONNREFUSED", "EACCES"}, (kind, result)

    listed = subprocess.run(["nft", "list", "table", "inet", table], check=True, capture_output=True, text=True)
    assert f"meta skuid {account.uid} " in listed.stdout
    packets = int(listed.stdout.split("counter packets ")[1].split()[0])
    assert packets >= 3  # at least one refused packet per attempt, counted


def test_rules_are_replaced_atomically_and_removed_completely(account, table):
    with throwaway_account("egress") as second:
        ensure_egress_rules([account, second], table=table)
        ensure_egress_rules([second, account, account], table=table)  # a rerun: same table, one rule
        listed = subprocess.run(["nft", "list", "table", "inet", table], check=True, capture_output=True, text=True)
        uids = ", ".join(str(u) for u in sorted((account.uid, second.uid)))
        assert listed.stdout.count("meta skuid") == 1 and f"meta skuid {{ {uids} }}" in listed.stdout
        ensure_egress_rules([], table=table)
        listed = subprocess.run(["nft", "list", "table", "inet", table], check=True, capture_output=True, text=True)
        assert "chain output" in listed.stdout and "skuid" not in listed.stdout
    remove_egress_rules(table=table)
    gone = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True, check=False)
    assert gone.returncode != 0
    remove_egress_rules(table=table)  # removing what is not there is a no-op
