"""Verdicts, findings and the report that `enclave airlock check --json` prints (the contract in DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    """Ordered from harmless to must-not-leave; a file's verdict is the worst of its findings."""

    PASS = "pass"  # noqa: S105  (a verdict, not a password)
    REVIEW = "review"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @staticmethod
    def worst(verdicts: Any) -> Verdict:
        return max(verdicts, key=lambda v: v.rank, default=Verdict.PASS)


_RANK = {Verdict.PASS: 0, Verdict.REVIEW: 1, Verdict.BLOCK: 2}


@dataclass(frozen=True)
class Finding:
    """One reason a file cannot pass. `message` must never hold an identifier in full (use `masking.mask`)."""

    check: str
    verdict: Verdict
    message: str
    location: str = ""

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "verdict": str(self.verdict), "message": self.message, "location": self.location}


@dataclass
class FileReport:
    path: str
    sha256: str
    type: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return Verdict.worst(f.verdict for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "type": self.type,
            "verdict": str(self.verdict),
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass
class Report:
    files: list[FileReport] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, int]:
        counts = {str(v): 0 for v in Verdict}
        for f in self.files:
            counts[str(f.verdict)] += 1
        return counts

    @property
    def exit_code(self) -> int:
        """0 when every file passes, 1 when any is review or block (2, a usage error, belongs to the CLI)."""
        return 0 if all(f.verdict is Verdict.PASS for f in self.files) else 1

    def to_json(self) -> dict[str, Any]:
        return {"files": [f.to_json() for f in self.files], "summary": self.summary}
