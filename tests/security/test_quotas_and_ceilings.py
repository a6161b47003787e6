"""Quotas and ceilings against a real hub and real workspaces (issue 17, findings 5 and 6).

One Enclave of this module's own: its second project has a small storage quota, and its workspaces run under a
parent control group of the module's own name whose memory ceiling is set small through the host reserve, so that
neither the shared test Enclave nor the machine is touched.

- A kernel that fills the disk is stopped at the project's quota (ENOSPC) while the registry and the hub's state,
  on another file system, still take writes; a save from the browser says the quota is full, and says so clearly.
- Workspaces asking for more memory than the ceiling are squeezed under it: an allocation past it is killed inside
  the workspace, and the hub still answers its health check and a login.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from pathlib import Path

import pytest
import requests

from fabric.projects import size_bytes
from kernel import audit
from kernel.db import Registry
from tests.workspace_hub import DEMO, SECOND_PROJECT, Person, needs_enclave
from tests.workspace_hub import running_enclave as start

pytestmark = [pytest.mark.security, needs_enclave]

QUOTA = "96MiB"
CEILING = 1536 * 2**20  # what the module's workspaces may use together


def host_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


@pytest.fixture(scope="module")
def tight(tmp_path_factory, cohort, workspace_env):
    parent = f"enclave-q{secrets.token_hex(3)}"
    env = {"ENCLAVE_CGROUP_PARENT": parent, "ENCLAVE_RESERVE_MEMORY": str(host_memory() - CEILING)}
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        home = tmp_path_factory.mktemp("quota-hub") / "home"
        with start(home, cohort, second_extra=f"storage: {{quota: {QUOTA}}}\n") as running:
            yield running
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for folder in Path("/sys/fs/cgroup").glob(f"*/{parent}"):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            Path("/sys/fs/cgroup", parent).rmdir()


FILL = """
import errno, json, os
written, code = 0, None
chunk = b"x" * 2**20
try:
    with open("/project/outputs/fill.bin", "wb") as out:
        for _ in range({chunks}):
            out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
            written += len(chunk)
except OSError as exc:
    code = exc.errno
print(json.dumps({{"errno": code, "written": written}}))
"""


def test_a_disk_filling_kernel_stops_at_the_quota_and_the_registry_stays_writable(tight):
    quota = size_bytes(QUOTA)
    alice = tight.person("alice")
    alice.spawn(SECOND_PROJECT)
    try:
        filled = json.loads(alice.execute(SECOND_PROJECT, FILL.format(chunks=4 * quota // 2**20)))
        assert filled["errno"] == errno.ENOSPC, filled
        assert filled["written"] < quota, filled

        # the project's files live on its own file system, not the one under the registry and the hub
        outputs = tight.paths.project_outputs(SECOND_PROJECT)
        assert os.stat(outputs).st_dev != os.stat(tight.paths.home).st_dev
        assert os.stat(tight.paths.hub).st_dev == os.stat(tight.paths.home).st_dev
        registry = Registry(tight.paths.database_url)
        try:
            with registry.session() as session:
                audit.record(session, actor="test-admin", action="test.quota", target=SECOND_PROJECT)
        finally:
            registry.close()
        assert requests.get(f"{tight.url}/hub/health", timeout=10).status_code == 200
        Person.log_in(tight, "bob")  # the hub still writes its own state (a new session)

        # a save from the browser is refused with a message a researcher can act on
        alice.open_workspace(SECOND_PROJECT)
        notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "y" * 2**20}], "metadata": {},
                    "nbformat": 4, "nbformat_minor": 5}  # fmt: skip
        model = {"type": "notebook", "format": "json", "content": notebook}
        saved = alice.workspace("PUT", SECOND_PROJECT, "/api/contents/analysis.ipynb", json=model)
        assert saved.status_code == 507, (saved.status_code, saved.text[:300])
        message = saved.json()["message"]
        assert "storage quota" in message and "is full" in message and "platform admin" in message, message
        assert "Errno" not in message and str(outputs) not in message

        # once files are deleted, saving works again
        alice.execute(SECOND_PROJECT, "import os; os.remove('/project/outputs/fill.bin')")
        saved = alice.workspace("PUT", SECOND_PROJECT, "/api/contents/analysis.ipynb", json=model)
        assert saved.status_code in (200, 201), saved.text[:300]
    finally:
        alice.stop(SECOND_PROJECT)


ALLOCATE = """
import subprocess, sys
done = subprocess.run([sys.executable, "-c", "data = b'x' * {size}; print(len(data))"], capture_output=True)
print(done.returncode)
"""


def _workspace_memory_limits(parent: str) -> list[int]:
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():
        return [int(f.read_text()) for f in (root / parent).glob("*/memory.max")]
    return [int(f.read_text()) for f in (root / "memory" / parent).glob("*/memory.limit_in_bytes")]


def test_workspaces_asking_for_more_memory_than_the_host_has_are_squeezed_and_the_hub_answers(tight):
    parent = os.environ["ENCLAVE_CGROUP_PARENT"]
    alice = tight.person("alice")
    alice.spawn(DEMO)  # the demo project asks for 8 GiB a workspace; the ceiling is 1.5 GiB for all of them
    alice.spawn(SECOND_PROJECT)
    try:
        limits = _workspace_memory_limits(parent)
        assert len(limits) == 2 and all(limit <= CEILING for limit in limits), limits

        # an allocation past the ceiling is killed inside the workspace, not elsewhere on the host
        code = alice.execute(DEMO, ALLOCATE.format(size=2 * CEILING)).strip()
        assert code == "-9", code

        assert requests.get(f"{tight.url}/hub/health", timeout=10).status_code == 200
        Person.log_in(tight, "bob")
        assert alice.execute(SECOND_PROJECT, "print(1 + 1)").strip() == "2"  # the other workspace lives on
    finally:
        alice.stop(DEMO)
        alice.stop(SECOND_PROJECT)
