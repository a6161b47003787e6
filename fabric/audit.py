"""The append-only, hash-chained audit log every state change writes to.

Each event's hash covers its content and the previous event's hash, so `verify` finds any edited, deleted,
inserted or reordered entry and says where. Details hold ids, counts and hashes: never an identifier or secret.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric.models import AuditEvent

GENESIS = "0" * 64


def _event_hash(seq: int, at: datetime, actor: str, action: str, target: str, detail: dict, prev: str) -> str:
    body = json.dumps([seq, at.isoformat(), actor, action, target, detail, prev], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def record(session: Session, *, actor: str, action: str, target: str, **detail: Any) -> AuditEvent:
    """Append one event in the caller's transaction (so the change and its audit entry commit together)."""
    last = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).first()
    seq = last.seq + 1 if last else 1
    prev = last.hash if last else GENESIS
    at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    detail = json.loads(json.dumps(detail, default=str))
    event = AuditEvent(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        target=target,
        detail=detail,
        prev_hash=prev,
        hash=_event_hash(seq, at, actor, action, target, detail, prev),
    )
    session.add(event)
    session.flush()
    return event


def events(
    session: Session, *, project: str | None = None, request: str | None = None, actor: str | None = None,
    limit: int = 200,
) -> list[AuditEvent]:  # fmt: skip
    """The latest `limit` events matching every filter given, oldest first."""
    query = select(AuditEvent)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if request:
        query = query.where(AuditEvent.target == f"request:{request}")
    if project:
        query = query.where((AuditEvent.target == project) | (AuditEvent.detail["project"].as_string() == project))
    rows = list(session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit)))
    return rows[::-1]


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    problem: str


def verify(session: Session) -> list[ChainProblem]:
    """Every break in the chain, in order; empty when the log is intact."""
    problems: list[ChainProblem] = []
    prev = GENESIS
    expected_seq = 1
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.seq)):
        if event.seq != expected_seq:
            problems.append(ChainProblem(event.seq, f"expected entry {expected_seq}: entries missing or inserted"))
        if event.prev_hash != prev:
            problems.append(ChainProblem(event.seq, "does not follow the entry before it (deleted or reordered)"))
        recomputed = _event_hash(
            event.seq, event.at, event.actor, event.action, event.target, event.detail, event.prev_hash
        )
        if recomputed != event.hash:
            problems.append(ChainProblem(event.seq, "content does not match its hash (edited)"))
        prev = event.hash
        expected_seq = event.seq + 1
    return problems
