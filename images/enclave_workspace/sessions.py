"""Kernel and terminal sessions reported to the hub for its audit log: when each starts, restarts, is interrupted
or ends, with the kernel's name and id or the terminal's name, never what runs in them.

The reports go as JSON lines on the same pipe as the browser budget's byte counts (ENCLAVE_USAGE_FD, budget.py),
whose write end only this server process holds; the hub checks every line and audits it (hub/session_events.py).
Kernels are followed on jupyter_server's event bus (its kernel_actions events), terminals at the terminal
manager's `create` (opened) and `on_eof` (closed: every way a terminal ends, closed by the browser or exited).
"""

from __future__ import annotations

import json
import os
from collections import deque
from typing import Any

from enclave_workspace import budget

KERNEL_ACTIONS = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"
# what the server's kernel_actions `action` becomes in a report (the hub's table has the same kinds)
KERNEL_EVENTS = {
    "start": "kernel_start",
    "shutdown": "kernel_shutdown",
    "restart": "kernel_restart",
    "interrupt": "kernel_interrupt",
}
TERMINAL_EVENTS = ("terminal_open", "terminal_close")
KINDS = frozenset(KERNEL_EVENTS.values()) | frozenset(TERMINAL_EVENTS)
MAX_PENDING = 256  # reports held back while the hub's end of the pipe is full; the oldest go first beyond it

_pending: deque[bytes] = deque(maxlen=MAX_PENDING)


def report(event: dict[str, Any]) -> None:
    """Send one session event to the hub (kept for the next report when the pipe is full)."""
    counter = budget.budget()
    _pending.append((json.dumps(event, separators=(",", ":")) + "\n").encode())
    while _pending and counter.report_fd is not None:
        try:
            os.write(counter.report_fd, _pending[0])
        except BlockingIOError:
            return
        except OSError:
            counter.report_fd = None  # the hub is gone
            return
        _pending.popleft()


async def _kernel_action(logger: Any, schema_id: str, data: dict[str, Any]) -> None:
    # jupyter_events calls listeners with these keyword arguments (logger, schema_id, data)
    kind = KERNEL_EVENTS.get(str(data.get("action")))
    if kind is None or data.get("status") != "success":
        return
    report({"event": kind, "kernel_id": str(data.get("kernel_id", "")), "kernel_name": str(data.get("kernel_name"))})


def _follow_terminals() -> None:
    try:
        from jupyter_server_terminals.terminalmanager import TerminalManager
    except ImportError:  # no terminals in this environment: nothing to follow
        return
    if getattr(TerminalManager, "_enclave_followed", False):
        return
    create, on_eof = TerminalManager.create, TerminalManager.on_eof

    def followed_create(self: Any, **kwargs: Any) -> dict[str, Any]:
        model = create(self, **kwargs)
        report({"event": "terminal_open", "terminal": str(model["name"])})
        return model

    def followed_on_eof(self: Any, ptywclients: Any) -> None:
        on_eof(self, ptywclients)
        report({"event": "terminal_close", "terminal": str(ptywclients.term_name)})

    TerminalManager.create = followed_create
    TerminalManager.on_eof = followed_on_eof
    TerminalManager._enclave_followed = True


def install(serverapp: Any) -> None:
    """Report this server's kernel and terminal sessions to the hub."""
    serverapp.event_logger.add_listener(schema_id=KERNEL_ACTIONS, listener=_kernel_action)
    _follow_terminals()
