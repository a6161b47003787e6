"""Host provisioning without touching the host: account names and the nftables script Enclave applies."""

from __future__ import annotations

import pytest

from provisioning.host import EGRESS_TABLE, HostError, ProjectAccount, account_name, egress_rules_script

pytestmark = pytest.mark.unit


def accounts(*uids: int) -> list[ProjectAccount]:
    return [ProjectAccount(project=f"p{uid}", name=f"enclave-p{uid}", uid=uid, gid=uid) for uid in uids]


def test_account_names_are_prefixed_project_names():
    assert account_name("cardio-risk") == "enclave-cardio-risk"
    assert len(account_name("a" * 24)) == 32


@pytest.mark.parametrize("project", ["a" * 25, "Cardio", "x", "-abc", "abc-", "a b c", "../etc", "ab;c", ""])
def test_names_that_are_not_projects_or_too_long_for_unix_are_refused(project):
    with pytest.raises(HostError) as raised:
        account_name(project)
    assert "project" in str(raised.value)


def test_a_too_long_name_says_the_limit():
    with pytest.raises(HostError, match="at most 24"):
        account_name("a" * 30)


def test_the_script_replaces_the_table_in_one_transaction_with_one_rule_over_sorted_unique_uids():
    script = egress_rules_script(accounts(998, 120, 998, 455))
    lines = [line.strip() for line in script.splitlines()]
    # created if missing, then deleted and defined again: applied by `nft -f -` as one transaction
    assert lines[:3] == [
        f"table inet {EGRESS_TABLE} {{}}",
        f"delete table inet {EGRESS_TABLE}",
        f"table inet {EGRESS_TABLE} {{",
    ]
    assert "type filter hook output priority 0; policy accept;" in lines
    rules = [line for line in lines if "skuid" in line]
    assert rules == ['meta skuid { 120, 455, 998 } oifname != "lo" counter reject with icmpx type admin-prohibited']


def test_no_accounts_gives_the_table_and_chain_without_a_rule():
    script = egress_rules_script([])
    assert "chain output" in script and "hook output" in script
    assert "skuid" not in script and "reject" not in script
    assert script.count("{") == script.count("}")


def test_the_script_is_the_same_whatever_the_order_of_accounts():
    assert egress_rules_script(accounts(3, 1, 2)) == egress_rules_script(accounts(2, 3, 1, 1))


@pytest.mark.parametrize("table", ["", "Enclave", "x; flush ruleset", "a-b", "1abc"])
def test_table_names_that_could_inject_nft_syntax_are_refused(table):
    with pytest.raises(HostError):
        egress_rules_script([], table=table)
