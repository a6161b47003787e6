"""Test helper: run the real checks engine on files written by a test (one process, default policy)."""

from __future__ import annotations

from pathlib import Path

from output_checks.engine import check_paths
from output_checks.policy import Policy, load_policy
from output_checks.screening.known import KnownIdentifiers
from output_checks.verdicts import FileReport


def check_one(path: Path, policy: Policy | None = None, known: KnownIdentifiers | None = None) -> FileReport:
    report = check_paths([path], policy or load_policy(), known, workers=1)
    assert len(report.files) == 1
    return report.files[0]


def write(tmp: Path, name: str, content: str | bytes) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def messages(report: FileReport) -> str:
    return "\n".join(f"{f.verdict}: {f.message} [{f.location}]" for f in report.findings)
