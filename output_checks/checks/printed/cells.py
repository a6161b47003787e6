"""The count rule for printed tables whose family says which cells are counts (Stata's `Freq.`, SAS's
`Frequency`, describe()'s `count`, a `table()` print): cells under the policy's minimum block, zeros follow the
policy, counts of missing values under the minimum go to review. Each cell is reported by its line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from output_checks.checks.base import Context, finding
from output_checks.verdicts import Finding, Verdict

SHOWN = 10  # places named per finding


@dataclass(frozen=True)
class CountCell:
    family: str  # what printed it ("Stata tabulate", "R table()")
    line: int
    column: str  # the column's printed header (from the file; shortened)
    value: int
    missing: bool = False  # a count of missing values: it reveals missingness, not membership of a group


def place(prefix: str, line: int, column: str = "", unit: str = "line") -> str:
    label = column if len(column) <= 30 else column[:27] + "..."
    return f"{prefix}{unit} {line}" + (f", column {label!r}" if label else "")


def count_findings(cells: Iterable[CountCell], ctx: Context, prefix: str = "") -> Iterator[Finding]:
    policy = ctx.policy
    threshold = policy.min_cell_count
    by_family: dict[str, list[CountCell]] = {}
    for cell in cells:
        by_family.setdefault(cell.family, []).append(cell)
    for family, group in by_family.items():
        base = policy.rounding_base
        rounded = base is not None and all(c.value % base == 0 for c in group)
        small = [c for c in group if 0 < c.value < threshold and not c.missing and not rounded]
        zeros = [c for c in group if c.value == 0 and not c.missing]
        missing = [c for c in group if c.missing and 0 < c.value < threshold and not rounded]
        if small:
            yield finding(
                "tables",
                Verdict.BLOCK,
                f"{family}: {len(small)} count(s) below the minimum of {threshold} in printed output (suppress "
                f"them, e.g. '<{threshold}', and any that totals would reveal)",
                _places(small, prefix),
            )
        if zeros and policy.zeros != "pass":
            yield finding(
                "tables",
                Verdict(policy.zeros),
                f"{family}: {len(zeros)} zero count(s) in printed output: a zero can disclose (everyone or no one "
                "in a group)",
                _places(zeros, prefix),
            )
        if missing:
            yield finding(
                "tables",
                Verdict.REVIEW,
                f"{family}: {len(missing)} count(s) of missing values below {threshold}: a reviewer decides whether "
                "missingness identifies anyone",
                _places(missing, prefix),
            )


def _places(cells: list[CountCell], prefix: str) -> str:
    names = list(dict.fromkeys(place(prefix, c.line, c.column) for c in cells))
    more = f"; and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return "; ".join(names[:SHOWN]) + more
