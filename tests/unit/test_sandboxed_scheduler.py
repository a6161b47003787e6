"""A project's scheduler (clusters/sandboxed.py `SandboxedScheduler`) is told its ports before it starts when its
host is known, so a cluster's jobs are queued while its process starts; without a host it starts first and says
where it listens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from distributed.security import Security

from clusters.sandboxed import SandboxedScheduler

pytestmark = pytest.mark.unit


def scheduler(tmp_path: Path, **options) -> SandboxedScheduler:
    return SandboxedScheduler(python=object(), log=tmp_path / "scheduler.log", security=Security.temporary(), **options)


def test_a_known_host_gets_its_ports_before_the_scheduler_starts(tmp_path):
    made = scheduler(tmp_path, host="127.0.0.1", dashboard_address="127.0.0.1:0")
    assert made.preset is not None
    address, dashboard = made.preset
    host, _, port = address.rpartition(":")
    given = json.loads(made.args[-1])
    assert host == "127.0.0.1" and int(port) == given["port"] > 0
    assert given["dashboard"] == f"127.0.0.1:{dashboard}" and dashboard > 0
    assert made.failure() is None  # nothing known before it starts


def test_given_ports_are_kept(tmp_path):
    made = scheduler(tmp_path, host="127.0.0.1", port=45123, dashboard_address="127.0.0.1:45124")
    assert made.preset == ("127.0.0.1:45123", 45124)


def test_without_a_host_the_scheduler_says_where_it_listens(tmp_path):
    made = scheduler(tmp_path, dashboard_address="127.0.0.1:0")
    assert made.preset is None
    given = json.loads(made.args[-1])
    assert given["port"] == 0 and given["dashboard"] == "127.0.0.1:0"
