"""The automated checks' side of the workflow: which requests wait for them, recording their results (which opens
the request for review), and counting a crashed run until the files go to review with the reason. Also the checks
of a draft (or a returned request being revised): the same checks on its snapshots, shown to the author before any
reviewer is involved, recorded without a change of state; submitting checks every file again."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kernel import audit
from output_checks.release.models import ReleaseRequest, RequestFile
from output_checks.release.states import Action, Actor, RequestState
from output_checks.release.workflow.access import SYSTEM, current_files, move

MAX_CHECK_ATTEMPTS = 3


def pending_checks(session: Session) -> list[str]:
    return list(session.scalars(select(ReleaseRequest.id).where(ReleaseRequest.state == RequestState.CHECKING.value)))


DRAFT_STATES = (RequestState.DRAFT.value, RequestState.RETURNED.value)  # where an author still changes the files


def unchecked_draft_files(request: ReleaseRequest) -> list[RequestFile]:
    """A draft's current files that are copied and wait for their checks."""
    if request.state not in DRAFT_STATES:
        return []
    return [f for f in current_files(request) if f.verdict is None and f.snapshot]


def pending_draft_checks(session: Session) -> list[str]:
    """Drafts (and returned requests) with copied files not checked yet: their checks run in the background."""
    drafts = session.scalars(select(ReleaseRequest).where(ReleaseRequest.state.in_(DRAFT_STATES)))
    return [r.id for r in drafts if unchecked_draft_files(r)]


def record_draft_checks(session: Session, request_id: str, results: dict[int, dict[str, Any]]) -> int:
    """Store the verdicts and findings of a draft's files that still wait for them (a file revised since the run
    started is a new version: it waits for the next run). The state does not change. Returns how many were stored."""
    request = session.get(ReleaseRequest, request_id, with_for_update=True)
    if request is None:
        return 0
    checked = [f for f in unchecked_draft_files(request) if f.id in results]
    for f in checked:
        report = results[f.id]
        f.verdict, f.kind, f.findings = report["verdict"], report["type"], report["findings"]
    if checked:
        audit.record(session, actor=SYSTEM, action="airlock.draft_checked", target=f"request:{request_id}",
                     project=request.project, verdicts=dict(Counter(f.verdict for f in checked)),
                     files=[{"path": f.path, "version": f.version, "verdict": f.verdict} for f in checked])  # fmt: skip
    return len(checked)


def record_checks(session: Session, request_id: str, results: dict[int, dict[str, Any]]) -> None:
    """Store each file's verdict and findings (the engine's FileReport JSON) and open the request for review."""
    request = session.get(ReleaseRequest, request_id, with_for_update=True)
    if request is None or request.state != RequestState.CHECKING.value:
        return  # withdrawn meanwhile, or already recorded by another runner
    for f in current_files(request):
        report = results.get(f.id)
        if report is None:
            f.verdict, f.kind = "review", "unchecked"
            f.findings = [{"check": "engine", "verdict": "review", "message": "the automated checks gave no result"}]
        else:
            f.verdict, f.kind, f.findings = report["verdict"], report["type"], report["findings"]
    files = current_files(request)
    verdicts = Counter(f.verdict for f in files)
    summary = [{"path": f.path, "sha256": f.sha256, "verdict": f.verdict} for f in files]
    move(session, request, Action.CHECKS_DONE, Actor.SYSTEM, SYSTEM, verdicts=dict(verdicts), files=summary)


def checks_failed(session: Session, request_id: str, problem: str) -> bool:
    """Count a crashed check run; after MAX_CHECK_ATTEMPTS the files go to review with the reason (never stuck).
    True when the run should be retried."""
    request = session.get(ReleaseRequest, request_id, with_for_update=True)
    if request is None or request.state != RequestState.CHECKING.value:
        return False
    request.check_attempts += 1
    audit.record(session, actor=SYSTEM, action="airlock.checks_failed", target=f"request:{request_id}",
                 attempt=request.check_attempts, problem=problem)  # fmt: skip
    if request.check_attempts < MAX_CHECK_ATTEMPTS:
        return True
    failed = {
        "check": "engine",
        "verdict": "review",
        "message": f"the automated checks failed {request.check_attempts} times",
    }
    record_checks(session, request_id, {f.id: {"verdict": "review", "type": "unchecked", "findings": [failed]}
                                        for f in current_files(request)})  # fmt: skip
    return False
