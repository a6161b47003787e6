"""ACRO's own verdicts as evidence: a `results.json` written by `acro.finalise` beside a table, believed only when
ACRO's recorded checksum matches the file's bytes."""

from __future__ import annotations

import json
from pathlib import Path


def acro_evidence(path: Path, sha256: str) -> str | None:
    """ACRO's verdict ("pass", "fail", "review") on this exact file, from a results.json written beside it by
    `acro.finalise`, or None. Evidence counts only if ACRO's recorded checksum matches the file's bytes."""
    results = path.parent / "results.json"
    if not results.is_file() or results.stat().st_size > 16 * 2**20:
        return None
    try:
        data = json.loads(results.read_text())
    except (OSError, ValueError):
        return None
    recorded = path.parent / "checksums" / f"{path.name}.txt"
    try:
        checksum = recorded.read_text().strip().split()[0]
    except (OSError, IndexError):
        return None
    if checksum.lower() != sha256:
        return None
    for output in (data.get("results") or {}).values():
        for item in output.get("files", []) if isinstance(output, dict) else []:
            if isinstance(item, dict) and item.get("name") == path.name:
                return str(output.get("status", "")).lower() or None
    return None
