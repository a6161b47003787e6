"""Which sites a pooled result covers: each site of a federated task with its status (contributed, refused, failed,
too small, pending) and a short reason code. Every pooled result carries its coverage, and its text ("4 of 5 sites
contributed; not included: site-e (refused: not-for-this-site)") goes wherever the result goes, so a site that is
missing is never silently left out."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

SITE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # the consortium's node names (federation/pki.py)
REASON = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # a short machine code, never free text (no data can ride in it)


class SiteStatus(StrEnum):
    CONTRIBUTED = "contributed"
    REFUSED = "refused"  # the site's policy or its airlock said no
    FAILED = "failed"  # the run failed at the site (its category comes back as the reason)
    TOO_SMALL = "too-small"  # the site had too few people for the analysis
    PENDING = "pending"  # nothing back yet (awaiting approval, running, in the site's airlock)


class CoverageError(ValueError):
    """A coverage that does not describe its sites (unknown status, bad name or reason, data and status disagree)."""


@dataclass(frozen=True)
class SiteOutcome:
    status: SiteStatus
    reason: str = ""


@dataclass(frozen=True)
class Coverage:
    """Each site of the task, in the consortium's order, with what became of it."""

    sites: Mapping[str, SiteOutcome] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sites:
            raise CoverageError("a coverage names at least one site")
        for name, outcome in self.sites.items():
            if not isinstance(name, str) or not SITE_NAME.fullmatch(name):
                raise CoverageError("a site name is [a-z0-9][a-z0-9-]{0,62}")
            if not isinstance(outcome, SiteOutcome) or not isinstance(outcome.status, SiteStatus):
                raise CoverageError(f"site {name}: the outcome is a SiteOutcome with a SiteStatus")
            if outcome.reason and not REASON.fullmatch(outcome.reason):
                raise CoverageError(f"site {name}: a reason is a short code ([a-z0-9-]), not free text")
        object.__setattr__(self, "sites", dict(self.sites))

    @classmethod
    def of(
        cls,
        contributed: Iterable[str],
        *,
        refused: Mapping[str, str] | None = None,
        failed: Mapping[str, str] | None = None,
        too_small: Mapping[str, str] | None = None,
        pending: Mapping[str, str] | None = None,
        order: Iterable[str] | None = None,
    ) -> Coverage:
        """A coverage from the sites that contributed and, for each other status, site -> reason code; `order`
        (the consortium's) sorts them, else contributed first in the order given."""
        outcomes: dict[str, SiteOutcome] = {}
        groups: list[tuple[SiteStatus, Mapping[str, str]]] = [
            (SiteStatus.CONTRIBUTED, dict.fromkeys(contributed, "")),
            (SiteStatus.REFUSED, refused or {}),
            (SiteStatus.FAILED, failed or {}),
            (SiteStatus.TOO_SMALL, too_small or {}),
            (SiteStatus.PENDING, pending or {}),
        ]
        for status, group in groups:
            for name, reason in group.items():
                if name in outcomes:
                    raise CoverageError(f"site {name} is given two statuses")
                outcomes[name] = SiteOutcome(status, reason)
        if order is not None:
            order = list(order)
            if set(order) != set(outcomes) or len(order) != len(outcomes):
                raise CoverageError("the order names exactly the sites of the coverage")
            outcomes = {name: outcomes[name] for name in order}
        return cls(outcomes)

    @property
    def contributed(self) -> tuple[str, ...]:
        return tuple(n for n, o in self.sites.items() if o.status is SiteStatus.CONTRIBUTED)

    @property
    def missing(self) -> dict[str, SiteOutcome]:
        """The sites that did not contribute, with their outcome."""
        return {n: o for n, o in self.sites.items() if o.status is not SiteStatus.CONTRIBUTED}

    @property
    def complete(self) -> bool:
        return not self.missing

    def text(self) -> str:
        """'5 of 5 sites contributed', or '4 of 5 sites contributed; not included: site-e (refused: policy)'."""
        head = f"{len(self.contributed)} of {len(self.sites)} sites contributed"
        if self.complete:
            return head
        others = ", ".join(
            f"{name} ({o.status.value}: {o.reason})" if o.reason else f"{name} ({o.status.value})"
            for name, o in self.missing.items()
        )
        return f"{head}; not included: {others}"

    def __str__(self) -> str:
        return self.text()

    def check_contributors(self, with_data: Iterable[str]) -> None:
        """The sites whose data is pooled are exactly the ones this coverage says contributed."""
        given = set(with_data)
        unknown = sorted(given - set(self.sites))
        if unknown:
            raise CoverageError(f"data from sites the coverage does not name: {', '.join(unknown)}")
        not_contributed = sorted(n for n in given if self.sites[n].status is not SiteStatus.CONTRIBUTED)
        if not_contributed:
            raise CoverageError(
                f"data from sites the coverage does not count as contributed: {', '.join(not_contributed)}"
            )
        absent = sorted(set(self.contributed) - given)
        if absent:
            raise CoverageError(f"sites counted as contributed without data: {', '.join(absent)}")
        if not given:
            raise CoverageError("no site contributed: there is nothing to pool")


def coverage_for(with_data: Iterable[str], coverage: Coverage | None) -> Coverage:
    """The coverage a pooled result carries: the one given (checked against the data), or every site with data as
    contributed."""
    names = list(with_data)
    if coverage is None:
        if not names:
            raise CoverageError("no site contributed: there is nothing to pool")
        coverage = Coverage.of(names)
    coverage.check_contributors(names)
    return coverage
