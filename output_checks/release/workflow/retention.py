"""Retention: the snapshot bytes of withdrawn and rejected requests are removed after the policy's retention, each
removal audited in the same transaction; the request's record and its hashes stay."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from kernel import audit
from output_checks.release.models import ReleaseRequest
from output_checks.release.states import RequestState
from output_checks.release.storage import AirlockStore
from output_checks.release.workflow.access import SYSTEM


def purgeable(session: Session, closed_before: datetime) -> list[str]:
    """Withdrawn and rejected requests closed before `closed_before` (their snapshots may be removed)."""
    return list(
        session.scalars(
            select(ReleaseRequest.id).where(
                ReleaseRequest.state.in_([RequestState.WITHDRAWN.value, RequestState.REJECTED.value]),
                ReleaseRequest.updated_at < closed_before,
            )
        )
    )


def purge_snapshot(session: Session, store: AirlockStore, request_id: str, retention_days: float) -> bool:
    """Remove a closed request's snapshot bytes, audited in the same transaction (the record and its hashes stay).
    False when there is nothing to remove."""
    request = session.get(ReleaseRequest, request_id, with_for_update=True)
    if request is None or request.state not in (RequestState.WITHDRAWN.value, RequestState.REJECTED.value):
        return False
    if not store.has_snapshots(request_id):
        return False
    audit.record(session, actor=SYSTEM, action="airlock.snapshot_purged", target=f"request:{request_id}",
                 project=request.project, state=request.state, retention_days=retention_days,
                 files=[{"path": f.path, "version": f.version, "sha256": f.sha256} for f in request.files
                        if f.snapshot])  # fmt: skip
    session.flush()
    store.remove_request(request_id)  # last: a failure here rolls the audit event back with it
    return True
