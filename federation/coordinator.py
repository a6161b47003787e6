"""The coordinator's business layer: federated projects and their members, signed tasks, each site's state of each
task, the sealed results the sites return, and opening them for the project's members. Its web server
(federation/coordinator_server.py) and the command line only call it and turn its `FederationError`s into HTTP
answers or exit codes.

What the coordinator keeps on disk, under the home's root-only `federation/coordinator/`: its Ed25519 signing key,
each federated project's X25519 key (the sites seal released outputs to its public half), each task's notebook and
each site's sealed bundle. Every change is one registry transaction with its audit event; a bundle is written before
its row commits, so a crash leaves at worst an orphan file, never a row without its bundle.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from federation import linkage, sealing, tasks
from federation.models import FederatedMember, FederatedProject, FederatedTask, TaskSite
from federation.states import DESCRIPTIONS, TERMINAL, InvalidMove, Mover, TaskState, check_move
from kernel import audit
from kernel.clock import utcnow
from kernel.config import Paths
from kernel.errors import EnclaveError
from kernel.secret_files import write_secret_bytes

T = TypeVar("T")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PROJECT_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")  # a site makes a local project of the same name
MAX_NOTEBOOK_BYTES = 16 << 20
MAX_RESULT_BYTES = 64 << 20
DEFAULT_VALIDITY = timedelta(days=7)
PROJECT_KEY, PROJECT_PUBLIC_KEY = "key.pem", "key.pub.pem"  # a federated project's X25519 pair, in its folder
REASON = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")  # a site reports codes, never free text
TOKEN = re.compile(r"[0-9a-f]{64}")
MAX_TOKENS = 1_000_000  # a site's patients in one project (65 MB, within the server's body limit)
REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class FederationError(EnclaveError):
    """A refusal with the HTTP status the coordinator's server answers it with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Records(Protocol):
    def transaction(self, change: Any) -> Any: ...


@dataclass(frozen=True)
class Offer:
    """A task as a site pulls it: the manifest as signed and the key to seal its outputs to."""

    signed: str
    project_key: str  # the project's X25519 public key, PEM


@dataclass(frozen=True)
class SiteStatus:
    site: str
    state: str
    description: str
    reason: str
    reference: str
    updated_at: datetime


@dataclass(frozen=True)
class TaskStatus:
    task_id: str
    project: str
    submitter: str
    expires_at: datetime
    sites: list[SiteStatus] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return all(TaskState(s.state) in TERMINAL for s in self.sites)

    @property
    def released(self) -> list[str]:
        return [s.site for s in self.sites if s.state == TaskState.RELEASED]


class Coordinator:
    def __init__(self, registry: Records, paths: Paths, name: str) -> None:
        if not NAME.fullmatch(name):
            raise FederationError(f"coordinator name {name!r}: lower-case letters, digits and '-'")
        self.registry = registry
        self.paths = paths
        self.name = name
        self.folder = paths.federation / "coordinator"

    def tx(self, change: Any) -> Any:
        return self.registry.transaction(change)

    # ---------------------------------------------------------------------------------------------- keys on disk

    @property
    def signing_key_file(self) -> Path:
        return self.folder / "signing-key.pem"

    def signing_key(self) -> Ed25519PrivateKey:
        """The coordinator's Ed25519 key, made on first use (root-only)."""
        if not self.signing_key_file.exists():
            tasks.save_signing_key(self.signing_key_file, tasks.generate_signing_key())
        return tasks.load_signing_key(self.signing_key_file)

    def signing_public_pem(self) -> str:
        """What a site pins at join time to verify this coordinator's manifests."""
        return tasks.public_key_pem(self.signing_key().public_key())

    def project_key(self, project: str) -> sealing.ProjectKey:
        return sealing.ProjectKey.load(self.folder / "projects" / project / PROJECT_KEY)

    # ------------------------------------------------------------------------------------------------- admin

    def create_project(
        self, *, name: str, title: str, purpose: str, sites: Iterable[str], members: Iterable[str], actor: str
    ) -> None:
        """A federated project, its key pair and its members; sites in the consortium's fixed order."""
        sites, members = list(sites), sorted(set(members))
        if not PROJECT_NAME.fullmatch(name):
            raise FederationError(f"project name {name!r}: 3-32 lower-case letters, digits and '-'")
        if not sites or len(set(sites)) != len(sites) or not all(NAME.fullmatch(s) for s in sites):
            raise FederationError("sites: one or more distinct site names (lower-case letters, digits and '-')")
        if not re.fullmatch(r"[A-Z][A-Z0-9-]{1,15}", purpose):
            raise FederationError(f"purpose {purpose!r}: a Data Use Ontology code such as DS-CVD, HMB or GRU")
        key_folder = self.folder / "projects" / name
        if not (key_folder / PROJECT_KEY).exists():  # before its row: a project never exists without its key
            sealing.ProjectKey.generate().save(key_folder / PROJECT_KEY, key_folder / PROJECT_PUBLIC_KEY)

        def create(session: Session) -> None:
            if session.get(FederatedProject, name) is not None:
                raise FederationError(f"federated project {name} exists", 409)
            session.add(FederatedProject(name=name, title=title, purpose=purpose, sites=sites, created_by=actor,
                                         created_at=utcnow()))  # fmt: skip
            session.flush()
            for user in members:
                session.add(FederatedMember(project=name, user=user))
            audit.record(session, actor=actor, action="federation.project_created", target=name, purpose=purpose,
                         sites=sites, members=members)  # fmt: skip

        self.tx(create)

    def add_member(self, project: str, user: str, *, actor: str) -> None:
        def add(session: Session) -> None:
            self._project(session, project)
            if session.get(FederatedMember, (project, user)) is None:
                session.add(FederatedMember(project=project, user=user))
                audit.record(session, actor=actor, action="federation.member_added", target=project, user=user)

        self.tx(add)

    # ---------------------------------------------------------------------------------------------- researcher

    def submit(
        self,
        *,
        project: str,
        submitter: str,
        notebook: bytes,
        parameters: Mapping[str, Any],
        outputs: Iterable[tasks.DeclaredOutput],
        valid_for: timedelta = DEFAULT_VALIDITY,
        count_once: bool = False,
    ) -> str:
        """Sign a task for every site of `project` and queue it there; its id. Only a member submits. `count_once`:
        the sites exchange linkage tokens first, so a patient with records at several sites is counted once."""
        if len(notebook) > MAX_NOTEBOOK_BYTES:
            raise FederationError(f"the notebook is larger than {MAX_NOTEBOOK_BYTES >> 20} MiB", 413)
        digest = hashlib.sha256(notebook).hexdigest()
        key = self.signing_key()

        def plan(session: Session) -> tasks.TaskManifest:
            spec = self._project(session, project)
            self._member(session, project, submitter)
            return tasks.new_manifest(
                project=project, purpose=spec.purpose, submitter=submitter, notebook_sha256=digest,
                parameters=dict(parameters), outputs=tuple(outputs), sites=tuple(spec.sites),
                coordinator=self.name, valid_for=valid_for, count_once=count_once,
            )  # fmt: skip

        try:
            manifest = self.tx(plan)
        except ValueError as exc:  # a parameter, an output or the validity the manifest cannot carry
            raise FederationError(f"the task cannot be signed: {exc}") from None
        signed = tasks.sign(manifest, key, tasks.key_id(key.public_key()))
        # the notebook first (a retried or failed transaction leaves at worst an unused file, never a task without it)
        write_secret_bytes(self.folder / "tasks" / manifest.task_id / "notebook.ipynb", notebook)

        def create(session: Session) -> str:
            now = utcnow()
            session.add(FederatedTask(id=manifest.task_id, project=project, submitter=submitter,
                                      signed=signed.to_json(), notebook_sha256=digest, created_at=now,
                                      expires_at=naive(manifest.expires_at)))  # fmt: skip
            session.flush()
            for site in manifest.sites:
                session.add(TaskSite(task_id=manifest.task_id, site=site, state=TaskState.QUEUED, reason="",
                                     reference="", result_sha256="", result_size=0, tokens_sha256="",
                                     tokens_count=0, updated_at=now))  # fmt: skip
            audit.record(session, actor=submitter, action="federation.task_submitted", target=manifest.task_id,
                         project=project, notebook_sha256=digest, sites=list(manifest.sites),
                         outputs=[o.path for o in manifest.outputs])  # fmt: skip
            return manifest.task_id

        return self.tx(create)

    def status(self, task_id: str, user: str) -> TaskStatus:
        def read(session: Session) -> TaskStatus:
            task = self._task(session, task_id)
            self._member(session, task.project, user)
            rows = session.scalars(select(TaskSite).where(TaskSite.task_id == task_id)).all()
            order = {site: i for i, site in enumerate(self._project(session, task.project).sites)}
            sites = [
                SiteStatus(r.site, r.state, DESCRIPTIONS[TaskState(r.state)], r.reason, r.reference, r.updated_at)
                for r in sorted(rows, key=lambda r: order.get(r.site, len(order)))
            ]
            return TaskStatus(task.id, task.project, task.submitter, task.expires_at, sites)

        return self.tx(read)

    def tasks_of(self, user: str) -> list[tuple[str, str, datetime]]:
        """(task id, project, created) of every task in the projects `user` is a member of, newest first."""

        def read(session: Session) -> list[tuple[str, str, datetime]]:
            projects = select(FederatedMember.project).where(FederatedMember.user == user)
            rows = session.scalars(
                select(FederatedTask).where(FederatedTask.project.in_(projects)).order_by(
                    FederatedTask.created_at.desc())
            ).all()  # fmt: skip
            return [(t.id, t.project, t.created_at) for t in rows]

        return self.tx(read)

    def results(self, task_id: str, user: str) -> dict[str, dict[str, bytes]]:
        """Each releasing site's files (site -> path -> bytes), opened with the project's key and checked against
        the bundle's own digests and the declared outputs; audited as a view by `user`."""

        def read(session: Session) -> tuple[FederatedTask, list[TaskSite]]:
            task = self._task(session, task_id)
            self._member(session, task.project, user)
            rows = session.scalars(
                select(TaskSite).where(TaskSite.task_id == task_id, TaskSite.state == TaskState.RELEASED)
            ).all()
            audit.record(session, actor=user, action="federation.results_opened", target=task_id,
                         sites=[r.site for r in rows])  # fmt: skip
            return task, list(rows)

        task, rows = self.tx(read)
        manifest = tasks.TaskManifest.from_canonical(tasks.SignedTask.from_json(task.signed).manifest)
        declared = {o.path for o in manifest.outputs}
        key = self.project_key(task.project)
        opened: dict[str, dict[str, bytes]] = {}
        for row in rows:
            blob = self._result_file(task_id, row.site, row.result_sha256).read_bytes()
            if hashlib.sha256(blob).hexdigest() != row.result_sha256:
                raise FederationError(f"the bundle from {row.site} changed on disk since it arrived", 500)
            bundle = sealing.open_bundle(blob, key, project=task.project, task_id=task_id, site=row.site)
            if not set(bundle.files) <= declared:
                raise FederationError(f"the bundle from {row.site} is not this task's declared outputs", 500)
            opened[row.site] = dict(bundle.files)
        return opened

    def purpose(self, project: str, user: str) -> str:
        """The federated project's purpose, for one of its members."""

        def read(session: Session) -> str:
            spec = self._project(session, project)
            self._member(session, project, user)
            return spec.purpose

        return self.tx(read)

    def declared_outputs(self, task_id: str) -> tuple[tasks.DeclaredOutput, ...]:
        """The outputs the task's signed manifest declares."""
        signed = self.tx(lambda session: self._task(session, task_id).signed)
        return tasks.TaskManifest.from_canonical(tasks.SignedTask.from_json(signed).manifest).outputs

    # ---------------------------------------------------------------------------------------------- site side

    def offers(self, site: str) -> list[Offer]:
        """Tasks queued for `site` that have not expired."""
        now = utcnow()

        def read(session: Session) -> list[Offer]:
            rows = session.execute(
                select(FederatedTask, TaskSite)
                .join(TaskSite, TaskSite.task_id == FederatedTask.id)
                .where(TaskSite.site == site, TaskSite.state == TaskState.QUEUED, FederatedTask.expires_at > now)
                .order_by(FederatedTask.created_at)
            ).all()
            return [Offer(task.signed, self.project_key(task.project).public_pem()) for task, _ in rows]

        return self.tx(read)

    def notebook(self, site: str, task_id: str) -> bytes:
        def check(session: Session) -> FederatedTask:
            self._site_row(session, task_id, site)
            return self._task(session, task_id)

        task = self.tx(check)
        content = (self.folder / "tasks" / task_id / "notebook.ipynb").read_bytes()
        if hashlib.sha256(content).hexdigest() != task.notebook_sha256:
            raise FederationError("the task's notebook changed on disk since it was signed", 500)
        return content

    def report(self, site: str, task_id: str, state: str, *, reason: str = "", reference: str = "") -> None:
        """A site's move of its task, checked against the state machine; audited."""
        if reason and not REASON.fullmatch(reason):
            raise FederationError("reason: a short code of lower-case letters, digits and '-'")
        if reference and not REFERENCE.fullmatch(reference):
            raise FederationError("reference: letters, digits, '.', '_' and '-', at most 64")
        if state == TaskState.RELEASED:
            raise FederationError("a site reports `released` by sending its sealed bundle", 409)

        def move(session: Session) -> None:
            row = self._site_row(session, task_id, site)
            if row.state == state:  # a report repeated after a lost answer
                return
            self._unexpired(session, task_id)
            self._move(session, row, state, Mover.SITE)
            row.reason, row.reference = reason, reference or row.reference
            audit.record(session, actor=f"site:{site}", action="federation.site_state", target=task_id, site=site,
                         state=state, reason=reason, reference=reference)  # fmt: skip

        self.tx(move)

    def receive_result(self, site: str, task_id: str, blob: bytes, *, reference: str = "") -> None:
        """A site's sealed bundle of what its airlock released: kept as it came, the task released there."""
        if not blob or len(blob) > MAX_RESULT_BYTES:
            raise FederationError(f"a result is 1 byte to {MAX_RESULT_BYTES >> 20} MiB", 413)
        digest = hashlib.sha256(blob).hexdigest()

        def check(session: Session) -> None:
            row = self._site_row(session, task_id, site)
            if row.state == TaskState.RELEASED and row.result_sha256 == digest:
                return
            self._unexpired(session, task_id)
            check_move(row.state, TaskState.RELEASED, Mover.SITE)

        try:
            self.tx(check)
        except InvalidMove as exc:
            raise FederationError(str(exc), 409) from None
        # named by its digest: two uploads racing each write their own file, and the row that commits names its own
        write_secret_bytes(self._result_file(task_id, site, digest), blob)

        def record(session: Session) -> None:
            row = self._site_row(session, task_id, site)
            if row.state == TaskState.RELEASED and row.result_sha256 == digest:
                return
            self._unexpired(session, task_id)
            self._move(session, row, TaskState.RELEASED, Mover.SITE)
            row.result_sha256, row.result_size = digest, len(blob)
            row.reference = reference or row.reference
            audit.record(session, actor=f"site:{site}", action="federation.result_received", target=task_id,
                         site=site, sha256=digest, size=len(blob))  # fmt: skip

        self.tx(record)

    def receive_tokens(self, site: str, task_id: str, body: bytes) -> int:
        """A site's linkage tokens for a count-once task (one 64-hex token a line), kept as a sorted set; how many.
        Only before the site runs the task (pulled, and perhaps awaiting its custodian: a site sends its tokens in
        the pass that pulled the task, before it reports that it did); the same set again is a no-op."""
        tokens = parse_tokens(body)
        content = "".join(f"{t}\n" for t in sorted(tokens)).encode()
        digest = hashlib.sha256(content).hexdigest()

        def check(session: Session) -> bool:
            row = self._site_row(session, task_id, site)
            task = self._task(session, task_id)
            if not tasks.TaskManifest.from_canonical(tasks.SignedTask.from_json(task.signed).manifest).count_once:
                raise FederationError("this task does not count patients once: it takes no tokens", 409)
            if row.tokens_sha256:
                if row.tokens_sha256 == digest:
                    return False
                raise FederationError("this site's tokens for the task are already in", 409)
            if row.state not in (TaskState.QUEUED, TaskState.FETCHED, TaskState.AWAITING_APPROVAL):
                raise FederationError(f"tokens come before the run, not when the task is {row.state}", 409)
            self._unexpired(session, task_id)
            return True

        if not self.tx(check):
            return len(tokens)
        write_secret_bytes(self._tokens_file(task_id, site), content)

        def record(session: Session) -> None:
            row = self._site_row(session, task_id, site)
            if row.tokens_sha256:
                return
            row.tokens_sha256, row.tokens_count = digest, len(tokens)
            audit.record(session, actor=f"site:{site}", action="federation.tokens_received", target=task_id,
                         site=site, tokens=len(tokens))  # fmt: skip

        self.tx(record)
        return len(tokens)

    def exclusions(self, site: str, task_id: str) -> list[str] | None:
        """The tokens `site` leaves out of a count-once task: those of a site earlier in the project's order that
        sent its tokens. None while a site that may still run the task has not sent them (a site that refused,
        failed or expired there takes no part). Audited with counts only."""

        def plan(session: Session) -> tuple[list[str], list[str]] | None:
            mine = self._site_row(session, task_id, site)
            if not mine.tokens_sha256:
                raise FederationError("send this site's tokens first", 409)
            task = self._task(session, task_id)
            order = list(self._project(session, task.project).sites)
            rows = {r.site: r for r in session.scalars(select(TaskSite).where(TaskSite.task_id == task_id))}
            out = {TaskState.REFUSED.value, TaskState.FAILED.value, TaskState.EXPIRED.value}
            waiting = [s for s, r in rows.items() if not r.tokens_sha256 and r.state not in out]
            if waiting:
                return None
            return [s for s in order if s in rows and rows[s].tokens_sha256], order

        planned = self.tx(plan)
        if planned is None:
            return None
        taking_part, order = planned
        tokens = {s: self._tokens_file(task_id, s).read_text().split() for s in taking_part}
        left_out = sorted(linkage.overlap(tokens, [s for s in order if s in tokens])[site])
        self.tx(lambda session: audit.record(
            session, actor=f"site:{site}", action="federation.linkage_exclusions", target=task_id, site=site,
            sites=len(tokens), left_out=len(left_out)))  # fmt: skip
        return left_out

    def expire(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """Move every unfinished (task, site) past its manifest's expiry to `expired`; what moved."""
        now = now or utcnow()

        def run(session: Session) -> list[tuple[str, str]]:
            rows = session.execute(
                select(TaskSite).join(FederatedTask, TaskSite.task_id == FederatedTask.id).where(
                    FederatedTask.expires_at <= now, TaskSite.state.notin_([s.value for s in TERMINAL]))
            ).scalars().all()  # fmt: skip
            for row in rows:
                self._move(session, row, TaskState.EXPIRED, Mover.COORDINATOR)
                audit.record(session, actor=f"coordinator:{self.name}", action="federation.site_state",
                             target=row.task_id, site=row.site, state=TaskState.EXPIRED.value)  # fmt: skip
            return [(r.task_id, r.site) for r in rows]

        return self.tx(run)

    # ------------------------------------------------------------------------------------------------ helpers

    def _tokens_file(self, task_id: str, site: str) -> Path:
        return self.folder / "tasks" / task_id / "linkage" / f"{site}.tokens"

    def _result_file(self, task_id: str, site: str, sha256: str) -> Path:
        return self.folder / "tasks" / task_id / "results" / f"{site}.{sha256}.sealed"

    def _move(self, session: Session, row: TaskSite, state: str, mover: Mover) -> None:
        try:
            row.state = check_move(row.state, state, mover).value
        except InvalidMove as exc:
            raise FederationError(str(exc), 409) from None
        row.updated_at = utcnow()

    @staticmethod
    def _project(session: Session, name: str) -> FederatedProject:
        project = session.get(FederatedProject, name)
        if project is None:
            raise FederationError(f"no federated project {name}", 404)
        return project

    @staticmethod
    def _member(session: Session, project: str, user: str) -> None:
        if session.get(FederatedMember, (project, user)) is None:
            raise FederationError(f"{user} is not a member of federated project {project}", 403)

    @staticmethod
    def _task(session: Session, task_id: str) -> FederatedTask:
        task = session.get(FederatedTask, task_id)
        if task is None:
            raise FederationError("no such task", 404)
        return task

    @staticmethod
    def _unexpired(session: Session, task_id: str) -> None:
        """Refuse a site's move once the task's manifest expired, whether or not the sweep (`expire`) has moved its
        rows yet: the answer must not depend on when the sweep last ran."""
        if Coordinator._task(session, task_id).expires_at <= utcnow():
            raise FederationError("the task expired", 409)

    @staticmethod
    def _site_row(session: Session, task_id: str, site: str) -> TaskSite:
        row = session.get(TaskSite, (task_id, site))
        if row is None:  # the same answer for an unknown task and another site's: a site learns nothing of others
            raise FederationError("no such task for this site", 404)
        return row


def parse_tokens(body: bytes) -> set[str]:
    """A site's linkage tokens: one 64-character lower-case hex token a line (none is a site whose patients have
    no national identifier), at most MAX_TOKENS; FederationError
    for anything else (a site that sent raw identifiers by mistake is refused here, and none is repeated)."""
    if len(body) > MAX_TOKENS * 65:
        raise FederationError(f"at most {MAX_TOKENS} tokens", 413)
    try:
        lines = body.decode("ascii").split()
    except UnicodeDecodeError:
        raise FederationError("tokens are ASCII lines of 64 hex digits") from None
    if not all(TOKEN.fullmatch(line) for line in lines):  # none at all: a site with no linkable patient
        raise FederationError("tokens are lines of 64 lower-case hex digits")
    return set(lines)


def naive(moment: datetime) -> datetime:
    """An aware datetime as the registry stores it (UTC, no zone)."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
