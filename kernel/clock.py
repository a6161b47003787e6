"""The registry's clock: UTC, stored naive (SQLite keeps no time zone, and every table stores UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow(*, whole_seconds: bool = False) -> datetime:
    """Now in UTC without a zone, as the registry's columns hold it; to the second when `whole_seconds` (the audit
    log's and the accounts' times, which are hashed or shown)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=0) if whole_seconds else now
