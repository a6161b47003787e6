"""The airlock as a service: the workflow over a registry and the stores, with a transaction per call (retried
when two people act at once), and the background check runner.

Checks never block the caller: `submit` returns at once and a runner (a thread in the web app, a detached
`enclave airlock run-checks` process from the CLI) checks the snapshots. A crashed run is retried; requests left
in `checking` by a restart are picked up again by `resume`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from fabric.config import Paths
from fabric.db import Registry
from fabric.errors import FabricError
from output_checks.release import workflow
from output_checks.release.storage import AirlockStore, IntegrityError

log = logging.getLogger("enclave.airlock")
T = TypeVar("T")
RETRIES = 5
STOP = "\x00stop"


class Airlock:
    def __init__(self, registry: Registry, paths: Paths) -> None:
        self.registry = registry
        self.paths = paths
        self.store = AirlockStore(paths.airlock)

    def tx(self, fn: Callable[[Session], T]) -> T:
        """Run `fn` in one transaction; retry when a concurrent writer took the same audit sequence number."""
        for attempt in range(RETRIES):
            try:
                with self.registry.session() as session:
                    return fn(session)
            except (DBIntegrityError, OperationalError) as exc:
                if attempt == RETRIES - 1 or not _conflict(exc):
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    # The thin verbs used by the CLI and the web app.
    def release(self, request_id: str, user: str) -> list[str]:
        """Release the approved files, adding their tables to the project's ledger in the same transaction."""
        tables = self._release_tables(request_id, user)
        try:
            return self.tx(lambda s: workflow.release(s, self.store, request_id, user, ledger=tables))
        except IntegrityError as exc:
            problem = str(exc)
            self.tx(lambda s: workflow.release_aborted(s, request_id, user, problem))
            raise

    def _release_tables(self, request_id: str, user: str) -> dict[int, list]:
        """The keyed cells of an approved request's tables, read before the release's transaction (the sandbox
        takes a moment per file). Nothing is read for a request `user` may not release: `workflow.release` refuses
        it with the reason."""
        from output_checks.release.checks import snapshot_tables
        from output_checks.release.ledger import TABLE_KINDS

        def plan(session):
            request = workflow.get_request(session, request_id, user)
            if request.state != workflow.RequestState.APPROVED.value:
                return None, []
            if workflow.actor_for(session, request, user) is not workflow.Actor.CHECKER:
                return None, []
            files = [(f.id, f.path, f.snapshot, f.sha256) for f in workflow.current_files(request)
                     if f.kind in TABLE_KINDS]  # fmt: skip
            return request.project, files

        try:
            project, files = self.tx(plan)
        except FabricError:
            return {}
        return snapshot_tables(self, project, files) if files else {}

    def check_request(self, request_id: str) -> None:
        """Run the automated checks on one request's snapshots and record the results (or the failure)."""
        from output_checks.release.checks import run_checks_on_snapshots

        try:
            results = run_checks_on_snapshots(self, request_id)
        except Exception as exc:  # any failure is recorded and retried, never left hanging
            problem = type(exc).__name__
            log.warning("checks for %s failed (%s)", request_id, problem)
            retry = self.tx(lambda s: workflow.checks_failed(s, request_id, problem))
            if retry:
                self.check_request(request_id)
            return
        self.tx(lambda s: workflow.record_checks(s, request_id, results))

    def resume(self) -> list[str]:
        """Requests a restart left in `checking`: check them now."""
        pending = self.tx(workflow.pending_checks)
        for request_id in pending:
            self.check_request(request_id)
        return pending


def _conflict(exc: Exception) -> bool:
    text = str(exc).lower()
    return "unique" in text or "locked" in text or "busy" in text or "duplicate" in text


class CheckRunner:
    """A background thread that checks submitted requests one at a time (the engine uses every core itself)."""

    def __init__(self, airlock: Airlock) -> None:
        self.airlock = airlock
        self.queue: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="airlock-checks", daemon=True)
        self.idle = threading.Event()
        self.idle.set()

    def start(self) -> CheckRunner:
        self.thread.start()
        for request_id in self.airlock.tx(workflow.pending_checks):
            self.submit(request_id)
        return self

    def submit(self, request_id: str) -> None:
        self.idle.clear()
        self.queue.put(request_id)

    def stop(self, timeout: float = 30) -> None:
        """Finish the request in hand, then end the thread (requests still queued are resumed on next start)."""
        self.queue.put(STOP)
        self.thread.join(timeout)

    def _run(self) -> None:
        while True:
            request_id = self.queue.get()
            if request_id == STOP:
                self.queue.task_done()
                return
            try:
                self.airlock.check_request(request_id)
            except Exception:  # the runner must outlive any one request
                log.exception("check runner: request %s", request_id)
            finally:
                self.queue.task_done()
                if self.queue.empty():
                    self.idle.set()


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
