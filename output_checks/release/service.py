"""The airlock as a service: the workflow over a registry and the stores, with a transaction per call (retried
when two people act at once), and the background check runner.

Checks never block the caller: `submit` returns at once and a runner (a thread in the web app, a detached
`enclave airlock run-checks` process from the CLI) checks the snapshots. A crashed run is retried; requests left
in `checking` by a restart are picked up again by `resume`. Copies never block the web app either: a request
larger than `INLINE_BYTES` is recorded in `preparing` and copied by the runner's snapshot thread (`prepare`),
outside any transaction. Closed requests' snapshots are removed after the policy's retention (`purge`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from fabric.config import Paths
from fabric.db import Registry
from fabric.errors import FabricError
from output_checks.release import workflow
from output_checks.release.storage import AirlockStore, IntegrityError, TooLarge

log = logging.getLogger("enclave.airlock")
T = TypeVar("T")
RETRIES = 5
STOP = "\x00stop"
# A request whose files come to less than this is copied before the caller's answer (in a worker thread of the web
# app: a fraction of a second); a larger one is prepared in the background and its page follows the copy.
INLINE_BYTES = 16 * 2**20
PURGE_EVERY_S = 3600


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

    def new_request(
        self, *, project: str, author: str, title: str, files: Iterable[tuple[str, str]], draft: bool = False,
        inline_bytes: int = INLINE_BYTES,
    ) -> tuple[str, bool]:  # fmt: skip
        """A new request for `files`, refused before anything is kept when over the policy's limits. Returns its id
        and whether it still has to be prepared (`prepare`, in the background); a small one is copied now, and
        submitted unless `draft` (the caller starts its checks)."""
        files = list(files)

        def size(session: Session) -> int:
            measured = workflow.measure_request(session, self.paths, project, author, [path for path, _ in files])
            return sum(n for _, n in measured)

        try:
            if self.tx(size) < inline_bytes:
                request_id = self.tx(
                    lambda s: workflow.request_release(s, self.paths, self.store, project=project, author=author,
                                                       title=title, files=files, draft=draft)
                )  # fmt: skip
                return request_id, False
            request_id = self.tx(
                lambda s: workflow.begin_request(s, self.paths, project=project, author=author, title=title,
                                                 files=files, draft=draft)
            )  # fmt: skip
            return request_id, True
        except TooLarge as exc:  # nothing was kept (rolled back, copies removed); the refusal itself is on record
            problem = str(exc)
            self.tx(lambda s: workflow.refused_submission(s, project, author, problem))
            raise

    def prepare(self, request_id: str) -> bool:
        """Copy a `preparing` request's files into its snapshot, block by block with the hash taken as it goes and
        no transaction open across the copy, each one stopped past its byte limit. True when the request was then
        submitted (the caller starts its checks). A failed copy withdraws the request with the reason, audited, and
        removes what was copied."""
        plan = self.tx(lambda s: workflow.preparation(s, self.paths, request_id))
        if plan is None:
            return False
        self.store.remove_request(request_id)  # a restart's half-taken copies: taken again from the start
        outputs = self.paths.project_outputs(plan.project).resolve()
        taken, path = 0, ""
        try:
            for f in plan.files:
                path = f.path
                limit = min(plan.limits.per_file, plan.limits.per_request - taken)
                snap = self.store.snapshot(request_id, f.id, f.version, outputs / f.path, beneath=outputs,
                                           limit=limit, shown=f.path)  # fmt: skip
                taken += snap.size
                if not self.tx(lambda s, f=f, snap=snap: workflow.snapshot_taken(s, request_id, f.id, snap)):
                    self.store.snapshot_path(snap.relative).unlink(missing_ok=True)  # withdrawn meanwhile
                    return False
        except (FabricError, OSError) as exc:
            problem = str(exc) if isinstance(exc, FabricError) else f"{path}: could not be copied ({exc.strerror})"
            self.store.remove_request(request_id)
            self.tx(lambda s: workflow.refuse(s, request_id, problem))
            log.warning("request %s refused while it was prepared", request_id)
            return False
        return self.tx(lambda s: workflow.prepared(s, request_id))

    def purge(self, now: datetime | None = None) -> list[str]:
        """Remove the snapshots of withdrawn and rejected requests closed more than the policy's `retention_days`
        ago (`now` for tests), each removal audited as `airlock.snapshot_purged`; the records and hashes stay."""
        from output_checks.release.site_policy import resolve_policy

        days = resolve_policy(self.paths).retention_days
        cutoff = (now or workflow.now()) - timedelta(days=days)
        purged = []
        for request_id in self.tx(lambda s: workflow.purgeable(s, cutoff)):
            if not self.store.has_snapshots(request_id):
                continue
            if self.tx(lambda s, r=request_id: workflow.purge_snapshot(s, self.store, r, days)):
                purged.append(request_id)
        return purged

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
        """Requests a restart left in `preparing` or `checking`: copy and check them now."""
        for request_id in self.tx(workflow.preparing):
            self.prepare(request_id)
        pending = self.tx(workflow.pending_checks)
        for request_id in pending:
            self.check_request(request_id)
        return pending


def _conflict(exc: Exception) -> bool:
    text = str(exc).lower()
    return "unique" in text or "locked" in text or "busy" in text or "duplicate" in text


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
        for request_id in self.airlock.tx(workflow.preparing):
            self.prepare(request_id)
        for request_id in self.airlock.tx(workflow.pending_checks):
            self.submit(request_id)
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
            except Exception:  # the runner must outlive any one request
                log.exception("snapshot runner: request %s", request_id)
            finally:
                self._end()

    def _run(self) -> None:
        while (request_id := self.queue.get()) != STOP:
            try:
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
