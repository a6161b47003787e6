"""The airlock's business layer: one object with every verb a person or the airlock itself takes on a release
request. The CLI and the web app call it and only turn its exceptions into exit codes or HTTP errors; the rules are
the workflow's (release/workflow/), checked against the tables in states.py.

Each verb runs in one transaction over a small data-access protocol (`Records`: a session per transaction, the
registry in Enclave), retried when two people act at once, and writes its audit event in that transaction. The
automated checks are a function of (snapshots, policy, known identifiers) (release/checks.py): this layer reads
what they need and records what they return. Copies and checks never block a caller's transaction: a large
request is copied by `prepare` and checked by `check_request`, both run in the background by release/service.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session

from fabric.projects import ProjectRole
from kernel.config import Paths
from kernel.errors import EnclaveError
from output_checks.release import checks, ledger, notices, views, workflow
from output_checks.release.checks import SnapshotToCheck
from output_checks.release.models import RequestFile
from output_checks.release.site_policy import project_overrides, resolve_policy
from output_checks.release.storage import AirlockStore, IntegrityError, TooLarge

log = logging.getLogger("enclave.airlock")
T = TypeVar("T")
# A request whose files come to less than this is copied before the caller's answer (in a worker thread of the web
# app: a fraction of a second); a larger one is prepared in the background and its page follows the copy.
INLINE_BYTES = 16 * 2**20


class Records(Protocol):
    """What the business layer needs of the database (`kernel.db.Registry`): a transaction that commits or rolls
    back as a unit, the change and its audit events together, run again when a concurrent writer got there first."""

    def transaction(self, change: Callable[[Session], T]) -> T: ...


@dataclass(frozen=True)
class RequestRow:
    id: str
    project: str
    state: str
    author: str
    title: str


@dataclass(frozen=True)
class RequestPage:
    """A request as its page shows it: the view (with what the reader `can` do), its history and who viewed it."""

    view: dict[str, Any]
    history: list[dict[str, Any]]
    viewed: list[dict[str, Any]]


@dataclass(frozen=True)
class PreviewFile:
    """A file (any version) of a request, as its preview needs it."""

    path: str
    snapshot: str
    sha256: str
    findings: list[dict[str, Any]]


class Airlock:
    def __init__(self, registry: Records, paths: Paths) -> None:
        self.registry = registry
        self.paths = paths
        self.store = AirlockStore(paths.airlock)
        self.notifier = notices.Notifier(registry, notices.relay_from_env())  # checkers told of waiting requests

    def tx(self, fn: Callable[[Session], T]) -> T:
        """Run `fn` in one transaction, again when a concurrent writer got there first (`Registry.transaction`)."""
        return self.registry.transaction(fn)

    # ------------------------------------------------------------------------------------------------ reading

    def user_projects(self, user: str) -> dict[str, set[str]]:
        """The projects `user` belongs to, with their roles on each."""
        return self.tx(lambda s: views.user_projects(s, user))

    def researcher_projects(self, user: str) -> list[str]:
        """The projects where `user` may ask for a release."""
        return sorted(p for p, roles in self.user_projects(user).items() if ProjectRole.RESEARCHER.value in roles)

    def checks_outputs(self, user: str) -> bool:
        """Whether `user` is an output checker on any project (their home is the review queue)."""
        return any(ProjectRole.OUTPUT_CHECKER.value in roles for roles in self.user_projects(user).values())

    def request(self, request_id: str, user: str) -> dict[str, Any]:
        """What `user` may see of a request, with what they `can` do to it now (views.request_view)."""
        return self.tx(lambda s: views.request_view(s, request_id, user))

    def state(self, request_id: str, user: str) -> str:
        return self.tx(lambda s: workflow.get_request(s, request_id, user).state)

    def refusal(self, request_id: str, user: str) -> str | None:
        """Why the airlock refused the request's files while it copied them, if it did."""
        return self.tx(lambda s: workflow.refusal(s, workflow.get_request(s, request_id, user).id))

    def votes(self, request_id: str, user: str) -> list[workflow.VoteView]:
        """The votes of the current round `user` may see (others' only once every review is in)."""
        return self.tx(lambda s: workflow.visible_votes(s, workflow.get_request(s, request_id, user), user))

    def my_requests(self, user: str) -> list[RequestRow]:
        return self.tx(lambda s: [_row(r) for r in workflow.my_requests(s, user)])

    def review_queue(self, user: str) -> list[RequestRow]:
        return self.tx(lambda s: [_row(r) for r in workflow.review_queue(s, user)])

    def my_requests_page(self, user: str, page: int, per_page: int) -> views.Page:
        return self.tx(lambda s: views.my_requests_page(s, user, page, per_page))

    def review_page(self, user: str, page: int, per_page: int) -> views.Page:
        return self.tx(lambda s: views.review_page(s, user, page, per_page))

    def history_page(self, user: str, page: int, per_page: int, project: str | None = None) -> views.Page:
        return self.tx(lambda s: views.history_page(s, user, page, per_page, project))

    def waiting(self, user: str) -> list[notices.Waiting]:  # what waits for the checker `user`, per project
        return self.tx(lambda s: notices.waiting_for(s, user))

    def checked_projects(self, user: str) -> list[str]:
        return self.tx(lambda s: workflow.checked_projects(s, user))

    def project_requests(self, user: str, project: str) -> list[RequestRow]:
        """Every request of `project` its output checker `user` may list: those in review or approved (not their own)
        and the release history (released, rejected), most recently updated first."""

        def read(session: Session) -> list[RequestRow]:
            if project not in workflow.checked_projects(session, user):
                raise workflow.NotAllowed(f"you are not an output checker on project {project[:64]!r}")
            rows = [r for r in workflow.review_queue(session, user) if r.project == project]
            rows += workflow.release_history(session, user, project)
            rows.sort(key=lambda r: (r.updated_at, r.id), reverse=True)
            return [_row(r) for r in rows]

        return self.tx(read)

    def verified_snapshot(self, snapshot: str, sha256: str) -> Path:
        """A snapshot's bytes, refused (IntegrityError) unless they still hash to what was recorded."""
        return self.store.verify(snapshot, sha256)

    # ------------------------------------------------------------------------------------------------ looking
    # Opening a request or a preview is audited when a checker does it (who saw what, before deciding).

    def open_request(self, request_id: str, user: str) -> RequestPage:
        def read(session: Session) -> RequestPage:
            view = views.request_view(session, request_id, user)
            if view["you"] == workflow.Actor.CHECKER:
                workflow.record_view(session, request_id, user, "request")
            return RequestPage(view, *views.history(session, request_id, user))

        return self.tx(read)

    def open_preview(self, request_id: str, user: str, file_id: int) -> PreviewFile:
        def read(session: Session) -> PreviewFile:
            record = views.request_file(session, request_id, user, file_id)
            if workflow.actor_for(session, record.request, user) is workflow.Actor.CHECKER:
                workflow.record_view(session, request_id, user, f"preview:{record.path}:v{record.version}")
            return PreviewFile(record.path, record.snapshot, record.sha256, list(record.findings or []))

        return self.tx(read)

    # ------------------------------------------------------------------------------------------------ the author

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

    def create_request(self, *, project: str, author: str, title: str) -> str:
        """An empty draft (files are added one by one with `add_file`)."""
        return self.tx(lambda s: workflow.create_request(s, project=project, author=author, title=title))

    def add_file(self, request_id: str, user: str, path: str, justification: str = "") -> RequestFile:
        return self.tx(lambda s: workflow.add_file(s, self.paths, self.store, request_id, user, path, justification))

    def justify(self, request_id: str, user: str, path: str, text: str) -> None:
        self.tx(lambda s: workflow.justify(s, request_id, user, path, text))

    def revise(self, request_id: str, user: str, path: str) -> RequestFile:
        """A new version of a file from the outputs folder (its earlier reviews no longer count)."""
        return self.tx(lambda s: workflow.revise_file(s, self.paths, self.store, request_id, user, path))

    def withdraw_file(self, request_id: str, user: str, path: str) -> None:
        self.tx(lambda s: workflow.withdraw_file(s, request_id, user, path))

    def submit(self, request_id: str, user: str, *, revised: Iterable[str] = ()) -> None:
        """Submit a draft, or a returned request again, for the checks (the caller starts them); `revised` files
        are taken again from the outputs folder first, in the same transaction."""
        revised = list(revised)

        def run(session: Session) -> None:
            for path in revised:
                workflow.revise_file(session, self.paths, self.store, request_id, user, path)
            workflow.submit(session, request_id, user)

        self.tx(run)

    def withdraw(self, request_id: str, user: str) -> None:
        self.tx(lambda s: workflow.withdraw(s, request_id, user))

    def download(self, request_id: str, user: str, path: str) -> Path:
        """The released file for its requester, verified against the reviewed hash; audited."""
        return self.tx(lambda s: workflow.download(s, self.store, request_id, user, path))

    def download_file(self, request_id: str, user: str, file_id: int) -> Path:
        """As `download`, naming the file by its record's id (the web app's links)."""

        def fetch(session: Session) -> Path:
            record = views.request_file(session, request_id, user, file_id)
            return workflow.download(session, self.store, request_id, user, record.path)

        return self.tx(fetch)

    # ------------------------------------------------------------------------------------------------ checkers

    def vote(
        self, request_id: str, user: str, path: str, decision: str, comment: str = "", override_reason: str = ""
    ) -> None:
        self.tx(lambda s: workflow.vote(s, request_id, user, path, decision, comment, override_reason))

    def submit_review(self, request_id: str, user: str) -> None:
        self.tx(lambda s: self.notifier.watch(s, workflow.submit_review, request_id, user))  # approved: checkers told

    def release(self, request_id: str, user: str) -> list[str]:
        """Release the approved files, adding their tables to the project's ledger in the same transaction; a copy
        that does not hash to what was reviewed aborts the release, and the abort is audited."""
        tables = self._release_tables(request_id, user)
        try:
            return self.tx(lambda s: workflow.release(s, self.store, request_id, user, ledger=tables))
        except IntegrityError as exc:
            problem = str(exc)
            self.tx(lambda s: workflow.release_aborted(s, request_id, user, problem))
            raise

    def _release_tables(self, request_id: str, user: str) -> dict[int, list[ledger.Cell]]:
        """The keyed cells of an approved request's tables, read before the release's transaction (the sandbox
        takes a moment per file). Nothing is read for a request `user` may not release: `workflow.release` refuses
        it with the reason."""

        def plan(session: Session) -> tuple[str | None, list[RequestFile]]:
            request = workflow.get_request(session, request_id, user)
            if not workflow.abilities(session, request, user)[workflow.Action.RELEASE.value]:
                return None, []
            return request.project, [f for f in workflow.current_files(request) if f.kind in ledger.TABLE_KINDS]

        try:
            project, files = self.tx(plan)
        except EnclaveError:
            return {}
        if not files or project is None:
            return {}
        return checks.table_cells(self._verified(files), ledger.ledger_key(self.paths, project))

    def _verified(self, files: Iterable[RequestFile]) -> list[SnapshotToCheck]:
        """The files whose snapshots still hash to what was recorded; any other is left out (never keyed or
        compared: the release that would copy it verifies it again, and aborts with the reason)."""
        out = []
        for f in files:
            try:
                out.append(SnapshotToCheck(f.id, f.path, self.store.verify(f.snapshot, f.sha256)))
            except IntegrityError:
                continue
        return out

    # ------------------------------------------------------------------------------------------------ the airlock

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
        except (EnclaveError, OSError) as exc:
            problem = str(exc) if isinstance(exc, EnclaveError) else f"{path}: could not be copied ({exc.strerror})"
            self.store.remove_request(request_id)
            self.tx(lambda s: workflow.refuse(s, request_id, problem))
            log.warning("request %s refused while it was prepared", request_id)
            return False
        return self.tx(lambda s: workflow.prepared(s, request_id))

    def check_request(self, request_id: str) -> None:
        """Run the automated checks on one request's snapshots and record the results (or the failure)."""
        state = self.tx(lambda s: getattr(s.get(workflow.ReleaseRequest, request_id), "state", None))
        if state != workflow.RequestState.CHECKING.value:
            return  # withdrawn meanwhile, checked by another runner, or a draft (`check_draft`)
        try:
            results = self._check(request_id)
        except Exception as exc:  # any failure is recorded and retried, never left hanging
            problem = type(exc).__name__
            log.warning("checks for %s failed (%s)", request_id, problem)
            retry = self.tx(lambda s: self.notifier.watch(s, workflow.checks_failed, request_id, problem))
            if retry:
                self.check_request(request_id)
            return
        self.tx(lambda s: self.notifier.watch(s, workflow.record_checks, request_id, results))  # checkers told

    def check_draft(self, request_id: str) -> int:
        """Run the automated checks on a draft's (or a returned request's) copied files that wait for them and show
        the results to its author: no state changes, no reviewer is involved, and submitting checks every file
        again. A failure leaves them unchecked (logged): the checks at submission decide. Returns how many files
        were checked."""
        try:
            results = self._check(request_id, draft=True)
        except Exception as exc:
            log.warning("checks of draft %s failed (%s)", request_id, type(exc).__name__)
            return 0
        return self.tx(lambda s: workflow.record_draft_checks(s, request_id, results)) if results else 0

    def _check(self, request_id: str, *, draft: bool = False) -> dict[int, dict[str, Any]]:
        """The checks' results for a request's current files (a draft's: those waiting for them): read the plan,
        resolve the policy and the project's known identifiers, check the verified snapshots, then compare its
        tables with the project's ledger."""
        from output_checks.screening.known import build_known_identifiers

        def plan(session: Session) -> tuple[str, list[RequestFile], dict[str, Any]]:
            request = session.get(workflow.ReleaseRequest, request_id)
            files = workflow.unchecked_draft_files(request) if draft else workflow.current_files(request)
            return request.project, files, project_overrides(session, request.project)

        project, files, overrides = self.tx(plan)
        if not files:
            return {}
        policy = resolve_policy(self.paths, overrides)
        known = build_known_identifiers(self.registry, self.paths, project)
        # Check exactly the bytes that will be reviewed: a snapshot that no longer matches its hash fails the run.
        snapshots = [SnapshotToCheck(f.id, f.path, self.store.verify(f.snapshot, f.sha256)) for f in files]
        results = checks.check_snapshots(snapshots, policy, known)
        if self.tx(lambda s: ledger.has_entries(s, project)):
            tables = checks.tables_among(results)
            cells = checks.table_cells(
                [s for s in snapshots if s.file_id in tables], ledger.ledger_key(self.paths, project)
            )
            for file_id, keyed in [(i, c) for i, c in cells.items() if c]:  # a table with no counts: nothing to compare
                released = self.tx(
                    lambda s, keyed=keyed: ledger.released_cells(s, project, keyed, exclude_request=request_id)
                )
                checks.add_differencing(results[file_id], keyed, released, policy.min_cell_count)
        return results

    def pending_draft_checks(self) -> list[str]:
        return self.tx(workflow.pending_draft_checks)

    def pending_checks(self) -> list[str]:
        """Requests in `checking` (a restart left them, or their checks are queued)."""
        return self.tx(workflow.pending_checks)

    def preparing(self) -> list[str]:
        """Requests in `preparing` (their copies are taken again from the start)."""
        return self.tx(workflow.preparing)

    def resume(self) -> list[str]:
        """Requests a restart left in `preparing` or `checking`, and drafts with files not checked yet: copy and
        check them now."""
        for request_id in self.preparing():
            self.prepare(request_id)
        pending = self.pending_checks()
        for request_id in pending:
            self.check_request(request_id)
        drafts = self.pending_draft_checks()
        for request_id in drafts:
            self.check_draft(request_id)
        return pending + drafts

    def purge(self, now: datetime | None = None) -> list[str]:
        """Remove the snapshots of withdrawn and rejected requests closed more than the policy's `retention_days`
        ago (`now` for tests), each removal audited as `airlock.snapshot_purged`; the records and hashes stay."""
        days = resolve_policy(self.paths).retention_days
        cutoff = (now or workflow.now()) - timedelta(days=days)
        purged = []
        for request_id in self.tx(lambda s: workflow.purgeable(s, cutoff)):
            if not self.store.has_snapshots(request_id):
                continue
            if self.tx(lambda s, r=request_id: workflow.purge_snapshot(s, self.store, r, days)):
                purged.append(request_id)
        return purged


def _row(request: workflow.ReleaseRequest) -> RequestRow:
    return RequestRow(request.id, request.project, request.state, request.author, request.title)
