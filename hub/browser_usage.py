"""The hub's ledger of what each workspace sent to the browser, per hour: the other half of the workspace's byte
budget (images/enclave_workspace/budget.py).

The spawner gives each workspace server the write end of a pipe; the server reports on it, as JSON lines, the bytes
it sent by route. The hub adds them up per workspace and hour in a root-only file (so a restarted workspace starts
from what it already spent: ENCLAVE_BROWSER_SPENT), and writes one audit event per workspace and hour with the
totals by route and the number of refused responses — sizes only, never content — when the hour ends or the
workspace stops. The same pipe carries the server's kernel and terminal session events (hub/session_events.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.session_events import SessionAudit, is_session_report
from kernel import audit
from kernel.db import Registry

HOUR = 3600
MAX_LINE = 64 * 1024  # a report is a few hundred bytes; anything longer is not the server's


def hour_of(now: float) -> int:
    return int(now // HOUR * HOUR)


@dataclass
class HourTotals:
    hour: int
    by_route: dict[str, int] = field(default_factory=dict)
    refused: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_route.values())


class UsageLedger:
    """Per-workspace totals of the current hour, kept in one root-only JSON file of the installation's hub state."""

    def __init__(self, path: Path, registry: Registry) -> None:
        self.path = path
        self.registry = registry
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = self.path.with_suffix(".tmp")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(staging, self.path)

    def spent(self, workspace: str, now: float | None = None) -> tuple[int, int]:
        """(the current hour, bytes `workspace` already sent in it)."""
        hour = hour_of(time.time() if now is None else now)
        with self._lock:
            entry = self._load().get(workspace)
        if not entry or entry["hour"] != hour:
            return hour, 0
        return hour, sum(entry["bytes"].values())

    def add(self, workspace: str, *, actor: str, target: str, report: dict[str, Any]) -> None:
        """One report from a workspace server: add it to its hour (closing the previous hour in the audit log)."""
        hour = int(report["hour"])
        with self._lock:
            data = self._load()
            entry = data.get(workspace)
            if entry and entry["hour"] != hour:
                self._audit(entry, actor=actor, target=target)
                entry = None
            entry = entry or {"hour": hour, "bytes": {}, "refused": 0, "actor": actor, "target": target}
            for route, size in report.get("bytes", {}).items():
                entry["bytes"][str(route)[:60]] = entry["bytes"].get(str(route)[:60], 0) + int(size)
            entry["refused"] += int(report.get("refused", 0))
            data[workspace] = entry
            self._save(data)

    def close(self, workspace: str) -> None:
        """The workspace stopped: write its hour to the audit log now (the next start begins a fresh entry that
        still counts against the same hour's budget, through `spent`)."""
        with self._lock:
            data = self._load()
            entry = data.get(workspace)
            if not entry or entry.get("audited") == sum(entry["bytes"].values()):
                return
            self._audit(entry, actor=entry["actor"], target=entry["target"])
            entry["audited"] = sum(entry["bytes"].values())
            self._save(data)

    def _audit(self, entry: dict[str, Any], *, actor: str, target: str) -> None:
        already = entry.get("audited", 0)
        total = sum(entry["bytes"].values())
        if total == already and not entry["refused"]:
            return
        self.registry.transaction(
            lambda session: audit.record(
                session,
                actor=actor,
                action="workspace.browser_bytes",
                target=target,
                hour=time.strftime("%Y-%m-%dT%H:00Z", time.gmtime(entry["hour"])),
                bytes=dict(sorted(entry["bytes"].items())),
                total=total,
                refused=entry["refused"],
            )
        )


async def follow(
    reader_fd: int,
    ledger: UsageLedger,
    workspace: str,
    *,
    actor: str,
    target: str,
    sessions: SessionAudit | None = None,
) -> None:
    """Read a workspace server's reports until it exits (its end of the pipe closes), then close its hour. Byte
    reports go to the ledger; kernel and terminal session events (lines with an `event`) to `sessions`."""
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader(limit=MAX_LINE)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream), os.fdopen(reader_fd, "rb", buffering=0)
    )
    try:
        while True:
            try:
                if sessions is not None and sessions.pending():
                    # a summary of suppressed reports is due when the minute ends, even if nothing more comes
                    line = await asyncio.wait_for(stream.readline(), timeout=sessions.seconds_left())
                else:
                    line = await stream.readline()
            except TimeoutError:
                await asyncio.to_thread(sessions.flush)
                continue
            except (ValueError, asyncio.LimitOverrunError):
                break  # not a report: stop listening, keep what was counted
            if not line:
                break
            try:
                report = json.loads(line)
            except ValueError:
                if sessions is not None:
                    await asyncio.to_thread(sessions.refuse)
                continue
            if is_session_report(report):
                if sessions is not None:
                    await asyncio.to_thread(sessions.handle, report)
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                await asyncio.to_thread(ledger.add, workspace, actor=actor, target=target, report=report)
    finally:
        transport.close()
        await asyncio.to_thread(ledger.close, workspace)
        if sessions is not None:
            await asyncio.to_thread(sessions.flush, force=True)
