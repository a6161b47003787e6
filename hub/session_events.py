"""The hub's audit of a workspace's kernel and terminal sessions, as its server reports them on the usage pipe
(images/enclave_workspace/sessions.py): each report checked against a table of known kinds and bounded fields,
and at most `limit` of them audited per workspace and minute, so a workspace cannot flood the log.

The server runs as the project's account and is influenced by what researchers do, so nothing it sends is trusted:
an unknown kind, an unknown or malformed field, or a line that is not JSON is not audited as an event; it is counted,
and the counts of refused and of suppressed (over the rate) reports reach the log as one
`workspace.events_suppressed` event per workspace and minute in which any were.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kernel import audit
from kernel.db import Registry

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_KERNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TERMINAL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _matches(pattern: re.Pattern[str]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and bool(pattern.match(value))


_KERNEL_FIELDS = {"kernel_id": _matches(_UUID), "kernel_name": _matches(_KERNEL_NAME)}
_TERMINAL_FIELDS = {"terminal": _matches(_TERMINAL_NAME)}

# kind reported by the workspace server -> the fields it must carry, each with its check (and nothing else)
KINDS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "kernel_start": _KERNEL_FIELDS,
    "kernel_shutdown": _KERNEL_FIELDS,
    "kernel_restart": _KERNEL_FIELDS,
    "kernel_interrupt": _KERNEL_FIELDS,
    "terminal_open": _TERMINAL_FIELDS,
    "terminal_close": _TERMINAL_FIELDS,
}
EVENTS_PER_MINUTE = 30
WINDOW = 60.0


def is_session_report(report: Any) -> bool:
    """Whether a line from the pipe claims to be a session event (the byte reports carry no `event`)."""
    return isinstance(report, dict) and "event" in report


def parse(report: Any) -> tuple[str, dict[str, str]] | None:
    """(kind, fields) of a well-formed session report; None for anything else."""
    if not is_session_report(report):
        return None
    kind = report["event"]
    if not isinstance(kind, str) or kind not in KINDS:
        return None
    fields = {k: v for k, v in report.items() if k != "event"}
    checks = KINDS[kind]
    if set(fields) != set(checks) or not all(check(fields[name]) for name, check in checks.items()):
        return None
    return kind, fields


@dataclass
class SessionAudit:
    """One running workspace's session events: checked, rate-limited, and written to the audit log."""

    registry: Registry
    workspace: str
    project: str
    actor: str
    target: str
    limit: int = EVENTS_PER_MINUTE
    window: float = WINDOW
    clock: Callable[[], float] = time.monotonic
    _window_start: float = field(default=-1.0, init=False)
    _audited: int = field(default=0, init=False)
    _suppressed: int = field(default=0, init=False)
    _refused: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def handle(self, report: Any) -> None:
        """One line from the server (blocking: call it off the event loop)."""
        with self._lock:
            self._roll()
            parsed = parse(report)
            if parsed is None:
                self._refused += 1
                return
            if self._audited >= self.limit:
                self._suppressed += 1
                return
            self._audited += 1
            kind, fields = parsed
            self._record(f"workspace.{kind}", **fields)

    def refuse(self) -> None:
        """A line that was not even JSON: counted with the refused reports."""
        with self._lock:
            self._roll()
            self._refused += 1

    def pending(self) -> bool:
        """Whether a summary of suppressed or refused reports waits for its window to end."""
        return bool(self._suppressed or self._refused)

    def seconds_left(self) -> float:
        return max(0.0, self._window_start + self.window - self.clock())

    def flush(self, *, force: bool = False) -> None:
        """Write the summary of a window that has ended (or now, with `force`: the workspace stopped)."""
        with self._lock:
            if force or self.clock() - self._window_start >= self.window:
                self._close_window()
                self._window_start = -1.0

    def _roll(self) -> None:
        now = self.clock()
        if self._window_start < 0 or now - self._window_start >= self.window:
            self._close_window()
            self._window_start = now

    def _close_window(self) -> None:
        if self._suppressed or self._refused:
            self._record(
                "workspace.events_suppressed",
                suppressed=self._suppressed,
                refused=self._refused,
                limit_per_minute=self.limit,
            )
        self._audited = self._suppressed = self._refused = 0

    def _record(self, action: str, **detail: Any) -> None:
        self.registry.transaction(
            lambda session: audit.record(
                session,
                actor=self.actor,
                action=action,
                target=self.target,
                project=self.project,
                workspace=self.workspace,
                **detail,
            )
        )
