"""The automated checks' side of the workflow: which requests wait for them, recording their results (which opens
the request for review), and counting a crashed run until the files go to review with the reason."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric import audit
from output_checks.release.models import ReleaseRequest
from output_checks.release.states import Action, Actor, RequestState
from output_checks.release.workflow.access import SYSTEM, current_files, move

MAX_CHECK_ATTEMPTS = 3


def pending_checks(session: Session) -> list[str]:
    return list(session.scalars(select(ReleaseRequest.id).where(ReleaseRequest.state == RequestState.CHECKING.value)))


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
