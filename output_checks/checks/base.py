"""The one small interface every check implements, and what a check is handed.

A check declares the file types it reads (`kinds`, or `None` for every file) and yields findings for one
`Subject` — a file on disk, or an archive member the archive check has unpacked under its limits. Checks share
the screening services on `Context` (identifier screening, known identifiers) instead of re-implementing them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from output_checks.verdicts import Finding, Verdict

if TYPE_CHECKING:
    from output_checks.policy import Policy
    from output_checks.screening.known import KnownIdentifiers
    from output_checks.screening.text import Screener, Segment


@dataclass(frozen=True)
class Subject:
    """One thing under check. `location` names it in findings ("a.zip!tables/b.csv"); `path` is its bytes."""

    location: str
    path: Path
    kind: str
    size: int
    depth: int = 0  # archive nesting


@dataclass
class Context:
    policy: Policy
    screener_factory: Callable[[], Screener]
    known: KnownIdentifiers | None = None
    check_member: Callable[[Subject], list[Finding]] | None = None
    workdir: Path | None = None
    _screener: Screener | None = field(default=None, repr=False)

    @property
    def screener(self) -> Screener:
        if self._screener is None:
            self._screener = self.screener_factory()
        return self._screener

    def screen(self, segments: Iterable[Segment], check: str) -> Iterator[Finding]:
        """Identifier screening (Presidio) and known-identifier screening of free text, as the policy enables."""
        if "identifiers" not in self.policy.checks and (
            self.known is None or "known_identifiers" not in self.policy.checks
        ):
            for _ in segments:  # drain: extraction errors still surface
                pass
            return
        yield from self.screener.screen_segments(segments, check=check, known=self._known())

    def _known(self) -> KnownIdentifiers | None:
        return self.known if "known_identifiers" in self.policy.checks else None


class Check(Protocol):
    name: ClassVar[str]
    kinds: ClassVar[frozenset[str] | None]

    def run(self, subject: Subject, ctx: Context) -> Iterable[Finding]: ...


def finding(check: str, verdict: Verdict, message: str, location: str = "") -> Finding:
    return Finding(check=check, verdict=verdict, message=message, location=location)
