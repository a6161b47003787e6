"""The airlock as a running service: background threads that copy large requests into their snapshots, check
submitted requests (and drafts, for their authors) and purge closed requests' snapshots after the policy's
retention, over the business layer (release/airlock.py); and the detached `enclave airlock run-checks` process the
CLI starts.

Checks never block the caller: `submit` returns at once and a runner (a thread in the web app, a detached process
from the CLI) checks the snapshots. A crashed run is retried; requests left in `checking` or `preparing` by a
restart are picked up again when the runner starts.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

from kernel.config import Paths
from output_checks.release.airlock import Airlock

__all__ = ["PURGE_EVERY_S", "Airlock", "CheckRunner", "detach_check"]

log = logging.getLogger("enclave.airlock")
STOP = "\x00stop"
DRAFT = "draft:"  # a queued draft check, as opposed to a submitted request's
PURGE_EVERY_S = 3600


class CheckRunner:
    """Background threads: one copies `preparing` requests into their snapshots, one checks submitted requests one
    at a time (the engine uses every core itself), and, when asked, a timer purges closed requests' snapshots.
    A copy never waits behind another request's checks, nor a check behind a copy."""

    def __init__(self, airlock: Airlock, *, purge_every: float | None = None) -> None:
        self.airlock = airlock
        self.queue: queue.Queue[str] = queue.Queue()
        self.copies: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="airlock-checks", daemon=True)
        self.copier = threading.Thread(target=self._copy, name="airlock-snapshots", daemon=True)
        self.purge_every = purge_every
        self.stopping = threading.Event()
        self.idle = threading.Event()  # nothing queued or in hand, copies and checks alike
        self.idle.set()
        self._busy = 0
        self._lock = threading.Lock()

    def start(self) -> CheckRunner:
        self.thread.start()
        self.copier.start()
        for request_id in self.airlock.preparing():
            self.prepare(request_id)
        for request_id in self.airlock.pending_checks():
            self.submit(request_id)
        for request_id in self.airlock.pending_draft_checks():
            self.check_draft(request_id)
        if self.purge_every:
            threading.Thread(target=self._purge, name="airlock-purge", daemon=True).start()
        return self

    def _begin(self) -> None:
        with self._lock:
            self._busy += 1
            self.idle.clear()

    def _end(self) -> None:
        with self._lock:
            self._busy -= 1
            if not self._busy:
                self.idle.set()

    def submit(self, request_id: str) -> None:
        self._begin()
        self.queue.put(request_id)

    def check_draft(self, request_id: str) -> None:
        """Check a draft's files that wait for it, for its author (after the submitted requests queued before)."""
        self._begin()
        self.queue.put(DRAFT + request_id)

    def prepare(self, request_id: str) -> None:
        """Copy a `preparing` request's files in the background; then check it if it was submitted."""
        self._begin()
        self.copies.put(request_id)

    def stop(self, timeout: float = 30) -> None:
        """Finish the requests in hand, then end the threads (requests still queued are resumed on next start)."""
        self.stopping.set()
        self.copies.put(STOP)
        self.queue.put(STOP)
        self.copier.join(timeout)
        self.thread.join(timeout)

    def _copy(self) -> None:
        while (request_id := self.copies.get()) != STOP:
            try:
                if self.airlock.prepare(request_id):
                    self.submit(request_id)
                else:  # a draft (or refused, withdrawn: then nothing waits and the check is a no-op)
                    self.check_draft(request_id)
            except Exception:  # the runner must outlive any one request
                log.exception("snapshot runner: request %s", request_id)
            finally:
                self._end()

    def _run(self) -> None:
        while (request_id := self.queue.get()) != STOP:
            try:
                if request_id.startswith(DRAFT):
                    self.airlock.check_draft(request_id.removeprefix(DRAFT))
                else:
                    self.airlock.check_request(request_id)
            except Exception:  # the runner must outlive any one request
                log.exception("check runner: request %s", request_id)
            finally:
                self._end()

    def _purge(self) -> None:
        while not self.stopping.wait(self.purge_every):
            try:
                self.airlock.purge()
            except Exception:
                log.exception("snapshot purge failed")


def detach_check(paths: Paths, request_id: str) -> None:
    """Start `enclave airlock run-checks REQUEST` in its own session so the caller returns at once."""
    import os
    import subprocess
    import sys

    log_dir = paths.airlock / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"{request_id}.log").open("ab") as out:
        subprocess.Popen(
            [sys.executable, "-m", "provisioning.cli", "--home", str(paths.home), "airlock", "run-checks", request_id],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "ENCLAVE_HOME": str(paths.home)}, cwd=str(Path(__file__).resolve().parents[2]),
        )  # fmt: skip
