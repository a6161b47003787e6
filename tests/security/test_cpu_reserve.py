"""The CPU reserve for the hub, proxy and airlock is a weight, not a cap (issue 17, finding 6; hub/limits.py).

On the host's real control groups, under a parent of this module's own name set up as the hub sets `enclave`:

- workspaces that keep every CPU busy while Enclave's services idle are never throttled by the parent (no CFS
  quota: an idle reserve costs them nothing); the control, a parent capped by a site's `ENCLAVE_RESERVE_CPUS`, is;
- a service process outside the group (where the hub, the proxy and the airlock run) that turns busy meanwhile still
  gets at least the CPU the old hard reserve kept for it, max(0.5, 10 % of the CPUs), because all workspaces
  together weigh as much as one process of the host.

What is asserted is the kernel's own accounting (`nr_throttled`, CPU time of each process), not how long anything
took.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.limits import CGROUP_ROOT, Ceiling, Host, Limits, Reserve, WorkspaceCgroup, ensure_ceiling

pytestmark = [
    pytest.mark.security,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: it makes control groups on the host"),
]

BUSY = "while True: pass"
WINDOW_S = 3.0
OLD_HARD_RESERVE_CPUS = 0.5  # max(0.5, 10 %) on hosts of up to 5 CPUs, the cap this weight replaced
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system time of one process, from /proc (fields after the command's closing parenthesis)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def parent_throttled(parent: str) -> int:
    """How many periods the kernel throttled the parent group for its CFS quota (v1 `cpu.stat`, v2 the same)."""
    stat = CGROUP_ROOT / parent / "cpu.stat"
    if not (CGROUP_ROOT / "cgroup.controllers").exists():
        stat = CGROUP_ROOT / "cpu" / parent / "cpu.stat"
    values = dict(line.split() for line in stat.read_text().splitlines())
    return int(values["nr_throttled"])


@contextlib.contextmanager
def workspaces_busy(reserve: Reserve) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """A parent group with the hub's settings for `reserve`, one workspace group allowed every CPU, and one busy
    process per CPU in it; all removed after."""
    host = Host.current()
    parent = f"enclave-c{secrets.token_hex(3)}"
    ceiling = ensure_ceiling(Ceiling.for_host(host, reserve), parent=parent)
    group = WorkspaceCgroup("busy", parent=parent)
    group.create(Limits(cpus=host.cpus, memory_bytes=2**30, pids=64), ceiling)
    hogs: list[subprocess.Popen] = []
    try:
        for _ in range(int(host.cpus)):
            hogs.append(subprocess.Popen([sys.executable, "-c", BUSY], preexec_fn=group.join))
        yield parent, hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        group.remove()
        for folder in CGROUP_ROOT.glob(f"*/{parent}"):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            (CGROUP_ROOT / parent).rmdir()


def test_busy_workspaces_are_never_throttled_while_the_services_idle():
    with workspaces_busy(Reserve()) as (parent, _hogs):
        time.sleep(WINDOW_S)
        assert parent_throttled(parent) == 0


def test_control_a_site_cap_does_throttle_them():
    """The check above can fail: with a CPU reserve set by the site, the parent has a quota and the kernel uses it.
    The reserve leaves the workspaces a quarter of a CPU, so busy processes exceed the quota even where other work
    keeps the machine busy (with the old reserve's 1.5 of 2 CPUs, a loaded machine never let them reach it)."""
    with workspaces_busy(Reserve(cpus=Host.current().cpus - 0.25)) as (parent, _hogs):
        time.sleep(WINDOW_S)
        assert parent_throttled(parent) > 0


def test_a_busy_service_outside_the_group_still_gets_its_reserve():
    with workspaces_busy(Reserve()) as (_parent, hogs):
        # where the hub runs: outside every workspace group, in a session of its own as a service is (the kernel's
        # autogroup weighs a session as one process: in the test run's session it would share with whatever else
        # the run keeps busy, such as the other lane of `make test`)
        service = subprocess.Popen([sys.executable, "-c", BUSY], start_new_session=True)
        try:
            time.sleep(0.5)  # past the interpreter's start
            before, started = cpu_seconds(service.pid), time.monotonic()
            time.sleep(WINDOW_S)
            share = (cpu_seconds(service.pid) - before) / (time.monotonic() - started)
            workspaces = sum(cpu_seconds(hog.pid) for hog in hogs)
        finally:
            service.kill()
            service.wait()
        assert share >= OLD_HARD_RESERVE_CPUS, f"the service got {share:.2f} CPU against the workspaces' {workspaces}"
