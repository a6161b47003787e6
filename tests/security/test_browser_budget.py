"""The workspace's hourly budget of bytes to the browser (images/enclave_workspace/budget.py, hub/browser_usage.py),
against a real hub and workspace. Whatever a kernel can read it can print or save as text, so the total that reaches
the browser is what bounds reading data off the screen; the second project of the test Enclave has a 4 MiB budget
(tests/workspace_hub.py) so a test can spend it:

- kernel output past the budget is cut (the kernel's WebSocket closes), and a file read after it is refused with
  429 and a message that says when it renews and points to the airlock;
- stopping and restarting the workspace does not reset the budget (the hub is its ledger);
- the hub writes the hour's totals by route, and the number of refusals, to the audit log: sizes, never content.
"""

from __future__ import annotations

import pytest

from fabric.projects import size_bytes
from kernel import audit
from kernel.db import Registry
from tests.workspace_hub import SECOND_BUDGET, SECOND_PROJECT, needs_enclave

pytestmark = [pytest.mark.security, needs_enclave]

CHUNK = 256 * 1024
# paced under jupyter_server's own IOPub rate limit (1 MB/s), which would otherwise drop most of it
PRINT = f"""
import sys, time
line = "x" * {CHUNK - 1}
for _ in range({size_bytes(SECOND_BUDGET) // CHUNK + 4}):
    print(line)
    sys.stdout.flush()
    time.sleep(0.4)
"""


def test_the_browser_budget_cuts_output_refuses_files_survives_a_restart_and_is_audited(running_enclave):
    alice = running_enclave.person("alice")
    alice.spawn(SECOND_PROJECT)
    try:
        alice.open_workspace(SECOND_PROJECT)
        # bigger than what the budget has left once the kernel has printed its fill
        note = {"type": "file", "format": "text", "content": "an aggregate table\n" * 20_000}
        assert alice.workspace("PUT", SECOND_PROJECT, "/api/contents/note.txt", json=note).status_code == 201
        assert alice.workspace("GET", SECOND_PROJECT, "/api/contents/note.txt").status_code == 200

        with pytest.raises(AssertionError, match="websocket closed"):
            alice.execute(SECOND_PROJECT, PRINT, timeout=120)  # more than the budget, printed in a kernel

        refused = alice.workspace("GET", SECOND_PROJECT, "/api/contents/note.txt")
        assert refused.status_code == 429
        assert "allowance" in refused.json()["message"] and "airlock" in refused.json()["message"]
        assert "an aggregate table" not in refused.text

        alice.stop(SECOND_PROJECT)
        alice.spawn(SECOND_PROJECT)
        alice.open_workspace(SECOND_PROJECT)
        again = alice.workspace("GET", SECOND_PROJECT, "/api/contents/note.txt")
        assert again.status_code == 429  # the hub kept what was spent this hour
    finally:
        alice.stop(SECOND_PROJECT)

    registry = Registry(running_enclave.paths.database_url)
    try:
        with registry.session() as session:
            events = [
                e for e in audit.events(session, actor="alice", limit=500) if e.action == "workspace.browser_bytes"
            ]
    finally:
        registry.close()
    ours = [e for e in events if e.target == f"workspace:{SECOND_PROJECT}/alice"]
    assert ours, "no browser_bytes audit event for the workspace"
    last = ours[-1].detail
    assert last["total"] <= size_bytes(SECOND_BUDGET)
    assert last["refused"] >= 1
    assert any("channels" in route or "kernels" in route for route in last["bytes"])
    assert "x" * 64 not in str(last) and "aggregate" not in str(last)  # sizes only
