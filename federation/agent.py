"""A site's agent: pulls tasks from the coordinator, verifies and decides them under the site's own policy, runs
each with papermill in the site's sandbox on the site's own view, puts the declared outputs through the site's own
airlock, and returns only what the site's output checkers released, sealed to the federated project's key.

It only makes outbound requests (mutual TLS, federation/pki.py) and never listens. Its record of every task is the
site's registry (`site_tasks`): each move is committed with its audit event before it is reported, and a move the
coordinator has not acknowledged is reported again on the next pass, so a coordinator that restarts or a site that
goes offline loses nothing. What goes back is a state, a reason code and the site's own reference: never a log, a
traceback or a file the task did not declare (a run's output stays in the site's task folder).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from federation import pki, sealing, site_linkage, site_policy, tasks
from federation.coordinator import naive
from federation.models import SeenNonce, SiteTask
from federation.states import TERMINAL, TaskState
from kernel import audit
from kernel.clock import utcnow
from kernel.config import Paths
from kernel.db import Registry
from kernel.documents import load_yaml_model
from kernel.errors import EnclaveError
from kernel.secret_files import write_secret_bytes
from output_checks.release.service import Airlock
from output_checks.release.states import RequestState
from output_checks.release.workflow import project_roles
from provisioning.notebook_runs import run_in_sandbox
from workbench.view_contract import ENV_EXCLUDED

log = logging.getLogger("enclave.federation.agent")
TASK_OUTPUTS = "federation"  # a task's outputs: OUTPUTS/federation/TASK_ID/, the notebook's `outputs` parameter
INSIDE_OUTPUTS = "/project/outputs"
OUTPUTS_PARAMETER = "outputs"
# a count-once task: a JSON list of this site's pseudonyms another site counts, the `excluded` parameter and
# $ENCLAVE_EXCLUDED_PSEUDONYMS (which workbench's readers honour: a notebook cannot forget it)
EXCLUDED_PARAMETER = "excluded"
AIRLOCK_ENDED = {
    RequestState.REJECTED: "airlock-rejected",
    RequestState.WITHDRAWN: "airlock-withdrawn",
    RequestState.RETURNED: "airlock-returned",
}


class SiteConfig(BaseModel):
    """`federation/site/site.yaml`: where this site's coordinator is and whom to trust for its manifests."""

    model_config = ConfigDict(extra="forbid")

    coordinator_url: str = Field(pattern=r"^https://[^\s/]+(:\d+)?$")
    coordinator: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    coordinator_key: str  # the coordinator's Ed25519 public key, PEM, pinned when the site joined
    run_user: str = "federation"  # the site's Enclave user a task runs as (a researcher of the local project)
    run_timeout_seconds: int = Field(default=6 * 3600, ge=60)
    poll_seconds: float = Field(default=30.0, gt=0)


@dataclass(frozen=True)
class SiteFiles:
    """Where a site keeps its federation state: root-only, under the home's `federation/site/`."""

    root: Path

    @classmethod
    def of(cls, paths: Paths) -> SiteFiles:
        return cls(paths.federation / "site")

    @property
    def config(self) -> Path:
        return self.root / "site.yaml"

    @property
    def policy(self) -> Path:
        return self.root / "policy.yaml"

    @property
    def credentials(self) -> Path:
        return self.root / "tls"

    def task(self, task_id: str) -> Path:
        return self.root / "tasks" / task_id


def load_config(files: SiteFiles) -> SiteConfig:
    if not files.config.exists():
        raise EnclaveError("this Enclave has not joined a consortium: run `enclave federation join` first")
    return load_yaml_model(SiteConfig, files.config, "the site's federation settings")


class CoordinatorLink(Protocol):
    """What the agent asks of its coordinator (CoordinatorClient over mutual TLS)."""

    def offers(self) -> list[dict[str, str]]: ...
    def notebook(self, task_id: str) -> bytes: ...
    def report(self, task_id: str, state: str, reason: str, reference: str) -> None: ...
    def result(self, task_id: str, blob: bytes, reference: str) -> None: ...
    def send_tokens(self, task_id: str, tokens: list[str]) -> None: ...
    def exclusions(self, task_id: str) -> list[str] | None: ...


class CoordinatorUnreachable(EnclaveError):
    pass


class CoordinatorClient:
    """HTTPS with this site's certificate; the coordinator's certificate must be the consortium's, for the
    coordinator role (checked after the handshake, before anything is sent)."""

    def __init__(self, config: SiteConfig, credentials: Path, *, timeout: float = 60.0) -> None:
        self.base = config.coordinator_url
        self.expected = config.coordinator
        self.client = httpx.Client(verify=pki.client_context(credentials), timeout=timeout, trust_env=False)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.client.request(method, self.base + path, **kwargs)
        except httpx.HTTPError as exc:
            raise CoordinatorUnreachable(f"the coordinator could not be reached ({type(exc).__name__})") from None
        peer = response.extensions.get("network_stream")
        der = None
        if peer is not None:
            ssl_object = peer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(True) if ssl_object else None  # the C object: positional only
        identity = pki.peer_identity(der) if der else None
        if identity is None or identity.role != "coordinator" or identity.name != self.expected:
            raise CoordinatorUnreachable("the server is not this site's coordinator (its certificate names another)")
        if response.status_code >= 400:
            try:
                message = str(response.json().get("error", ""))[:200]
            except ValueError:
                message = ""
            raise CoordinatorRefused(response.status_code, message)
        return response

    def offers(self) -> list[dict[str, str]]:
        body = self._request("GET", "/v1/tasks").json()
        return [t for t in body.get("tasks", []) if isinstance(t, dict)]

    def notebook(self, task_id: str) -> bytes:
        return self._request("GET", f"/v1/tasks/{task_id}/notebook").content

    def report(self, task_id: str, state: str, reason: str, reference: str) -> None:
        self._request("POST", f"/v1/tasks/{task_id}/state",
                      json={"state": state, "reason": reason, "reference": reference})  # fmt: skip

    def result(self, task_id: str, blob: bytes, reference: str) -> None:
        self._request("PUT", f"/v1/tasks/{task_id}/result", params={"reference": reference}, content=blob)

    def send_tokens(self, task_id: str, tokens: list[str]) -> None:
        self._request("PUT", f"/v1/tasks/{task_id}/linkage", content="".join(f"{t}\n" for t in tokens).encode())

    def exclusions(self, task_id: str) -> list[str] | None:
        response = self._request("GET", f"/v1/tasks/{task_id}/linkage")
        if response.status_code == 202:
            return None
        left_out = response.json().get("leave_out")
        if not isinstance(left_out, list) or not all(isinstance(t, str) for t in left_out):
            raise CoordinatorUnreachable("the coordinator's answer on linkage was malformed")
        return left_out

    def close(self) -> None:
        self.client.close()


class CoordinatorRefused(EnclaveError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the coordinator refused ({status}): {message}")
        self.status = status


class RegistryReplayGuard:
    """Nonces accepted at this site, in its registry: a manifest is run at most once, whoever replays it."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def seen(self, task_id: str, nonce: str, expires_at: datetime) -> bool:
        if self.session.get(SeenNonce, nonce) is not None:
            return True
        self.session.add(SeenNonce(nonce=nonce, task_id=task_id, expires_at=naive(expires_at)))
        self.session.flush()
        return False


@dataclass
class PassReport:
    """What one pass of the agent did (for the command line and the tests)."""

    pulled: int = 0
    moved: list[tuple[str, str]] = field(default_factory=list)  # (task id, new state)


class SiteAgent:
    def __init__(
        self,
        paths: Paths,
        registry: Registry,
        link: CoordinatorLink,
        *,
        site: str,
        run: Callable[..., Any] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.paths = paths
        self.registry = registry
        self.link = link
        self.site = site
        self.files = SiteFiles.of(paths)
        self.config = load_config(self.files)
        self.airlock = Airlock(registry, paths)
        self._run = run
        self._now = now or (lambda: datetime.now(UTC))

    # ---------------------------------------------------------------------------------------------- one pass

    def run_once(self) -> PassReport:
        """Pull new tasks, move every task that can move, and report what the coordinator has not heard yet."""
        report = PassReport()
        try:
            for offer in self.link.offers():
                report.pulled += 1
                self._take(offer, report)
        except CoordinatorUnreachable as exc:
            log.warning("%s", exc)
        for task_id in self._open_tasks():
            self._advance(task_id, report)
        self._report_pending()
        return report

    # ------------------------------------------------------------------------------------------- take a task

    def _take(self, offer: dict[str, str], report: PassReport) -> None:
        try:
            signed = tasks.SignedTask.from_json(str(offer.get("signed", "")))
        except tasks.TaskRefused as exc:
            log.warning("a task offer was malformed (%s); not kept", exc.reason)
            return
        if self._offered_again(_claimed_task_id(signed)):
            return
        policy = site_policy.load_policy(self.files.policy)
        trusted = {tasks.key_id(key): key for key in [tasks.load_public_key(self.config.coordinator_key)]}
        reference = f"fed-{secrets.token_hex(4)}"

        def verify(session: Session) -> tuple[tasks.TaskManifest | None, str]:
            try:
                manifest = tasks.verify(signed, trusted, site=self.site, now=self._now(),
                                        replay=RegistryReplayGuard(session))  # fmt: skip
            except tasks.TaskRefused as exc:
                audit.record(session, actor=f"coordinator:{self.config.coordinator}",
                             action="federation.task_refused", target=reference, reason=exc.reason)  # fmt: skip
                return None, exc.reason
            decision = site_policy.decide(manifest, policy, coordinator=self.config.coordinator)
            state = TaskState.FETCHED
            reason = ""
            if decision.action is site_policy.Action.REFUSE:
                state, reason = TaskState.REFUSED, decision.reason
            session.add(SiteTask(id=manifest.task_id, project=manifest.project, submitter=manifest.submitter,
                                 signed=signed.to_json(), state=state.value, reason=reason, reference=reference,
                                 approved_by="", request_id="", linkage="", reported="",
                                 expires_at=naive(manifest.expires_at), updated_at=utcnow()))  # fmt: skip
            audit.record(session, actor=f"coordinator:{self.config.coordinator}", action="federation.task_received",
                         target=manifest.task_id, project=manifest.project, submitter=manifest.submitter,
                         decision=decision.action, reason=decision.reason, reference=reference)  # fmt: skip
            return manifest, reason

        try:
            manifest, reason = self.registry.transaction(verify)
        except IntegrityError:
            return  # offered again before the coordinator heard of it: the existing record is reported
        if manifest is None:
            task_id = _claimed_task_id(signed)
            if task_id:  # tell the coordinator this site refused what it was sent (it may be a forgery of a real id)
                self._send(task_id, TaskState.REFUSED.value, reason, reference)
            return
        if reason:  # refused by the site's policy: its code is never fetched
            report.moved.append((manifest.task_id, TaskState.REFUSED.value))
            return
        write_secret_bytes(self.files.task(manifest.task_id) / "project-key.pem",
                           str(offer.get("project_key", "")).encode())  # fmt: skip
        report.moved.append((manifest.task_id, TaskState.FETCHED.value))
        self._notebook(manifest, report)

    def _notebook(self, manifest: tasks.TaskManifest, report: PassReport) -> bool:
        """The task's notebook in its folder at this site, fetched when missing and checked against the signed
        SHA-256: a mismatch refuses the task; an unreachable coordinator leaves it for the next pass."""
        path = self.files.task(manifest.task_id) / "notebook.ipynb"
        if path.exists():
            return True
        try:
            notebook = self.link.notebook(manifest.task_id)
        except CoordinatorUnreachable:
            return False
        except CoordinatorRefused:
            notebook = b""
        if hashlib.sha256(notebook).hexdigest() != manifest.notebook_sha256:
            self._move(manifest.task_id, TaskState.REFUSED, reason="notebook-mismatch", report=report)
            return False
        write_secret_bytes(path, notebook)
        return True

    def _offered_again(self, task_id: str) -> bool:
        """Whether a task this site already holds is offered again. While the coordinator has not heard all of
        its moves that is expected (they are reported after the pulls). Offered after it heard them, it is a
        replay: audited, never run again, and the site's own record is reported again from the start."""
        if not task_id:
            return False

        def check(session: Session) -> bool:
            task = session.get(SiteTask, task_id)
            if task is None:
                return False
            if task.reported == task.state:
                audit.record(session, actor=f"coordinator:{self.config.coordinator}",
                             action="federation.task_refused", target=task.reference, reason="replayed")  # fmt: skip
                task.reported = ""
            return True

        return self.registry.transaction(check)

    # ------------------------------------------------------------------------------------------ move a task

    def _advance(self, task_id: str, report: PassReport) -> None:
        task = self._task(task_id)
        manifest = tasks.TaskManifest.from_canonical(tasks.SignedTask.from_json(task.signed).manifest)
        if self._now() >= manifest.expires_at:
            self._move(task_id, TaskState.EXPIRED, reason="expired", report=report)
            return
        state = TaskState(task.state)
        if state in (TaskState.FETCHED, TaskState.AWAITING_APPROVAL) and not self._notebook(manifest, report):
            return
        if manifest.count_once and state in (TaskState.FETCHED, TaskState.AWAITING_APPROVAL):
            # tokens go before a custodian's approval, so that a gate at one site holds no other site up
            if not self._link(task, manifest, report):
                return
            task = self._task(task_id)
        if state is TaskState.FETCHED:
            policy = site_policy.load_policy(self.files.policy)
            decision = site_policy.decide(manifest, policy, coordinator=self.config.coordinator)
            if decision.action is site_policy.Action.REFUSE:
                self._move(task_id, TaskState.REFUSED, reason=decision.reason, report=report)
            elif decision.action is site_policy.Action.NEEDS_APPROVAL and not task.approved_by:
                self._move(task_id, TaskState.AWAITING_APPROVAL, report=report)
            else:
                self._execute(task, manifest, report)
        elif state is TaskState.AWAITING_APPROVAL and task.approved_by:
            self._execute(task, manifest, report)
        elif state is TaskState.IN_AIRLOCK:
            self._collect(task, manifest, report)

    def _link(self, task: SiteTask, manifest: tasks.TaskManifest, report: PassReport) -> bool:
        """A count-once task's linkage: this site's tokens sent, then the coordinator asked which patients to leave
        out; True once those are known (kept as pseudonyms in the task's folder, for the run)."""
        folder = self.files.task(task.id)
        if task.linkage == "ready":
            return True
        key = site_linkage.load_key(self.paths)
        if key is None:
            self._move(task.id, TaskState.REFUSED, reason="no-linkage-key", report=report)
            return False
        try:
            if task.linkage == "":
                mapping = site_linkage.project_tokens(self.paths, self.registry, manifest.project, key)
                write_secret_bytes(folder / "tokens.json", json.dumps(mapping).encode())
                self.link.send_tokens(task.id, sorted(mapping))
                self._set_linkage(task.id, "sent", tokens=len(mapping))
            left_out = self.link.exclusions(task.id)
        except (CoordinatorUnreachable, CoordinatorRefused) as exc:
            log.warning("linkage for task %s waits (%s)", task.reference, type(exc).__name__)
            return False
        if left_out is None:
            return False  # another site has not sent its tokens yet
        mapping = json.loads((folder / "tokens.json").read_bytes())
        excluded = sorted({mapping[t] for t in left_out if t in mapping})
        write_secret_bytes(folder / "excluded.json", json.dumps(excluded).encode())
        self._set_linkage(task.id, "ready", left_out=len(excluded))
        return True

    def _set_linkage(self, task_id: str, stage: str, **counts: int) -> None:
        def record(session: Session) -> None:
            session.get(SiteTask, task_id).linkage = stage
            audit.record(session, actor=f"federation:{self.site}", action=f"federation.linkage_{stage}",
                         target=task_id, **counts)  # fmt: skip

        self.registry.transaction(record)

    def approve(self, task_id: str, user: str, *, run: bool) -> None:
        """A custodian's decision on running a task's code at this site (an output checker of its local project);
        audited. Refusing ends it there."""

        def decide(session: Session) -> None:
            task = session.get(SiteTask, task_id)
            if task is None:
                raise EnclaveError(f"no task {task_id} at this site")
            if task.state != TaskState.AWAITING_APPROVAL:
                raise EnclaveError(f"task {task_id} is {task.state}, not waiting for approval")
            if "output_checker" not in project_roles(session, task.project, user):
                raise EnclaveError(f"{user} is not an output checker of {task.project} at this site")
            if run:
                task.approved_by = user
            else:
                task.state, task.reason = TaskState.REFUSED.value, "custodian-refused"
            task.updated_at = utcnow()
            audit.record(session, actor=user, action="federation.task_approved" if run else "federation.task_declined",
                         target=task_id, project=task.project)  # fmt: skip

        self.registry.transaction(decide)

    def _execute(self, task: SiteTask, manifest: tasks.TaskManifest, report: PassReport) -> None:
        self._move(task.id, TaskState.RUNNING, report=report)
        self._report_pending()  # the researcher sees `running` while it runs
        folder = self.files.task(task.id)
        outputs = f"{TASK_OUTPUTS}/{task.id}"
        parameters = {name: _parameter(value) for name, value in manifest.parameters.items()}
        parameters[OUTPUTS_PARAMETER] = f"{INSIDE_OUTPUTS}/{outputs}"
        inputs = {EXCLUDED_PARAMETER: (folder / "excluded.json").read_bytes()} if manifest.count_once else {}
        try:
            with open(folder / "run.log", "wb") as log_file:  # stays at the site: it can quote data
                ran = self.run_notebook(folder / "notebook.ipynb", manifest.project, parameters, log_file, inputs)
        except EnclaveError as exc:
            log.warning("task %s could not run (%s)", task.reference, type(exc).__name__)
            self._note(task.id, str(exc))
            self._move(task.id, TaskState.FAILED, reason="site-could-not-run", report=report)
            return
        if ran != 0:
            self._move(task.id, TaskState.FAILED, reason="notebook-error", report=report)
            return
        files = [(f"{outputs}/{o.path}", f"federated task {task.id[:8]}: declared {o.kind}") for o in manifest.outputs]
        try:
            request_id, pending = self.airlock.new_request(
                project=manifest.project, author=self.config.run_user,
                title=f"Federated task {task.id[:8]} from {manifest.submitter}@{self.config.coordinator}", files=files,
            )  # fmt: skip
            if pending and not self.airlock.prepare(request_id):
                raise EnclaveError("the airlock could not take the outputs")
            self.airlock.check_request(request_id)
        except EnclaveError as exc:
            self._note(task.id, str(exc))
            self._move(task.id, TaskState.FAILED, reason="outputs-not-taken", report=report)
            return
        self._move(task.id, TaskState.IN_AIRLOCK, request_id=request_id, report=report)

    def run_notebook(self, notebook: Path, project: str, parameters: dict[str, str], log_file: Any,
                     inputs: dict[str, bytes]) -> int:  # fmt: skip
        """papermill in the site's sandbox as the run user (provisioning/notebook_runs.py); its return code.
        `inputs` are staged beside the notebook, each parameter naming its file."""
        if self._run is not None:
            return self._run(notebook, project, parameters, log_file, inputs)
        ran = run_in_sandbox(self.paths, notebook, project, self.config.run_user, parameters,
                             timeout=self.config.run_timeout_seconds, actor=f"federation:{self.site}",
                             output=log_file, inputs=inputs,
                             input_variables={EXCLUDED_PARAMETER: ENV_EXCLUDED})  # fmt: skip
        return ran.returncode

    def _collect(self, task: SiteTask, manifest: tasks.TaskManifest, report: PassReport) -> None:
        state = RequestState(self.airlock.state(task.request_id, self.config.run_user))
        if state in AIRLOCK_ENDED:
            self._move(task.id, TaskState.REFUSED, reason=AIRLOCK_ENDED[state], report=report)
            return
        if state is not RequestState.RELEASED:
            return
        request = self.airlock.request(task.request_id, self.config.run_user)
        prefix = f"{TASK_OUTPUTS}/{task.id}/"
        released = {}
        for f in request.get("files", []):
            if f.get("released") and str(f["path"]).startswith(prefix):
                released[f["path"][len(prefix) :]] = self.airlock.download(task.request_id, self.config.run_user,
                                                                            f["path"]).read_bytes()  # fmt: skip
        if not released:
            self._move(task.id, TaskState.REFUSED, reason="nothing-released", report=report)
            return
        bundle = sealing.Bundle(task_id=task.id, site=self.site, files=released)
        key = sealing.load_project_public_key((self.files.task(task.id) / "project-key.pem").read_text())
        blob = sealing.seal_bundle(bundle, key, project=manifest.project)
        write_secret_bytes(self.files.task(task.id) / "result.sealed", blob)
        self._move(task.id, TaskState.RELEASED, report=report)

    # -------------------------------------------------------------------------------------------- reporting

    def _report_pending(self) -> None:
        def read(session: Session) -> list[SiteTask]:
            return list(session.scalars(select(SiteTask).where(SiteTask.state != SiteTask.reported)).all())

        for task in self.registry.transaction(read):
            if task.state == TaskState.EXPIRED:  # the coordinator expires its own rows
                self._acknowledged(task.id, task.state)
                continue
            sent = True
            for state in _path_to(task.reported, task.state):
                if not sent:
                    break
                if state == TaskState.RELEASED:
                    blob = (self.files.task(task.id) / "result.sealed").read_bytes()
                    sent = self._send_result(task.id, blob, task.reference)
                else:
                    sent = self._send(task.id, state, task.reason if state == task.state else "", task.reference)
            if sent:
                self._acknowledged(task.id, task.state)

    def _send(self, task_id: str, state: str, reason: str, reference: str) -> bool:
        try:
            self.link.report(task_id, state, reason, reference)
            return True
        except CoordinatorRefused as exc:
            log.warning("the coordinator refused a report on a task (%s)", exc.status)
            return exc.status == 409  # it has moved on (expired there): stop repeating
        except CoordinatorUnreachable:
            return False

    def _send_result(self, task_id: str, blob: bytes, reference: str) -> bool:
        try:
            self.link.result(task_id, blob, reference)
            return True
        except CoordinatorRefused as exc:
            return exc.status == 409
        except CoordinatorUnreachable:
            return False

    # ---------------------------------------------------------------------------------------------- records

    def _open_tasks(self) -> list[str]:
        ended = [s.value for s in TERMINAL]
        return self.registry.transaction(
            lambda s: list(s.scalars(select(SiteTask.id).where(SiteTask.state.notin_(ended))).all())
        )

    def _task(self, task_id: str) -> SiteTask:
        def read(session: Session) -> SiteTask:
            task = session.get(SiteTask, task_id)
            session.expunge(task)
            return task

        return self.registry.transaction(read)

    def _move(self, task_id: str, state: TaskState, *, reason: str = "", request_id: str = "",
              report: PassReport) -> None:  # fmt: skip
        def move(session: Session) -> None:
            task = session.get(SiteTask, task_id)
            task.state, task.updated_at = state.value, utcnow()
            task.reason = reason or task.reason
            task.request_id = request_id or task.request_id
            audit.record(session, actor=f"federation:{self.site}", action="federation.task_moved", target=task_id,
                         state=state.value, reason=reason, request=request_id)  # fmt: skip

        self.registry.transaction(move)
        report.moved.append((task_id, state.value))

    def _acknowledged(self, task_id: str, state: str) -> None:
        def ack(session: Session) -> None:
            session.get(SiteTask, task_id).reported = state

        self.registry.transaction(ack)

    def _note(self, task_id: str, text: str) -> None:
        """What went wrong, for the site's staff only (the task's folder at the site)."""
        with open(self.files.task(task_id) / "problems.txt", "a", encoding="utf-8") as out:
            out.write(f"{utcnow().isoformat()} {text}\n")


ORDER = [TaskState.QUEUED, TaskState.FETCHED, TaskState.RUNNING, TaskState.IN_AIRLOCK]
# the last state a task passed through before it ended so (a refusal can come before or after a run)
ENDED_AFTER = {TaskState.FAILED: TaskState.RUNNING, TaskState.RELEASED: TaskState.IN_AIRLOCK}


def _path_to(reported: str, state: str) -> list[str]:
    """The states to report, in order, to bring the coordinator from `reported` to `state`: a site that was offline
    reports each step it went through, each a move the coordinator's table allows (federation/states.py)."""
    target = TaskState(state)
    start = TaskState(reported) if reported else TaskState.QUEUED
    if target is TaskState.AWAITING_APPROVAL:
        return [] if start is target else [s.value for s in _steps(start, TaskState.FETCHED)] + [target.value]
    if target in TERMINAL:
        before = ENDED_AFTER.get(target)
        return [*(s.value for s in _steps(start, before)), target.value] if before else [target.value]
    return [s.value for s in _steps(start, target)]


def _steps(start: TaskState, target: TaskState) -> list[TaskState]:
    if start is TaskState.AWAITING_APPROVAL:
        start = TaskState.FETCHED
    return [s for s in ORDER if ORDER.index(start) < ORDER.index(s) <= ORDER.index(target)]


def _claimed_task_id(signed: tasks.SignedTask) -> str:
    try:
        task_id = str(json.loads(signed.manifest).get("task_id", ""))
    except (ValueError, AttributeError):
        return ""
    return task_id if len(task_id) == 36 else ""


def _parameter(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value
