"""The append-only, hash-chained audit log every state change writes to.

Each event's hash covers its content and the previous event's hash, so `verify` finds any edited, deleted,
inserted or reordered entry and says where. The chain's head is also anchored outside the database after every
commit that appended to it (kernel/audit_anchors.py), so `verify` finds a cut or rewritten tail too. Details hold
ids, counts and hashes: never an identifier or secret.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from kernel.audit_anchors import Anchors
from kernel.clock import utcnow
from kernel.db import AUDIT_ANCHORS, AUDIT_APPENDED
from kernel.models import AuditEvent

GENESIS = "0" * 64
# Session.info keys: the registry puts its Anchors in every session; `record` marks a session that appended, so the
# registry's after-commit hook anchors the committed head (kernel/db.py).
ANCHORS = AUDIT_ANCHORS
APPENDED = AUDIT_APPENDED


def _event_hash(seq: int, at: datetime, actor: str, action: str, target: str, detail: dict, prev: str) -> str:
    body = json.dumps([seq, at.isoformat(), actor, action, target, detail, prev], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def record(session: Session, *, actor: str, action: str, target: str, **detail: Any) -> AuditEvent:
    """Append one event in the caller's transaction (so the change and its audit entry commit together)."""
    _lock_the_head(session)
    last = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).first()
    seq = last.seq + 1 if last else 1
    prev = last.hash if last else GENESIS
    at = utcnow(whole_seconds=True)
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
    session.info[APPENDED] = True
    return event


def locked_head(session: Session) -> tuple[int, str]:
    """The log's head (seq and hash; 0 and GENESIS when empty), with the write lock held until the caller's
    transaction ends: no other process appends after it meanwhile (rotating the anchor key relies on that)."""
    _lock_the_head(session)
    last = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).first()
    return (last.seq, last.hash) if last else (0, GENESIS)


def _lock_the_head(session: Session) -> None:
    """Hold the database's write lock before reading the head, so processes appending at once (the hub, the airlock
    service, the CLI) take turns instead of both claiming the next seq."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # a write that changes nothing still takes SQLite's write lock (waiting out busy_timeout for another writer)
        session.execute(text("UPDATE audit_events SET seq = seq WHERE 0"))
    elif dialect == "postgresql":
        session.execute(text("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE"))


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
    anchor_line: int | None = None  # a problem of the anchor file's line, not of an entry


@dataclass(frozen=True)
class Verification:
    problems: list[ChainProblem]
    note: str | None  # how far the log is anchored, when that is worth saying (never a problem on its own)


def verify(session: Session) -> list[ChainProblem]:
    """Every break in the chain and every disagreement with its anchors, in order; empty when the log is intact."""
    return verify_log(session).problems


def verify_log(session: Session) -> Verification:
    """The chain checked entry by entry, then against the anchors of its head kept outside the database."""
    problems: list[ChainProblem] = []
    hashes: dict[int, str] = {}
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
        hashes[event.seq] = event.hash
        prev = event.hash
        expected_seq = event.seq + 1
    anchors = session.info.get(ANCHORS)
    if anchors is None:
        return Verification(problems, "this registry keeps no anchors (an in-memory database)")
    more, note = _check_anchors(anchors, hashes)
    return Verification(problems + more, note)


def _check_anchors(anchors: Anchors, hashes: dict[int, str]) -> tuple[list[ChainProblem], str | None]:
    found = anchors.read()
    problems = [ChainProblem(0, text, anchor_line=line) for line, text in found.bad_lines]
    head = max(hashes, default=0)
    if found.keyed and not found.file_exists:
        problems.append(ChainProblem(head, "the anchor file is missing: it was removed after anchoring began"))
        return problems, None
    if not found.anchors:
        if not found.keyed and found.file_exists and found.bad_lines:
            problems.append(ChainProblem(head, "anchor lines exist but the anchor key is missing"))
        note = "not anchored yet (a log from before anchors): the next audited change anchors its head"
        return problems, note if head else None
    missing = sorted({a.seq for a in found.anchors if a.seq not in hashes})
    if missing:
        last = next(a for a in reversed(found.anchors) if a.seq == missing[-1])
        problems.append(
            ChainProblem(
                missing[0],
                f"anchored (last at entry {missing[-1]}, {last.at}) but missing from the log: its tail was cut "
                f"after entry {head}",
            )
        )
    rewritten = sorted({a.seq: a for a in found.anchors if a.seq in hashes and hashes[a.seq] != a.hash}.values(),
                       key=lambda a: a.seq)  # fmt: skip
    for anchor in rewritten:
        problems.append(
            ChainProblem(anchor.seq, f"differs from its anchor of {anchor.at} (the entry or the tail was rewritten)")
        )
    newest = max(a.seq for a in found.anchors)
    unanchored = head - newest
    notes = [f"{unanchored} newest entries not anchored yet"] if unanchored > 0 else []
    if found.torn_tail:
        notes.append("an anchor line is incomplete (a crash while it was written) and was skipped")
    return problems, "; ".join(notes) or None
