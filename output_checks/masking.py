"""Findings describe identifiers without repeating them: a report is itself an output that may leave."""

from __future__ import annotations

KEEP = 2


def mask(value: str, keep: int = KEEP) -> str:
    """Keep at most `keep` leading characters (fewer for short values) and replace the rest, spaces included.

    >>> mask("943 476 5919")
    '94**********'
    """
    value = value.strip()
    shown = min(keep, max(0, len(value) // 4))
    return value[:shown] + "*" * (len(value) - shown)
